package nn

import (
	"math"
	"testing"
)

// lossAt runs a prepared training graph without updating the weights and
// returns the loss and a copy of the gradients.
func lossAt(t *testing.T, g *compiled) (float32, [][]float32) {
	t.Helper()
	if err := g.run(); err != nil {
		t.Fatal(err)
	}
	grads := make([][]float32, len(g.grads))
	for i, o := range g.grads {
		grads[i] = clone(o.floats())
	}
	return g.cost.scalar(), grads
}

// checkGradients compares the graph's gradients with central finite
// differences on a few entries of every parameter.
func checkGradients(t *testing.T, ps *paramSet, g *compiled) {
	t.Helper()
	_, grads := lossAt(t, g)
	const h = 1e-3
	checked := 0
	for i, p := range ps.list {
		d := p.data()
		for _, j := range []int{0, len(d) / 2, len(d) - 1} {
			orig := d[j]
			d[j] = orig + h
			up, _ := lossAt(t, g)
			d[j] = orig - h
			down, _ := lossAt(t, g)
			d[j] = orig
			num := (float64(up) - float64(down)) / (2 * h)
			ana := float64(grads[i][j])
			if math.Abs(num-ana) > 2e-3+5e-2*math.Abs(ana) {
				t.Errorf("%s[%d]: analytic gradient %g, numeric %g", p.name, j, ana, num)
			}
			checked++
		}
	}
	t.Logf("checked %d gradient entries", checked)
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	t.Run("Q/huber", func(t *testing.T) {
		cfg := DefaultQConfig()
		cfg.StrategicHidden, cfg.AppHidden, cfg.HeadHidden, cfg.Dropout = [2]int{8, 6}, 4, [2]int{6, 5}, 0
		n := mustQ(t, cfg, 1)
		const batch = 5
		targets := randn(9, batch)
		for i := range targets {
			targets[i] *= 3 // some errors beyond the Huber threshold
		}
		g, err := n.prepare(QBatch{States: randn(8, batch*cfg.Inputs()), Actions: []int{0, 1, 2, 1, 0}, Targets: targets})
		if err != nil {
			t.Fatal(err)
		}
		checkGradients(t, n.c.ps, g)
	})
	t.Run("PPO", func(t *testing.T) {
		cfg := DefaultPPOConfig()
		cfg.Shared, cfg.ActorHidden, cfg.CriticHidden, cfg.Actions, cfg.Dropout = [2]int{8, 8}, [2]int{6, 5}, 4, 4, 0
		cfg.EntropyCoef = 0.1
		n := mustPPO(t, cfg, 1)
		const batch = 6
		states := randn(8, batch*cfg.Inputs)
		out, err := n.Forward(states, nil)
		if err != nil {
			t.Fatal(err)
		}
		actions := []int{0, 1, 2, 3, 1, 2}
		old := make([]float32, batch)
		noise := randn(3, batch)
		for i, a := range actions {
			old[i] = out.LogProbs[i*cfg.Actions+a] + 0.1*noise[i] // ratios near 1, inside the clip
		}
		g, err := n.prepare(PPOBatch{States: states, Actions: actions, OldLogProbs: old, Advantages: randn(4, batch), Returns: randn(5, batch),
			Masks: []bool{true, true, true, true, true, true, false, true, true, true, true, true, false, true, true, true, true, true, true, true, true, true, true, true}})
		if err != nil {
			t.Fatal(err)
		}
		checkGradients(t, n.c.ps, g)
	})
	t.Run("LSTM/asymmetric", func(t *testing.T) {
		cfg := DefaultLSTMConfig()
		cfg.Steps, cfg.Hidden, cfg.DenseHidden, cfg.Dropout = 4, [2]int{6, 5}, 4, 0
		n := mustLSTM(t, cfg, 1)
		const batch = 3
		g, err := n.prepare(LSTMBatch{Seqs: randn(8, batch*cfg.Inputs()), Targets: randn(9, batch*cfg.Outputs)})
		if err != nil {
			t.Fatal(err)
		}
		checkGradients(t, n.c.ps, g)
	})
}

// TestLossValues checks each loss building block against its formula on
// outputs computed in evaluation mode (dropout off, so the training forward
// pass equals the evaluation one).
func TestLossValues(t *testing.T) {
	t.Run("Q", func(t *testing.T) {
		for _, tc := range []struct {
			loss  string
			shift float32
			want  float64
		}{
			{LossMSE, 3, 9},
			{LossHuber, 3, 2.5},     // δ(|e| − δ/2) with δ = 1
			{LossHuber, 0.5, 0.125}, // ½e²
		} {
			cfg := DefaultQConfig()
			cfg.Dropout, cfg.Loss = 0, tc.loss
			n := mustQ(t, cfg, 2)
			const batch = 4
			states := randn(1, batch*cfg.Inputs())
			q, err := n.Forward(states)
			if err != nil {
				t.Fatal(err)
			}
			actions := []int{0, 1, 2, 0}
			targets := make([]float32, batch)
			for i, a := range actions {
				targets[i] = q[i*cfg.Actions+a] + tc.shift
			}
			g, err := n.prepare(QBatch{States: states, Actions: actions, Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := lossAt(t, g); math.Abs(float64(got)-tc.want) > 1e-4 {
				t.Errorf("%s loss with error %v: got %v, want %v", tc.loss, tc.shift, got, tc.want)
			}
		}
	})
	t.Run("LSTM", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			under, over float64
			shift       float32 // target − prediction
			want        float64
		}{
			{"asymmetric under-prediction", 5, 1, 0.5, 5 * 0.25},
			{"asymmetric over-prediction", 5, 1, -0.5, 0.25},
			{"symmetric under-prediction", 1, 1, 0.5, 0.25},
		} {
			cfg := DefaultLSTMConfig()
			cfg.Dropout, cfg.BetaUnder, cfg.BetaOver = 0, tc.under, tc.over
			n := mustLSTM(t, cfg, 2)
			seqs := randn(1, 2*cfg.Inputs())
			y, err := n.Forward(seqs)
			if err != nil {
				t.Fatal(err)
			}
			for i := range y {
				y[i] += tc.shift
			}
			g, err := n.prepare(LSTMBatch{Seqs: seqs, Targets: y})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := lossAt(t, g); math.Abs(float64(got)-tc.want) > 1e-4 {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	})
	t.Run("PPO", func(t *testing.T) {
		cfg := DefaultPPOConfig()
		cfg.Dropout = 0
		n := mustPPO(t, cfg, 2)
		const batch = 4
		A := cfg.Actions
		states := randn(1, batch*cfg.Inputs)
		out, err := n.Forward(states, nil)
		if err != nil {
			t.Fatal(err)
		}
		actions := []int{3, 0, 23, 7}
		returns := randn(2, batch)
		var valueLoss, entropy float64
		for i := range batch {
			d := float64(out.Values[i] - returns[i])
			valueLoss += d * d / batch
			for j := range A {
				p := float64(out.Probs[i*A+j])
				entropy -= p * math.Log(p) / batch
			}
		}
		for _, tc := range []struct {
			name      string
			logShift  float32 // old log-prob = new − logShift
			adv       float32
			wantRatio float64 // effective ratio in the surrogate
		}{
			{"ratio 1", 0, 1, 1},
			{"positive advantage, clipped at 1+ε", 10, 1, 1.2},
			{"negative advantage, ratio bounded at 100", 10, -1, 100},
			{"negative advantage, ratio bounded at 0.01 then clipped", -10, -1, 0.8},
		} {
			old := make([]float32, batch)
			adv := make([]float32, batch)
			for i, a := range actions {
				old[i] = out.LogProbs[i*A+a] - tc.logShift
				adv[i] = tc.adv
			}
			g, err := n.prepare(PPOBatch{States: states, Actions: actions, OldLogProbs: old, Advantages: adv, Returns: returns})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := lossAt(t, g)
			policy := -tc.wantRatio * float64(tc.adv)
			want := policy + cfg.ValueCoef*valueLoss - cfg.EntropyCoef*entropy
			if math.Abs(float64(got)-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: loss %v, want %v", tc.name, got, want)
			}
		}
	})
}

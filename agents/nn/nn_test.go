package nn

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

// netUnderTest gives the table-driven tests one view of the three
// networks.
type netUnderTest struct {
	name string
	// new builds the network and returns its parameters, a training step
	// on a fixed batch (poisoned with a NaN or Inf when asked) and its
	// stats.
	new func(t testing.TB, seed uint64) (ps *paramSet, step func(poison bool) error, stats func() TrainStats)
}

func nets() []netUnderTest {
	return []netUnderTest{
		{name: "Q", new: func(t testing.TB, seed uint64) (*paramSet, func(bool) error, func() TrainStats) {
			n := mustQ(t, DefaultQConfig(), seed)
			x := randn(1, 4*n.cfg.Inputs())
			b := QBatch{States: x, Actions: []int{0, 1, 2, 0}, Targets: randn(2, 4)}
			return n.c.ps, func(poison bool) error {
				bb := b
				if poison {
					bb.States = slices.Clone(b.States)
					bb.States[3] = float32(math.NaN())
				}
				_, err := n.TrainStep(bb)
				return err
			}, func() TrainStats { return n.Stats }
		}},
		{name: "PPO", new: func(t testing.TB, seed uint64) (*paramSet, func(bool) error, func() TrainStats) {
			n := mustPPO(t, DefaultPPOConfig(), seed)
			x := randn(1, 4*n.cfg.Inputs)
			b := PPOBatch{States: x, Actions: []int{0, 5, 23, 1}, OldLogProbs: []float32{-3, -3, -3, -3}, Advantages: randn(2, 4), Returns: randn(3, 4)}
			return n.c.ps, func(poison bool) error {
				bb := b
				if poison {
					bb.Advantages = slices.Clone(b.Advantages)
					bb.Advantages[1] = float32(math.Inf(1))
				}
				_, err := n.TrainStep(bb)
				return err
			}, func() TrainStats { return n.Stats }
		}},
		{name: "LSTM", new: func(t testing.TB, seed uint64) (*paramSet, func(bool) error, func() TrainStats) {
			n := mustLSTM(t, DefaultLSTMConfig(), seed)
			x := randn(1, 2*n.cfg.Inputs())
			b := LSTMBatch{Seqs: x, Targets: randn(2, 2*n.cfg.Outputs)}
			return n.c.ps, func(poison bool) error {
				bb := b
				if poison {
					bb.Seqs = slices.Clone(b.Seqs)
					bb.Seqs[17] = float32(math.NaN())
				}
				_, err := n.TrainStep(bb)
				return err
			}, func() TrainStats { return n.Stats }
		}},
	}
}

// mustForward returns a function that passes a forward pass's output
// through, failing the test on error: mustForward(t)(n.Forward(x)).
func mustForward(t testing.TB) func([]float32, error) []float32 {
	return func(out []float32, err error) []float32 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func equalSnapshots(a, b [][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestInitIsDeterministicPerSeed(t *testing.T) {
	for _, tc := range nets() {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := tc.new(t, 7)
			b, _, _ := tc.new(t, 7)
			c, _, _ := tc.new(t, 8)
			if !equalSnapshots(a.snapshot(), b.snapshot()) {
				t.Error("same seed gave different weights")
			}
			if equalSnapshots(a.snapshot(), c.snapshot()) {
				t.Error("different seeds gave the same weights")
			}
		})
	}
}

func TestTrainingIsDeterministicPerSeed(t *testing.T) {
	for _, tc := range nets() {
		t.Run(tc.name, func(t *testing.T) {
			var snaps [2][][]float32
			for k := range snaps {
				ps, step, _ := tc.new(t, 9)
				for range 3 {
					if err := step(false); err != nil {
						t.Fatal(err)
					}
				}
				snaps[k] = ps.snapshot()
			}
			if !equalSnapshots(snaps[0], snaps[1]) {
				t.Error("same seed and batches gave different weights (dropout masks not seeded?)")
			}
		})
	}
}

func TestNonFiniteBatchIsRejectedAndCounted(t *testing.T) {
	for _, tc := range nets() {
		t.Run(tc.name, func(t *testing.T) {
			ps, step, stats := tc.new(t, 3)
			before := ps.snapshot()
			err := step(true)
			if !errors.Is(err, ErrNonFinite) {
				t.Fatalf("step on a non-finite batch returned %v, want ErrNonFinite", err)
			}
			if s := stats(); s.Rejected != 1 || s.RejectedInput != 1 || s.Steps != 0 {
				t.Errorf("stats %+v, want one rejected input and no step", s)
			}
			if !equalSnapshots(before, ps.snapshot()) {
				t.Error("a rejected step changed the weights")
			}
			if err := step(false); err != nil {
				t.Fatalf("finite step after a rejection: %v", err)
			}
			if s := stats(); s.Steps != 1 || s.Rejected != 1 {
				t.Errorf("stats %+v after one good step", s)
			}
		})
	}
}

func TestNonFiniteLossOrGradientIsRejected(t *testing.T) {
	t.Run("loss", func(t *testing.T) {
		cfg := DefaultQConfig()
		cfg.Loss = LossMSE
		n := mustQ(t, cfg, 1)
		before := n.c.ps.snapshot()
		// A finite but huge target: the squared error overflows float32.
		_, err := n.TrainStep(QBatch{States: randn(1, 2*cfg.Inputs()), Actions: []int{0, 1}, Targets: []float32{3e38, 0}})
		if !errors.Is(err, ErrNonFinite) || n.Stats.RejectedLoss != 1 || n.Stats.Rejected != 1 {
			t.Fatalf("err %v, stats %+v; want a rejected loss", err, n.Stats)
		}
		if !equalSnapshots(before, n.c.ps.snapshot()) {
			t.Error("a rejected step changed the weights")
		}
	})
	t.Run("gradient", func(t *testing.T) {
		cfg := DefaultPPOConfig()
		cfg.ValueCoef, cfg.EntropyCoef = 0, 0
		n := mustPPO(t, cfg, 1)
		before := n.c.ps.snapshot()
		// A finite loss whose gradient overflows: the advantage is near the
		// float32 maximum, the ratio near 1.
		states := randn(1, cfg.Inputs)
		out, err := n.Forward(states, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.TrainStep(PPOBatch{States: states, Actions: []int{0}, OldLogProbs: out.LogProbs[:1], Advantages: []float32{3e38}, Returns: []float32{0}})
		if !errors.Is(err, ErrNonFinite) || n.Stats.Rejected != 1 || n.Stats.RejectedGrad != 1 {
			t.Fatalf("err %v, stats %+v; want a rejected gradient", err, n.Stats)
		}
		t.Logf("stats %+v", n.Stats)
		if !equalSnapshots(before, n.c.ps.snapshot()) {
			t.Error("a rejected step changed the weights")
		}
	})
}

func TestCheckpointRoundTrip(t *testing.T) {
	scaler := &Scaler{Kind: ScalerRobust, Dim: 2, Center: []float32{1, 2}, Scale: []float32{3, 4}, Log1p: []bool{true, false}}
	t.Run("Q", func(t *testing.T) {
		n := mustQ(t, DefaultQConfig(), 11)
		perturb(n.c.ps, 1)
		n.Scaler = scaler
		var buf bytes.Buffer
		if err := n.Save(&buf); err != nil {
			t.Fatal(err)
		}
		m, err := LoadQNet(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		x := randn(2, 5*n.cfg.Inputs())
		if !slices.Equal(mustForward(t)(n.Forward(x)), mustForward(t)(m.Forward(x))) {
			t.Error("loaded network gives different Q-values")
		}
		if m.Seed() != 11 || m.Config() != n.Config() || !slices.Equal(m.Scaler.Center, scaler.Center) || !slices.Equal(m.Scaler.Log1p, scaler.Log1p) {
			t.Errorf("loaded seed %d, config %+v, scaler %+v", m.Seed(), m.Config(), m.Scaler)
		}
	})
	t.Run("PPO", func(t *testing.T) {
		n := mustPPO(t, DefaultPPOConfig(), 12)
		perturb(n.c.ps, 2)
		n.SetLearningRate(1e-5)
		var buf bytes.Buffer
		if err := n.Save(&buf); err != nil {
			t.Fatal(err)
		}
		// Load into an existing network of another seed.
		m := mustPPO(t, DefaultPPOConfig(), 99)
		if err := m.Load(&buf); err != nil {
			t.Fatal(err)
		}
		x := randn(3, 4*n.cfg.Inputs)
		a, err := n.Forward(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Forward(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Probs, b.Probs) || !slices.Equal(a.Values, b.Values) {
			t.Error("loaded network gives different outputs")
		}
		if m.Seed() != 12 || m.LearningRate() != 1e-5 || m.Scaler != nil {
			t.Errorf("loaded seed %d, learning rate %v, scaler %v", m.Seed(), m.LearningRate(), m.Scaler)
		}
		// The loaded network trains (its graphs were rebuilt for it).
		if _, err := m.TrainStep(PPOBatch{States: x, Actions: []int{0, 1, 2, 3}, OldLogProbs: make([]float32, 4), Advantages: make([]float32, 4), Returns: make([]float32, 4)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LSTM", func(t *testing.T) {
		n := mustLSTM(t, DefaultLSTMConfig(), 13)
		perturb(n.c.ps, 3)
		sc, err := FitScaler(ScalerMinMax, randn(4, 50), 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.Scaler = sc
		var buf bytes.Buffer
		if err := n.Save(&buf); err != nil {
			t.Fatal(err)
		}
		m, err := LoadLSTMNet(&buf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		x := randn(5, 3*n.cfg.Inputs())
		if !slices.Equal(mustForward(t)(n.Forward(x)), mustForward(t)(m.Forward(x))) {
			t.Error("loaded network gives different predictions")
		}
		ew, err := m.Export().Forward(nil, x)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(t, mustForward(t)(n.Forward(x)), ew); d > exportTolerance {
			t.Errorf("served from the loaded checkpoint: error %g", d)
		}
		if !slices.Equal(m.Scaler.Scale, sc.Scale) {
			t.Errorf("scaler %+v, want %+v", m.Scaler, sc)
		}
	})
}

func TestCheckpointMetadata(t *testing.T) {
	n := mustPPO(t, DefaultPPOConfig(), 42)
	var buf bytes.Buffer
	if err := n.Save(&buf); err != nil {
		t.Fatal(err)
	}
	if hl := buf.Len(); hl%4 != 0 {
		t.Errorf("file length %d", hl)
	}
	c, err := ReadCheckpoint(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"format": FormatVersion, "kind": KindPPO, "seed": "42", "inputs": "11", "outputs": "24", "param_count": "53209"} {
		if got := c.Metadata[k]; got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	if len(c.Order) != len(n.c.ps.list) || c.Order[0] != "shared.0.weight" {
		t.Errorf("tensor order %v", c.Order)
	}
	if sh := c.Tensors["actor.out.weight"].Shape; !slices.Equal(sh, []int{64, 24}) {
		t.Errorf("actor.out.weight shape %v", sh)
	}
}

func TestLoadRejectsOtherKindOrVersion(t *testing.T) {
	q := mustQ(t, DefaultQConfig(), 1)
	var qbuf bytes.Buffer
	if err := q.Save(&qbuf); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPPONet(bytes.NewReader(qbuf.Bytes())); !errors.Is(err, ErrKind) {
		t.Errorf("loading a Q checkpoint as PPO: %v, want ErrKind", err)
	}
	if _, err := LoadLSTMNet(bytes.NewReader(qbuf.Bytes())); !errors.Is(err, ErrKind) {
		t.Errorf("loading a Q checkpoint as LSTM: %v, want ErrKind", err)
	}
	p := mustPPO(t, DefaultPPOConfig(), 1)
	before := p.c.ps.snapshot()
	if err := p.Load(bytes.NewReader(qbuf.Bytes())); !errors.Is(err, ErrKind) {
		t.Errorf("PPONet.Load of a Q checkpoint: %v, want ErrKind", err)
	}
	if !equalSnapshots(before, p.c.ps.snapshot()) {
		t.Error("a failed Load changed the network")
	}
	// Another format version.
	other := bytes.Replace(qbuf.Bytes(), []byte(FormatVersion), []byte("strata-nn/9"), 1)
	if _, err := LoadQNet(bytes.NewReader(other)); !errors.Is(err, ErrVersion) {
		t.Errorf("loading version strata-nn/9: %v, want ErrVersion", err)
	}
}

func TestReadCheckpointRejectsMalformedInput(t *testing.T) {
	q := mustQ(t, DefaultQConfig(), 1)
	var buf bytes.Buffer
	if err := q.Save(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short length", good[:4]},
		{"huge header", append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}, good[8:]...)},
		{"truncated data", good[:len(good)-4]},
		{"trailing data", append(slices.Clone(good), 0, 0, 0, 0)},
		{"not JSON", append(slices.Clone(good[:8]), bytes.Repeat([]byte{'x'}, len(good)-8)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadCheckpoint(bytes.NewReader(tc.data)); !errors.Is(err, ErrCheckpoint) {
				t.Errorf("got %v, want ErrCheckpoint", err)
			}
		})
	}
	t.Run("other architecture", func(t *testing.T) {
		cfg := DefaultQConfig()
		cfg.AppHidden = 16
		small := mustQ(t, cfg, 1)
		var sb bytes.Buffer
		if err := small.Save(&sb); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCheckpoint(&sb)
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata["config"] = string(mustJSON(t, DefaultQConfig()))
		if _, err := c.QNet(); !errors.Is(err, ErrArchitecture) {
			t.Errorf("tensors of another width: %v, want ErrArchitecture", err)
		}
	})
}

func TestMaskIsRespected(t *testing.T) {
	n := mustPPO(t, DefaultPPOConfig(), 2)
	A := n.cfg.Actions
	const batch = 3
	x := randn(6, batch*n.cfg.Inputs)
	masks := make([]bool, batch*A)
	for i := range masks {
		masks[i] = i%3 != 0 // row 0: actions 0, 3, … masked
	}
	masks[A+7] = false
	g, err := n.Forward(x, masks)
	if err != nil {
		t.Fatal(err)
	}
	e, err := n.Export().Forward(PPOOutput{}, x, masks)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]PPOOutput{"gorgonia": g, "exported": e} {
		for r := range batch {
			var sum float64
			for a := range A {
				p := out.Probs[r*A+a]
				sum += float64(p)
				if !masks[r*A+a] && p > 1e-30 {
					t.Errorf("%s: masked action %d of row %d has probability %g", name, a, r, p)
				}
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("%s: row %d probabilities sum to %v", name, r, sum)
			}
		}
	}
	none := make([]bool, batch*A)
	if _, err := n.Forward(x, none); !errors.Is(err, ErrShape) {
		t.Errorf("all actions masked: %v, want ErrShape", err)
	}
	if _, err := n.Export().Forward(PPOOutput{}, x, none); !errors.Is(err, ErrShape) {
		t.Errorf("exported, all actions masked: %v, want ErrShape", err)
	}
	_, err = n.TrainStep(PPOBatch{States: x, Masks: masks, Actions: []int{0, 1, 2}, OldLogProbs: make([]float32, 3), Advantages: make([]float32, 3), Returns: make([]float32, 3)})
	if !errors.Is(err, ErrShape) {
		t.Errorf("training on a masked action: %v, want ErrShape", err)
	}
}

func TestSoftUpdateAndCopy(t *testing.T) {
	online := mustQ(t, DefaultQConfig(), 1)
	target := mustQ(t, DefaultQConfig(), 2)
	w0 := target.c.ps.list[0].data()[0]
	o0 := online.c.ps.list[0].data()[0]
	if err := target.SoftUpdate(online, 0.005); err != nil {
		t.Fatal(err)
	}
	if got, want := target.c.ps.list[0].data()[0], 0.005*o0+0.995*w0; math.Abs(float64(got-want)) > 1e-7 {
		t.Errorf("soft update gave %v, want %v", got, want)
	}
	if err := target.CopyFrom(online); err != nil {
		t.Fatal(err)
	}
	if !equalSnapshots(target.c.ps.snapshot(), online.c.ps.snapshot()) {
		t.Error("CopyFrom left differences")
	}
	cfg := DefaultQConfig()
	cfg.HeadHidden[1] = 16
	other := mustQ(t, cfg, 1)
	if err := other.SoftUpdate(online, 0.5); !errors.Is(err, ErrArchitecture) {
		t.Errorf("soft update across architectures: %v, want ErrArchitecture", err)
	}
}

func TestConfigValidation(t *testing.T) {
	q := DefaultQConfig()
	q.Loss = "hinge"
	p := DefaultPPOConfig()
	p.RatioMin = 0
	l := DefaultLSTMConfig()
	l.Steps = 1
	o := DefaultLSTMConfig()
	o.Optimizer.LearningRate = 0
	d := DefaultQConfig()
	d.Dropout = 1
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"default Q", DefaultQConfig().Validate()},
		{"default PPO", DefaultPPOConfig().Validate()},
		{"default LSTM", DefaultLSTMConfig().Validate()},
	} {
		if tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unknown Q loss", q.Validate()},
		{"zero ratio bound", p.Validate()},
		{"one LSTM step", l.Validate()},
		{"zero learning rate", o.Validate()},
		{"dropout 1", d.Validate()},
	} {
		if !errors.Is(tc.err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, tc.err)
		}
	}
	if _, err := NewQNet(q, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("NewQNet with a bad config: %v", err)
	}
}

func TestShapeErrors(t *testing.T) {
	q := mustQ(t, DefaultQConfig(), 1)
	p := mustPPO(t, DefaultPPOConfig(), 1)
	l := mustLSTM(t, DefaultLSTMConfig(), 1)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Q forward", func() error { _, err := q.Forward(make([]float32, 13)); return err }()},
		{"Q actions", func() error {
			_, err := q.TrainStep(QBatch{States: make([]float32, 14), Actions: []int{3}, Targets: []float32{0}})
			return err
		}()},
		{"Q targets", func() error {
			_, err := q.TrainStep(QBatch{States: make([]float32, 14), Actions: []int{0}})
			return err
		}()},
		{"PPO forward", func() error { _, err := p.Forward(nil, nil); return err }()},
		{"PPO mask", func() error { _, err := p.Forward(make([]float32, 11), make([]bool, 3)); return err }()},
		{"LSTM forward", func() error { _, err := l.Forward(make([]float32, 59)); return err }()},
		{"LSTM targets", func() error {
			_, err := l.TrainStep(LSTMBatch{Seqs: make([]float32, 60), Targets: make([]float32, 2)})
			return err
		}()},
		{"exported Q", func() error { _, err := q.Export().Forward(nil, make([]float32, 15)); return err }()},
		{"exported LSTM", func() error { _, err := l.Export().Forward(nil, make([]float32, 61)); return err }()},
	} {
		if !errors.Is(tc.err, ErrShape) {
			t.Errorf("%s: %v, want ErrShape", tc.name, tc.err)
		}
	}
}

func TestExportedForwardDoesNotAllocate(t *testing.T) {
	q := mustQ(t, DefaultQConfig(), 1).Export()
	p := mustPPO(t, DefaultPPOConfig(), 1).Export()
	l := mustLSTM(t, DefaultLSTMConfig(), 1).Export()
	xq, xp, xl := randn(1, 14), randn(1, 4*11), randn(1, 60)
	var oq, ol []float32
	var op PPOOutput
	for name, f := range map[string]func(){
		"Q":    func() { oq, _ = q.Forward(oq, xq) },
		"PPO":  func() { op, _ = p.Forward(op, xp, nil) },
		"LSTM": func() { ol, _ = l.Forward(ol, xl) },
	} {
		f() // sizes the buffers
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

func TestExportedCloneIsIndependent(t *testing.T) {
	p := mustPPO(t, DefaultPPOConfig(), 1).Export()
	c := p.Clone()
	x1, x2 := randn(1, 11), randn(2, 11)
	a, err := p.Forward(PPOOutput{}, x1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Forward(PPOOutput{}, x2, nil); err != nil {
		t.Fatal(err)
	}
	b, err := p.Forward(PPOOutput{}, x1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Probs, b.Probs) || &c.Shared[0].W[0] != &p.Shared[0].W[0] {
		t.Error("clone does not share weights or disturbs the original")
	}
}

func TestCompareForward(t *testing.T) {
	n := mustPPO(t, DefaultPPOConfig(), 1)
	r, err := n.CompareForward(1, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Ratio() <= 0 || r.MaxAbsError > exportTolerance || r.Batch != 1 || r.Calls != 20 {
		t.Errorf("timing %+v", r)
	}
	if _, err := n.CompareForward(0, 1); !errors.Is(err, ErrShape) {
		t.Errorf("batch 0: %v", err)
	}
}

func TestLSTMSetLossRebuildsTrainingGraphs(t *testing.T) {
	cfg := DefaultLSTMConfig()
	cfg.Dropout = 0
	n := mustLSTM(t, cfg, 1)
	seqs := randn(1, 2*cfg.Inputs())
	y := mustForward(t)(n.Forward(seqs))
	for i := range y {
		y[i] += 0.5 // every prediction is 0.5 under its target
	}
	b := LSTMBatch{Seqs: seqs, Targets: y}
	g, err := n.prepare(b)
	if err != nil {
		t.Fatal(err)
	}
	asym, _ := lossAt(t, g)
	if err := n.SetLoss(1, 1); err != nil {
		t.Fatal(err)
	}
	g, err = n.prepare(b)
	if err != nil {
		t.Fatal(err)
	}
	sym, _ := lossAt(t, g)
	if math.Abs(float64(asym)/float64(sym)-5) > 1e-3 {
		t.Errorf("asymmetric %v / symmetric %v, want 5", asym, sym)
	}
	if err := n.SetLoss(0, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("SetLoss(0, 1): %v", err)
	}
}

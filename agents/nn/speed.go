package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ForwardTiming compares a network's gorgonia forward pass with the
// exported-weight one, measured side by side on the same inputs.
type ForwardTiming struct {
	// Network is the network kind (KindQ, KindPPO or KindLSTM).
	Network string
	// Batch is the number of rows per call; Calls the calls timed per
	// implementation.
	Batch, Calls int
	// Gorgonia and Exported are the mean wall time of one call.
	Gorgonia, Exported time.Duration
	// MaxAbsError is the largest difference between the two outputs.
	MaxAbsError float64
}

// Ratio returns how many times faster the exported forward pass is.
func (t ForwardTiming) Ratio() float64 {
	if t.Exported <= 0 {
		return 0
	}
	return float64(t.Gorgonia) / float64(t.Exported)
}

// String formats the timing for a CLI line.
func (t ForwardTiming) String() string {
	return fmt.Sprintf("%s batch %d: gorgonia %v, exported %v per call, exported/gorgonia speed ratio %.1f× (max abs error %.2g)",
		t.Network, t.Batch, t.Gorgonia, t.Exported, t.Ratio(), t.MaxAbsError)
}

// compareForward times two forward functions in alternating rounds (so
// both see the same machine load) after one warm-up call each.
func compareForward(kind string, batch, calls int, gorgonia func() ([]float32, error), exported func() ([]float32, error)) (ForwardTiming, error) {
	if batch <= 0 || calls <= 0 {
		return ForwardTiming{}, fmt.Errorf("comparing forward passes: %w: batch %d, calls %d", ErrShape, batch, calls)
	}
	t := ForwardTiming{Network: kind, Batch: batch, Calls: calls}
	want, err := gorgonia()
	if err != nil {
		return t, fmt.Errorf("comparing forward passes: %w", err)
	}
	got, err := exported()
	if err != nil {
		return t, fmt.Errorf("comparing forward passes: %w", err)
	}
	for i := range want {
		t.MaxAbsError = max(t.MaxAbsError, absDiff(want[i], got[i]))
	}
	const rounds = 5
	var tg, te time.Duration
	for r := range rounds {
		n := calls / rounds
		if r < calls%rounds {
			n++
		}
		start := time.Now()
		for range n {
			if _, err := gorgonia(); err != nil {
				return t, fmt.Errorf("comparing forward passes: %w", err)
			}
		}
		tg += time.Since(start)
		start = time.Now()
		for range n {
			if _, err := exported(); err != nil {
				return t, fmt.Errorf("comparing forward passes: %w", err)
			}
		}
		te += time.Since(start)
	}
	t.Gorgonia, t.Exported = tg/time.Duration(calls), te/time.Duration(calls)
	return t, nil
}

func absDiff(a, b float32) float64 {
	d := float64(a) - float64(b)
	if d < 0 {
		return -d
	}
	return d
}

// randomInputs returns seeded standard-normal inputs.
func randomInputs(n int) []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// CompareForward times the gorgonia forward pass (whatever the network's
// backend) against the exported one on random inputs of the given batch
// size, calls times each, and reports the speed ratio (for a CLI's
// "exported/gorgonia ratio").
func (n *PPONet) CompareForward(batch, calls int) (ForwardTiming, error) {
	x := randomInputs(max(batch, 0) * n.cfg.Inputs)
	w := n.Export()
	var out PPOOutput
	return compareForward(KindPPO, batch, calls,
		func() ([]float32, error) {
			o, err := n.gorgoniaForward(x, nil)
			return o.Probs, err
		},
		func() ([]float32, error) {
			var err error
			out, err = w.Forward(out, x, nil)
			return out.Probs, err
		})
}

// CompareForward times the gorgonia forward pass against the exported one
// on random inputs of the given batch size, calls times each, and reports
// the speed ratio.
func (n *QNet) CompareForward(batch, calls int) (ForwardTiming, error) {
	x := randomInputs(max(batch, 0) * n.cfg.Inputs())
	w := n.Export()
	var out []float32
	g := qGorgonia{n}
	return compareForward(KindQ, batch, calls,
		func() ([]float32, error) { return g.forward(nil, x, max(batch, 1)) },
		func() ([]float32, error) {
			var err error
			out, err = w.Forward(out, x)
			return out, err
		})
}

// CompareForward times the gorgonia forward pass against the exported one
// on random inputs of the given batch size, calls times each, and reports
// the speed ratio.
func (n *LSTMNet) CompareForward(batch, calls int) (ForwardTiming, error) {
	x := randomInputs(max(batch, 0) * n.cfg.Inputs())
	w := n.Export()
	var out []float32
	g := lstmGorgonia{n}
	return compareForward(KindLSTM, batch, calls,
		func() ([]float32, error) { return g.forward(nil, x, max(batch, 1)) },
		func() ([]float32, error) {
			var err error
			out, err = w.Forward(out, x)
			return out, err
		})
}

// gorgoniaForward is Forward on the gorgonia backend, whatever the
// network's.
func (n *PPONet) gorgoniaForward(states []float32, masks []bool) (PPOOutput, error) {
	batch, err := batchOf(states, n.cfg.Inputs, "states")
	if err != nil {
		return PPOOutput{}, err
	}
	n.addMask = grow(n.addMask, batch*n.cfg.Actions)
	if err := fillMask(n.addMask, masks, n.cfg.Actions); err != nil {
		return PPOOutput{}, err
	}
	logp, values, err := ppoGorgonia{n}.forward(states, n.addMask, batch)
	if err != nil {
		return PPOOutput{}, err
	}
	out := PPOOutput{LogProbs: logp, Values: values, Probs: make([]float32, len(logp))}
	for i, lp := range logp {
		out.Probs[i] = float32(math.Exp(float64(lp)))
	}
	return out, nil
}

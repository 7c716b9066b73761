package nn

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// parityTol bounds ‖a − b‖ / max(‖a‖, ‖b‖) per tensor between a backend and
// the gorgonia reference (docs/nn.md).
const parityTol = 1e-4

// parityRelErr returns ‖a − b‖ / max(‖a‖, ‖b‖), 0 when both are zero.
func parityRelErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		d += (x - y) * (x - y)
		na += x * x
		nb += y * y
	}
	if na == 0 && nb == 0 {
		return 0
	}
	return math.Sqrt(d) / math.Sqrt(max(na, nb))
}

// parityCase is one network under the parity test: a reference and a
// candidate built from the same seed, and a training step on a random
// batch drawn from rng, run on both.
type parityCase struct {
	name string
	new  func(t *testing.T, opts ...Option) (c *core, stats *TrainStats, step func(rng *rand.Rand) (float32, error), fwd func() []float32)
}

// parityTracker keeps the largest relative error per kind of tensor.
type parityTracker struct {
	t     *testing.T
	worst map[string]float64
}

func (p *parityTracker) check(what string, a, b []float32) {
	p.t.Helper()
	e := parityRelErr(a, b)
	kind := what
	if i := bytes.IndexByte([]byte(what), ' '); i > 0 {
		kind = what[:i]
	}
	p.worst[kind] = max(p.worst[kind], e)
	if !(e <= parityTol) {
		p.t.Errorf("%s: relative error %.3g > %g", what, e, parityTol)
	}
}

func parityCases() []parityCase {
	return []parityCase{
		{name: "Q/huber", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			return qParity(t, LossHuber, opts...)
		}},
		{name: "Q/mse", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			return qParity(t, LossMSE, opts...)
		}},
		{name: "PPO", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			return ppoParityCfg(t, DefaultPPOConfig(), opts...)
		}},
		{name: "PPO/counterfactual", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			cfg := DefaultPPOConfig()
			cfg.CounterfactualCoef = 0.7
			return ppoParityCfg(t, cfg, opts...)
		}},
		{name: "LSTM", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			cfg := DefaultLSTMConfig()
			cfg.Optimizer.ClipNorm = 0.5 // exercise the clip, which the seed's LSTM does not use
			return lstmParityCfg(t, cfg, 24, opts...)
		}},
		// Other widths than the seed's (inputs, heads, hidden sizes that are
		// not multiples of the kernels' 8 and 16), as a later change of the
		// state vectors would give.
		{name: "Q/other-widths", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			cfg := DefaultQConfig()
			cfg.StrategicInputs, cfg.AppInputs, cfg.StrategicHidden, cfg.AppHidden, cfg.HeadHidden, cfg.Actions = 13, 6, [2]int{40, 21}, 9, [2]int{27, 11}, 5
			cfg.Optimizer.LearningRate = 1e-3
			return qParityCfg(t, cfg, opts...)
		}},
		{name: "PPO/other-widths", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			cfg := DefaultPPOConfig()
			cfg.Inputs, cfg.Shared, cfg.ActorHidden, cfg.CriticHidden, cfg.Actions = 17, [2]int{36, 30}, [2]int{28, 13}, 19, 7
			return ppoParityCfg(t, cfg, opts...)
		}},
		{name: "LSTM/other-widths", new: func(t *testing.T, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
			cfg := DefaultLSTMConfig()
			cfg.Features, cfg.Steps, cfg.Hidden, cfg.DenseHidden, cfg.Outputs = 7, 5, [2]int{20, 13}, 9, 4
			cfg.Optimizer.ClipNorm = 0.5
			return lstmParityCfg(t, cfg, 19, opts...)
		}},
	}
}

func ppoParityCfg(t *testing.T, cfg PPOConfig, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
	n := mustPPOOpts(t, cfg, 5, opts...)
	c := n.cfg
	const batch = 64
	probe := randn(99, 16*c.Inputs)
	return n.c, &n.Stats, func(rng *rand.Rand) (float32, error) {
			b := ppoParityBatch(rng, c, batch)
			loss, err := n.TrainStep(b)
			return loss, err
		}, func() []float32 {
			out, err := n.Forward(probe, nil)
			if err != nil {
				t.Fatal(err)
			}
			return append(out.LogProbs, out.Values...)
		}
}

// ppoParityBatch draws a PPO minibatch of the parity test from rng.
func ppoParityBatch(rng *rand.Rand, c PPOConfig, batch int) PPOBatch {
	b := PPOBatch{States: randnRNG(rng, batch*c.Inputs, 1), Masks: make([]bool, batch*c.Actions),
		Actions: make([]int, batch), OldLogProbs: make([]float32, batch), Advantages: randnRNG(rng, batch, 1), Returns: randnRNG(rng, batch, 2)}
	for i := range batch {
		for j := range c.Actions {
			b.Masks[i*c.Actions+j] = rng.IntN(4) != 0
		}
		b.Actions[i] = rng.IntN(c.Actions)
		b.Masks[i*c.Actions+b.Actions[i]] = true
		// Old log-probabilities around the uniform policy's: ratios
		// inside and outside the clip, a few past the [0.01, 100] bound.
		b.OldLogProbs[i] = float32(-math.Log(float64(c.Actions)) + rng.NormFloat64()*0.5)
		if rng.IntN(16) == 0 {
			b.OldLogProbs[i] -= 6
		}
	}
	if c.CounterfactualCoef > 0 {
		b.ActionRewards = randnRNG(rng, batch*c.Actions, 1)
	}
	return b
}

func lstmParityCfg(t *testing.T, cfg LSTMConfig, batch int, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
	n := mustLSTMOpts(t, cfg, 6, opts...)
	probe := randn(98, 4*cfg.Inputs())
	return n.c, &n.Stats, func(rng *rand.Rand) (float32, error) {
			return n.TrainStep(LSTMBatch{Seqs: randnRNG(rng, batch*cfg.Inputs(), 1), Targets: randnRNG(rng, batch*cfg.Outputs, 1)})
		}, func() []float32 {
			y, err := n.Forward(probe)
			if err != nil {
				t.Fatal(err)
			}
			return y
		}
}

func qParity(t *testing.T, loss string, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
	cfg := DefaultQConfig()
	cfg.Loss = loss
	cfg.Optimizer.LearningRate = 1e-3
	return qParityCfg(t, cfg, opts...)
}

func qParityCfg(t *testing.T, cfg QConfig, opts ...Option) (*core, *TrainStats, func(*rand.Rand) (float32, error), func() []float32) {
	n := mustQOpts(t, cfg, 4, opts...)
	const batch = 64
	probe := randn(97, 16*cfg.Inputs())
	return n.c, &n.Stats, func(rng *rand.Rand) (float32, error) {
			b := QBatch{States: randnRNG(rng, batch*cfg.Inputs(), 1), Actions: make([]int, batch), Targets: randnRNG(rng, batch, 3)}
			for i := range b.Actions {
				b.Actions[i] = rng.IntN(cfg.Actions)
			}
			return n.TrainStep(b)
		}, func() []float32 {
			q, err := n.Forward(probe)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
}

// randnRNG returns n normal values of standard deviation sd.
func randnRNG(rng *rand.Rand, n int, sd float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * sd)
	}
	return out
}

// parityVariant is one candidate backend configuration of the parity
// test.
type parityVariant struct {
	name    string
	backend Backend
	threads int
	pureGo  bool
}

// TestBackendParity trains each network for 20 Adam steps on the gorgonia
// reference and, in lockstep, on the CPU backend (1 and 2 threads; AVX2
// and pure-Go kernels) from the same seed, with dropout on, on the same
// random batches, and compares after every step the dropout masks
// (bitwise), the loss, every gradient and every updated weight, then the
// evaluation forward pass.
func TestBackendParity(t *testing.T) {
	variants := []parityVariant{{"threads=1", BackendCPU, 1, false}, {"threads=2", BackendCPU, 2, false}}
	if useAVX2 {
		variants = append(variants, parityVariant{"threads=2/purego", BackendCPU, 2, true})
	}
	runParity(t, variants, 42, nil)
}

// runParity trains each parity case for 20 steps on the gorgonia
// reference and on each variant with the same seeds and dropout masks,
// and requires every loss, gradient and weight, and the final forward
// pass, within parityTol of the reference's.
//
// The batches come from a PCG generator seeded with seed; keep, when not
// nil, selects the cases (by name) that run.
func runParity(t *testing.T, variants []parityVariant, seed uint64, keep func(name string) bool) {
	const steps = 20
	for _, pc := range parityCases() {
		if keep != nil && !keep(pc.name) {
			continue
		}
		t.Run(pc.name, func(t *testing.T) {
			refC, refStats, refStep, refFwd := pc.new(t, WithBackend(BackendGorgonia))
			type candidate struct {
				parityVariant
				c     *core
				stats *TrainStats
				step  func(*rand.Rand) (float32, error)
				fwd   func() []float32
				rng   *rand.Rand
				p     *parityTracker
			}
			// run runs f with the candidate's kernels.
			run := func(v parityVariant, f func()) {
				if v.pureGo && useAVX2 {
					useAVX2 = false
					defer func() { useAVX2 = true }()
				}
				f()
			}
			var cands []*candidate
			for _, v := range variants {
				cd := &candidate{parityVariant: v, rng: rand.New(rand.NewPCG(seed, 1)), p: &parityTracker{t: t, worst: map[string]float64{}}}
				cd.c, cd.stats, cd.step, cd.fwd = pc.new(t, WithBackend(v.backend), WithThreads(v.threads))
				cands = append(cands, cd)
			}
			rng := rand.New(rand.NewPCG(seed, 1))
			for s := range steps {
				lr, err := refStep(rng)
				if err != nil {
					t.Fatalf("step %d: reference: %v", s, err)
				}
				for _, cd := range cands {
					var lc float32
					run(cd.parityVariant, func() { lc, err = cd.step(cd.rng) })
					if err != nil {
						t.Fatalf("step %d: %s: %v", s, cd.name, err)
					}
					if len(refC.masks) != len(cd.c.masks) {
						t.Fatalf("step %d: %s: %d and %d dropout masks", s, cd.name, len(refC.masks), len(cd.c.masks))
					}
					for i := range cd.c.masks {
						if !slices.Equal(refC.masks[i], cd.c.masks[i]) {
							t.Fatalf("step %d: %s: dropout mask %d differs", s, cd.name, i)
						}
					}
					cd.p.check(fmt.Sprintf("loss %s step %d", cd.name, s), []float32{lr}, []float32{lc})
					for i, q := range cd.c.ps.list {
						cd.p.check(fmt.Sprintf("gradient %s step %d %s", cd.name, s, q.name), refC.grads[i], cd.c.grads[i])
						cd.p.check(fmt.Sprintf("weight %s step %d %s", cd.name, s, q.name), refC.ps.list[i].data(), q.data())
					}
				}
			}
			want := refFwd()
			for _, cd := range cands {
				var got []float32
				run(cd.parityVariant, func() { got = cd.fwd() })
				cd.p.check("forward "+cd.name, want, got)
				if refStats.Clipped != cd.stats.Clipped || refStats.Steps != steps || cd.stats.Steps != steps {
					t.Errorf("%s: stats: reference %+v, candidate %+v", cd.name, *refStats, *cd.stats)
				}
				t.Logf("%s: max relative error %v (clipped steps %d of %d, %d dropout masks per step)", cd.name, cd.p.worst, cd.stats.Clipped, steps, len(cd.c.masks))
			}
		})
	}
}

// TestCPUBackendIsDeterministic trains each network twice from the same
// seed on the CPU backend at a fixed thread count and requires
// byte-identical checkpoints.
func TestCPUBackendIsDeterministic(t *testing.T) {
	for _, threads := range []int{1, 2} {
		for _, pc := range parityCases() {
			t.Run(fmt.Sprintf("%s/threads=%d", pc.name, threads), func(t *testing.T) {
				sameTwice(t, pc, WithBackend(BackendCPU), WithThreads(threads))
			})
		}
	}
}

// sameTwice trains a parity case twice from the same seed with opts, five
// steps on the same batches, and requires byte-identical checkpoints.
func sameTwice(t *testing.T, pc parityCase, opts ...Option) {
	t.Helper()
	var ckpt [2][]byte
	for k := range ckpt {
		c, _, step, _ := pc.new(t, opts...)
		rng := rand.New(rand.NewPCG(7, 7))
		for range 5 {
			if _, err := step(rng); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := writeCheckpoint(&buf, map[string]string{}, c.ps); err != nil {
			t.Fatal(err)
		}
		ckpt[k] = buf.Bytes()
	}
	if !bytes.Equal(ckpt[0], ckpt[1]) {
		t.Error("two runs from the same seed gave different checkpoints")
	}
}

// TestSetBackendCarriesOver switches a network between backends in the
// middle of training: the weights, the Adam moments and the dropout stream
// carry over, so the run stays within the parity tolerance of one trained
// on gorgonia throughout.
func TestSetBackendCarriesOver(t *testing.T) {
	cfg := DefaultPPOConfig()
	ref := mustPPOOpts(t, cfg, 3, WithBackend(BackendGorgonia))
	n := mustPPOOpts(t, cfg, 3)
	rngA, rngB := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	batch := func(rng *rand.Rand) PPOBatch {
		b := PPOBatch{States: randnRNG(rng, 32*cfg.Inputs, 1), Actions: make([]int, 32), OldLogProbs: make([]float32, 32),
			Advantages: randnRNG(rng, 32, 1), Returns: randnRNG(rng, 32, 1)}
		for i := range b.Actions {
			b.Actions[i] = rng.IntN(cfg.Actions)
			b.OldLogProbs[i] = -3
		}
		return b
	}
	for s := range 6 {
		if s == 3 {
			if err := n.SetBackend(BackendGorgonia); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ref.TrainStep(batch(rngA)); err != nil {
			t.Fatal(err)
		}
		if _, err := n.TrainStep(batch(rngB)); err != nil {
			t.Fatal(err)
		}
	}
	if n.Backend() != BackendGorgonia {
		t.Errorf("backend %q", n.Backend())
	}
	for i, p := range n.c.ps.list {
		if e := parityRelErr(ref.c.ps.list[i].data(), p.data()); !(e <= parityTol) {
			t.Errorf("%s: relative error %.3g", p.name, e)
		}
	}
	if err := n.SetBackend("tpu"); !errors.Is(err, ErrConfig) {
		t.Errorf("SetBackend(tpu): %v", err)
	}
	if _, err := NewQNet(DefaultQConfig(), 1, WithThreads(-1)); !errors.Is(err, ErrConfig) {
		t.Errorf("WithThreads(-1): %v", err)
	}
}

// TestCPUForwardLargeBatch runs the CPU backend's evaluation pass on
// batches that span several shards and, for the LSTM, several chunks of
// lstmChunk rows, against the exported pure-Go pass.
func TestCPUForwardLargeBatch(t *testing.T) {
	const batch = 2*lstmChunk + 37
	l := mustLSTM(t, DefaultLSTMConfig(), 2)
	x := randn(3, batch*l.cfg.Inputs())
	got := mustForward(t)(l.Forward(x))
	want, err := l.Export().Forward(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, got, want); d > 1e-5 {
		t.Errorf("LSTM batch %d: max abs difference %g", batch, d)
	}
	q := mustQ(t, DefaultQConfig(), 2)
	xq := randn(4, batch*q.cfg.Inputs())
	gotQ := mustForward(t)(q.Forward(xq))
	wantQ, err := q.Export().Forward(nil, xq)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, gotQ, wantQ); d > 1e-5 {
		t.Errorf("Q batch %d: max abs difference %g", batch, d)
	}
}

// TestDropoutMasks checks the masks' values and drop rate, and that a seed
// gives the same masks.
func TestDropoutMasks(t *testing.T) {
	for _, p := range []float64{0.1, 0.2, 0.5} {
		m := make([]float32, 1<<18+1)
		drawMask(m, p, newDropoutRNG(3))
		dropped := 0
		for _, v := range m {
			switch v {
			case 0:
				dropped++
			case float32(1 / (1 - p)):
			default:
				t.Fatalf("p %v: mask value %v", p, v)
			}
		}
		// Binomial standard deviation ≈ 0.001 at this size.
		if rate := float64(dropped) / float64(len(m)); math.Abs(rate-p) > 0.005 {
			t.Errorf("p %v: dropped %.4f", p, rate)
		}
		again := make([]float32, len(m))
		drawMask(again, p, newDropoutRNG(3))
		if !slices.Equal(m, again) {
			t.Errorf("p %v: same seed, other mask", p)
		}
	}
}

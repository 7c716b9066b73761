package nn

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// trainable is what the resume test needs of a network.
type trainable interface {
	Save(w io.Writer) error
	SaveOptimizer(w io.Writer) error
	LoadOptimizer(r io.Reader) error
	Close()
}

// resumeCase builds a network with dropout on, loads one from a checkpoint,
// and trains one step on the i-th batch of a fixed stream.
type resumeCase struct {
	name string
	new  func(t *testing.T) trainable
	load func(t *testing.T, ckpt []byte) trainable
	step func(t *testing.T, n trainable, i int)
}

func resumeCases() []resumeCase {
	qcfg := DefaultQConfig()
	pcfg := DefaultPPOConfig()
	lcfg := DefaultLSTMConfig()
	batch := func(i int) *rand.Rand { return rand.New(rand.NewPCG(uint64(i), 77)) }
	return []resumeCase{
		{"q", func(t *testing.T) trainable { return mustQ(t, qcfg, 4) },
			func(t *testing.T, ckpt []byte) trainable {
				n, err := LoadQNet(bytes.NewReader(ckpt))
				if err != nil {
					t.Fatal(err)
				}
				return n
			},
			func(t *testing.T, n trainable, i int) {
				rng := batch(i)
				b := QBatch{States: randnRNG(rng, 32*qcfg.Inputs(), 1), Actions: make([]int, 32), Targets: randnRNG(rng, 32, 3)}
				for k := range b.Actions {
					b.Actions[k] = rng.IntN(qcfg.Actions)
				}
				if _, err := n.(*QNet).TrainStep(b); err != nil {
					t.Fatal(err)
				}
			}},
		{"ppo", func(t *testing.T) trainable { return mustPPO(t, pcfg, 5) },
			func(t *testing.T, ckpt []byte) trainable {
				n, err := LoadPPONet(bytes.NewReader(ckpt))
				if err != nil {
					t.Fatal(err)
				}
				return n
			},
			func(t *testing.T, n trainable, i int) {
				rng := batch(i)
				const B = 32
				b := PPOBatch{States: randnRNG(rng, B*pcfg.Inputs, 1), Masks: make([]bool, B*pcfg.Actions), Actions: make([]int, B),
					OldLogProbs: randnRNG(rng, B, 0.3), Advantages: randnRNG(rng, B, 1), Returns: randnRNG(rng, B, 2)}
				for k := range B {
					b.Actions[k] = rng.IntN(pcfg.Actions)
					b.OldLogProbs[k] -= 3
					for j := range pcfg.Actions {
						b.Masks[k*pcfg.Actions+j] = true
					}
				}
				if _, err := n.(*PPONet).TrainStep(b); err != nil {
					t.Fatal(err)
				}
			}},
		{"lstm", func(t *testing.T) trainable { return mustLSTM(t, lcfg, 6) },
			func(t *testing.T, ckpt []byte) trainable {
				n, err := LoadLSTMNet(bytes.NewReader(ckpt))
				if err != nil {
					t.Fatal(err)
				}
				return n
			},
			func(t *testing.T, n trainable, i int) {
				rng := batch(i)
				if _, err := n.(*LSTMNet).TrainStep(LSTMBatch{Seqs: randnRNG(rng, 16*lcfg.Inputs(), 1), Targets: randnRNG(rng, 16*lcfg.Outputs, 1)}); err != nil {
					t.Fatal(err)
				}
			}},
	}
}

// TestOptimizerStateResumes trains each network (dropout on) for three
// steps, saves its checkpoint and optimiser state, loads both into a new
// network and trains both on the same three more batches: the weights,
// moments, dropout stream and counters continue bit for bit, so the two
// end with byte-identical checkpoints and optimiser states. Without the
// optimiser state the reloaded network diverges.
func TestOptimizerStateResumes(t *testing.T) {
	for _, tc := range resumeCases() {
		t.Run(tc.name, func(t *testing.T) {
			save := func(n trainable) (ckpt, opt []byte) {
				var a, b bytes.Buffer
				if err := n.Save(&a); err != nil {
					t.Fatal(err)
				}
				if err := n.SaveOptimizer(&b); err != nil {
					t.Fatal(err)
				}
				return a.Bytes(), b.Bytes()
			}
			orig := tc.new(t)
			for i := range 3 {
				tc.step(t, orig, i)
			}
			ckpt, opt := save(orig)
			resumed := tc.load(t, ckpt)
			defer resumed.Close()
			if err := resumed.LoadOptimizer(bytes.NewReader(opt)); err != nil {
				t.Fatal(err)
			}
			fresh := tc.load(t, ckpt) // the weights alone
			defer fresh.Close()
			for i := 3; i < 6; i++ {
				tc.step(t, orig, i)
				tc.step(t, resumed, i)
				tc.step(t, fresh, i)
			}
			c1, o1 := save(orig)
			c2, o2 := save(resumed)
			if !bytes.Equal(c1, c2) || !bytes.Equal(o1, o2) {
				t.Fatalf("resumed training differs from uninterrupted: checkpoints equal %v, optimiser states equal %v", bytes.Equal(c1, c2), bytes.Equal(o1, o2))
			}
			if c3, _ := save(fresh); bytes.Equal(c1, c3) {
				t.Fatal("training resumed without the optimiser state gave the same weights: the test does not exercise the state")
			}
		})
	}
}

// TestLoadOptimizerRefuses checks that a state of another kind, another
// architecture or a corrupt file is refused and changes nothing.
func TestLoadOptimizerRefuses(t *testing.T) {
	q := mustQ(t, DefaultQConfig(), 1)
	var qs, ps bytes.Buffer
	if err := q.SaveOptimizer(&qs); err != nil {
		t.Fatal(err)
	}
	p := mustPPO(t, DefaultPPOConfig(), 1)
	if err := p.SaveOptimizer(&ps); err != nil {
		t.Fatal(err)
	}
	small := DefaultQConfig()
	small.HeadHidden = [2]int{16, 8}
	q2 := mustQ(t, small, 1)
	tests := []struct {
		name string
		into trainable
		data []byte
		want error
	}{
		{"another kind", q, ps.Bytes(), ErrKind},
		{"another architecture", q2, qs.Bytes(), ErrArchitecture},
		{"truncated", q, qs.Bytes()[:64], ErrCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.into.LoadOptimizer(bytes.NewReader(tc.data)); !errors.Is(err, tc.want) {
				t.Fatalf("LoadOptimizer: %v, want %v", err, tc.want)
			}
		})
	}
}

package nn

import (
	"fmt"
	"testing"
)

const exportTolerance = 1e-5

// perturb moves every weight away from its initial value (LayerNorm gains
// of 1 and zero biases would hide layout mistakes).
func perturb(ps *paramSet, seed uint64) {
	for i, p := range ps.list {
		d := p.data()
		noise := randn(seed+uint64(i), len(d))
		for j := range d {
			d[j] += 0.1 * noise[j]
		}
	}
}

func TestExportedForwardMatchesGorgonia(t *testing.T) {
	for _, batch := range []int{1, 7, 64} {
		t.Run(fmt.Sprintf("Q/batch=%d", batch), func(t *testing.T) {
			n := mustQ(t, DefaultQConfig(), 3)
			perturb(n.c.ps, 10)
			x := randn(uint64(batch), batch*n.cfg.Inputs())
			want, err := n.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.Export().Forward(nil, x)
			if err != nil {
				t.Fatal(err)
			}
			d := maxAbsDiff(t, want, got)
			t.Logf("batch %d: max abs error %g", batch, d)
			if d > exportTolerance {
				t.Errorf("batch %d: max abs error %g > %g", batch, d, exportTolerance)
			}
		})
		t.Run(fmt.Sprintf("PPO/batch=%d", batch), func(t *testing.T) {
			n := mustPPO(t, DefaultPPOConfig(), 3)
			perturb(n.c.ps, 11)
			x := randn(uint64(batch), batch*n.cfg.Inputs)
			masks := make([]bool, batch*n.cfg.Actions)
			for i := range masks {
				masks[i] = i%5 != 2
			}
			for _, m := range [][]bool{nil, masks} {
				want, err := n.Forward(x, m)
				if err != nil {
					t.Fatal(err)
				}
				got, err := n.Export().Forward(PPOOutput{}, x, m)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(t, want.Probs, got.Probs); d > exportTolerance {
					t.Errorf("batch %d mask %v: probabilities differ by %g", batch, m != nil, d)
				}
				if d := maxAbsDiff(t, want.Values, got.Values); d > exportTolerance {
					t.Errorf("batch %d mask %v: values differ by %g", batch, m != nil, d)
				}
				if m == nil {
					if d := maxAbsDiff(t, want.LogProbs, got.LogProbs); d > exportTolerance {
						t.Errorf("batch %d: log-probabilities differ by %g", batch, d)
					}
				}
			}
		})
		t.Run(fmt.Sprintf("LSTM/batch=%d", batch), func(t *testing.T) {
			n := mustLSTM(t, DefaultLSTMConfig(), 3)
			perturb(n.c.ps, 12)
			x := randn(uint64(batch), batch*n.cfg.Inputs())
			want, err := n.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.Export().Forward(nil, x)
			if err != nil {
				t.Fatal(err)
			}
			d := maxAbsDiff(t, want, got)
			t.Logf("batch %d: max abs error %g", batch, d)
			if d > exportTolerance {
				t.Errorf("batch %d: max abs error %g > %g", batch, d, exportTolerance)
			}
		})
	}
}

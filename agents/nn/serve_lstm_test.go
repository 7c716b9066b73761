package nn

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// sameBits reports the first index where a and b differ bit for bit, or
// -1.
func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestForwardBatchedMatchesCPUBackend checks that the batched serving pass
// is the CPU backend's evaluation pass bit for bit, and within the export
// tolerance of the reference loops, across chunk and panel boundaries.
func TestForwardBatchedMatchesCPUBackend(t *testing.T) {
	cfgs := map[string]LSTMConfig{"seed widths": DefaultLSTMConfig()}
	odd := DefaultLSTMConfig()
	odd.Hidden, odd.DenseHidden = [2]int{20, 13}, 7 // hidden widths not multiples of 8 or 16
	cfgs["odd widths"] = odd
	for name, cfg := range cfgs {
		for _, batch := range []int{1, 5, 6, 7, lstmServeChunk, lstmServeChunk + 1, 3*lstmServeChunk + 11} {
			t.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(t *testing.T) {
				n := mustLSTMOpts(t, cfg, 4, WithThreads(2))
				perturb(n.c.ps, 13)
				x := randn(uint64(batch)+100, batch*n.cfg.Inputs())
				want := mustForward(t)(n.Forward(x))
				w := n.Export()
				got, err := w.ForwardBatched(nil, x)
				if err != nil {
					t.Fatal(err)
				}
				if i := sameBits(want, got); i >= 0 {
					t.Errorf("differs from the CPU backend at %d: %g vs %g", i, got[i], want[i])
				}
				ref, err := w.Forward(nil, x)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(t, ref, got); d > exportTolerance {
					t.Errorf("max abs error %g against the reference loops > %g", d, exportTolerance)
				}
			})
		}
	}
}

// TestForwardBatchedIndependentOfBatch checks that a sequence's
// prediction does not depend, by a single bit, on which other sequences
// share its batch or where it sits in it: decisions must not change with
// the functions active in a tick or the replay speed.
func TestForwardBatchedIndependentOfBatch(t *testing.T) {
	n := mustLSTM(t, DefaultLSTMConfig(), 5)
	perturb(n.c.ps, 14)
	w := n.Export()
	in, out := n.cfg.Inputs(), n.cfg.Outputs
	const rows = 2*lstmServeChunk + 9
	x := randn(21, rows*in)
	// Some rows all zero and some equal, like idle functions in a tick.
	clear(x[3*in : 4*in])
	clear(x[70*in : 71*in])
	copy(x[10*in:11*in], x[11*in:12*in])
	full, err := w.Clone().ForwardBatched(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	subsets := map[string][]int{
		"alone":               {0},
		"last alone":          {rows - 1},
		"reversed":            nil, // filled below
		"one panel":           {6, 7, 8, 9, 10, 11},
		"across a chunk edge": {lstmServeChunk - 2, lstmServeChunk - 1, lstmServeChunk, lstmServeChunk + 1},
		"every seventh":       nil,
		"duplicated":          {3, 3, 70, 3, 11, 10, 11},
	}
	for i := rows - 1; i >= 0; i-- {
		subsets["reversed"] = append(subsets["reversed"], i)
	}
	for i := 0; i < rows; i += 7 {
		subsets["every seventh"] = append(subsets["every seventh"], i)
	}
	sub := w.Clone() // one scratch for all the subsets, grown by the largest
	for name, idx := range subsets {
		t.Run(name, func(t *testing.T) {
			xs := make([]float32, 0, len(idx)*in)
			for _, i := range idx {
				xs = append(xs, x[i*in:(i+1)*in]...)
			}
			got, err := sub.ForwardBatched(nil, xs)
			if err != nil {
				t.Fatal(err)
			}
			for k, i := range idx {
				if j := sameBits(full[i*out:(i+1)*out], got[k*out:(k+1)*out]); j >= 0 {
					t.Errorf("row %d at position %d of %d: output %d is %g, %g in the full batch", i, k, len(idx), j, got[k*out+j], full[i*out+j])
				}
			}
		})
	}
}

func TestForwardBatchedDoesNotAllocate(t *testing.T) {
	w := mustLSTM(t, DefaultLSTMConfig(), 1).Export()
	for _, batch := range []int{1, 250} {
		x := randn(uint64(batch), batch*60)
		var y []float32
		f := func() { y, _ = w.ForwardBatched(y, x) }
		f() // sizes the buffers
		if n := testing.AllocsPerRun(5, f); n != 0 {
			t.Errorf("batch %d: %v allocations per call", batch, n)
		}
	}
}

func TestForwardBatchedShapeErrors(t *testing.T) {
	w := mustLSTM(t, DefaultLSTMConfig(), 1).Export()
	broken := w.Clone()
	broken.Layers[1].In = 7
	for _, tc := range []struct {
		name string
		w    *LSTMWeights
		x    []float32
	}{
		{"no sequence", w, nil},
		{"partial sequence", w, make([]float32, 61)},
		{"layers that do not chain", broken, make([]float32, 60)},
	} {
		if _, err := tc.w.ForwardBatched(nil, tc.x); !errors.Is(err, ErrShape) {
			t.Errorf("%s: %v, want ErrShape", tc.name, err)
		}
	}
}

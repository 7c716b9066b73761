package replay_test

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// startInv returns an invocation of row row starting at startUS.
func startInv(row, startUS, durUS int64) replay.Invocation {
	return replay.Invocation{App: "a", Func: "f", EndUS: startUS + durUS, DurationUS: durUS, Row: row}
}

func byStartRow(a, b replay.Invocation) int {
	return cmp.Or(cmp.Compare(a.StartUS(), b.StartUS()), cmp.Compare(a.Row, b.Row))
}

// orderHarness pushes into an Orderer, pops after every push and checks the
// Orderer's promises at every step.
type orderHarness struct {
	t        *testing.T
	o        *replay.Orderer
	accepted []replay.Invocation
	released []replay.Invocation
	late     int64
	lastWM   int64
}

func newOrderHarness(t *testing.T, latenessUS int64) *orderHarness {
	return &orderHarness{t: t, o: replay.NewOrderer(latenessUS)}
}

// push pushes in and releases what is ready; it returns Push's error.
func (h *orderHarness) push(in replay.Invocation) error {
	h.t.Helper()
	wmBefore := h.o.Watermark()
	err := h.o.Push(in)
	switch {
	case err == nil:
		if in.StartUS() < wmBefore {
			h.t.Fatalf("row %d starting at %d accepted below the watermark %d", in.Row, in.StartUS(), wmBefore)
		}
		h.accepted = append(h.accepted, in)
	case errors.Is(err, replay.ErrLate):
		if in.StartUS() >= wmBefore {
			h.t.Fatalf("row %d starting at %d rejected as late at watermark %d: %v", in.Row, in.StartUS(), wmBefore, err)
		}
		h.late++
		if h.o.Late() != h.late {
			h.t.Fatalf("Late() = %d, want %d", h.o.Late(), h.late)
		}
		if h.o.Watermark() != wmBefore {
			h.t.Fatalf("a late push moved the watermark from %d to %d", wmBefore, h.o.Watermark())
		}
	default:
		h.t.Fatalf("Push(row %d) = %v, want nil or ErrLate", in.Row, err)
	}
	h.checkWatermark()
	for {
		out, ok := h.o.Pop()
		if !ok {
			break
		}
		if out.StartUS() >= h.o.Watermark() {
			h.t.Fatalf("row %d starting at %d released at watermark %d", out.Row, out.StartUS(), h.o.Watermark())
		}
		h.release(out)
	}
	h.checkComplete()
	return err
}

func (h *orderHarness) checkWatermark() {
	h.t.Helper()
	wm := h.o.Watermark()
	if wm < h.lastWM {
		h.t.Fatalf("watermark went back from %d to %d", h.lastWM, wm)
	}
	h.lastWM = wm
}

func (h *orderHarness) release(out replay.Invocation) {
	h.t.Helper()
	if n := len(h.released); n > 0 && byStartRow(h.released[n-1], out) >= 0 {
		h.t.Fatalf("released row %d (start %d) after row %d (start %d): not in (start,row) order",
			out.Row, out.StartUS(), h.released[n-1].Row, h.released[n-1].StartUS())
	}
	h.released = append(h.released, out)
}

// checkComplete asserts that every accepted invocation starting before the
// watermark has been released and that Buffered counts the rest.
func (h *orderHarness) checkComplete() {
	h.t.Helper()
	wm := h.o.Watermark()
	var before, releasedBefore int
	for _, in := range h.accepted {
		if in.StartUS() < wm {
			before++
		}
	}
	for _, in := range h.released {
		if in.StartUS() < wm {
			releasedBefore++
		}
	}
	if before != releasedBefore {
		h.t.Fatalf("watermark %d: %d accepted invocations start before it but %d were released", wm, before, releasedBefore)
	}
	if got, want := h.o.Buffered(), len(h.accepted)-len(h.released); got != want {
		h.t.Fatalf("Buffered() = %d, want %d", got, want)
	}
}

// drain drains the orderer and checks the final state.
func (h *orderHarness) drain() {
	h.t.Helper()
	for {
		out, ok := h.o.Drain()
		if !ok {
			break
		}
		h.release(out)
		h.checkWatermark()
		if out.StartUS() >= h.o.Watermark() {
			h.t.Fatalf("Drain released row %d (start %d) without moving the watermark past it (%d)", out.Row, out.StartUS(), h.o.Watermark())
		}
	}
	if h.o.Buffered() != 0 {
		h.t.Fatalf("Buffered() = %d after Drain", h.o.Buffered())
	}
	want := slices.Clone(h.accepted)
	slices.SortFunc(want, byStartRow)
	if !slices.Equal(h.released, want) {
		h.t.Fatalf("released %d invocations, want the %d accepted ones in (start,row) order", len(h.released), len(want))
	}
}

func TestOrdererTable(t *testing.T) {
	cases := []struct {
		name     string
		lateness int64
		starts   []int64 // start of row i+1, in push order
		late     []int64 // rows that must be rejected
		popped   []int64 // rows released by Pop before Drain, in order
		final    []int64 // full release order after Drain
	}{
		{
			name: "in order, lateness 0", lateness: 0,
			starts: []int64{0, 5, 5, 9},
			popped: []int64{1, 2, 3}, final: []int64{1, 2, 3, 4},
		},
		{
			name: "shuffled within lateness", lateness: 10,
			starts: []int64{5, 0, 12, 3, 20, 15, 30},
			popped: []int64{2, 4, 1, 3, 6}, final: []int64{2, 4, 1, 3, 6, 5, 7},
		},
		{
			name: "ties broken by row", lateness: 3,
			starts: []int64{7, 7, 4, 7, 20},
			popped: []int64{3, 1, 2, 4}, final: []int64{3, 1, 2, 4, 5},
		},
		{
			name: "start equal to the watermark is on time", lateness: 10,
			starts: []int64{30, 20, 19},
			late:   []int64{3}, popped: nil, final: []int64{2, 1},
		},
		{
			name: "late rows rejected", lateness: 5,
			starts: []int64{100, 94, 95, 200, 150, 195},
			late:   []int64{2, 5}, popped: []int64{3, 1}, final: []int64{3, 1, 6, 4},
		},
		{
			name: "nothing before trace time 0 is on time", lateness: 100,
			starts: []int64{-1, 0},
			late:   []int64{1}, final: []int64{2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newOrderHarness(t, tc.lateness)
			var late []int64
			for i, s := range tc.starts {
				if err := h.push(startInv(int64(i+1), s, 1)); err != nil {
					late = append(late, int64(i+1))
				}
			}
			rows := func(ins []replay.Invocation) []int64 {
				var out []int64
				for _, in := range ins {
					out = append(out, in.Row)
				}
				return out
			}
			if !slices.Equal(late, tc.late) {
				t.Errorf("late rows %v, want %v", late, tc.late)
			}
			if got := rows(h.released); !slices.Equal(got, tc.popped) {
				t.Errorf("released before Drain %v, want %v", got, tc.popped)
			}
			h.drain()
			if got := rows(h.released); !slices.Equal(got, tc.final) {
				t.Errorf("released after Drain %v, want %v", got, tc.final)
			}
			if h.o.Late() != int64(len(tc.late)) {
				t.Errorf("Late() = %d, want %d", h.o.Late(), len(tc.late))
			}
		})
	}
}

// TestOrdererProperties pushes seeded random streams that are out of start
// order by less than the lateness, with late invocations injected, and checks
// the Orderer's promises after every push.
func TestOrdererProperties(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 1234} {
		for _, lateness := range []int64{0, 1, 1_000_000, 600_000_000} {
			r := rand.New(rand.NewPCG(seed, uint64(lateness)))
			h := newOrderHarness(t, lateness)
			const n = 1500
			type arrival struct {
				in  replay.Invocation
				key int64
			}
			arr := make([]arrival, n)
			for i := range arr {
				start := r.Int64N(3_600_000_000)
				if r.IntN(5) == 0 && i > 0 {
					start = arr[i-1].in.StartUS() // ties
				}
				delay := int64(0)
				if lateness > 0 {
					delay = r.Int64N(lateness)
				}
				arr[i] = arrival{startInv(0, start, r.Int64N(400_000_000)), start + delay}
			}
			// Arrival order by key: every invocation then arrives when the
			// latest start seen is less than lateness past its own start.
			slices.SortStableFunc(arr, func(a, b arrival) int { return cmp.Compare(a.key, b.key) })
			row := int64(0)
			wantLate := int64(0)
			for _, a := range arr {
				row++
				a.in.Row = row
				if err := h.push(a.in); err != nil {
					t.Fatalf("seed %d lateness %d: on-time row %d (start %d) rejected: %v", seed, lateness, row, a.in.StartUS(), err)
				}
				// Now and then inject an invocation before the watermark.
				if wm := h.o.Watermark(); wm > 0 && r.IntN(10) == 0 {
					row++
					late := startInv(row, wm-1-r.Int64N(wm), 5)
					if err := h.push(late); !errors.Is(err, replay.ErrLate) {
						t.Fatalf("seed %d lateness %d: row %d starting at %d before watermark %d: Push = %v, want ErrLate",
							seed, lateness, row, late.StartUS(), wm, err)
					}
					wantLate++
				}
			}
			h.drain()
			if h.o.Late() != wantLate || int64(len(h.released)) != n {
				t.Errorf("seed %d lateness %d: Late() = %d, released %d; want %d and %d", seed, lateness, h.o.Late(), len(h.released), wantLate, n)
			}
			if ms, ok := h.o.MaxStart(); !ok || ms != h.released[len(h.released)-1].StartUS() {
				t.Errorf("seed %d lateness %d: MaxStart() = %d, %v; want the last released start %d",
					seed, lateness, ms, ok, h.released[len(h.released)-1].StartUS())
			}
		}
	}
}

func TestOrdererEmpty(t *testing.T) {
	o := replay.NewOrderer(10)
	if _, ok := o.Pop(); ok {
		t.Error("Pop on an empty orderer released something")
	}
	if _, ok := o.Drain(); ok {
		t.Error("Drain on an empty orderer released something")
	}
	if _, ok := o.MaxStart(); ok {
		t.Error("MaxStart reports a start before any push")
	}
	if o.Watermark() != 0 || o.Late() != 0 || o.Buffered() != 0 {
		t.Errorf("fresh orderer: watermark %d, late %d, buffered %d; want 0, 0, 0", o.Watermark(), o.Late(), o.Buffered())
	}
}

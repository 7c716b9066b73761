package baselines

import (
	"math"
	"testing"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// handRow is an operational row with hand-set last steps: the last five
// ConcurrencyMean values 1, 2, 3, 1, 0.5 (mean 1.5), last peak 3, last five
// request rates 0.2, 0.4, 0.4, 0.6, 0.4 (mean 0.4/s).
func handRow() schemas.OperationalRow {
	r := schemas.OperationalRow{App: "a", Func: "f", Invocations: 6, LastStartUS: 100}
	copy(r.ConcurrencyMean[7:], []float64{1, 2, 3, 1, 0.5})
	copy(r.ConcurrencyPeak[7:], []float64{2, 4, 5, 2, 3})
	copy(r.RequestRate[7:], []float64{0.2, 0.4, 0.4, 0.6, 0.4})
	return r
}

func TestSimpleOperational(t *testing.T) {
	tests := []struct {
		name      string
		params    map[string]string
		prewarm   int32
		keepMS    int64
		predicted schemas.Value
	}{
		{"reactive", nil, 3, 0, schemas.Some(6)},                                      // last peak 3; 0.4/s × 15 s
		{"static-2x", nil, 6, 0, schemas.Some(6)},                                     // 2 × 3
		{"moving-average", nil, 2, 0, schemas.Some(6)},                                // ⌈1.5⌉; mean rate 0.4 × 15
		{"moving-average", map[string]string{"window": "2"}, 1, 0, schemas.Some(7.5)}, // ⌈0.75⌉; 0.5 × 15
		{"keepalive-10m", nil, 0, 600_000, schemas.Value{}},
		{"keepalive-20m", nil, 0, 1_200_000, schemas.Value{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.name, schemas.Operational, tt.params)
			rows := decide(t, p, opBatch(40, handRow()))
			if len(rows) != 1 {
				t.Fatalf("got %d rows, want 1", len(rows))
			}
			d := rows[0]
			if d.Prewarm != tt.prewarm || d.Action != tt.prewarm || d.KeepWarmMS != tt.keepMS {
				t.Errorf("Prewarm/Action/KeepWarmMS = %d/%d/%d, want %d/%d/%d", d.Prewarm, d.Action, d.KeepWarmMS, tt.prewarm, tt.prewarm, tt.keepMS)
			}
			if d.Predicted.Valid != tt.predicted.Valid || math.Abs(d.Predicted.V-tt.predicted.V) > 1e-9 {
				t.Errorf("Predicted = %+v, want %+v", d.Predicted, tt.predicted)
			}
		})
	}
}

// kpaRow is a row whose last four steps have mean concurrency `mean` and
// whose last step peaks at `peak` (earlier steps at mean).
func kpaRow(mean [4]float64, peak float64) schemas.OperationalRow {
	r := schemas.OperationalRow{App: "a", Func: "f"}
	copy(r.ConcurrencyMean[8:], mean[:])
	for j := 8; j < schemas.SeqLen; j++ {
		r.ConcurrencyPeak[j] = math.Ceil(r.ConcurrencyMean[j])
	}
	r.ConcurrencyPeak[schemas.SeqLen-1] = peak
	return r
}

func TestKnative(t *testing.T) {
	one := [4]float64{1, 1, 1, 1}
	steps := []struct {
		name string
		row  schemas.OperationalRow
		want int32
	}{
		// target 0.7: ⌈1/0.7⌉ = 2 pods.
		{"steady", kpaRow(one, 1), 2},
		{"steady again", kpaRow(one, 1), 2},
		// Burst: peak 10 → d_panic ⌈10/0.7⌉ = 15; 15/2 ≥ 2 → panic;
		// stable (1+1+1+3)/4 = 1.5 → 3; desired max(3, 15) = 15.
		{"burst", kpaRow([4]float64{1, 1, 1, 3}, 10), 15},
		// Burst over: d_panic 2, 2/15 < 2, still within 60 s of the last
		// over tick: no scale-down while panicking.
		{"panic +1", kpaRow(one, 1), 15},
		{"panic +2", kpaRow(one, 1), 15},
		{"panic +3", kpaRow(one, 1), 15},
		// 4 steps (60 s) after the last over tick: leave panic; d_stable 2,
		// floor(15/2^7) = 0 allows it.
		{"panic over", kpaRow(one, 1), 2},
		// No traffic: d_stable 0 only once the stable window is empty; the
		// last pod stays until 6 idle steps (60 s + 30 s grace).
		// Stable 0.75 → 2, 0.5 → 1, 0.25 → 1.
		{"idle 1", kpaRow([4]float64{1, 1, 1, 0}, 0), 2},
		{"idle 2", kpaRow([4]float64{1, 1, 0, 0}, 0), 1},
		{"idle 3", kpaRow([4]float64{1, 0, 0, 0}, 0), 1},
		{"idle 4", kpaRow([4]float64{0, 0, 0, 0}, 0), 1},
		{"idle 5", kpaRow([4]float64{0, 0, 0, 0}, 0), 1},
		{"idle 6", kpaRow([4]float64{0, 0, 0, 0}, 0), 0},
		{"idle 7", kpaRow([4]float64{0, 0, 0, 0}, 0), 0},
		// From zero: R = 1; one in flight → 2 pods, and 2/1 ≥ 2 panics.
		{"wake", kpaRow([4]float64{0, 0, 0, 0.5}, 1), 2},
	}
	p := mustNew(t, "knative", schemas.Operational, nil)
	for i, s := range steps {
		// idle rows: make the earlier steps of the sequence idle as well, so
		// that trailing idle steps are counted from the row.
		r := s.row
		if i >= 7 {
			for j := 0; j < 8; j++ {
				r.ConcurrencyMean[j], r.ConcurrencyPeak[j] = 0, 0
			}
			for j := 8; j < schemas.SeqLen; j++ {
				if r.ConcurrencyMean[j] == 0 {
					r.ConcurrencyPeak[j] = 0
				}
			}
		} else {
			for j := 0; j < 8; j++ {
				r.ConcurrencyMean[j], r.ConcurrencyPeak[j] = 1, 1
			}
		}
		got := decide(t, p, opBatch(int64(100+i), r))[0]
		if got.Prewarm != s.want {
			t.Errorf("step %d (%s): Prewarm %d, want %d", i, s.name, got.Prewarm, s.want)
		}
		if got.KeepWarmMS != 0 || got.Predicted.Valid {
			t.Errorf("step %d (%s): KeepWarmMS %d Predicted %+v, want 0 and missing", i, s.name, got.KeepWarmMS, got.Predicted)
		}
	}
}

func TestKnativeScaleDownRate(t *testing.T) {
	// From 1000 pods to no load: one 15 s step may divide by at most 2^7.
	// The jump to 1000 panics; 4 steady ticks end the panic.
	p := mustNew(t, "knative", schemas.Operational, nil)
	big := [4]float64{700, 700, 700, 700}
	for k := int64(1); k <= 5; k++ {
		if got := decide(t, p, opBatch(k, kpaRow(big, 700)))[0].Prewarm; got != 1000 {
			t.Fatalf("tick %d: Prewarm %d, want 1000", k, got)
		}
	}
	if got := decide(t, p, opBatch(6, kpaRow([4]float64{0, 0, 0, 0.1}, 1)))[0].Prewarm; got != 7 { // ⌊1000/128⌋
		t.Errorf("Prewarm %d after the load vanished, want 7 (rate limit)", got)
	}
}

// timerInvocations is a timer-driven function: a 1 s execution every 66 s
// starting at 1 s, so every idle time is 65 s (histogram bin 1, 60–120 s).
func timerInvocations(n int) []inv {
	invs := make([]inv, n)
	for i := range invs {
		s := int64(1_000_000 + i*66_000_000)
		invs[i] = inv{start: s, end: s + 1_000_000}
	}
	return invs
}

func TestHybridHistogramTimer(t *testing.T) {
	invs := timerInvocations(80)
	p := mustNew(t, "hybrid-histogram", schemas.Operational, nil)
	h := p.(*hybrid)
	const step = grid.OperationalTickUS
	lastTick := invs[len(invs)-1].start / step
	var checkedDue, checkedGap int
	for k := int64(1); k <= lastTick; k++ {
		r, ok := simRow("a", "f", invs, k)
		if !ok {
			continue
		}
		d := decide(t, p, opBatch(k, r))[0]
		if k*step < invs[20].start {
			continue // learning
		}
		u := h.units.Lookup(key("a", "f"))
		if u.mode != hhCertain || math.Abs(u.pw-54) > 1e-9 || math.Abs(u.ka-132) > 1e-9 {
			t.Fatalf("tick %d: mode %d PW %.3f KA %.3f, want certain, 0.9·60 = 54 s, 1.1·120 = 132 s", k, u.mode, u.pw, u.ka)
		}
		if d.KeepWarmMS != 1 {
			t.Errorf("tick %d: KeepWarmMS %d, want 1 (unload after the execution)", k, d.KeepWarmMS)
		}
		// The previous execution ended at lastStart + 1 s; the window is
		// [end + 54 s, end + 186 s] and the next start is end + 65 s.
		end := r.LastStartUS + 1_000_000
		nextStart := r.LastStartUS + 66_000_000
		T := k * step
		want := int32(0)
		if end+54_000_000 < T+step && end+186_000_000 > T {
			want = 1
		}
		if d.Prewarm != want {
			t.Errorf("tick %d [%d s, %d s): Prewarm %d, want %d (last end %d s)", k, T/1e6, (T+step)/1e6, d.Prewarm, want, end/1e6)
		}
		if T <= nextStart && nextStart < T+step {
			checkedDue++
			if d.Prewarm != 1 {
				t.Errorf("tick %d holds the next invocation (at %d s) but Prewarm is %d", k, nextStart/1e6, d.Prewarm)
			}
		}
		if T >= end && T+step <= end+54_000_000 {
			checkedGap++
			if d.Prewarm != 0 {
				t.Errorf("tick %d lies inside the pre-warm gap after the execution but Prewarm is %d", k, d.Prewarm)
			}
		}
	}
	if checkedDue < 50 || checkedGap < 50 {
		t.Fatalf("checked %d due ticks and %d gap ticks, want ≥ 50 each", checkedDue, checkedGap)
	}
}

func TestHybridHistogramPatterns(t *testing.T) {
	const hour = 3600.0
	tests := []struct {
		name   string
		params map[string]string
		its    []float64
		mode   hhMode
		pw, ka float64
		keepMS int64
	}{
		{"no idle times yet", nil, nil, hhUncertain, 0, 4 * hour, 4 * 3600_000},
		// One IT in each of 200 bins: CV of the counts = sqrt(240/200 − 1) ≈ 0.45 < 2.
		{"spread: uncertain", nil, spread(200, 60), hhUncertain, 0, 4 * hour, 4 * 3600_000},
		// All ITs 5 h ≥ 4 h: OOB, AR(1) has no variation → pred 5 h.
		{"out of bounds", nil, []float64{5 * hour, 5 * hour, 5 * hour}, hhOOB, 0.85 * 5 * hour, 0.30 * 5 * hour, 1},
		// Frequent: every IT in bin 0 → head 0 (PW 0), tail 60 s → KA 66 s.
		{"frequent", nil, []float64{2, 3, 1, 0, 5, 10}, hhCertain, 0, 66, 66_000},
		{"frequent, KA to tail", map[string]string{"ka_from_load": "false"}, []float64{2, 3}, hhCertain, 0, 66, 66_000},
		// Majority OOB below the threshold: 2 of 5 OOB with oob_threshold 0.5 → histogram.
		{"some OOB", nil, []float64{130, 130, 130, 5 * hour, 5 * hour}, hhCertain, 0.9 * 120, 1.1 * 180, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, "hybrid-histogram", schemas.Operational, tt.params).(*hybrid)
			// The last invocation started at the tick's start and took no
			// time (rate without concurrency).
			r := schemas.OperationalRow{App: "a", Func: "f", LastStartUS: 990_000_000, IdleTimesS: tt.its}
			r.RequestRate[11] = 1.0 / 15
			d := decide(t, p, opBatch(990_000_000/grid.OperationalTickUS, r))[0]
			u := p.units.Lookup(key("a", "f"))
			if u.mode != tt.mode || math.Abs(u.pw-tt.pw) > 1e-6 || math.Abs(u.ka-tt.ka) > 1e-6 {
				t.Errorf("mode %d PW %g KA %g, want %d %g %g", u.mode, u.pw, u.ka, tt.mode, tt.pw, tt.ka)
			}
			if d.KeepWarmMS != tt.keepMS {
				t.Errorf("KeepWarmMS %d, want %d", d.KeepWarmMS, tt.keepMS)
			}
			// The tick starts at the last end: pre-warm iff PW < 15 s.
			want := int32(0)
			if tt.pw < 15 {
				want = 1
			}
			if d.Prewarm != want {
				t.Errorf("Prewarm %d with PW %g s, want %d", d.Prewarm, tt.pw, want)
			}
		})
	}
}

func spread(n int, width float64) []float64 {
	its := make([]float64, n)
	for i := range its {
		its[i] = float64(i)*width + width/2
	}
	return its
}

func TestHybridHistogramPerApp(t *testing.T) {
	// Two functions of one app: f's ITs alone would be certain; per app the
	// pooled ITs decide both, and the row order does not matter.
	mk := func() []schemas.OperationalRow {
		f := schemas.OperationalRow{App: "a", Func: "f", LastStartUS: 10_000_000, IdleTimesS: []float64{65, 66}}
		g := schemas.OperationalRow{App: "a", Func: "g", LastStartUS: 20_000_000, IdleTimesS: []float64{70}}
		return []schemas.OperationalRow{f, g}
	}
	p1 := mustNew(t, "hybrid-histogram", schemas.Operational, map[string]string{"unit": "app"})
	p2 := mustNew(t, "hybrid-histogram", schemas.Operational, map[string]string{"unit": "app"})
	rows := mk()
	a := decide(t, p1, opBatch(2, rows...))
	b := decide(t, p2, opBatch(2, rows[1], rows[0]))
	if len(a) != 2 || a[0].Prewarm != b[1].Prewarm || a[0].KeepWarmMS != b[1].KeepWarmMS || a[0].KeepWarmMS != a[1].KeepWarmMS {
		t.Fatalf("per-app decisions differ: %+v vs %+v", a, b)
	}
	u := p1.(*hybrid).units.Lookup(key("a", ""))
	if u.inRange != 3 || u.endUS != 20_000_000 || u.pw != 54 {
		t.Errorf("app unit: %d ITs, end %d, PW %g; want 3, 20 s, 54 s", u.inRange, u.endUS, u.pw)
	}
}

package lstm

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// idleRow is a function with no invocation in its window: its window is
// the hour sines only, the same for every idle function of a tick.
func idleRow(fn string, tick int) schemas.OperationalRow {
	r := schemas.OperationalRow{App: "app", Func: fn}
	for k := range Steps {
		r.MemoryUtil[k] = schemas.Some(0)
		r.HourSin[k] = math.Sin(float64(tick+k) / 100)
	}
	return r
}

// busyRow is a function whose window depends on (fn, version): a new
// version is a changed window.
func busyRow(fn string, f, version int) schemas.OperationalRow {
	r := schemas.OperationalRow{App: "app", Func: fn}
	for k := range Steps {
		u := float64(k + 3*f + 7*version)
		r.RequestRate[k] = 5 + 4*math.Sin(u/4)
		r.MemoryUtil[k] = schemas.Some(0.4 + 0.1*math.Cos(u/3))
		r.CPUUtil[k] = schemas.Some(0.5)
		r.HourSin[k] = 0.3
		r.ConcurrencyMean[k] = r.RequestRate[k] * 0.8
	}
	return r
}

// sameDecision compares two decision rows, Predicted bit for bit.
func sameDecision(a, b schemas.DecisionRow) bool {
	return a.App == b.App && a.Func == b.Func && a.Prewarm == b.Prewarm && a.Action == b.Action &&
		a.Predicted.Valid == b.Predicted.Valid && math.Float64bits(a.Predicted.V) == math.Float64bits(b.Predicted.V) &&
		a.Policy == b.Policy && a.PolicyVersion == b.PolicyVersion && a.KeepWarmMS == b.KeepWarmMS
}

// TestPolicyReuseIsExact runs a sequence of ticks through a policy that
// reuses predictions and one that computes every prediction, and checks
// that both decide the same, bit for bit, while the first computes only
// what changed: an unchanged window is reused, a changed one recomputed,
// equal windows in a batch computed once, and a function unseen for more
// than ReuseTicks ticks forgotten.
func TestPolicyReuseIsExact(t *testing.T) {
	m := testModel(t)
	reusing, err := NewPolicy(m, PolicyConfig{Version: "v", Rule: DefaultPrewarmRule(), ReuseTicks: 2})
	if err != nil {
		t.Fatal(err)
	}
	computing, err := NewPolicy(m, PolicyConfig{Version: "v", Rule: DefaultPrewarmRule(), ReuseTicks: -1})
	if err != nil {
		t.Fatal(err)
	}
	busy := func(fns []int, version func(f int) int) []schemas.OperationalRow {
		var rows []schemas.OperationalRow
		for _, f := range fns {
			rows = append(rows, busyRow(fmt.Sprintf("b%d", f), f, version(f)))
		}
		return rows
	}
	idle := func(tick int, fns ...string) []schemas.OperationalRow {
		var rows []schemas.OperationalRow
		for _, f := range fns {
			rows = append(rows, idleRow(f, tick))
		}
		return rows
	}
	zero := func(int) int { return 0 }
	for _, tc := range []struct {
		name string
		tick int64
		rows []schemas.OperationalRow
		// the counts this batch adds
		computed, reused, shared, evicted uint64
	}{
		{"first tick: all computed, idle functions share", 1,
			append(busy([]int{0, 1, 2, 3}, zero), idle(1, "i0", "i1", "i2")...), 5, 0, 2, 0},
		{"same windows: all reused", 2,
			append(busy([]int{0, 1, 2, 3}, zero), idle(1, "i0", "i1", "i2")...), 0, 7, 0, 0},
		{"two changed windows recomputed, the hour sine moved for the idle ones", 3,
			append(busy([]int{0, 1, 2, 3}, func(f int) int { return f % 2 }), idle(3, "i0", "i1", "i2")...), 3, 2, 2, 0},
		{"reordered, one function new", 4,
			append(idle(3, "i2", "i1", "i0", "i3"), busy([]int{3, 2, 1, 0}, func(f int) int { return f % 2 })...), 0, 7, 1, 0},
		{"b0 and i0 missing", 5,
			append(busy([]int{1, 2, 3}, func(f int) int { return f % 2 }), idle(3, "i1", "i2", "i3")...), 0, 6, 0, 0},
		{"b0 and i0 seen 2 ticks ago: still cached", 6,
			append(busy([]int{0, 1}, func(f int) int { return f % 2 }), idle(3, "i0")...), 0, 3, 0, 0},
		{"every function unseen for 3 ticks or more forgotten: recomputed", 9,
			append(busy([]int{2, 3}, func(f int) int { return f % 2 }), idle(3, "i1", "i2", "i3")...), 3, 0, 2, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: tc.tick}, Operational: tc.rows}
			before := reusing.Stats
			got, want := &schemas.DecisionBatch{}, &schemas.DecisionBatch{}
			if err := reusing.Decide(context.Background(), b, got); err != nil {
				t.Fatal(err)
			}
			if err := computing.Decide(context.Background(), b, want); err != nil {
				t.Fatal(err)
			}
			if len(got.Rows) != len(want.Rows) {
				t.Fatalf("%d decisions, want %d", len(got.Rows), len(want.Rows))
			}
			for i := range got.Rows {
				if !sameDecision(got.Rows[i], want.Rows[i]) {
					t.Errorf("row %d: %+v with reuse, %+v computed", i, got.Rows[i], want.Rows[i])
				}
			}
			s := reusing.Stats
			if d := [4]uint64{s.Computed - before.Computed, s.Reused - before.Reused, s.Shared - before.Shared, s.Evicted - before.Evicted}; d != [4]uint64{tc.computed, tc.reused, tc.shared, tc.evicted} {
				t.Errorf("computed, reused, shared, evicted %v, want %v", d, [4]uint64{tc.computed, tc.reused, tc.shared, tc.evicted})
			}
		})
	}
	if c := computing.Stats; c.Reused != 0 || c.Shared != 0 || c.Computed != c.Decisions {
		t.Errorf("the policy without reuse counted %+v", c)
	}
	if r := reusing.Stats; r.Computed+r.Reused+r.Shared != r.Decisions {
		t.Errorf("predictions %d + %d + %d for %d decisions", r.Computed, r.Reused, r.Shared, r.Decisions)
	}
	if c, r, s := reusing.PredictionCounts(); c != reusing.Stats.Computed || r != reusing.Stats.Reused || s != reusing.Stats.Shared {
		t.Errorf("PredictionCounts %d %d %d, stats %+v", c, r, s, reusing.Stats)
	}
}

// TestPolicyPredictionIndependentOfBatch checks that a function's
// prediction, hence its decision, is the same bit for bit alone and among
// 250 other functions, at the seed's network widths.
func TestPolicyPredictionIndependentOfBatch(t *testing.T) {
	m := testModel(t)
	p, err := NewPolicy(m, PolicyConfig{Rule: DefaultPrewarmRule(), ReuseTicks: -1})
	if err != nil {
		t.Fatal(err)
	}
	all := stateBatch(251)
	many := decide(t, p, all)
	for _, i := range []int{0, 5, 6, 63, 64, 250} {
		r := all.Operational[i]
		one := decide(t, p, &schemas.StateBatch{Header: all.Header, Operational: []schemas.OperationalRow{r}})
		if !sameDecision(one[r.Func], many[r.Func]) {
			t.Errorf("%s: %+v alone, %+v among 251", r.Func, one[r.Func], many[r.Func])
		}
	}
}

// TestPolicyDecideDoesNotAllocate checks the steady state: a tick of
// changed windows (the hour sine moves) costs no allocation once the
// buffers have grown.
func TestPolicyDecideDoesNotAllocate(t *testing.T) {
	for _, head := range []string{HeadDirect, HeadResidual} {
		t.Run(head, func(t *testing.T) { decideDoesNotAllocate(t, head) })
	}
}

func decideDoesNotAllocate(t *testing.T, head string) {
	m := testModel(t)
	m.Config.Head = head
	p, err := NewPolicy(m, DefaultPolicyConfig())
	if err != nil {
		t.Fatal(err)
	}
	b := stateBatch(100)
	b.Operational = append(b.Operational, idle(0, 20)...)
	out := &schemas.DecisionBatch{}
	tick := 0
	step := func() {
		tick++
		b.Header.Tick = int64(tick)
		for i := range b.Operational {
			for k := range Steps {
				b.Operational[i].HourSin[k] = math.Sin(float64(tick+k) / 100)
			}
		}
		out.Rows = out.Rows[:0]
		if err := p.Decide(context.Background(), b, out); err != nil {
			t.Fatal(err)
		}
	}
	step()
	step()
	if n := testing.AllocsPerRun(10, step); n != 0 {
		t.Errorf("%v allocations per tick", n)
	}
	if p.Stats.Shared == 0 || p.Stats.Computed == 0 {
		t.Errorf("stats %+v: the idle rows should share", p.Stats)
	}
}

// idle returns n idle functions at tick.
func idle(tick, n int) []schemas.OperationalRow {
	rows := make([]schemas.OperationalRow, n)
	for i := range rows {
		rows[i] = idleRow(fmt.Sprintf("idle%d", i), tick)
	}
	return rows
}

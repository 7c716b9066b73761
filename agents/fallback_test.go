package agents_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/schemas"
)

// flaky is an operational policy that decides Prewarm = prewarm for every
// row, or fails on the ticks in failOn; it counts the batches it saw.
type flaky struct {
	name    string
	prewarm int32
	failOn  map[int64]bool
	seen    int
}

func (p *flaky) Name() string         { return p.name }
func (p *flaky) Version() string      { return "v-" + p.name }
func (p *flaky) Layer() schemas.Layer { return schemas.Operational }
func (p *flaky) Decide(_ context.Context, st *schemas.StateBatch, out *schemas.DecisionBatch) error {
	p.seen++
	for _, r := range st.Operational {
		// A failing policy may have appended rows before it failed.
		out.Rows = append(out.Rows, schemas.DecisionRow{App: r.App, Func: r.Func, Prewarm: p.prewarm, Action: p.prewarm})
	}
	if p.failOn[st.Header.Tick] {
		return errors.New("the network is on fire")
	}
	return nil
}

// TestFallback checks who decides each batch: the primary while it
// decides, the fallback for a batch the primary fails on and every batch
// while forced; both see every batch; the rows never mix.
func TestFallback(t *testing.T) {
	primary := &flaky{name: "learned", prewarm: 5, failOn: map[int64]bool{2: true}}
	fb := &flaky{name: "baseline", prewarm: 1}
	f, err := agents.NewFallback(primary, fb)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "learned" {
		t.Errorf("before any batch: %s", f.Name())
	}
	for _, tc := range []struct {
		tick   int64
		force  bool
		who    string
		failed uint64
		forced uint64
	}{
		{1, false, "learned", 0, 0},
		{2, false, "baseline", 1, 0},
		{3, false, "learned", 1, 0},
		{4, true, "baseline", 1, 1},
		{5, true, "baseline", 1, 2},
		{6, false, "learned", 1, 2},
	} {
		f.SetForced(tc.force)
		st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: tc.tick},
			Operational: []schemas.OperationalRow{{App: "a", Func: "f"}, {App: "a", Func: "g"}}}
		out := &schemas.DecisionBatch{Header: st.Header}
		if err := f.Decide(t.Context(), st, out); err != nil {
			t.Fatalf("tick %d: %v", tc.tick, err)
		}
		want := map[string]int32{"learned": 5, "baseline": 1}[tc.who]
		if f.Name() != tc.who || f.Version() != "v-"+tc.who || len(out.Rows) != 2 || out.Rows[0].Prewarm != want || out.Rows[1].Prewarm != want {
			t.Errorf("tick %d: %s/%s decided %+v, want %s's 2 rows", tc.tick, f.Name(), f.Version(), out.Rows, tc.who)
		}
		if failed, forced := f.FallbackCounts(); failed != tc.failed || forced != tc.forced {
			t.Errorf("tick %d: counts %d failed, %d forced; want %d, %d", tc.tick, failed, forced, tc.failed, tc.forced)
		}
	}
	if primary.seen != 6 || fb.seen != 6 {
		t.Errorf("the primary saw %d batches, the fallback %d; want 6 each", primary.seen, fb.seen)
	}
	if err := f.LastError(); err == nil || !strings.Contains(err.Error(), "on fire") {
		t.Errorf("last error %v", err)
	}
}

// TestFallbackErrors checks that a failure is returned when the rows
// needed cannot be had, and that the layers must match.
func TestFallbackErrors(t *testing.T) {
	bad := &flaky{name: "learned", failOn: map[int64]bool{1: true}}
	alsoBad := &flaky{name: "baseline", failOn: map[int64]bool{1: true}}
	f, err := agents.NewFallback(bad, alsoBad)
	if err != nil {
		t.Fatal(err)
	}
	st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: 1}}
	if err := f.Decide(t.Context(), st, &schemas.DecisionBatch{}); err == nil || !strings.Contains(err.Error(), "and so did its fallback baseline") {
		t.Errorf("both failing: %v", err)
	}
	other, err := agents.New("random", schemas.Strategic, agents.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agents.NewFallback(bad, other); err == nil || !strings.Contains(err.Error(), "it is a strategic policy") {
		t.Errorf("fallback of another layer: %v", err)
	}
}

package worker

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/schemas"
)

// TestChangedKeepsOnlyChanges checks the operational layer's delta rule:
// a row is published when it differs from the last one published for its
// function, in any field, and the first row of a function always is —
// whichever shard's batches come between, and in whatever order.
func TestChangedKeepsOnlyChanges(t *testing.T) {
	w := &Worker{}
	r := func(fn string, prewarm int32, predicted float64) schemas.DecisionRow {
		return schemas.DecisionRow{App: "a", Func: fn, Prewarm: prewarm, Action: prewarm, Policy: "p", PolicyVersion: "1", Predicted: schemas.Some(predicted)}
	}
	for i, tc := range []struct {
		shard    int
		in, want []schemas.DecisionRow
	}{
		{0, []schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}},
		{0, []schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, nil},
		{0, []schemas.DecisionRow{r("f", 1, 2), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 2)}},
		{0, []schemas.DecisionRow{r("g", 3, 0)}, []schemas.DecisionRow{r("g", 3, 0)}},
		{0, []schemas.DecisionRow{r("f", 1, 2), r("h", 0, 0)}, []schemas.DecisionRow{r("h", 0, 0)}},
		{1, []schemas.DecisionRow{r("x", 1, 0), r("y", 1, 0)}, []schemas.DecisionRow{r("x", 1, 0), r("y", 1, 0)}},
		{0, []schemas.DecisionRow{r("f", 1, 2), r("h", 0, 0)}, nil},
		{1, []schemas.DecisionRow{r("x", 1, 0), r("y", 2, 0)}, []schemas.DecisionRow{r("y", 2, 0)}},
		{0, []schemas.DecisionRow{r("h", 0, 0), r("g", 3, 0), r("f", 1, 3)}, []schemas.DecisionRow{r("f", 1, 3)}},
		{0, []schemas.DecisionRow{r("f", 1, 3), r("g", 3, 0), r("h", 5, 0)}, []schemas.DecisionRow{r("h", 5, 0)}},
	} {
		if got := w.changed(tc.shard, slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("batch %d: published %v, want %v", i, got, tc.want)
		}
	}
}

// countingPolicy is a policy whose prediction counts the test sets.
type countingPolicy struct{ computed, reused, shared uint64 }

func (p *countingPolicy) Name() string    { return "counting" }
func (p *countingPolicy) Version() string { return "1" }
func (p *countingPolicy) Decide(context.Context, *schemas.StateBatch, *schemas.DecisionBatch) error {
	return nil
}
func (p *countingPolicy) PredictionCounts() (computed, reused, shared uint64) {
	return p.computed, p.reused, p.shared
}

// TestPredictionCountsAreExported checks that a PredictionCounter's
// running totals reach strata_worker_predictions_total as increments, and
// that a policy without counts exports nothing.
func TestPredictionCountsAreExported(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := newWorkerMetrics(reg, schemas.Operational)
	p := &countingPolicy{}
	for _, tc := range []struct {
		computed, reused, shared uint64
	}{
		{250, 0, 0},
		{260, 200, 30},
		{260, 200, 30},
		{300, 410, 60},
	} {
		p.computed, p.reused, p.shared = tc.computed, tc.reused, tc.shared
		m.countPredictions(p)
		for _, c := range []struct {
			source string
			ctr    prometheus.Counter
			want   uint64
		}{{"computed", m.computed, tc.computed}, {"reused", m.reused, tc.reused}, {"shared", m.shared, tc.shared}} {
			if got := testutil.ToFloat64(c.ctr); got != float64(c.want) {
				t.Errorf("after totals %+v: %s %v, want %d", tc, c.source, got, c.want)
			}
		}
	}
	if n, err := testutil.GatherAndCount(reg, "strata_worker_predictions_total"); err != nil || n != 3 {
		t.Errorf("%d series of strata_worker_predictions_total (%v), want 3", n, err)
	}
	// Wrapped in a struct that exposes only Policy's methods, the same
	// policy is not a PredictionCounter.
	plain := struct{ Policy }{&countingPolicy{computed: 7}}
	fresh := newWorkerMetrics(nil, schemas.Tactical)
	fresh.countPredictions(plain)
	if got := testutil.ToFloat64(fresh.computed); got != 0 {
		t.Errorf("a policy without PredictionCounts exported %v computed predictions", got)
	}
}

// fallbackPolicy is a policy whose fallback counts the test sets.
type fallbackPolicy struct{ failed, forced uint64 }

func (p *fallbackPolicy) Name() string    { return "fb" }
func (p *fallbackPolicy) Version() string { return "1" }
func (p *fallbackPolicy) Decide(context.Context, *schemas.StateBatch, *schemas.DecisionBatch) error {
	return nil
}
func (p *fallbackPolicy) FallbackCounts() (failed, forced uint64) { return p.failed, p.forced }

// TestGuardAndFallbackMetrics checks that the guardrails' projections and
// a FallbackCounter's running totals reach their counters, by constraint
// and by reason, and that the projection series exist at 0 once
// guardrails are given.
func TestGuardAndFallbackMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := newWorkerMetrics(reg, schemas.Operational)
	if n, err := testutil.GatherAndCount(reg, "strata_worker_guardrail_projections_total"); err != nil || n != 0 {
		t.Errorf("without guardrails: %d projection series (%v), want none", n, err)
	}
	m.guardMetrics(reg, schemas.Operational)
	if n, err := testutil.GatherAndCount(reg, "strata_worker_guardrail_projections_total"); err != nil || n != len(guard.Constraints) {
		t.Errorf("with guardrails: %d projection series (%v), want %d", n, err, len(guard.Constraints))
	}
	m.countProjections(guard.Counts{guard.ConstraintKeepWarm: 3})
	m.countProjections(guard.Counts{guard.ConstraintKeepWarm: 1, guard.ConstraintMemory: 2})
	for c, want := range map[guard.Constraint]float64{guard.ConstraintKeepWarm: 4, guard.ConstraintMemory: 2, guard.ConstraintRegion: 0} {
		if got := testutil.ToFloat64(m.projected.WithLabelValues(string(c))); got != want {
			t.Errorf("%s projections %v, want %v", c, got, want)
		}
	}
	p := &fallbackPolicy{}
	for _, tc := range []struct{ failed, forced uint64 }{{1, 0}, {1, 0}, {2, 5}} {
		p.failed, p.forced = tc.failed, tc.forced
		m.countFallbacks(p)
		if f, o := testutil.ToFloat64(m.fellBack.WithLabelValues("failed")), testutil.ToFloat64(m.fellBack.WithLabelValues("forced")); f != float64(tc.failed) || o != float64(tc.forced) {
			t.Errorf("after totals %+v: failed %v, forced %v", tc, f, o)
		}
	}
}

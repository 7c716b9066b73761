package worker

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-rl/strata/schemas"
)

// TestChangedKeepsOnlyChanges checks the operational layer's delta rule:
// a row is published when it differs from the last one published for its
// function, in any field, and the first row of a function always is.
func TestChangedKeepsOnlyChanges(t *testing.T) {
	w := &Worker{}
	r := func(fn string, prewarm int32, predicted float64) schemas.DecisionRow {
		return schemas.DecisionRow{App: "a", Func: fn, Prewarm: prewarm, Action: prewarm, Policy: "p", PolicyVersion: "1", Predicted: schemas.Some(predicted)}
	}
	for i, tc := range []struct {
		in, want []schemas.DecisionRow
	}{
		{[]schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}},
		{[]schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, nil},
		{[]schemas.DecisionRow{r("f", 1, 2), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 2)}},
		{[]schemas.DecisionRow{r("g", 3, 0)}, []schemas.DecisionRow{r("g", 3, 0)}},
		{[]schemas.DecisionRow{r("f", 1, 2), r("h", 0, 0)}, []schemas.DecisionRow{r("h", 0, 0)}},
	} {
		if got := w.changed(slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
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

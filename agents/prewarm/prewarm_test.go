package prewarm_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/agents/prewarm"
	"github.com/strata-rl/strata/schemas"
)

const tickUS = 15_000_000

// batch returns the operational batch of the tick starting at startUS
// with the given rows.
func batch(startUS int64, rows ...schemas.OperationalRow) *schemas.StateBatch {
	return &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: startUS / tickUS, TickStartUS: startUS},
		Operational: rows}
}

// row is a function's row whose latest invocation started at lastUS
// (instantly over: no concurrency) with the given new idle times.
func row(fn string, lastUS int64, its ...float64) schemas.OperationalRow {
	return schemas.OperationalRow{App: "a", Func: fn, LastStartUS: lastUS, Invocations: int64(len(its)), IdleTimesS: its}
}

func newPolicy(t *testing.T, ps map[string]string) *prewarm.Policy {
	t.Helper()
	p, err := prewarm.New(ps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decide runs one batch and returns the decisions by function.
func decide(t *testing.T, p *prewarm.Policy, b *schemas.StateBatch) map[string]schemas.DecisionRow {
	t.Helper()
	out := &schemas.DecisionBatch{}
	if err := p.Decide(context.Background(), b, out); err != nil {
		t.Fatal(err)
	}
	m := map[string]schemas.DecisionRow{}
	for _, d := range out.Rows {
		m[d.Func] = d
	}
	return m
}

// TestHazardHandComputed checks the estimate and the rule on one
// function whose idle times are 900, 900, 900 and 2,000 s (no prior, no
// smoothing): the hazard of a tick that starts s seconds after the last
// execution ended is (idle times in [s, s+15)) ÷ (idle times ≥ s).
func TestHazardHandComputed(t *testing.T) {
	p := newPolicy(t, map[string]string{"threshold": "0.5", "prior_weight": "0", "bandwidth_s": "0"})
	decide(t, p, batch(0, row("f", 0, 900, 900, 900, 2000)))
	tests := []struct {
		ageS      int64
		estimated bool
		hazard    float64
		prewarm   int32
	}{
		{585, false, 0, 0},      // the tick ends within the free keep-alive (600 s)
		{600, true, 0, 0},       // past it, but no idle time in [600, 615)
		{885, true, 0, 0},       // [885, 900): none yet
		{900, true, 0.75, 1},    // [900, 915): 3 of the 4 at risk
		{915, true, 0, 0},       // only 2,000 is still at risk
		{1995, true, 1, 1},      // [1995, 2010): 1 of 1
		{2010, false, 0, 0},     // none at risk
		{4 * 3600, false, 0, 0}, // past the horizon
	}
	for _, tt := range tests {
		d := decide(t, p, batch(tt.ageS*1_000_000, row("f", 0)))["f"]
		if d.Predicted.Valid != tt.estimated || d.Predicted.Valid && d.Predicted.V != tt.hazard || d.Prewarm != tt.prewarm || d.Action != d.Prewarm || d.KeepWarmMS != 0 {
			t.Errorf("age %d s: predicted %+v, pre-warm %d (action %d, keep-warm %d); want estimated %v hazard %v, pre-warm %d",
				tt.ageS, d.Predicted, d.Prewarm, d.Action, d.KeepWarmMS, tt.estimated, tt.hazard, tt.prewarm)
		}
	}
}

// TestPriorLendsThePooledHazard checks that a function with no idle
// times of its own borrows the pooled estimate, and gets none without a
// prior.
func TestPriorLendsThePooledHazard(t *testing.T) {
	for _, tt := range []struct {
		prior     string
		estimated bool
		prewarm   int32
	}{{"2", true, 1}, {"0", false, 0}} {
		p := newPolicy(t, map[string]string{"threshold": "0.5", "prior_weight": tt.prior, "bandwidth_s": "0"})
		decide(t, p, batch(0, row("known", 0, 900, 900), row("new", 0)))
		d := decide(t, p, batch(900_000_000, row("known", 0), row("new", 0)))["new"]
		if d.Predicted.Valid != tt.estimated || d.Prewarm != tt.prewarm {
			t.Errorf("prior %s: new function predicted %+v, pre-warm %d; want estimated %v, pre-warm %d", tt.prior, d.Predicted, d.Prewarm, tt.estimated, tt.prewarm)
		}
	}
}

// TestDecisionsIndependentOfRowOrder feeds two policies the same
// batches, one with its rows shuffled: the pooled idle times (a small
// ring here, so that order would matter) and every decision agree.
func TestDecisionsIndependentOfRowOrder(t *testing.T) {
	ps := map[string]string{"threshold": "0.05", "pooled_history": "5"}
	a, b := newPolicy(t, ps), newPolicy(t, ps)
	r := rand.New(rand.NewPCG(1, 2))
	var last [8]int64
	for k := int64(0); k < 400; k++ {
		var rows []schemas.OperationalRow
		for f := range 8 {
			var its []float64
			if r.IntN(10) == 0 { // an invocation in this tick
				its = []float64{float64((k*tickUS - last[f]) / 1_000_000)}
				last[f] = k * tickUS
			}
			rows = append(rows, row(fmt.Sprint("f", f), last[f], its...))
		}
		shuffled := append([]schemas.OperationalRow(nil), rows...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		da, db := decide(t, a, batch(k*tickUS, rows...)), decide(t, b, batch(k*tickUS, shuffled...))
		for f, d := range da {
			if db[f] != d {
				t.Fatalf("tick %d %s: %+v in order, %+v shuffled", k, f, d, db[f])
			}
		}
	}
}

func TestDecideRejects(t *testing.T) {
	p := newPolicy(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Decide(ctx, batch(0), &schemas.DecisionBatch{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	tac := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical}}
	if err := p.Decide(context.Background(), tac, &schemas.DecisionBatch{}); err == nil {
		t.Error("a tactical batch accepted")
	}
	if _, err := prewarm.New(map[string]string{"min_at_risk": "1.5"}); !errors.Is(err, prewarm.ErrInvalidParam) {
		t.Errorf("a fractional count: %v", err)
	}
}

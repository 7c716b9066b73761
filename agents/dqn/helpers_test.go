package dqn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// smallConfig is the default configuration with a small buffer, warm-up
// and scaler fit, so that tests train after a few transitions.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Seed = 3
	cfg.BufferSize = 1_000
	cfg.BatchSize = 16
	cfg.WarmUp = 32
	cfg.ScalerFit = 32
	return cfg
}

func mustLearner(t testing.TB, cfg Config) *Learner {
	t.Helper()
	l, err := NewLearner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// strategicRows returns n strategic rows with plausible raw values.
func strategicRows(seed uint64, n int) []schemas.StrategicRow {
	rng := rand.New(rand.NewPCG(seed, 9))
	rows := make([]schemas.StrategicRow, n)
	for i := range rows {
		inv := int64(rng.ExpFloat64() * 1e5)
		rows[i] = schemas.StrategicRow{
			App: fmt.Sprintf("app-%03d", i), Functions: int32(1 + rng.IntN(20)),
			Invocations: inv, RequestRate: float64(inv) / 86400, PeakHourRate: float64(inv) / 3600 * (1 + rng.Float64()),
			ActiveHours: int32(1 + rng.IntN(24)), DurationMeanMS: 50 + rng.ExpFloat64()*300, DurationP95MS: 200 + rng.ExpFloat64()*1000,
			LatencyMeanMS: schemas.Some(60 + rng.ExpFloat64()*300), LatencyP95MS: schemas.Some(250 + rng.ExpFloat64()*1000),
			CostUSD: schemas.Some(rng.ExpFloat64() * 5), CarbonG: schemas.Some(rng.ExpFloat64() * 200),
			ColdStartRate: schemas.Some(rng.Float64() * 0.2), Trend: rng.NormFloat64() * 0.3,
		}
	}
	return rows
}

// fill adds n transitions between consecutive days' rows of random apps,
// with random actions and rewards, so that the scaler is fitted and the
// learner (with UpdatesPerTransition) trains.
func fill(t testing.TB, l *Learner, seed uint64, n int) {
	t.Helper()
	rows := strategicRows(seed, 64)
	rng := rand.New(rand.NewPCG(seed, 10))
	for range n {
		i := rng.IntN(len(rows) - 1)
		tr := Transition{
			State: rows[i].Vector(), Action: rng.IntN(3), Reward: float32(rng.NormFloat64()),
			Next: rows[i+1].Vector(), Done: rng.IntN(10) == 0,
		}
		if err := l.Add(tr); err != nil {
			t.Fatal(err)
		}
	}
}

// stateBatch wraps rows in a strategic state batch of the given tick.
func stateBatch(tick int64, rows []schemas.StrategicRow) *schemas.StateBatch {
	return &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "test", Layer: schemas.Strategic, Tick: tick, NShards: 1}, Strategic: rows}
}

// decide runs p on the rows and returns the decisions by app.
func decide(t testing.TB, p *Policy, tick int64, rows []schemas.StrategicRow) map[string]schemas.DecisionRow {
	t.Helper()
	var out schemas.DecisionBatch
	if err := p.Decide(t.Context(), stateBatch(tick, rows), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rows) != len(rows) {
		t.Fatalf("%d decisions for %d rows", len(out.Rows), len(rows))
	}
	m := make(map[string]schemas.DecisionRow, len(rows))
	for _, d := range out.Rows {
		m[d.App] = d
	}
	return m
}

// flatten concatenates every parameter of exported Q-network weights.
func flatten(w *nn.QWeights) []float32 {
	var out []float32
	dense := func(d nn.Dense) { out = append(append(out, d.W...), d.B...) }
	norm := func(n nn.LayerNorm) { out = append(append(out, n.Gain...), n.Shift...) }
	for i := range 2 {
		dense(w.Strategic[i])
		norm(w.StrategicNorm[i])
	}
	dense(w.App)
	norm(w.AppNorm)
	for i := range 2 {
		dense(w.Head[i])
		norm(w.HeadNorm[i])
	}
	dense(w.Out)
	return out
}

package ppo

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// tacticalRows returns n varied tactical rows, seeded.
func tacticalRows(seed uint64, n int) []schemas.TacticalRow {
	rng := rand.New(rand.NewPCG(seed, 3))
	provs := []string{"aws", "azure", "gcp", ""}
	rows := make([]schemas.TacticalRow, n)
	for i := range rows {
		inv := rng.Int64N(5000)
		rows[i] = schemas.TacticalRow{
			App: fmt.Sprintf("app%02d", i%17), Func: fmt.Sprintf("f%03d", i),
			Invocations: inv, RequestRate: float64(inv) / 3600,
			LatencyMeanMS: schemas.Some(20 + rng.ExpFloat64()*300),
			CostUSD:       schemas.Some(rng.ExpFloat64() * 1e-4),
			MemoryUtil:    schemas.Some(rng.Float64()),
			CPUUtil:       schemas.Some(rng.Float64()),
			QueueDepth:    schemas.Some(rng.ExpFloat64()),
			ColdStartRate: schemas.Some(rng.Float64() * 0.2),
			Provider:      provs[rng.IntN(len(provs))],
			Trend:         rng.NormFloat64() * 0.3,
		}
	}
	return rows
}

// batch wraps rows in a tactical state batch of tick.
func batch(tick int64, rows []schemas.TacticalRow) *schemas.StateBatch {
	return &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "test", Layer: schemas.Tactical, Tick: tick}, Tactical: rows}
}

// decide runs p on rows at tick and returns the decisions.
func decide(t testing.TB, p *Policy, tick int64, rows []schemas.TacticalRow) []schemas.DecisionRow {
	t.Helper()
	var out schemas.DecisionBatch
	if err := p.Decide(context.Background(), batch(tick, rows), &out); err != nil {
		t.Fatal(err)
	}
	return out.Rows
}

func mustLearner(t testing.TB, cfg Config, seed uint64) *Learner {
	t.Helper()
	l, err := NewLearner(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func mustPolicy(t testing.TB, m *Model, opts PolicyOptions) *Policy {
	t.Helper()
	p, err := NewPolicy(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// trainedCheckpoint returns a learner of cfg (seed) after one update on a
// rollout filled with fillRollout (rolloutSeed), and its saved checkpoint.
func trainedCheckpoint(t testing.TB, cfg Config, seed, rolloutSeed uint64) (*Learner, []byte) {
	t.Helper()
	l := mustLearner(t, cfg, seed)
	fillRollout(t, l, rolloutSeed)
	if _, err := l.Update(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return l, buf.Bytes()
}

// fillRollout adds random single-step (done) transitions of the learner's
// current version until its rollout is full, starting at tick.
func fillRollout(t testing.TB, l *Learner, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	rows := tacticalRows(seed, 64)
	for tick := int64(0); !l.Ready(); tick++ {
		for i := range rows {
			if l.Ready() {
				break
			}
			r := &rows[i]
			err := l.Add(Transition{
				RunID: "fill", App: r.App, Func: r.Func, Tick: tick,
				State: r.AppendFeatures(nil, l.cfg.Features()), Action: rng.IntN(Actions), Reward: float32(rng.NormFloat64()),
				NextState: r.AppendFeatures(nil, l.cfg.Features()), Done: rng.IntN(8) == 0,
				LogProb: -3.178, Value: 0, PolicyVersion: l.Version(),
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

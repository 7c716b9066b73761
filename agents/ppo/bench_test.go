package ppo

import (
	"context"
	"testing"
	"time"

	"github.com/strata-rl/strata/schemas"
)

// benchDecide times Decide on n tactical rows of a fitted model, sampling.
func benchDecide(b *testing.B, n int) {
	l := trainedLearner(b, 71)
	p := mustPolicy(b, l.Model(), PolicyOptions{Seed: 1})
	st := batch(1, tacticalRows(72, n))
	out := &schemas.DecisionBatch{Rows: make([]schemas.DecisionRow, 0, n)}
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		out.Rows = out.Rows[:0]
		if err := p.Decide(ctx, st, out); err != nil {
			b.Fatal(err)
		}
		st.Header.Tick++
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*n)/el, "decisions/s")
	b.ReportMetric(el*1e6/float64(b.N*n), "µs/decision")
}

// BenchmarkDecide300 is one tick of 300 functions.
func BenchmarkDecide300(b *testing.B) { benchDecide(b, 300) }

// BenchmarkDecide1 is the latency of a single decision.
func BenchmarkDecide1(b *testing.B) { benchDecide(b, 1) }

// BenchmarkUpdate is one update of the default configuration: a rollout
// of 2048 transitions, 10 epochs of minibatch 64 (320 steps). The timed
// loop includes refilling the buffer (2048 Add calls, well under 1 % of
// the time). rollout-samples/s counts transitions consumed, grad-samples/s
// minibatch rows trained (10 per transition).
func BenchmarkUpdate(b *testing.B) {
	cfg := DefaultConfig()
	l := mustLearner(b, cfg, 73)
	fillRollout(b, l, 74)
	if _, err := l.Update(); err != nil { // fit the scaler outside the loop
		b.Fatal(err)
	}
	seed := uint64(75)
	start := time.Now()
	for b.Loop() {
		fillRollout(b, l, seed)
		seed++
		if _, err := l.Update(); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*cfg.Rollout)/el, "rollout-samples/s")
	b.ReportMetric(float64(b.N*cfg.Rollout*cfg.Epochs)/el, "grad-samples/s")
}

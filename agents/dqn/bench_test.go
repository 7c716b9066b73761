package dqn

import (
	"testing"

	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// benchApps is the number of rows of one strategic tick: the strategic
// layer decides once a day for every app, and the Azure Functions 2021
// trace (like the synthetic population calibrated to it,
// testdata/azure2021/STATS.md) has 119 apps.
const benchApps = replay.SynthPopulationApps

// BenchmarkDecide times one strategic tick of every app of the trace
// (benchApps rows): vectors, scaling, the exported forward pass and the
// ε-greedy draw.
func BenchmarkDecide(b *testing.B) {
	for _, mode := range []struct {
		name    string
		explore bool
	}{{"greedy", false}, {"explore", true}} {
		b.Run(mode.name, func(b *testing.B) {
			l := mustLearner(b, smallConfig())
			fill(b, l, 1, 40)
			l.SetEpisode(10)
			p, err := l.Policy(1, mode.explore)
			if err != nil {
				b.Fatal(err)
			}
			state := stateBatch(1, strategicRows(2, benchApps))
			out := schemas.DecisionBatch{Rows: make([]schemas.DecisionRow, 0, benchApps)}
			ctx := b.Context()
			for b.Loop() {
				out.Rows = out.Rows[:0]
				if err := p.Decide(ctx, state, &out); err != nil {
					b.Fatal(err)
				}
			}
			if len(out.Rows) != benchApps {
				b.Fatalf("%d decisions for %d apps", len(out.Rows), benchApps)
			}
			b.ReportMetric(float64(b.N*benchApps)/b.Elapsed().Seconds(), "decisions/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/tick")
		})
	}
}

// BenchmarkTrainStep times one learner step at the default batch of 64:
// sampling, scaling, the target network's forward pass, the targets, the
// online network's training step and the soft update.
func BenchmarkTrainStep(b *testing.B) {
	cfg := DefaultConfig()
	cfg.UpdatesPerTransition = 0
	cfg.WarmUp, cfg.ScalerFit = 1_000, 1_000
	l := mustLearner(b, cfg)
	fill(b, l, 3, 2_000)
	for b.Loop() {
		if _, err := l.TrainStep(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*cfg.BatchSize)/b.Elapsed().Seconds(), "samples/s")
}

package twin

import (
	"errors"
	"io"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// benchHour is the synthetic hour the engine benchmarks evaluate: noon of
// the first day (seed 1, all apps).
const benchHour = 12

// synthHour returns the arrivals of hour h of the first synthetic day, one
// bucket per tick from the hour's first tick, the model and the profile
// built from the whole day, and the number of arrivals.
func synthHour(b *testing.B, h int64) ([][]Arrival, *cloud.Model, func(app, fn string) cloud.Function, int) {
	b.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	src, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	pb := NewProfileBuilder(grid.DefaultEpoch)
	first := h * grid.TicksPerHour
	ticks := make([][]Arrival, grid.TicksPerHour)
	n := 0
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		pb.Add(in)
		if k := grid.TickOf(in.StartUS(), grid.OperationalTickUS) - first; k >= 0 && k < grid.TicksPerHour {
			ticks[k] = append(ticks[k], Arrival{ID: in.ID(), App: in.App, Func: in.Func, StartUS: in.StartUS(), DurationUS: in.DurationUS, Row: in.Row})
			n++
		}
	}
	return ticks, m, pb.Build(m), n
}

// BenchmarkEngineTick evaluates a prepared synthetic hour (240 ticks, the
// hour's tactical rewards included) on a fresh engine per iteration: with
// the default placement only, and with a fixed operational decision of one
// pre-warmed instance for every function arriving in a tick.
func BenchmarkEngineTick(b *testing.B) {
	ticks, m, profile, n := synthHour(b, benchHour)
	first := int64(benchHour) * grid.TicksPerHour
	cfg := Config{RunID: "bench", Reward: cloud.DefaultRewardConfig(),
		DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}}
	prewarm := make([]*schemas.DecisionBatch, len(ticks))
	for i, arr := range ticks {
		k := first + int64(i)
		bt := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: "bench", Layer: schemas.Operational, Tick: k,
			TickStartUS: k * grid.OperationalTickUS, NShards: 1}}
		seen := map[fnKey]bool{}
		for _, a := range arr {
			if key := (fnKey{a.App, a.Func}); !seen[key] {
				seen[key] = true
				bt.Rows = append(bt.Rows, schemas.DecisionRow{App: a.App, Func: a.Func, Action: 1, Prewarm: 1, Policy: "fixed"})
			}
		}
		if len(bt.Rows) > 0 {
			prewarm[i] = bt
		}
	}
	for _, c := range []struct {
		name      string
		decisions []*schemas.DecisionBatch
	}{{"default-placement", nil}, {"prewarm-1", prewarm}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				e, err := NewEngine(m, cfg, profile)
				if err != nil {
					b.Fatal(err)
				}
				for i, arr := range ticks {
					if c.decisions != nil && c.decisions[i] != nil {
						if err := e.Apply(c.decisions[i]); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := e.Tick(first+int64(i), arr); err != nil {
						b.Fatal(err)
					}
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*len(ticks))/s, "ticks/s")
			b.ReportMetric(float64(b.N*n)/s, "arrivals/s")
		})
	}
}

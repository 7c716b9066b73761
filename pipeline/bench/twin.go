package bench

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// benchLatenessUS is the allowed lateness of the benchmarks' replay: the
// default of `strata run --allowed-lateness` (600 s).
const benchLatenessUS = int64(pipeline.DefaultLateness / time.Microsecond)

// Source selects the trace of the benchmarks that replay one: the
// synthetic generator by default, or a trace file.
type Source struct {
	// Days days of synthetic trace of seed Seed, Apps apps (0: all).
	Days int
	Seed int64
	Apps int
	// Trace, if set, is a trace file or directory replayed instead, in
	// Format (one of replay.Formats; "" is auto) through the column
	// mapping Columns.
	Trace, Format, Columns string
}

// RegisterFlags registers --days, --seed, --apps, --trace, --trace-format
// and --trace-columns, each name preceded by prefix; their defaults are
// s's values (an empty Format is auto).
func (s *Source) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.IntVar(&s.Days, prefix+"days", s.Days, "days of synthetic trace")
	fs.Int64Var(&s.Seed, prefix+"seed", s.Seed, "seed of the synthetic trace, and of the expansion of an Azure 2019 trace's counts")
	fs.IntVar(&s.Apps, prefix+"apps", s.Apps, "keep only this many apps of the synthetic trace (0 = all)")
	fs.StringVar(&s.Trace, prefix+"trace", s.Trace, "replay this trace `PATH` instead of the synthetic trace (docs/traces.md)")
	fs.StringVar(&s.Format, prefix+"trace-format", cmp.Or(s.Format, string(replay.FormatAuto)),
		"`format` of --trace: auto, azure2021, azure2019, csv or parquet, as for strata run")
	fs.StringVar(&s.Columns, prefix+"trace-columns", s.Columns, "column `mapping` of a csv or parquet --trace, as for strata run")
}

// sources returns the source of `strata run` that selects the same trace.
func (s *Source) sources() *pipeline.Source {
	if s.Trace != "" || s.Columns != "" || (s.Format != "" && s.Format != string(replay.FormatAuto)) {
		return &pipeline.Source{Trace: s.Trace, Format: s.Format, Columns: s.Columns, Seed: s.Seed}
	}
	return &pipeline.Source{SynthDays: s.Days, Seed: s.Seed, Apps: s.Apps}
}

// TwinConfig configures the twin engine benchmark.
type TwinConfig struct {
	Source Source
	// Prewarm is the fixed operational pre-warm decided for every function
	// arriving in a tick (0: no decisions, the default placement only).
	Prewarm int
	// Runs is the number of runs of each side, interleaved.
	Runs int
	// Placement is the placement of every function.
	Placement cloud.Placement
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// Logger receives the benchmark's log.
	Logger *slog.Logger
}

// Twin measures, in one process and in c.Runs interleaved rounds, the
// replay ceiling (the trace source and the Orderer putting arrivals into
// operational tick buckets) and then the pure twin Engine (a fresh one
// each round) evaluating every tick of that round's buckets in order, with
// no brokers; it prints every run, both sides' best rates, and the ratio
// of the best arrival rates as its last line on stdout.
func Twin(ctx context.Context, c TwinConfig, stdout io.Writer) error {
	if c.Runs < 1 || c.Prewarm < 0 {
		return errors.New("strata bench twin: --runs must be at least 1 and --prewarm not negative")
	}
	sf := c.Source.sources()
	var (
		lo                                 pipeline.LoopConfig
		replayRate, twinRate, twinTickRate float64
	)
	for i := range c.Runs {
		// The previous round's buckets are out of scope: collect them first,
		// so the runs start equal.
		runtime.GC()
		ticks, n, d, name, err := replayRun(ctx, sf, func(trace string) {
			if i == 0 {
				fmt.Fprintf(stdout, "machine: %s, %d cores, %s; trace: %s\n", CPUModel(), runtime.NumCPU(), runtime.Version(), trace)
			}
		})
		if err != nil {
			return err
		}
		rate := float64(n) / d.Seconds()
		replayRate = max(replayRate, rate)
		c.Logger.Info("replay ceiling run done", "run", i+1, "arrivals", n, "seconds", d.Seconds())
		fmt.Fprintf(stdout, "replay (source + Orderer → tick buckets), run %d: %d arrivals, %d ticks in %.3f s = %.0f arrivals/s\n",
			i+1, n, len(ticks), d.Seconds(), rate)

		if i == 0 {
			// The engine's model and function profiles, derived once
			// (untimed).
			lo, _, err = pipeline.SetupLoop(ctx, pipeline.LoopOptions{Strategic: "none", Tactical: "none", Operational: "none", Placement: c.Placement,
				Source: sf, NewModel: c.NewModel}, pipeline.Config{Epoch: grid.DefaultEpoch, Logger: c.Logger}, name, grid.DefaultEpoch)
			if err != nil {
				return err
			}
			lo.Engine.RunID = "bench"
		}
		eng, err := twin.NewEngine(lo.Model, lo.Engine, lo.Profile)
		if err != nil {
			return err
		}
		var decide func(k int64) []*schemas.DecisionBatch
		if c.Prewarm > 0 {
			decide = fixedPrewarm(ticks, int32(c.Prewarm))
		}
		runtime.GC()
		res, err := runEngine(ctx, eng, ticks, decide, nil)
		if err != nil {
			return err
		}
		rate = float64(res.arrivals) / res.wall.Seconds()
		twinRate = max(twinRate, rate)
		twinTickRate = max(twinTickRate, float64(res.ticks)/res.wall.Seconds())
		fmt.Fprintf(stdout, "twin engine (prewarm %d), run %d: %d arrivals, %d ticks, %d decisions, %d rewards in %.2f s = %.0f arrivals/s, %.0f ticks/s\n",
			c.Prewarm, i+1, res.arrivals, res.ticks, res.decisions, res.rewards, res.wall.Seconds(), rate, float64(res.ticks)/res.wall.Seconds())
	}
	fmt.Fprintf(stdout, "replay ceiling (best run): %.0f arrivals/s; twin engine (best run): %.0f arrivals/s, %.0f ticks/s\n", replayRate, twinRate, twinTickRate)
	fmt.Fprintf(stdout, "twin/replay ratio: %.3f\n", twinRate/replayRate)
	return nil
}

// replayRun is one run of the replay ceiling on the trace of sf: it opens
// the trace (calling opened with its name before the clock starts) and
// returns its tick buckets, the number of arrivals in them, the time
// replayTicks took and the trace's name.
func replayRun(ctx context.Context, sf *pipeline.Source, opened func(name string)) ([][]twin.Arrival, int64, time.Duration, string, error) {
	src, name, traceLen, closeSrc, err := sf.Open()
	if err != nil {
		return nil, 0, 0, "", err
	}
	defer closeSrc()
	if opened != nil {
		opened(name)
	}
	t0 := time.Now()
	ticks, n, err := replayTicks(ctx, src, traceLen/grid.OperationalTickUS, benchLatenessUS)
	d := time.Since(t0)
	if err != nil {
		return nil, 0, 0, name, fmt.Errorf("replaying %s: %w", name, err)
	}
	return ticks, n, d, name, nil
}

// replayTicks is the replay source alone: src through an Orderer with the
// given allowed lateness, each released invocation turned into a twin
// arrival (with its id, as the replayer writes it) and put into the bucket
// of its operational tick. The buckets are indexed by tick from 0, at
// least minTicks of them; malformed lines and late invocations are
// skipped, as the replay dead-letters them. It returns the buckets and the
// number of arrivals in them.
func replayTicks(ctx context.Context, src replay.Source, minTicks, latenessUS int64) ([][]twin.Arrival, int64, error) {
	ord := replay.NewOrderer(latenessUS)
	ticks := make([][]twin.Arrival, minTicks)
	var n int64
	add := func(in replay.Invocation) error {
		s := in.StartUS()
		k := grid.TickOf(s, grid.OperationalTickUS)
		if k < 0 {
			return fmt.Errorf("row %d starts before trace time 0", in.Row)
		}
		for int64(len(ticks)) <= k {
			ticks = append(ticks, nil)
		}
		ticks[k] = append(ticks[k], twin.Arrival{ID: in.ID(), App: in.App, Func: in.Func, StartUS: s, DurationUS: in.DurationUS, Row: in.Row})
		n++
		return nil
	}
	for i := 0; ; i++ {
		if i%65536 == 0 && ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if err := ord.Push(in); err != nil {
			if errors.Is(err, replay.ErrLate) {
				continue
			}
			return nil, 0, err
		}
		for {
			out, ok := ord.Pop()
			if !ok {
				break
			}
			if err := add(out); err != nil {
				return nil, 0, err
			}
		}
	}
	for {
		out, ok := ord.Drain()
		if !ok {
			break
		}
		if err := add(out); err != nil {
			return nil, 0, err
		}
	}
	return ticks, n, nil
}

// fixedPrewarm returns the decisions of a fixed operational policy: at
// every tick, n pre-warmed instances for each function arriving in it.
// The batches are built before it returns, so building them is not timed.
func fixedPrewarm(ticks [][]twin.Arrival, n int32) func(k int64) []*schemas.DecisionBatch {
	batches := make([]*schemas.DecisionBatch, len(ticks))
	for k, arr := range ticks {
		if len(arr) == 0 {
			continue
		}
		type fn struct{ app, fn string }
		seen := map[fn]bool{}
		b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: "bench", Layer: schemas.Operational, Tick: int64(k),
			TickStartUS: int64(k) * grid.OperationalTickUS, NShards: 1}}
		for _, a := range arr {
			if f := (fn{a.App, a.Func}); !seen[f] {
				seen[f] = true
				b.Rows = append(b.Rows, schemas.DecisionRow{App: a.App, Func: a.Func, Action: n, Prewarm: n,
					Policy: "fixed-prewarm", PolicyVersion: "1"})
			}
		}
		slices.SortFunc(b.Rows, func(x, y schemas.DecisionRow) int {
			return cmp.Or(cmp.Compare(x.App, y.App), cmp.Compare(x.Func, y.Func))
		})
		batches[k] = b
	}
	return func(k int64) []*schemas.DecisionBatch {
		if batches[k] == nil {
			return nil
		}
		return batches[k : k+1]
	}
}

// engineResult counts what runEngine evaluated.
type engineResult struct {
	ticks, arrivals, decisions, rewards, telemetry int64
	wall                                           time.Duration
}

// runEngine evaluates every tick of ticks in order, empty ones included,
// applying decide's batches for a tick (if decide is set) first, and times
// the whole run. Internal oracles see the later ticks' arrivals. dg, if
// set, digests the decisions and rewards.
func runEngine(ctx context.Context, eng *twin.Engine, ticks [][]twin.Arrival, decide func(k int64) []*schemas.DecisionBatch, dg *twin.Digests) (engineResult, error) {
	var r engineResult
	ahead := func(t int64) []twin.Arrival {
		if t < 0 || t >= int64(len(ticks)) {
			return nil
		}
		return ticks[t]
	}
	t0 := time.Now()
	for k, arr := range ticks {
		if k%1024 == 0 && ctx.Err() != nil {
			return r, ctx.Err()
		}
		if decide != nil {
			for _, b := range decide(int64(k)) {
				if err := eng.Apply(b); err != nil {
					return r, fmt.Errorf("benchmarking the twin engine: %w", err)
				}
			}
		}
		out, err := eng.TickAhead(int64(k), arr, ahead)
		if err != nil {
			return r, fmt.Errorf("benchmarking the twin engine: %w", err)
		}
		if dg != nil {
			if err := dg.Add(out); err != nil {
				return r, err
			}
		}
		r.ticks++
		r.arrivals += int64(len(arr))
		r.decisions += int64(len(out.Decisions))
		r.rewards += int64(len(out.Rewards))
		r.telemetry += int64(len(out.Telemetry))
	}
	r.wall = time.Since(t0)
	return r, nil
}

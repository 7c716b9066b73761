package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// benchLoopMain runs `strata bench loop`: in one process it measures the
// pure twin Engine's ticks per second over the trace (the ceiling, best of
// several runs: arrivals already in tick buckets, default placement, no
// decisions, no brokers) and
// then the embedded closed loop's ticks per second over the same trace, as
// `strata run` runs it without a store (replay, twin, features and the
// baseline policy workers on kfake and an in-process nats-server), and
// prints the ratio as its last line.
func benchLoopMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench loop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf       commonFlags
		bs       benchSource
		stratPol = fs.String("strategic", "greedy-cost", "strategic policy: "+policyNames(schemas.Strategic)+", or none")
		tact     = fs.String("tactical", "greedy-cost", "tactical policy: "+policyNames(schemas.Tactical)+", or none")
		oper     = fs.String("operational", "hybrid-histogram", "operational policy: "+policyNames(schemas.Operational)+", or none")
		defPl    = fs.String("default-placement", "aws/us-east/1024", "placement before any decision: provider/metro/memory MB")
		polSeed  = fs.Int64("policy-seed", 1, "seed of the policies' random choices")
		runs     = fs.Int("engine-runs", 3, "runs of the twin engine alone; the best one is the ceiling")
	)
	cf.register(fs)
	bs.register(fs, 1)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 {
		return errors.New("strata bench loop: --engine-runs must be at least 1")
	}
	// `strata bench` sets the open loop's soft memory limit; the closed
	// loop runs without it, as under `strata run` (its GC thrashes under
	// the limit, see embeddedMemoryLimit).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	logger, epoch, pl, err := loopBasics(stderr, cf, *defPl)
	if err != nil {
		return err
	}
	sf := bs.sources()
	o := pipelineOpts{brokers: kafka.ParseBrokers(cf.kafka), natsURL: cf.nats, partitions: cf.partitions,
		epoch: epoch, runID: newRunID(), latenessUS: benchLatenessUS, logger: logger}
	lf := loopFlags{strategic: *stratPol, tactical: *tact, operational: *oper, placement: pl, policySeed: *polSeed, sources: sf}

	// Ceiling: the pure engine on the same trace.
	src, name, traceLen, closeSrc, err := sf.open()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; trace: %s; broker: %s\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), name, orDefault(cf.kafka, "embedded kfake"))
	lo, names, err := setupLoop(ctx, lf, o, name, o.epoch)
	if err != nil {
		closeSrc()
		return err
	}
	ers, err := engineCeiling(ctx, lo, src, traceLen, *runs)
	closeSrc()
	if err != nil {
		return fmt.Errorf("replaying %s through the twin engine: %w", name, err)
	}
	runtime.GC()
	var engineRate float64
	for i, er := range ers {
		rate := float64(er.ticks) / er.wall.Seconds()
		engineRate = max(engineRate, rate)
		fmt.Fprintf(stdout, "twin engine alone (default placement, no decisions), run %d: %d ticks, %d arrivals in %.2f s = %.0f ticks/s\n",
			i+1, er.ticks, er.arrivals, er.wall.Seconds(), rate)
	}
	fmt.Fprintf(stdout, "engine ceiling (best run): %.0f ticks/s\n", engineRate)

	// The closed loop, as `strata run --store ""` runs it.
	src, name, traceLen, closeSrc, err = sf.open()
	if err != nil {
		return err
	}
	defer closeSrc()
	res, err := runClosedLoop(ctx, lo, src, name, traceLen)
	if err != nil {
		return err
	}
	loopRate := float64(res.Twin.Ticks) / res.Wall.Seconds()
	fmt.Fprintf(stdout, "closed loop (strategic %s, tactical %s, operational %s, no store): %d invocations, %d ticks, %d decisions, %d rewards in %.2f s = %.1f ticks/s\n",
		names[string(schemas.Strategic)], names[string(schemas.Tactical)], names[string(schemas.Operational)],
		res.Replay.Invocations, res.Twin.Ticks, res.Twin.Decisions, res.Twin.Rewards, res.Wall.Seconds(), loopRate)
	fmt.Fprintf(stdout, "loop/engine ratio: %.4f\n", loopRate/engineRate)
	return nil
}

// engineCeiling puts src's arrivals into tick buckets (untimed) and times
// the pure twin Engine over them, runs times with a fresh engine each:
// lo's model, profile and default placement, no decisions, no policy
// inside the twin, no brokers.
func engineCeiling(ctx context.Context, lo loopOpts, src replay.Source, traceLen int64, runs int) ([]engineResult, error) {
	ticks, _, err := replayTicks(ctx, src, traceLen/replay.OperationalTickUS, benchLatenessUS)
	if err != nil {
		return nil, err
	}
	var out []engineResult
	for range runs {
		runtime.GC()
		eng, err := twin.NewEngine(lo.model, twin.Config{RunID: lo.runID, DefaultPlacement: lo.engine.DefaultPlacement, Reward: lo.engine.Reward}, lo.profile)
		if err != nil {
			return nil, err
		}
		r, err := runEngine(ctx, eng, ticks, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

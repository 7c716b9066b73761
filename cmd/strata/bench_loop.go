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

// benchLoopMain runs `strata bench loop`: in one process, in --runs
// interleaved rounds, it measures the pure twin Engine's ticks per second
// over the trace (the ceiling: arrivals already in tick buckets, default
// placement, no decisions, no brokers) and then the embedded closed loop's
// ticks per second over the same trace, as `strata run` runs it without a
// store (replay, twin, features and the baseline policy workers on kfake
// and an in-process nats-server); it prints every run, both sides' best
// rates, and the ratio of the best runs as its last line. Every round sets
// the loop up afresh (policies keep state across the ticks they see) and
// gives it a run id and, with embedded brokers, an environment of its own.
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
		runs     = fs.Int("runs", 3, "runs of each side, interleaved (engine, loop, engine, …); each side's best run counts")
	)
	fs.IntVar(runs, "engine-runs", *runs, "alias of --runs (deprecated)")
	cf.registerBatch(fs)
	bs.register(fs, 1)
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if *runs < 1 {
		return errors.New("strata bench loop: --runs must be at least 1")
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
	o := pipelineOpts{brokers: kafka.ParseBrokers(cf.kafka), natsURL: cf.nats, partitions: cf.partitions, names: cf.names,
		epoch: epoch, latenessUS: benchLatenessUS, logger: logger}
	// The cache keeps static-best's choices (if a layer runs it) from the
	// first round's setup for the others.
	lf := loopFlags{strategic: *stratPol, tactical: *tact, operational: *oper, placement: pl, policySeed: *polSeed, sources: sf,
		cache: &loopCache{}, conf: conf}

	// The ceiling's tick buckets, built once (untimed).
	src, name, traceLen, closeSrc, err := sf.open()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; trace: %s; broker: %s\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), name, orDefault(cf.kafka, "embedded kfake"))
	ticks, _, err := replayTicks(ctx, src, traceLen/replay.OperationalTickUS, benchLatenessUS)
	closeSrc()
	if err != nil {
		return fmt.Errorf("replaying %s into tick buckets: %w", name, err)
	}

	var engineRate, loopRate float64
	for i := range *runs {
		lo, names, err := setupLoop(ctx, lf, o, name, o.epoch)
		if err != nil {
			return err
		}
		lo.runID = newRunID()

		// Ceiling: the pure engine on the same trace.
		runtime.GC()
		er, err := engineRun(ctx, lo, ticks)
		if err != nil {
			return fmt.Errorf("replaying %s through the twin engine: %w", name, err)
		}
		rate := float64(er.ticks) / er.wall.Seconds()
		engineRate = max(engineRate, rate)
		fmt.Fprintf(stdout, "twin engine alone (default placement, no decisions), run %d: %d ticks, %d arrivals in %.2f s = %.0f ticks/s\n",
			i+1, er.ticks, er.arrivals, er.wall.Seconds(), rate)

		// The closed loop, as `strata run --store ""` runs it.
		lsrc, _, _, closeLoopSrc, err := sf.open()
		if err != nil {
			return err
		}
		runtime.GC()
		res, err := runClosedLoop(ctx, lo, lsrc, name, traceLen)
		closeLoopSrc()
		if err != nil {
			return err
		}
		rate = float64(res.Twin.Ticks) / res.Wall.Seconds()
		loopRate = max(loopRate, rate)
		fmt.Fprintf(stdout, "closed loop (strategic %s, tactical %s, operational %s, no store), run %d: %d invocations, %d ticks, %d decisions, %d rewards in %.2f s = %.1f ticks/s\n",
			names[string(schemas.Strategic)], names[string(schemas.Tactical)], names[string(schemas.Operational)], i+1,
			res.Replay.Invocations, res.Twin.Ticks, res.Twin.Decisions, res.Twin.Rewards, res.Wall.Seconds(), rate)
	}
	fmt.Fprintf(stdout, "engine ceiling (best run): %.0f ticks/s; closed loop (best run): %.1f ticks/s\n", engineRate, loopRate)
	fmt.Fprintf(stdout, "loop/engine ratio: %.4f\n", loopRate/engineRate)
	return nil
}

// engineRun times the pure twin Engine once over ticks, with a fresh
// engine: lo's model, profile and default placement, no decisions, no
// policy inside the twin, no brokers.
func engineRun(ctx context.Context, lo loopOpts, ticks [][]twin.Arrival) (engineResult, error) {
	eng, err := twin.NewEngine(lo.model, twin.Config{RunID: lo.runID, DefaultPlacement: lo.engine.DefaultPlacement, Reward: lo.engine.Reward}, lo.profile)
	if err != nil {
		return engineResult{}, err
	}
	return runEngine(ctx, eng, ticks, nil)
}

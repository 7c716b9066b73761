package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/bench"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// benchUsage lists the benchmarks of the command table; each prints its
// ratio against a ceiling measured in the same process as its last line.
func benchUsage() string {
	var b strings.Builder
	b.WriteString(`usage: strata bench <benchmark> [flags]

Each benchmark runs its ceiling and the measured path alternately, --runs
times each (ceiling, measured, ceiling, …), prints every run, then both
sides' best rates, and last "<name>/<ceiling> ratio: X", the ratio of the
best runs.

Benchmarks:
`)
	g, _ := findCommand(commands(), "bench")
	listCommands(&b, g.subs)
	return b.String()
}

// benchMain runs `strata bench <benchmark>`.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "bench", args, stdout, stderr, benchUsage())
}

// benchPipelineMain runs `strata bench pipeline`: in --runs interleaved
// rounds, each on a fresh environment (one broker for both sides), it
// measures the raw franz-go produce throughput of the trace's records (the
// ceiling) and then the end-to-end replay → features → NATS throughput of
// the whole trace, prints every run, and prints the ratio of the two sides'
// best runs as its last line. The other benchmarks are in bench_twin.go,
// bench_loop.go, bench_sink.go and bench_ingest.go.
func benchPipelineMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf        commonFlags
		days      = fs.Int("days", 14, "days of synthetic trace")
		seed      = fs.Int64("seed", 1, "seed of the synthetic trace")
		apps      = fs.Int("apps", 0, "keep only this many apps (0 = all)")
		rawSample = fs.Int("raw-sample", 200_000, "distinct records encoded for the raw ceiling, produced in a cycle up to the trace's count")
		runs      = fs.Int("runs", 3, "runs of each side, interleaved (raw, pipeline, raw, …); each side's best run counts")
		memProf   = fs.String("memprofile", "", "write a heap profile at the end of the last pipeline run to `FILE`")
		retention = fs.Int64("state-retention-bytes", 128<<20, "bytes of state batches each JetStream stream keeps")
	)
	fs.IntVar(runs, "raw-runs", *runs, "alias of --runs (deprecated)")
	cf.registerBatch(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *runs < 1 || *rawSample < 1 {
		return errors.New("strata bench pipeline: --runs and --raw-sample must be positive")
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	o := pipeline.Config{Brokers: cf.pipe.Brokers, NATSURL: cf.pipe.NATSURL, Partitions: cf.pipe.Partitions, Names: cf.pipe.Names,
		Epoch: grid.DefaultEpoch, LatenessUS: 600_000_000, Logger: logger, StateRetention: *retention}
	synth := func() (replay.Source, error) {
		return replay.NewSynth(replay.SynthConfig{Days: *days, Seed: *seed, Apps: *apps})
	}

	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; broker: %s\n", bench.CPUModel(), runtime.NumCPU(), runtime.Version(), orDefault(strings.Join(cf.pipe.Brokers, ","), "embedded kfake"))
	src, err := synth()
	if err != nil {
		return err
	}
	raw, err := bench.EncodeRaw(src, *rawSample)
	if err != nil {
		return err
	}
	var rawRate, pipeRate, pipeTickRate float64
	for i := range *runs {
		// Each round gets an environment of its own (with embedded
		// brokers, a fresh kfake and nats-server): the feature service
		// reads the telemetry topic from its start, so a later run on the
		// same broker would also read, and skip, the earlier runs'
		// records.
		e, err := pipeline.StartEnv(ctx, &o)
		if err != nil {
			return err
		}
		rate, err := raw.Run(ctx, stdout, e.Brokers, e.Partitions, i)
		if err != nil {
			e.Close()
			return err
		}
		rawRate = max(rawRate, rate)

		if src, err = synth(); err != nil {
			e.Close()
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		po := o
		po.Env = e
		res, err := pipeline.OpenLoop(ctx, po, src, "synthetic", int64(*days)*grid.StrategicTickUS)
		if err != nil {
			e.Close()
			return err
		}
		rate = float64(res.Replay.Invocations) / res.Wall.Seconds()
		pipeRate = max(pipeRate, rate)
		ops := res.Features.Ticks[string(schemas.Operational)]
		pipeTickRate = max(pipeTickRate, float64(ops)/res.Wall.Seconds())
		fmt.Fprintf(stdout, "pipeline replay → features → NATS, run %d: %d invocations, %d operational ticks (%d state batches, %.1f MB, %.1f KB per batch) in %.2f s = %.0f invocations/s, %.0f ticks/s; peak RSS %s\n",
			i+1, res.Replay.Invocations, ops, res.Features.StatesPublished, float64(res.Features.StateBytes)/1e6,
			float64(res.Features.StateBytes)/1e3/float64(max(res.Features.StatesPublished, 1)),
			res.Wall.Seconds(), rate, float64(ops)/res.Wall.Seconds(), peakRSS())
		if *memProf != "" && i == *runs-1 {
			if err := writeHeapProfile(*memProf); err != nil {
				e.Close()
				return err
			}
		}
		e.Close()
	}
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s; pipeline (best run): %.0f invocations/s, %.0f ticks/s\n", rawRate, pipeRate, pipeTickRate)
	fmt.Fprintf(stdout, "pipeline/raw ratio: %.3f\n", pipeRate/rawRate)
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating heap profile: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("writing heap profile: %w", err)
	}
	return nil
}

// resetPeakRSS resets the kernel's peak-RSS mark (Linux ≥ 4.0: writing 5 to
// /proc/self/clear_refs), so the pipeline phase is measured on its own.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads the process's peak resident set size (VmHWM) on Linux.
func peakRSS() string {
	return procStatus("VmHWM:")
}

func procStatus(key string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), key))
		}
	}
	return "unknown"
}

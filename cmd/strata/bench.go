package main

import (
	"context"
	"flag"
	"io"
	"strings"

	"github.com/strata-rl/strata/pipeline/bench"
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
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	o := cf.pipe
	o.Logger = logger
	return bench.Pipeline(ctx, bench.PipelineConfig{Config: o, Days: *days, Seed: *seed, Apps: *apps, RawSample: *rawSample,
		Runs: *runs, MemProfile: *memProf, StateRetention: *retention}, stdout)
}

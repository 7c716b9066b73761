package main

import (
	"context"
	"flag"
	"io"

	"github.com/strata-rl/strata/pipeline/bench"
)

// benchIngestMain runs `strata bench ingest`: on one broker, in --runs
// interleaved rounds, the raw franz-go produce throughput of n telemetry
// records (the ceiling) and then the throughput of the same number of
// records sent over HTTP to an in-process `strata ingest` (authenticated,
// validated, acknowledged only after Kafka acknowledged them), with the
// request latency percentiles. Each run writes to a fresh scratch topic
// (and each ingest run to a fresh server), deleted afterwards; the last
// line is the ratio of the two sides' medians.
func benchIngestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf          commonFlags
		records     = fs.Int64("records", 300_000, "records to send")
		batch       = fs.Int("batch", 500, "records per request")
		concurrency = fs.Int("concurrency", 8, "requests in flight")
		format      = fs.String("format", "json", "request format: json, otlp-proto or otlp-json")
		runs        = fs.Int("runs", 5, "runs of each side, interleaved (raw, ingest, raw, …); the ratio is of the two sides' medians")
		cpuProf     = fs.String("cpuprofile", "", "write a CPU profile of the last ingest run (after its requests are encoded) to `FILE`")
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
	return bench.Ingest(ctx, bench.IngestConfig{Config: o, Records: *records, Batch: *batch, Concurrency: *concurrency,
		Format: *format, Runs: *runs, CPUProfile: *cpuProf}, stdout)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/bench"
	"github.com/strata-rl/strata/pipeline/roleconf"
	"github.com/strata-rl/strata/schemas"
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

// benchPipelineMain runs `strata bench pipeline` (bench.Pipeline).
func benchPipelineMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata bench pipeline", stderr)
	var (
		cf        pipeline.Common
		days      = fs.Int("days", 14, "days of synthetic trace")
		seed      = fs.Int64("seed", 1, "seed of the synthetic trace")
		apps      = fs.Int("apps", 0, "keep only this many apps (0 = all)")
		rawSample = fs.Int("raw-sample", 200_000, "distinct records encoded for the raw ceiling, produced in a cycle up to the trace's count")
		runs      = fs.Int("runs", 3, "runs of each side, interleaved (raw, pipeline, raw, …); each side's best run counts")
		retention = fs.Int64("state-retention-bytes", 128<<20, "bytes of state batches each JetStream stream keeps")
	)
	fs.IntVar(runs, "raw-runs", *runs, "alias of --runs (deprecated)")
	prof := &pipeline.Profiles{What: "the first pipeline run"}
	prof.RegisterFlags(fs, "")
	o, err := parseBatch(fs, args, &cf, stderr)
	if err != nil {
		return err
	}
	return bench.Pipeline(ctx, bench.PipelineConfig{Config: o, Days: *days, Seed: *seed, Apps: *apps, RawSample: *rawSample,
		Runs: *runs, Profiles: prof, StateRetention: *retention}, stdout)
}

// parseBatch parses the flags of a benchmark of the open loop's batch
// settings (cf, registered here) and returns its pipeline configuration
// with the logger they ask for.
func parseBatch(fs *flag.FlagSet, args []string, cf *pipeline.Common, stderr io.Writer) (pipeline.Config, error) {
	cf.RegisterBatchFlags(fs, "")
	if _, err := roleconf.Parse(fs, args); err != nil {
		return pipeline.Config{}, err
	}
	logger, err := pipeline.NewLogger(stderr, cf.LogLevel)
	if err != nil {
		return pipeline.Config{}, err
	}
	o := cf.Config
	o.Logger = logger
	return o, nil
}

// benchTwinMain runs `strata bench twin` (bench.Twin).
func benchTwinMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata bench twin", stderr)
	c := bench.TwinConfig{Source: bench.Source{Days: 2, Seed: 1}, Runs: 3}
	placement, logLevel := pipeline.DefaultPlacement, pipeline.DefaultLogLevel
	c.Source.RegisterFlags(fs, "")
	fs.IntVar(&c.Prewarm, "prewarm", 0, "fixed operational pre-warm decided for every function arriving in a tick (0: no decisions, the default placement only)")
	fs.IntVar(&c.Runs, "runs", c.Runs, "runs of each side, interleaved (replay, twin, replay, …); each side's best run counts")
	fs.IntVar(&c.Runs, "replay-runs", c.Runs, "alias of --runs (deprecated)")
	fs.StringVar(&placement, "default-placement", placement, "placement of every function: provider/metro/memory MB")
	fs.StringVar(&logLevel, "log-level", logLevel, "log level: debug, info, warn, error")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	if c.Logger, err = pipeline.NewLogger(stderr, logLevel); err != nil {
		return err
	}
	if c.Placement, err = pipeline.ParsePlacement(placement); err != nil {
		return err
	}
	c.NewModel = conf.NewModel
	return bench.Twin(ctx, c, stdout)
}

// benchLoopMain runs `strata bench loop` (bench.Loop).
func benchLoopMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata bench loop", stderr)
	c := bench.LoopConfig{Source: bench.Source{Days: 1, Seed: 1}, Runs: 3, Profiles: &pipeline.Profiles{What: "the closed loop's runs"}}
	var cf pipeline.Common
	placement := pipeline.DefaultPlacement
	fs.StringVar(&c.Strategic, "strategic", pipeline.DefaultStrategicPolicy, "strategic policy: "+pipeline.PolicyNames(schemas.Strategic)+", or none")
	fs.StringVar(&c.Tactical, "tactical", pipeline.DefaultTacticalPolicy, "tactical policy: "+pipeline.PolicyNames(schemas.Tactical)+", or none")
	fs.StringVar(&c.Operational, "operational", pipeline.DefaultOperationalPolicy, "operational policy: "+pipeline.PolicyNames(schemas.Operational)+", or none")
	fs.StringVar(&placement, "default-placement", placement, "placement before any decision: provider/metro/memory MB")
	fs.Int64Var(&c.PolicySeed, "policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
	fs.IntVar(&c.Runs, "runs", c.Runs, "runs of each side, interleaved (loop, engine, loop, …); each side's best run counts")
	fs.IntVar(&c.Runs, "engine-runs", c.Runs, "alias of --runs (deprecated)")
	transitions := fs.String("transitions", pipeline.DefaultTransitions, "layers whose learner transitions the twin writes, as strata run's --transitions (comma-separated, or none)")
	cf.RegisterBatchFlags(fs, "")
	c.Source.RegisterFlags(fs, "")
	c.Profiles.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	if c.Runs < 1 {
		return errors.New("strata bench loop: --runs must be at least 1")
	}
	if c.Transitions, err = pipeline.ParseLayers(*transitions); err != nil {
		return fmt.Errorf("strata bench loop: parsing --transitions: %w", err)
	}
	c.Config = cf.Config
	if c.Logger, c.Epoch, c.Placement, err = cf.LoopBasics(stderr, placement); err != nil {
		return err
	}
	c.NewModel = conf.NewModel
	return bench.Loop(ctx, c, stdout)
}

// benchSinkMain runs `strata bench sink` (bench.Sink).
func benchSinkMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata bench sink", stderr)
	var (
		chDSN      = fs.String("clickhouse", "", "ClickHouse `DSN` (clickhouse://host:9000); the benchmark creates and drops its own databases there")
		duckFile   = fs.String("store", "", "DuckDB `FILE` to create instead (must not exist; removed afterwards, with FILE.raw)")
		brokers    = fs.String("kafka", "", "Kafka seed brokers `host:port[,…]` (default: an embedded in-process broker)")
		partitions = fs.Int("partitions", kafka.DefaultPartitions, "partitions of the topics the benchmark writes")
		nRows      = fs.Int("rows", 200_000, "decision and reward rows to write")
		batchRows  = fs.Int("batch-rows", 10_000, "rows per batch, for the sink and the raw insert alike")
		runs       = fs.Int("runs", 3, "runs of each side, interleaved (raw, sink, raw, …); each side's best run counts")
		seed       = fs.Int64("seed", 1, "seed of the synthetic trace the rows come from")
		logLevel   = fs.String("log-level", pipeline.DefaultLogLevel, "log level: debug, info, warn, error")
	)
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	logger, err := pipeline.NewLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	return bench.Sink(ctx, bench.SinkConfig{ClickHouseDSN: *chDSN, DuckDBFile: *duckFile, Brokers: kafka.ParseBrokers(*brokers),
		Partitions: *partitions, Rows: *nRows, BatchRows: *batchRows, Runs: *runs, Seed: *seed, NewModel: conf.NewModel, Logger: logger}, stdout)
}

// benchIngestMain runs `strata bench ingest` (bench.Ingest): the last line
// is the ratio of the two sides' medians.
func benchIngestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata bench ingest", stderr)
	var (
		cf          pipeline.Common
		records     = fs.Int64("records", 300_000, "records to send")
		batch       = fs.Int("batch", 500, "records per request")
		concurrency = fs.Int("concurrency", 8, "requests in flight")
		format      = fs.String("format", "json", "request format: json, otlp-proto or otlp-json")
		runs        = fs.Int("runs", 5, "runs of each side, interleaved (raw, ingest, raw, …); the ratio is of the two sides' medians")
		cpuProf     = fs.String("cpuprofile", "", "write a CPU profile of the last ingest run (after its requests are encoded) to `FILE`")
	)
	fs.IntVar(runs, "raw-runs", *runs, "alias of --runs (deprecated)")
	o, err := parseBatch(fs, args, &cf, stderr)
	if err != nil {
		return err
	}
	return bench.Ingest(ctx, bench.IngestConfig{Config: o, Records: *records, Batch: *batch, Concurrency: *concurrency,
		Format: *format, Runs: *runs, CPUProfile: *cpuProf}, stdout)
}

package main

import (
	"context"
	"flag"
	"io"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/pipeline/bench"
)

// benchSinkMain runs `strata bench sink`: it generates decision and reward
// rows with the twin engine and produces them to Kafka, then measures in
// interleaved runs a raw batch insert of the rows into fresh tables
// (clickhouse-go PrepareBatch/Append/Send, or the DuckDB appender: the
// ceiling) and the sink writing them from Kafka into other fresh tables,
// and prints the ratio of the two sides' best runs as its last line. The
// temporary databases are dropped afterwards.
func benchSinkMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		chDSN      = fs.String("clickhouse", "", "ClickHouse `DSN` (clickhouse://host:9000); the benchmark creates and drops its own databases there")
		duckFile   = fs.String("store", "", "DuckDB `FILE` to create instead (must not exist; removed afterwards, with FILE.raw)")
		brokers    = fs.String("kafka", "", "Kafka seed brokers `host:port[,…]` (default: an embedded in-process broker)")
		partitions = fs.Int("partitions", kafka.DefaultPartitions, "partitions of the topics the benchmark writes")
		nRows      = fs.Int("rows", 200_000, "decision and reward rows to write")
		batchRows  = fs.Int("batch-rows", 10_000, "rows per batch, for the sink and the raw insert alike")
		runs       = fs.Int("runs", 3, "runs of each side, interleaved (raw, sink, raw, …); each side's best run counts")
		seed       = fs.Int64("seed", 1, "seed of the synthetic trace the rows come from")
		logLevel   = fs.String("log-level", "warn", "log level: debug, info, warn, error")
	)
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	return bench.Sink(ctx, bench.SinkConfig{ClickHouseDSN: *chDSN, DuckDBFile: *duckFile, Brokers: kafka.ParseBrokers(*brokers),
		Partitions: *partitions, Rows: *nRows, BatchRows: *batchRows, Runs: *runs, Seed: *seed, NewModel: conf.newModel, Logger: logger}, stdout)
}

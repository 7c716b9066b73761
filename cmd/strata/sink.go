package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
)

// sinkMain runs the sink alone: Kafka → ClickHouse or a DuckDB file, until
// interrupted or (with --stop-after-idle) until the topics are idle.
func sinkMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sf          storeFlags
		brokers     = fs.String("kafka", "", "Kafka seed brokers `host:port[,…]` (required)")
		group       = fs.String("group", "", "consumer group (default strata-sink under --prefix)")
		outcomes    = fs.Bool("outcomes", false, "also write strata.outcomes.v1 to the outcomes table")
		partitions  = fs.Int("partitions", 0, fmt.Sprintf("partition count the topics must have; 0 uses the existing topics' count (missing ones are created with it, or %d)", kafka.DefaultPartitions))
		batchRows   = fs.Int("batch-rows", 10000, "most records written in one batch")
		flushEvery  = fs.Duration("flush-interval", 500*time.Millisecond, "longest a record waits for its batch")
		idle        = fs.Duration("stop-after-idle", 0, "exit once no record arrived for this long (0: run until interrupted)")
		logLevel    = fs.String("log-level", "warn", "log level: debug, info, warn, error")
		metricsAddr = fs.String("metrics-addr", "", "serve Prometheus metrics on `ADDR` (e.g. :9464); off by default")
		statsJSON   = fs.Bool("json", false, "print the final counters as JSON")
		runID       = fs.String("run-id", "", "write only the rows of this run (default: every run on the topics)")
		instanceID  = fs.String("instance-id", "", "static group membership `ID`: a sink restarted with it after a crash resumes at once (one running sink per id)")
		sessionTO   = fs.Duration("session-timeout", 45*time.Second, "group session timeout: how long a crashed sink without --instance-id holds its partitions")
	)
	var names schemas.Names
	registerPrefix(fs, &names)
	sf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := schemas.ValidatePrefix(names.Prefix); err != nil {
		return err
	}
	if *brokers == "" {
		return errors.New("strata sink needs --kafka")
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	reg := newRegistry()
	if err := serveMetrics(ctx, *metricsAddr, reg); err != nil {
		return err
	}
	st, err := store.Open(ctx, sf.target())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	if err := st.EnsureSchema(ctx); err != nil {
		return err
	}
	sk, err := sink.New(ctx, sink.Config{Brokers: kafka.ParseBrokers(*brokers), Group: *group, Outcomes: *outcomes,
		Partitions: *partitions, BatchRows: *batchRows, FlushInterval: *flushEvery, StopAfterIdle: *idle,
		InstanceID: *instanceID, SessionTimeout: *sessionTO, RunID: *runID, Names: names}, st, logger, reg)
	if err != nil {
		return err
	}
	runErr := sk.Run(ctx)
	s := sk.Stats()
	if *statsJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encoding sink stats: %w", err)
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "sink: %d records, rows written: %d runs, %d decisions, %d rewards, %d outcomes; %d dead-lettered, %d batches\n",
			s.Records, s.Rows[schemas.TableRuns], s.Rows[schemas.TableDecisions], s.Rows[schemas.TableRewards],
			s.Rows[schemas.TableOutcomes], s.Rejected, s.Batches)
	}
	return runErr
}

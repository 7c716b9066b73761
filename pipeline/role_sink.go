package pipeline

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

// SinkRole is `strata sink`: the sink alone, Kafka → ClickHouse or a
// DuckDB file, until interrupted or (with StopAfterIdle) until the topics
// are idle.
type SinkRole struct {
	Store StoreFlags
	// KafkaOutage bounds how long the sink polls through a broker outage
	// (kafka.Outage).
	KafkaOutage time.Duration
	// WriteTimeout and WriteOutage bound one write to the store and how
	// long a failing one is retried (sink.Config).
	WriteTimeout, WriteOutage time.Duration
	// Brokers are Kafka's seed brokers (required), comma-separated.
	Brokers string
	// Names prefixes the topics and the group.
	Names schemas.Names
	// Group is the consumer group; "" is strata-sink under the prefix.
	Group string
	// Outcomes also writes strata.outcomes.v1.
	Outcomes bool
	// Partitions is the count the topics must have; 0 adopts theirs.
	Partitions int
	// BatchRows and FlushInterval bound a batch.
	BatchRows     int
	FlushInterval time.Duration
	// StopAfterIdle exits once no record arrived for this long; 0 runs
	// until interrupted.
	StopAfterIdle time.Duration
	LogLevel      string
	Metrics       MetricsFlags
	// JSON prints the final counters as JSON.
	JSON bool
	// RunID writes only this run's rows; "" every run's.
	RunID string
	// InstanceID is a static group membership id; SessionTimeout the
	// group session timeout.
	InstanceID     string
	SessionTimeout time.Duration
}

// DefaultSinkRole is the sink role's defaults.
func DefaultSinkRole() SinkRole {
	return SinkRole{BatchRows: 10000, FlushInterval: 500 * time.Millisecond, LogLevel: DefaultLogLevel, SessionTimeout: 45 * time.Second,
		WriteTimeout: sink.DefaultWriteTimeout, WriteOutage: sink.DefaultWriteOutage}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *SinkRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Store.RegisterFlags(fs, prefix)
	r.Store.RegisterRetentionFlag(fs, prefix)
	RegisterPrefixFlag(fs, prefix+"prefix", &r.Names)
	fs.StringVar(&r.Brokers, prefix+"kafka", r.Brokers, "Kafka seed brokers `host:port[,…]` (required)")
	fs.StringVar(&r.Group, prefix+"group", r.Group, "consumer group (default strata-sink under --prefix)")
	RegisterOutageFlag(fs, prefix+"kafka-outage", &r.KafkaOutage)
	fs.DurationVar(&r.WriteTimeout, prefix+"write-timeout", r.WriteTimeout, "longest one attempt to write a batch to the store may take before it is abandoned and tried again")
	fs.DurationVar(&r.WriteOutage, prefix+"write-outage", r.WriteOutage, "how long a failing batch write is retried, with backoff, before the sink exits with an error (the sink reads nothing from Kafka meanwhile); a negative value exits at the first failure")
	fs.BoolVar(&r.Outcomes, prefix+"outcomes", r.Outcomes, "also write strata.outcomes.v1 to the outcomes table")
	fs.IntVar(&r.Partitions, prefix+"partitions", r.Partitions, fmt.Sprintf("partition count the topics must have; 0 uses the existing topics' count (missing ones are created with it, or %d)", kafka.DefaultPartitions))
	fs.IntVar(&r.BatchRows, prefix+"batch-rows", r.BatchRows, "most records written in one batch")
	fs.DurationVar(&r.FlushInterval, prefix+"flush-interval", r.FlushInterval, "longest a record waits for its batch")
	fs.DurationVar(&r.StopAfterIdle, prefix+"stop-after-idle", r.StopAfterIdle, "exit once no record arrived for this long (0: run until interrupted)")
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
	r.Metrics.RegisterFlags(fs, prefix, "serve Prometheus metrics on `ADDR` (e.g. :9464); off by default")
	fs.BoolVar(&r.JSON, prefix+"json", r.JSON, "print the final counters as JSON")
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "write only the rows of this run (default: every run on the topics)")
	fs.StringVar(&r.InstanceID, prefix+"instance-id", r.InstanceID, "static group membership `ID`: a sink restarted with it after a crash resumes at once (one running sink per id)")
	fs.DurationVar(&r.SessionTimeout, prefix+"session-timeout", r.SessionTimeout, "group session timeout: how long a crashed sink without --instance-id holds its partitions")
}

// Validate reports a name prefix that is not one and a missing --kafka.
func (r *SinkRole) Validate() error {
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	if r.Brokers == "" {
		return errors.New("strata sink needs --kafka")
	}
	return nil
}

// Run runs the sink until ctx is done or the topics are idle and prints
// its counters to stdout.
func (r *SinkRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	reg := NewRegistry()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	st, err := store.Open(ctx, r.Store.Target(), store.WithLogger(logger.With("role", "store")))
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	if err := st.EnsureSchema(ctx); err != nil {
		return err
	}
	sk, err := sink.New(ctx, sink.Config{Brokers: kafka.ParseBrokers(r.Brokers), Group: r.Group, Outcomes: r.Outcomes,
		Partitions: r.Partitions, BatchRows: r.BatchRows, FlushInterval: r.FlushInterval, StopAfterIdle: r.StopAfterIdle,
		InstanceID: r.InstanceID, SessionTimeout: r.SessionTimeout, RunID: r.RunID, Names: r.Names, Retention: r.Store.Retention, OutageBound: r.KafkaOutage,
		WriteTimeout: r.WriteTimeout, WriteOutage: r.WriteOutage}, st, logger, reg)
	if err != nil {
		return err
	}
	runErr := sk.Run(ctx)
	s := sk.Stats()
	if r.JSON {
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

package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// Config configures a run of the pipeline: where its Kafka and NATS are,
// its names, its clock and its observers. The open loop runs on it alone;
// the closed loop and live mode add their own parts (LoopConfig,
// LiveConfig).
type Config struct {
	// Brokers are Kafka's seed brokers; nil starts an embedded kfake.
	Brokers []string
	// NATSURL is the NATS server; "" starts an embedded nats-server.
	NATSURL string
	// Partitions is the partition count asked for on the command line; 0
	// adopts the existing topics' (kafka.ResolvePartitions). Prepare sets
	// it to the count in use.
	Partitions int
	// Names prefixes every topic, group, stream, subject and bucket.
	Names schemas.Names
	// KafkaOutage is how long the roles reading Kafka (the twin, the
	// features, the sink) poll through a broker outage before the run
	// ends with an error (kafka.Outage; 0 is kafka.DefaultOutageBound, a
	// negative bound tolerates no outage).
	KafkaOutage time.Duration
	// NATSOutage is how long the roles publishing to JetStream (the
	// features, the agents' workers) wait through a NATS outage — the
	// connection lost, publishes unacknowledged — before the run ends
	// with an error (natsbus.BatchPublisher; 0 is
	// natsbus.DefaultOutageBound, a negative bound tolerates none).
	NATSOutage time.Duration
	// Speed and Clock pace the replay.
	Speed replay.Speed
	Clock replay.Clock
	// Epoch is trace time 0.
	Epoch time.Time
	// RunID names the run; Prepare draws one when it is empty.
	RunID string
	// LatenessUS is the replay's allowed lateness in trace microseconds.
	LatenessUS int64
	// Progress, if set, shows a progress bar.
	Progress io.Writer
	// Logger receives every role's log, tagged with its role.
	Logger *slog.Logger
	// Registerer receives every role's metrics; nil registers none.
	Registerer prometheus.Registerer
	// OnBatch, if set, is handed every state batch the features publish.
	OnBatch func(h schemas.BatchHeader, rows int, data []byte)
	// StateRetention bounds each tick-batch stream (bytes, oldest
	// dropped); 0 is 128 MiB (LoopStateRetention in the closed loop).
	StateRetention int64
	// Env, if set, is an already running Kafka + NATS pair to use.
	Env *Env
}

// Env is a running Kafka + NATS pair, embedded or external, with strata's
// topics, streams and buckets.
type Env struct {
	// Brokers are Kafka's seed brokers.
	Brokers []string
	// EmbeddedKafka is set when Brokers is the in-process kfake, which
	// keeps every record in memory and has no retention of its own.
	EmbeddedKafka bool
	// Partitions is the partition count of the topics.
	Partitions int
	// Names prefixes the topics, streams and buckets.
	Names schemas.Names
	// NC is the NATS connection and JS its JetStream.
	NC *nats.Conn
	JS jetstream.JetStream
	// NATSURL is the NATS server's client URL (an embedded one listens on
	// a random loopback port).
	NATSURL string
	close   func()
}

// Close stops what StartEnv started (an embedded server, the connection)
// in the reverse order.
func (e *Env) Close() { e.close() }

// NewRunID draws a run id, run-<12 hex digits>.
func NewRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "run-" + hex.EncodeToString(b[:])
}

// StartEnv starts or connects to Kafka and NATS and makes sure the topics,
// streams and buckets exist.
func StartEnv(ctx context.Context, o *Config) (*Env, error) {
	e := &Env{Brokers: o.Brokers, Names: o.Names}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	embeddedNATS := o.NATSURL == ""
	if len(e.Brokers) == 0 {
		k, err := kafka.StartEmbedded(o.Partitions)
		if err != nil {
			return nil, err
		}
		closers = append(closers, k.Close)
		e.Brokers, e.EmbeddedKafka = k.Brokers(), true
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(e.Brokers, o.Logger)...)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("creating kafka admin client: %w", err)
	}
	// The runs topic too: a closed loop without a store of its own writes
	// its run record there for a `strata sink` elsewhere.
	e.Partitions, err = kafka.ResolvePartitions(ctx, cl, o.Partitions, append(o.Names.Topics(), o.Names.Topic(sink.TopicRuns))...)
	cl.Close()
	if err != nil {
		closeAll()
		return nil, err
	}
	if o.Logger != nil {
		o.Logger.Info("kafka topics", "partitions", e.Partitions, "asked", o.Partitions, "prefix", o.Names.Prefix)
	}
	url := o.NATSURL
	var embedded *natsbus.Embedded
	if embeddedNATS {
		dir, err := os.MkdirTemp("", "strata-nats-")
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("creating nats store dir: %w", err)
		}
		closers = append(closers, func() { _ = os.RemoveAll(dir) })
		n, err := natsbus.StartEmbedded(dir)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, n.Close)
		url, embedded = n.URL(), n
	}
	var nc *nats.Conn
	if embedded != nil {
		nc, err = embedded.ConnectInProcess("strata", natsbus.WithLogger(o.Logger))
	} else {
		nc, err = natsbus.Connect(url, "strata", natsbus.WithLogger(o.Logger))
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, func() { _ = nc.Drain() })
	js, err := jetstream.New(nc, natsbus.PublishAsyncTimeoutOpt())
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{Memory: embeddedNATS, MaxBytes: o.StateRetention, Names: o.Names}); err != nil {
		closeAll()
		return nil, err
	}
	e.NC, e.JS, e.close, e.NATSURL = nc, js, closeAll, url
	return e, nil
}

// Prepare fills in the defaults (run id, stream retention) and returns the
// Kafka + NATS pair to run on: o.Env if set, else a new one that the
// returned function closes. o.Partitions becomes the topics' partition
// count; a count asked for that differs from existing topics' is an error.
func (o *Config) Prepare(ctx context.Context) (*Env, func(), error) {
	if err := schemas.ValidatePrefix(o.Names.Prefix); err != nil {
		return nil, nil, err
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	if o.StateRetention == 0 {
		o.StateRetention = 128 << 20
	}
	if o.Env != nil {
		switch {
		case o.Names != o.Env.Names:
			return nil, nil, fmt.Errorf("running with name prefix %q on an environment prepared for %q", o.Names.Prefix, o.Env.Names.Prefix)
		case o.Partitions > 0 && o.Partitions != o.Env.Partitions:
			return nil, nil, fmt.Errorf("the topics have %d partitions but %d were asked for", o.Env.Partitions, o.Partitions)
		}
		o.Partitions = o.Env.Partitions
		return o.Env, func() {}, nil
	}
	e, err := StartEnv(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	o.Partitions = e.Partitions
	return e, e.close, nil
}

// OpenFeatureCheckpoints opens the feature service's checkpoint stores of
// names: the key-value bucket and, for checkpoints too large for an entry,
// the object store (features.KVCheckpoints).
func OpenFeatureCheckpoints(ctx context.Context, js jetstream.JetStream, names schemas.Names) (features.KVCheckpoints, error) {
	kv, err := js.KeyValue(ctx, names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		return features.KVCheckpoints{}, fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	obj, err := js.ObjectStore(ctx, names.Bucket(schemas.BucketFeatures))
	if err != nil {
		return features.KVCheckpoints{}, fmt.Errorf("opening the features' checkpoint object store: %w", err)
	}
	return features.KVCheckpoints{KV: kv, Obj: obj}, nil
}

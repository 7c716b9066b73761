package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/strata-rl/strata/schemas"
)

// DefaultPartitions is the partition count strata creates its topics with
// when it creates them itself.
const DefaultPartitions = 4

// ParseBrokers splits a comma-separated broker list.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake). It
// speaks the real wire protocol, so the same client code runs against it
// and against a real cluster: over loopback TCP to other processes, and
// over in-memory connections to the clients of this process that
// CommonOpts builds.
type Embedded struct {
	c *kfake.Cluster
}

// EmbeddedSegmentBytes is the segment size of the embedded broker's logs.
const EmbeddedSegmentBytes = 4 << 20

// StartEmbedded starts an in-process broker with the strata topics created
// with the given number of partitions.
func StartEmbedded(partitions int) (*Embedded, error) {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// TCP for other processes, memory for this one's clients.
		kfake.ListenFn(listenDual),
		kfake.SeedTopics(int32(partitions), AllTopics...),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		// Records live in memory in segments of this size, and deleting
		// consumed records (pipeline.TrimConsumed) frees whole segments
		// only: at kfake's default of 100 MiB a 14-day closed loop kept
		// over a gigabyte of consumed records.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(EmbeddedSegmentBytes)}),
	)
	if err != nil {
		return nil, fmt.Errorf("starting embedded kafka: %w", err)
	}
	return &Embedded{c: c}, nil
}

// Brokers returns the loopback addresses of the embedded broker.
func (e *Embedded) Brokers() []string { return e.c.ListenAddrs() }

// Close stops the broker; its data is lost.
func (e *Embedded) Close() { e.c.Close() }

// AllTopics lists every topic strata uses, without a name prefix.
var AllTopics = schemas.Names{}.Topics()

// CommonOpts returns the client options every strata client uses: seed
// brokers, slog logging (none when logger is nil) and the app-keyed
// partitioner. A client of an embedded broker of this process connects to
// it in memory.
func CommonOpts(brokers []string, logger *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(Partitioner()),
	}
	if m := SASLFromEnv(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if c := TLSFromEnv(); c != nil {
		opts = append(opts, kgo.DialTLSConfig(c))
	} else if d := inProcessDialer(brokers); d != nil {
		opts = append(opts, d)
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(logger)))
	}
	return opts
}

// SASLFromEnv returns the SASL/SCRAM mechanism the environment asks for,
// or nil: STRATA_KAFKA_USER and STRATA_KAFKA_PASSWORD, with
// STRATA_KAFKA_SASL_MECHANISM SCRAM-SHA-256 (the default) or
// SCRAM-SHA-512. Credentials come from the environment only, so that they
// stay off command lines and out of the runs table.
func SASLFromEnv() sasl.Mechanism {
	user, pass := os.Getenv("STRATA_KAFKA_USER"), os.Getenv("STRATA_KAFKA_PASSWORD")
	if user == "" {
		return nil
	}
	a := scram.Auth{User: user, Pass: pass}
	if strings.EqualFold(os.Getenv("STRATA_KAFKA_SASL_MECHANISM"), "SCRAM-SHA-512") {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

// TLSFromEnv returns the TLS configuration the environment asks for, or
// nil: STRATA_KAFKA_TLS=1 connects over TLS checked against the system's
// authorities, STRATA_KAFKA_CA (a PEM file) against those. A file that
// cannot be read fails every connection with the reason.
func TLSFromEnv() *tls.Config {
	ca := os.Getenv("STRATA_KAFKA_CA")
	if ca == "" && os.Getenv("STRATA_KAFKA_TLS") != "1" {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca == "" {
		return c
	}
	pool := x509.NewCertPool()
	b, err := os.ReadFile(ca)
	if err == nil && !pool.AppendCertsFromPEM(b) {
		err = fmt.Errorf("%s holds no PEM certificate", ca)
	}
	if err != nil {
		err = fmt.Errorf("reading STRATA_KAFKA_CA: %w", err)
		c.VerifyConnection = func(tls.ConnectionState) error { return err }
		return c
	}
	c.RootCAs = pool
	return c
}

// EnsureTopics creates the given topics with the given partition count and
// replication factor 1 if they do not exist yet. Existing topics are left as
// they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, topics ...string) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// PartitionCount returns the number of partitions of topic, read from a
// broker (not from the client's metadata cache: see metadataNow).
func PartitionCount(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	md, err := metadataNow(ctx, cl, topic)
	if err != nil {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	t, ok := md[topic]
	if !ok {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, errTopicMissing)
	}
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	return len(t.Partitions), nil
}

// ResolvePartitions makes sure topics exist and returns their partition
// count, which every role must use (records are keyed by app, and an app's
// partition is its shard). asked is the count given on the command line, 0
// when none was given.
//
// Existing topics keep their partition count: with asked 0 it is adopted
// (missing topics are created with the same count, or DefaultPartitions
// when none exists yet); with asked > 0 a count that differs is refused
// with an error naming the topic, the count found and the count asked for.
// Existing topics that disagree among themselves are refused too.
func ResolvePartitions(ctx context.Context, cl *kgo.Client, asked int, topics ...string) (int, error) {
	if asked < 0 {
		return 0, fmt.Errorf("resolving partitions: asked for %d partitions", asked)
	}
	md, err := metadataNow(ctx, cl, topics...)
	if err != nil {
		return 0, fmt.Errorf("reading metadata of topics %v: %w", topics, err)
	}
	found, foundTopic := 0, ""
	var missing []string
	for _, t := range topics {
		td, ok := md[t]
		tErr := kerr.ErrorForCode(td.ErrorCode)
		switch {
		case !ok || errors.Is(tErr, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
			continue
		case tErr != nil:
			return 0, fmt.Errorf("reading metadata of %s: %w", t, tErr)
		}
		n := len(td.Partitions)
		if asked > 0 && n != asked {
			return 0, askedOther(t, n, asked)
		}
		if found > 0 && n != found {
			return 0, fmt.Errorf("topics %s and %s have %d and %d partitions: strata needs one partition count for all its topics", foundTopic, t, found, n)
		}
		found, foundTopic = n, t
	}
	n := found
	switch {
	case n > 0:
	case asked > 0:
		n = asked
	default:
		n = DefaultPartitions
	}
	if len(missing) > 0 {
		if err := EnsureTopics(ctx, cl, int32(n), missing...); err != nil {
			return 0, err
		}
		// A topic another process created meanwhile may have another count.
		for _, t := range missing {
			got, err := WaitPartitionCount(ctx, cl, t)
			if err != nil {
				return 0, err
			}
			switch {
			case got != n && asked > 0:
				// The topic existed after all (a broker that had not yet
				// listed it in its metadata) or another process made it.
				return 0, askedOther(t, got, asked)
			case got != n:
				return 0, fmt.Errorf("topic %s was created with %d partitions while strata created its topics with %d", t, got, n)
			}
		}
	}
	return n, nil
}

// askedOther is the refusal of a partition count asked for that differs
// from an existing topic's.
func askedOther(topic string, has, asked int) error {
	return fmt.Errorf("topic %s has %d partitions but --partitions %d was asked for: omit --partitions to use %d, or use other topics (--prefix)", topic, has, asked, has)
}

// metadataNow reads the metadata of topics from a broker, by topic name.
// Unlike kadm's Metadata it does not answer from the client's cache, which
// keeps a topic's entry — "unknown topic" included — for MetadataMinAge
// (5 s by default): a topic just created would look missing that long.
func metadataNow(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false // a broker may auto-create with its own count
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make(map[string]kmsg.MetadataResponseTopic, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out[*t.Topic] = t
		}
	}
	return out, nil
}

// AwaitPartitionCount is PartitionCount for a topic that is not there
// yet — one another process creates, or one just created, which a broker
// may not list, or list without partitions, for a moment: while the
// brokers do not know topic or are still creating it, it waits (logging
// once that it does) until they list its partitions or ctx ends. Any other
// error is returned.
func AwaitPartitionCount(ctx context.Context, cl *kgo.Client, topic string, logger *slog.Logger) (int, error) {
	for logged := false; ; {
		n, err := PartitionCount(ctx, cl, topic)
		switch {
		case err == nil && n > 0:
			return n, nil
		case err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.LeaderNotAvailable) &&
			!errors.Is(err, errTopicMissing):
			return 0, err
		}
		if !logged && logger != nil {
			logger.Info("waiting for the topic to be created", "topic", topic)
			logged = true
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for topic %s to be created: %w", topic, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// WaitPartitionCount is PartitionCount for a topic just created: the
// broker's metadata may not list it, or its partitions, for a moment. It
// waits as AwaitPartitionCount does, for 5 s at most.
func WaitPartitionCount(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return AwaitPartitionCount(ctx, cl, topic, nil)
}

// errTopicMissing is PartitionCount's error for a topic the metadata
// response leaves out.
var errTopicMissing = errors.New("topic missing")

package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
// speaks the real wire protocol over loopback, so the same client code runs
// against it and against a real cluster.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts an in-process broker with the strata topics created
// with the given number of partitions.
func StartEmbedded(partitions int) (*Embedded, error) {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(partitions), AllTopics...),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
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

// AllTopics lists every topic strata uses.
var AllTopics = []string{
	schemas.TopicInvocations, schemas.TopicTelemetry, schemas.TopicDecisions,
	schemas.TopicRewards, schemas.TopicOutcomes, schemas.TopicTransitions, schemas.TopicDeadLetter,
}

// CommonOpts returns the client options every strata client uses: seed
// brokers, slog logging (none when logger is nil) and the app-keyed partitioner.
func CommonOpts(brokers []string, logger *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(Partitioner()),
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(logger)))
	}
	return opts
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

// PartitionCount returns the number of partitions of topic.
func PartitionCount(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok {
		return 0, fmt.Errorf("reading metadata of %s: topic missing", topic)
	}
	if t.Err != nil {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, t.Err)
	}
	return len(t.Partitions), nil
}

package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/notify"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ConsumeTransitions reads strata.transitions.v1 from the start in
// consumer group group and hands every record of run runID to fn, until
// ctx ends. A record that does not decode is logged and skipped (the twin
// is its only writer; nothing else is lost).
func ConsumeTransitions(ctx context.Context, brokers []string, names schemas.Names, group, runID string, logger *slog.Logger, fn func(*stratapb.Transition) error) error {
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, logger), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(names.Topic(schemas.TopicTransitions)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("creating learner kafka client: %w", err)
	}
	defer cl.Close()
	return consumeTransitionsFrom(ctx, cl, runID, logger, fn, nil)
}

// FollowerLoader returns the loader of layer's learned policy for a
// follower: exploring (training) or greedy.
func FollowerLoader(layer schemas.Layer, opts agents.Options, explore bool) learner.Loader {
	return func(c schemas.Checkpoint) (learner.Policy, error) {
		return agents.LoadCheckpoint(layer, c.Data, opts, explore)
	}
}

// waitLearner waits until the learner has processed, for each layer it
// trains, as many intervals as the twin closed (want), woken by the learner
// after each interval; the count is only known once the twin has stopped.
func waitLearner(ctx context.Context, l *learner.Learner, want map[string]int64, exited <-chan struct{}) error {
	done := func() bool {
		for _, layer := range schemas.Layers {
			if l.Trains(layer) && l.Done(layer) < want[string(layer)] {
				return false
			}
		}
		return true
	}
	if err := notify.Until(ctx, l.Changed, done, exited); err != nil {
		return fmt.Errorf("waiting for the learner to process the run's last transitions: %w", err)
	}
	return nil
}

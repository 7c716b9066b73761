package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// consumeTransitions reads strata.transitions.v1 from the start in
// consumer group group and hands every record of run runID to fn, until
// ctx ends. A record that does not decode is logged and skipped (the twin
// is its only writer; nothing else is lost).
func consumeTransitions(ctx context.Context, brokers []string, names schemas.Names, group, runID string, logger *slog.Logger, fn func(*stratapb.Transition) error) error {
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, logger), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(names.Topic(schemas.TopicTransitions)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("creating learner kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var herr error
		fs.EachRecord(func(r *kgo.Record) {
			if herr != nil {
				return
			}
			var tr stratapb.Transition
			if err := proto.Unmarshal(r.Value, &tr); err != nil {
				logger.Warn("skipping a transition record that does not decode", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if tr.GetRunId() != runID {
				return
			}
			herr = fn(&tr)
		})
		if herr != nil {
			return herr
		}
	}
}

// followerLoader returns the loader of layer's learned policy for a
// follower: exploring (training) or greedy.
func followerLoader(layer schemas.Layer, opts agents.Options, explore bool) learner.Loader {
	return func(c schemas.Checkpoint) (learner.Policy, error) {
		return agents.LoadCheckpoint(layer, c.Data, opts, explore)
	}
}

// waitLearner waits until the learner has processed, for each layer it
// trains, as many intervals as the twin closed (want).
func waitLearner(ctx context.Context, l *learner.Learner, want map[string]int64, exited <-chan struct{}) error {
	for {
		done := true
		for _, layer := range schemas.Layers {
			if l.Trains(layer) && l.Done(layer) < want[string(layer)] {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("the learner stopped before it processed the run's last transitions")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// learnerMain runs `strata learner`: it trains the strategic DQN and the
// tactical PPO on one run's transitions from Kafka and publishes versioned
// checkpoints to the JetStream object store, until ctx is done.
func learnerMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata learner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		kafkaF   = fs.String("kafka", "", "Kafka seed brokers `host:port[,…]` (required)")
		natsURL  = fs.String("nats", "", "NATS `URL` (required)")
		runID    = fs.String("run-id", "", "train on this run's transitions (required)")
		layersF  = fs.String("layers", "strategic,tactical", "layers to train: strategic (DQN), tactical (PPO)")
		seed     = fs.Int64("seed", 1, "seed of the networks' initialisation and the minibatch order")
		episode  = fs.Int("episode", 0, "episode number of the run (0-based; sets the DQN's ε)")
		logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
		metrics  = fs.String("metrics-addr", "", "serve Prometheus metrics (strata_learner_*: transitions, rejections by reason, NaN/Inf-rejected steps) on `ADDR`; off by default")
		names    schemas.Names
	)
	registerPrefix(fs, &names)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := schemas.ValidatePrefix(names.Prefix); err != nil {
		return err
	}
	if *kafkaF == "" || *natsURL == "" || *runID == "" {
		return errors.New("strata learner needs --kafka, --nats and --run-id")
	}
	layers, err := parseLayers(*layersF)
	if err != nil {
		return fmt.Errorf("strata learner --layers: %w", err)
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return err
	}
	cfg := learner.DefaultConfig(uint64(*seed), layers...)
	cfg.Availability = ppo.CatalogAvailability(cat)
	reg := newRegistry()
	l, err := learner.New(cfg, logger.With("role", "learner"), reg)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := serveMetrics(ctx, *metrics, reg); err != nil {
		return err
	}
	nc, err := natsbus.Connect(*natsURL, "strata-learner")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jsFor(ctx, nc, names)
	if err != nil {
		return err
	}
	ms, err := natsbus.OpenModelStore(ctx, js, names)
	if err != nil {
		return err
	}
	l.OnUpdate = func(e learner.UpdateEvent) {
		logger.Info("checkpoint published", "run", e.RunID, "layer", e.Layer, "version", e.Version, "in_force", e.InForce)
	}
	if err := l.Begin(ctx, *runID, *episode, ms); err != nil {
		return err
	}
	err = consumeTransitions(ctx, kafka.ParseBrokers(*kafkaF), names, names.Group("strata-learner-"+*runID), *runID, logger, func(tr *stratapb.Transition) error {
		return l.Handle(ctx, tr)
	})
	st := l.Stats()
	fmt.Fprintf(stdout, "learner: run %s: %v transitions, %v intervals, %v checkpoints, rejected %v\n", *runID, st.Transitions, st.Intervals, st.Checkpoints, st.Rejected)
	return err
}

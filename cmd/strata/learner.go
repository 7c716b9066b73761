package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

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
	err = pipeline.ConsumeTransitions(ctx, kafka.ParseBrokers(*kafkaF), names, pipeline.GroupsOf(names, *runID).Learner, *runID, logger, func(tr *stratapb.Transition) error {
		return l.Handle(ctx, tr)
	})
	st := l.Stats()
	fmt.Fprintf(stdout, "learner: run %s: %v transitions, %v intervals, %v checkpoints, rejected %v\n", *runID, st.Transitions, st.Intervals, st.Checkpoints, st.Rejected)
	return err
}

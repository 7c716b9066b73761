package pipeline

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LearnerRole is `strata learner`: it trains the strategic DQN and the
// tactical PPO on one run's transitions from Kafka and publishes versioned
// checkpoints to the JetStream object store, until ctx is done.
type LearnerRole struct {
	// Brokers are Kafka's seed brokers, comma-separated; NATSURL the NATS
	// server; RunID the run whose transitions it trains on (all required).
	Brokers, NATSURL, RunID string
	// Layers are the layers to train, comma-separated.
	Layers string
	// Seed seeds the networks' initialisation and the minibatch order.
	Seed int64
	// Episode is the run's episode number (0-based; sets the DQN's ε).
	Episode int
	// TacticalFeatures is the feature set the PPO network reads; the
	// run's twin must write its transitions in it.
	TacticalFeatures string
	// StrategicFeatures is the feature set the DQN network reads; the
	// run's twin must write its transitions in it.
	StrategicFeatures string
	// Counterfactual is the PPO's all-action coefficient
	// (nn.PPOConfig.CounterfactualCoef; 0: the seed's PPO).
	Counterfactual float64
	// DQNCounterfactual adds the DQN counterfactual transitions for the
	// providers not taken (learner.Config.DQNCounterfactual).
	DQNCounterfactual bool
	// Device is where the networks train: cpu or cuda (ParseDevice).
	Device string
	// DQNSwitchPenalty is the DQN's switching shaping
	// (learner.Config.DQNSwitchPenalty).
	DQNSwitchPenalty float64
	// Fresh deletes the run's persisted learner state and trains from the
	// first transition; without it a persisted state is resumed.
	Fresh bool
	// StateEvery persists the training state after every StateEvery-th
	// interval processed (0: never).
	StateEvery int
	LogLevel   string
	Metrics    MetricsFlags
	Names      schemas.Names

	// configure, if set, adjusts the learner's configuration (tests).
	configure func(*learner.Config)
}

// DefaultLearnerRole is the learner role's defaults.
func DefaultLearnerRole() LearnerRole {
	return LearnerRole{Layers: "strategic,tactical", Seed: 1, LogLevel: "info", TacticalFeatures: DefaultTacticalFeatures, StrategicFeatures: DefaultStrategicFeatures, StateEvery: 1}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *LearnerRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&r.Brokers, prefix+"kafka", r.Brokers, "Kafka seed brokers `host:port[,…]` (required)")
	fs.StringVar(&r.NATSURL, prefix+"nats", r.NATSURL, "NATS `URL` (required)")
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "train on this run's transitions (required)")
	fs.StringVar(&r.Layers, prefix+"layers", r.Layers, "layers to train: strategic (DQN), tactical (PPO)")
	fs.Int64Var(&r.Seed, prefix+"seed", r.Seed, "seed of the networks' initialisation and the minibatch order")
	fs.IntVar(&r.Episode, prefix+"episode", r.Episode, "episode number of the run (0-based; sets the DQN's ε)")
	RegisterTacticalFeatures(fs, prefix, &r.TacticalFeatures, "feature set the PPO network reads (the run's --tactical-features)")
	RegisterStrategicFeatures(fs, prefix, &r.StrategicFeatures, "feature set the DQN network reads (the run's --strategic-features)")
	fs.Float64Var(&r.Counterfactual, prefix+"counterfactual", r.Counterfactual, "PPO: weight of the all-action term over the transitions' action rewards (0 = the seed's PPO)")
	fs.BoolVar(&r.DQNCounterfactual, prefix+"dqn-counterfactual", r.DQNCounterfactual, "DQN: beside each strategic transition, add one per other provider with the reward the twin scored for it in hindsight (the transitions' action rewards); off = the seed's DQN")
	fs.Float64Var(&r.DQNSwitchPenalty, prefix+"dqn-switch-penalty", r.DQNSwitchPenalty, "training-time shaping: lower the reward the DQN learns from by this much when an action moves an app off the provider it ran on (needs --strategic-features placement-v1)")
	RegisterDeviceFlag(fs, prefix, &r.Device)
	fs.BoolVar(&r.Fresh, prefix+"fresh", r.Fresh, "delete the run's persisted learner state and train from the run's first transition (default: resume from the persisted state, if any)")
	fs.IntVar(&r.StateEvery, prefix+"state-every", r.StateEvery, "persist the training state (replay buffer, PPO rollout, optimiser moments, RNG, topic offsets) to JetStream after every `N`-th interval processed; a restart resumes from it (0: never)")
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
	r.Metrics.RegisterFlags(fs, prefix, "serve Prometheus metrics (strata_learner_*: transitions, rejections by reason, NaN/Inf-rejected steps) on `ADDR`; off by default")
	RegisterPrefixFlag(fs, prefix+"prefix", &r.Names)
}

// Validate reports a name prefix that is not one, a missing --kafka,
// --nats or --run-id and a layer list that does not parse.
func (r *LearnerRole) Validate() error {
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	if r.Brokers == "" || r.NATSURL == "" || r.RunID == "" {
		return errors.New("strata learner needs --kafka, --nats and --run-id")
	}
	if _, err := ParseLayers(r.Layers); err != nil {
		return fmt.Errorf("strata learner --layers: %w", err)
	}
	if _, err := schemas.ParseFeatureSet(schemas.Tactical, r.TacticalFeatures); err != nil {
		return fmt.Errorf("strata learner --tactical-features: %w", err)
	}
	if _, err := schemas.ParseFeatureSet(schemas.Strategic, r.StrategicFeatures); err != nil {
		return fmt.Errorf("strata learner --strategic-features: %w", err)
	}
	if r.StateEvery < 0 {
		return fmt.Errorf("strata learner --state-every %d: want 0 (never) or more", r.StateEvery)
	}
	if _, err := ParseDevice(r.Device); err != nil {
		return fmt.Errorf("strata learner --device: %w", err)
	}
	return nil
}

// Run trains until ctx is done and prints the learner's counters to
// stdout. It resumes the run's persisted state when there is one (and not
// Fresh), and persists the state every StateEvery intervals: a learner
// killed at any point and restarted publishes the checkpoints an
// uninterrupted one would, byte for byte (docs/learner.md).
func (r *LearnerRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	layers, _ := ParseLayers(r.Layers)
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return err
	}
	cfg := learner.DefaultConfig(uint64(r.Seed), layers...)
	tf, err := schemas.ParseFeatureSet(schemas.Tactical, r.TacticalFeatures)
	if err != nil {
		return fmt.Errorf("strata learner --tactical-features: %w", err)
	}
	cfg.PPO = cfg.PPO.WithFeatures(tf)
	sf, err := schemas.ParseFeatureSet(schemas.Strategic, r.StrategicFeatures)
	if err != nil {
		return fmt.Errorf("strata learner --strategic-features: %w", err)
	}
	cfg.DQN = cfg.DQN.WithFeatures(sf)
	cfg.PPO.Net.CounterfactualCoef = r.Counterfactual
	cfg.DQNCounterfactual = r.DQNCounterfactual
	cfg.DQNSwitchPenalty = r.DQNSwitchPenalty
	cfg.Availability = ppo.CatalogAvailability(cat)
	backend, err := ParseDevice(r.Device)
	if err != nil {
		return fmt.Errorf("strata learner --device: %w", err)
	}
	cfg.PPO.Backend, cfg.DQN.Backend = backend, backend
	if r.configure != nil {
		r.configure(&cfg)
	}
	reg := NewRegistry()
	l, err := learner.New(cfg, logger.With("role", "learner"), reg)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	nc, err := natsbus.Connect(r.NATSURL, "strata-learner", natsbus.WithLogger(logger))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := OpenJetStream(ctx, nc, r.Names)
	if err != nil {
		return err
	}
	ms, err := natsbus.OpenModelStore(ctx, js, r.Names)
	if err != nil {
		return err
	}
	l.OnUpdate = func(e learner.UpdateEvent) {
		logger.Info("checkpoint published", "run", e.RunID, "layer", e.Layer, "version", e.Version, "in_force", e.InForce)
	}
	topic := r.Names.Topic(schemas.TopicTransitions)
	offsets, err := r.start(ctx, l, ms, topic, logger)
	if err != nil {
		return err
	}
	brokers := kafka.ParseBrokers(r.Brokers)
	admin, err := kgo.NewClient(kafka.CommonOpts(brokers, logger)...)
	if err != nil {
		return fmt.Errorf("creating the learner's kafka admin client: %w", err)
	}
	defer admin.Close()
	cl, err := newTransitionsConsumer(ctx, brokers, admin, topic, offsets, logger)
	if err != nil {
		return err
	}
	defer cl.Close()
	p := &learnerPersister{l: l, ms: ms, adm: kadm.NewClient(admin), group: GroupsOf(r.Names, r.RunID).Learner, runID: r.RunID, topic: topic,
		every: int64(r.StateEvery), logger: logger, offsets: maps.Clone(offsets), done: processed(l)}
	if p.offsets == nil {
		p.offsets = map[int32]int64{}
	}
	err = consumeTransitionsFrom(ctx, cl, r.RunID, logger, func(tr *stratapb.Transition) error {
		return l.Handle(ctx, tr)
	}, func(part int32, off int64) error { return p.handled(ctx, part, off) })
	if ctx.Err() != nil {
		// Stopped: a publish or save cut short is redone by the next
		// start from the last persisted state.
		err = nil
	}
	st := l.Stats()
	fmt.Fprintf(stdout, "learner: run %s: %v transitions, %v intervals, %v checkpoints, rejected %v, %d states persisted\n",
		r.RunID, st.Transitions, st.Intervals, st.Checkpoints, st.Rejected, p.saves)
	return err
}

// start begins the run, or resumes its persisted state, and returns the
// transitions topic's offsets to read from (nil: every partition from its
// start).
func (r *LearnerRole) start(ctx context.Context, l *learner.Learner, ms *natsbus.ModelStore, topic string, logger *slog.Logger) (map[int32]int64, error) {
	if r.Fresh {
		if err := ms.DeleteLearnerState(ctx, r.RunID); err != nil {
			return nil, err
		}
	} else {
		data, ok, err := ms.LearnerState(ctx, r.RunID)
		if err != nil {
			return nil, err
		}
		if ok {
			pos, st, err := decodeLearnerState(data, r.RunID, topic)
			if err != nil {
				return nil, fmt.Errorf("%w (strata learner --fresh discards it)", err)
			}
			if err := l.Restore(bytes.NewReader(st)); err != nil {
				return nil, fmt.Errorf("restoring the persisted learner state of %s: %w (strata learner --fresh discards it)", r.RunID, err)
			}
			if err := l.Resume(r.RunID, ms); err != nil {
				return nil, err
			}
			rp := l.Position()
			logger.Info("learner state restored: resuming the run", "run", r.RunID, "saved", pos.Saved, "bytes", len(data),
				"done", rp.Done, "next", rp.Next, "pending", rp.Pending, "versions", rp.Versions, "offsets", pos.Offsets)
			return pos.Offsets, nil
		}
	}
	if err := l.Begin(ctx, r.RunID, r.Episode, ms); err != nil {
		return nil, err
	}
	logger.Info("learner starting the run from its first transition", "run", r.RunID, "fresh", r.Fresh)
	return nil, nil
}

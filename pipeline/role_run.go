package pipeline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// RunRole is `strata run`: a trace replayed through the closed loop in one
// process (RunLoop), or with Observed through the open loop (OpenLoop),
// configured as the command line gave it.
type RunRole struct {
	Common
	Source   Source
	Replay   ReplayFlags
	Store    StoreFlags
	Profiles Profiles
	// Summary, if set, is the file the run's JSON summary goes to.
	Summary string
	// Observed runs the open loop: the trace replayed as telemetry
	// observed on its own platform, without the twin and agents.
	Observed bool
	// Strategic, Tactical and Operational name each layer's policy.
	Strategic, Tactical, Operational string
	// Placement is the placement before any decision.
	Placement string
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Outcomes also writes per-invocation outcomes.
	Outcomes bool
	// Models is the directory of trained checkpoints.
	Models string
	// Transitions lists the layers whose learner transitions the twin
	// writes (comma-separated, or none).
	Transitions string
	// Serve are the guardrails and fallbacks of the closed loop's workers.
	Serve ServeFlags
	// TacticalFeatures and StrategicFeatures are the feature sets of the
	// tactical and strategic transitions' states (schemas.ParseFeatureSet).
	TacticalFeatures  string
	StrategicFeatures string
	// TwinCheckpointEvery is the trace time between two of the twin's
	// checkpoints on external Kafka and NATS (0: none); Resume goes on
	// from the run's checkpoint (--run-id).
	TwinCheckpointEvery time.Duration
	Resume              bool
	// TwinShard is "I/N": this process is shard I of a twin split into N
	// processes (ParseTwinShard); "" runs one twin.
	TwinShard string
	// ExternalFeatures leaves the features to `strata features` processes
	// (LoopConfig.ExternalFeatures).
	ExternalFeatures bool
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration. RunJSON is the run's
	// config_json before RunConfigJSON completes it.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	RunJSON  string
}

// DefaultRunRole is `strata run`'s defaults.
func DefaultRunRole() RunRole {
	return RunRole{Source: DefaultSource(), Replay: DefaultReplayFlags(), Profiles: Profiles{What: "the run"},
		Strategic: DefaultStrategicPolicy, Tactical: DefaultTacticalPolicy, Operational: DefaultOperationalPolicy,
		Placement: DefaultPlacement, PolicySeed: DefaultPolicySeed, Transitions: DefaultTransitions, TwinCheckpointEvery: DefaultTwinCheckpointEvery,
		TacticalFeatures: DefaultTacticalFeatures, StrategicFeatures: DefaultStrategicFeatures}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *RunRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Common.RegisterFlags(fs, prefix)
	r.Source.RegisterFlags(fs, prefix)
	r.Replay.RegisterFlags(fs, prefix)
	r.Store.RegisterFlags(fs, prefix)
	r.Store.RegisterRetentionFlag(fs, prefix)
	r.Store.RegisterSinkLagFlag(fs, prefix)
	r.Profiles.RegisterFlags(fs, prefix)
	fs.StringVar(&r.Summary, prefix+"summary", r.Summary, "write a JSON summary of the run to `FILE`")
	fs.BoolVar(&r.Observed, prefix+"observed", r.Observed, "open loop: replay the trace as telemetry observed on its own platform, without the twin and agents")
	fs.StringVar(&r.Strategic, prefix+"strategic", r.Strategic, "strategic policy (daily, per app): "+PolicyNames(schemas.Strategic)+", none, or "+PolicyExternal+" (served by a worker outside this process, docs/worker-contract.md)")
	fs.StringVar(&r.Tactical, prefix+"tactical", r.Tactical, "tactical policy (hourly, per function): "+PolicyNames(schemas.Tactical)+", none, or "+PolicyExternal+" (as for --strategic; agents/pyworker serves it from Python)")
	fs.StringVar(&r.Operational, prefix+"operational", r.Operational, "operational policy (15 s, per active function): "+PolicyNames(schemas.Operational)+", none, or "+PolicyExternal+" (as for --strategic)")
	fs.StringVar(&r.Placement, prefix+"default-placement", r.Placement, "placement before any decision: provider/metro/memory MB")
	fs.Int64Var(&r.PolicySeed, prefix+"policy-seed", r.PolicySeed, "seed of the policies' random choices")
	fs.BoolVar(&r.Outcomes, prefix+"outcomes", r.Outcomes, "closed loop: also write per-invocation outcomes (strata.outcomes.v1 and the outcomes table)")
	fs.StringVar(&r.Models, prefix+"models", r.Models, "closed loop: `DIR` of trained checkpoints (dqn.ckpt, ppo.ckpt, lstm.ckpt) for --strategic dqn, --tactical ppo, --operational lstm")
	fs.StringVar(&r.Transitions, prefix+"transitions", r.Transitions, "closed loop: layers whose learner transitions go to strata.transitions.v1 (comma-separated; operational is ~1.5 M a day; none for no layer)")
	r.Serve.RegisterFlags(fs, prefix)
	RegisterTacticalFeatures(fs, prefix, &r.TacticalFeatures, "closed loop: feature set of the tactical transitions' states, for a 'strata learner' of the same set")
	RegisterStrategicFeatures(fs, prefix, &r.StrategicFeatures, "closed loop: feature set of the strategic transitions' states, for a 'strata learner' of the same set")
	fs.DurationVar(&r.TwinCheckpointEvery, prefix+"twin-checkpoint-every", r.TwinCheckpointEvery, "closed loop on --kafka and --nats: trace time between two checkpoints of the twin, a multiple of 15s (0: none; docs/twin.md)")
	fs.StringVar(&r.TwinShard, prefix+"twin-shard", r.TwinShard, "closed loop on --kafka and --nats: `I/N`, this process is shard I of a twin split into N processes by partition (each holds its partitions' apps; shard 0 also runs the replay, features and agents; the tables come from a `strata sink`, so --store \"\"; docs/twin.md, \"Sharding\")")
	fs.BoolVar(&r.ExternalFeatures, prefix+"external-features", r.ExternalFeatures, "closed loop on --kafka and --nats: start no feature service; strata features --run-id ID --stop-after-final processes (one group, any number) turn the twin's telemetry into state (docs/twin.md, \"Sharding\")")
	fs.BoolVar(&r.Resume, prefix+"resume", r.Resume, "closed loop on --kafka and --nats: go on from the twin's last checkpoint of --run-id after the run was stopped or killed")
}

// DefaultTwinCheckpointEvery is --twin-checkpoint-every's default: six
// hours of trace time, 56 checkpoints in a 14-day run.
const DefaultTwinCheckpointEvery = 6 * time.Hour

// Validate reports a trace file given together with --synth-days and a
// speed, placement or transition list that does not parse.
func (r *RunRole) Validate() error {
	if err := r.Source.Validate(); err != nil {
		return err
	}
	if err := r.Replay.Validate(); err != nil {
		return err
	}
	if r.Observed {
		if r.Serve != (ServeFlags{}) {
			return errors.New("strata run --observed decides nothing: --guardrails, --fallback and --use-fallback are for the closed loop")
		}
		if r.TwinShard != "" || r.ExternalFeatures {
			return errors.New("strata run --observed runs no twin: --twin-shard and --external-features are for the closed loop")
		}
		return nil
	}
	shard, err := ParseTwinShard(r.TwinShard)
	if err != nil {
		return err
	}
	if shard.sharded() && (len(r.Brokers) == 0 || r.NATSURL == "") {
		return errors.New("--twin-shard splits the twin across processes: it needs --kafka and --nats")
	}
	if r.ExternalFeatures && (len(r.Brokers) == 0 || r.NATSURL == "") {
		return errors.New("--external-features leaves the features to `strata features` processes: it needs --kafka and --nats")
	}
	if r.ExternalFeatures && r.Replay.RunID == "" {
		return errors.New("--external-features: the feature processes window one run: give it a --run-id")
	}
	if shard.sharded() && r.Replay.RunID == "" {
		return errors.New("--twin-shard: the shards' processes share a run: give them its --run-id")
	}
	if _, err := ParsePlacement(r.Placement); err != nil {
		return err
	}
	if _, err := ticksOf("twin-checkpoint-every", r.TwinCheckpointEvery); err != nil {
		return err
	}
	if r.Resume && r.Replay.RunID == "" {
		return errors.New("--resume goes on with a run: give its --run-id")
	}
	if _, err := ParseLayers(r.Transitions); err != nil {
		return fmt.Errorf("parsing --transitions: %w", err)
	}
	if _, err := r.featureSets(); err != nil {
		return err
	}
	return r.Serve.Validate()
}

// featureSets returns the transitions' feature sets by layer.
func (r *RunRole) featureSets() (map[schemas.Layer]schemas.FeatureSet, error) {
	tf, err := schemas.ParseFeatureSet(schemas.Tactical, r.TacticalFeatures)
	if err != nil {
		return nil, fmt.Errorf("parsing --tactical-features: %w", err)
	}
	sf, err := schemas.ParseFeatureSet(schemas.Strategic, r.StrategicFeatures)
	if err != nil {
		return nil, fmt.Errorf("parsing --strategic-features: %w", err)
	}
	return map[schemas.Layer]schemas.FeatureSet{schemas.Tactical: tf, schemas.Strategic: sf}, nil
}

// Run runs the loop and prints its report to stdout; the progress bar and
// the log go to stderr.
func (r *RunRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	sp, err := replay.ParseSpeed(r.Replay.Speed)
	if err != nil {
		return err
	}
	epoch, err := ParseEpoch(r.Epoch)
	if err != nil {
		return err
	}
	reg := NewRegistry()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	stopProf, err := r.Profiles.Start()
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProf(); perr != nil {
			logger.Error("writing profiles", "err", perr)
		}
	}()
	src, name, traceLen, closeSrc, err := r.Source.Open()
	if err != nil {
		return err
	}
	defer closeSrc()
	o := Config{Brokers: r.Brokers, NATSURL: r.NATSURL, Partitions: r.Partitions, Names: r.Names,
		Speed: sp, Epoch: epoch, RunID: r.Replay.RunID, LatenessUS: r.Replay.Lateness.Microseconds(), Logger: logger, Registerer: reg}
	if r.Replay.Progress {
		o.Progress = stderr
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	if !r.Observed {
		pl, err := ParsePlacement(r.Placement)
		if err != nil {
			return err
		}
		tl, err := ParseLayers(r.Transitions)
		if err != nil {
			return fmt.Errorf("parsing --transitions: %w", err)
		}
		fsets, err := r.featureSets()
		if err != nil {
			return err
		}
		sv, err := r.Serve.Load()
		if err != nil {
			return err
		}
		fault, err := FaultFromEnv(logger)
		if err != nil {
			return err
		}
		every, err := ticksOf("twin-checkpoint-every", r.TwinCheckpointEvery)
		if err != nil {
			return err
		}
		shard, err := ParseTwinShard(r.TwinShard)
		if err != nil {
			return err
		}
		return RunLoop(ctx, LoopOptions{Serving: sv, FeatureSets: fsets, Strategic: r.Strategic, Tactical: r.Tactical, Operational: r.Operational, Placement: pl,
			PolicySeed: r.PolicySeed, Summary: r.Summary, Source: &r.Source, Store: r.Store.Target(), Retention: r.Store.Retention, SinkMaxLag: r.Store.SinkMaxLag, Outcomes: r.Outcomes,
			Transitions: tl, Models: r.Models, NewModel: r.NewModel, RunJSON: r.RunJSON,
			Checkpoint: TwinCheckpoint{Every: every, Resume: r.Resume, Fault: fault}, Shard: shard, ExternalFeatures: r.ExternalFeatures},
			o, src, name, traceLen, stdout)
	}
	res, err := OpenLoop(ctx, o, src, name, traceLen)
	if err != nil {
		return err
	}
	sum := NewSummary(o, name, res.Replay, res.Features, res.Wall)
	sum.WriteText(stdout)
	if r.Summary != "" {
		return WriteJSON(r.Summary, sum)
	}
	return nil
}

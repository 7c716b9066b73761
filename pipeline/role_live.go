package pipeline

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// LiveRole is `strata live`: live mode in one process (Live), configured
// as the command line gave it.
type LiveRole struct {
	Common
	Ingest IngestFlags
	Store  StoreFlags
	// Strategic, Tactical and Operational name each layer's policy.
	Strategic, Tactical, Operational string
	// Models is the directory of trained checkpoints.
	Models string
	// Placement is the placement before any decision.
	Placement string
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Act also answers single decisions; Shadow runs the twin in shadow;
	// NoStore writes no tables.
	Act, Shadow, NoStore bool
	// Transitions are the layers whose transitions the shadow twin writes:
	// a list, none, or auto (the layers served by dqn or ppo).
	Transitions string
	// DrainTimeout bounds the drain at a stop on the embedded broker.
	DrainTimeout time.Duration
	// ShadowCheckpointEvery is the wall time between two of the shadow
	// twin's checkpoints on external Kafka and NATS (0: none).
	ShadowCheckpointEvery time.Duration
	// WatermarkIdle is LiveConfig.WatermarkIdle.
	WatermarkIdle time.Duration
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration. RunJSON is the run's
	// config_json before RunConfigJSON completes it.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	RunJSON  string
	// Serve are the guardrails and fallbacks of live mode's agents.
	Serve ServeFlags
	// Deployment serves the learned layers from the models promoted for
	// it (LiveConfig.Deployment).
	Deployment string
}

// DefaultShadowCheckpointEvery is --shadow-checkpoint-every's default.
const DefaultShadowCheckpointEvery = 5 * time.Minute

// DefaultLiveRole is live mode's defaults.
func DefaultLiveRole() LiveRole {
	return LiveRole{Ingest: DefaultIngestFlags(), Strategic: DefaultStrategicPolicy, Tactical: DefaultTacticalPolicy, Operational: DefaultOperationalPolicy,
		Placement: DefaultPlacement, PolicySeed: DefaultPolicySeed, Act: true, Shadow: true, Transitions: "auto", DrainTimeout: 30 * time.Second,
		ShadowCheckpointEvery: DefaultShadowCheckpointEvery, WatermarkIdle: DefaultWatermarkIdle}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *LiveRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Common.RegisterFlags(fs, prefix)
	r.Ingest.RegisterFlags(fs, prefix)
	r.Store.RegisterFlags(fs, prefix)
	r.Store.RegisterRetentionFlag(fs, prefix)
	names := func(l schemas.Layer) string { return strings.Join(append(agents.Names(l), agents.Own(l)...), ", ") }
	fs.StringVar(&r.Strategic, prefix+"strategic", r.Strategic, "strategic policy (daily, per app): "+names(schemas.Strategic)+", dqn (with --models), or none")
	fs.StringVar(&r.Tactical, prefix+"tactical", r.Tactical, "tactical policy (hourly, per function): "+names(schemas.Tactical)+", ppo (with --models), or none")
	fs.StringVar(&r.Operational, prefix+"operational", r.Operational, "operational policy (15 s, per active function): "+names(schemas.Operational)+", lstm (with --models), or none")
	fs.StringVar(&r.Models, prefix+"models", r.Models, "`DIR` of trained checkpoints for dqn, ppo and lstm")
	fs.StringVar(&r.Deployment, prefix+"deployment", r.Deployment, "serve the layers that run dqn, ppo or lstm from the models promoted for deployment `NAME` (strata models --promote; --models until one is), switching between ticks when another is promoted or rolled back to (docs/guardrails.md)")
	fs.StringVar(&r.Placement, prefix+"default-placement", r.Placement, "placement before any decision: provider/metro/memory MB")
	fs.Int64Var(&r.PolicySeed, prefix+"policy-seed", r.PolicySeed, "seed of the policies' random choices")
	fs.BoolVar(&r.Act, prefix+"act", r.Act, "also answer single decisions on strata.act.<layer>")
	fs.BoolVar(&r.Shadow, prefix+"shadow", r.Shadow, "run the twin in shadow: score every decision against the model's counterfactuals")
	fs.BoolVar(&r.NoStore, prefix+"no-store", r.NoStore, "write no tables (the twin's records stay on Kafka)")
	fs.StringVar(&r.Transitions, prefix+"transitions", r.Transitions, "layers whose transitions the shadow twin writes to strata.transitions.v1 for 'strata learner --run-id <run>': a list, none, or auto (the layers served by dqn or ppo)")
	r.Serve.RegisterFlags(fs, prefix)
	fs.DurationVar(&r.ShadowCheckpointEvery, prefix+"shadow-checkpoint-every", r.ShadowCheckpointEvery, "on --kafka and --nats: wall time between two checkpoints of the shadow twin, a multiple of 15s (0: none); restarted on the same --run-id, it goes on from the last one (docs/twin.md)")
	fs.DurationVar(&r.WatermarkIdle, prefix+"watermark-idle", r.WatermarkIdle, watermarkIdleHelp)
	fs.DurationVar(&r.DrainTimeout, prefix+"drain-timeout", r.DrainTimeout, "on the embedded broker, how long a stop waits for the back end to process every acknowledged record before it gives up and reports how many were left (they are lost)")
}

// Validate reports a placement, ingest setting or transition list that
// does not parse.
func (r *LiveRole) Validate() error {
	_, err := r.config()
	return err
}

// config builds live mode's configuration, without its logger and
// registry.
func (r *LiveRole) config() (LiveConfig, error) {
	var lo LiveConfig
	pl, err := ParsePlacement(r.Placement)
	if err != nil {
		return lo, err
	}
	shadowEvery, err := ticksOf("shadow-checkpoint-every", r.ShadowCheckpointEvery)
	if err != nil {
		return lo, err
	}
	icfg, err := r.Ingest.Config(nil)
	if err != nil {
		return lo, err
	}
	sv, err := r.Serve.Load()
	if err != nil {
		return lo, err
	}
	var trLayers []schemas.Layer
	switch r.Transitions {
	case "auto":
		for l, n := range map[schemas.Layer]string{schemas.Strategic: r.Strategic, schemas.Tactical: r.Tactical} {
			if agents.IsLearned(n, l) {
				trLayers = append(trLayers, l)
			}
		}
	default:
		if trLayers, err = ParseLayers(r.Transitions); err != nil {
			return lo, fmt.Errorf("strata live --transitions: %w", err)
		}
	}
	lo = LiveConfig{
		Config: Config{Brokers: r.Brokers, NATSURL: r.NATSURL, Partitions: r.Partitions, Names: r.Names, Epoch: LiveEpoch, RunID: r.Ingest.RunID},
		Ingest: icfg, Listen: r.Ingest.Listen, TLSCert: r.Ingest.TLSCert, TLSKey: r.Ingest.TLSKey,
		Policies: map[schemas.Layer]string{schemas.Strategic: r.Strategic, schemas.Tactical: r.Tactical, schemas.Operational: r.Operational},
		Models:   r.Models, Placement: pl, Seed: r.PolicySeed, Act: r.Act, Shadow: r.Shadow, Transitions: trLayers,
		DrainTimeout: r.DrainTimeout, NewModel: r.NewModel, RunJSON: r.RunJSON, Serving: sv, Deployment: r.Deployment,
		ShadowCheckpointEvery: shadowEvery, WatermarkIdle: r.WatermarkIdle,
	}
	if !r.NoStore {
		lo.Store, lo.Retention = r.Store.Target(), r.Store.Retention
	}
	return lo, nil
}

// Run runs live mode until ctx is done (Live).
func (r *LiveRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := NewLogger(stderr, r.LogLevel)
	if err != nil {
		return err
	}
	lo, err := r.config()
	if err != nil {
		return err
	}
	if lo.ShadowFault, err = FaultFromEnv(logger); err != nil {
		return err
	}
	reg := NewRegistry()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	lo.Logger, lo.Registerer = logger, reg
	return Live(ctx, lo, stdout, nil)
}

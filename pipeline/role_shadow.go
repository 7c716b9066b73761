package pipeline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
)

// liveShadow is what a live run's shadow twin is built from beside its
// environment and cloud model.
type liveShadow struct {
	// Placement is the placement before any decision.
	Placement cloud.Placement
	// Layers are the layers whose decisions the shadow applies;
	// Transitions those whose transitions it writes.
	Layers, Transitions []schemas.Layer
	// CheckpointEvery is the ticks between two checkpoints on external
	// Kafka and NATS (0: none).
	CheckpointEvery int64
	// Fault is the shadow's fault hook (FaultFromEnv); nil is none.
	Fault func(point string, tick int64)
	// WatermarkIdle is twin.CommonConfig.WatermarkIdle.
	WatermarkIdle time.Duration
	// OnTick, if set, is called after each tick.
	OnTick func(int64)
}

// newLiveShadow builds the shadow twin of the live run c.RunID on e:
// `strata live --shadow` runs it beside the rest of live mode, `strata
// shadow` alone. With checkpoints on external Kafka and NATS it is a static
// member of its group: restarted after a crash, it takes its partitions
// back at once and goes on from its last checkpoint.
func newLiveShadow(ctx context.Context, e *Env, c Config, model *cloud.Model, s liveShadow) (*twin.Shadow, error) {
	tr := map[schemas.Layer]bool{}
	for _, l := range s.Transitions {
		tr[l] = true
	}
	eng, err := twin.NewEngine(model, twin.Config{RunID: c.RunID, DefaultPlacement: s.Placement, Reward: model.Config().Reward,
		Outcomes: true, Internal: map[schemas.Layer]twin.InternalPolicy{}, Transitions: tr},
		twin.NewProfileBuilder(LiveEpoch).Build(model))
	if err != nil {
		return nil, err
	}
	scfg := twin.ShadowConfig{CommonConfig: twin.CommonConfig{Brokers: e.Brokers, RunID: c.RunID, Names: c.Names, Layers: s.Layers,
		Transitions: s.Transitions, OnTick: s.OnTick, Registerer: c.Registerer, OutageBound: c.KafkaOutage, Fault: s.Fault,
		WatermarkIdle: s.WatermarkIdle}}
	if s.CheckpointEvery > 0 && !e.EmbeddedKafka && c.NATSURL != "" {
		ckpt, err := twin.OpenObjectCheckpoints(ctx, e.JS, c.Names)
		if err != nil {
			return nil, err
		}
		scfg.Checkpoints, scfg.CheckpointEvery = ckpt, s.CheckpointEvery
	}
	return twin.NewShadow(scfg, eng, e.JS, c.Logger.With("role", "shadow"))
}

// ShadowRole is `strata shadow`: the shadow twin of a live run alone, on
// external Kafka and NATS, beside `strata ingest`, `strata features` and
// `strata agent` processes — what `strata live --shadow` runs in its own
// process. It reads the run's telemetry, applies the decisions of its
// layers and writes rewards, outcomes and transitions to Kafka for a
// `strata sink`.
type ShadowRole struct {
	Config
	LogLevel string
	Metrics  MetricsFlags
	// Layers are the layers whose decisions the shadow applies
	// (comma-separated): those the run's agents serve.
	Layers string
	// Placement is the placement before any decision.
	Placement string
	// Transitions are the layers whose transitions it writes
	// (comma-separated, or none).
	Transitions string
	// CheckpointEvery is the wall time between two checkpoints (0: none).
	CheckpointEvery time.Duration
	// WatermarkIdle is twin.CommonConfig.WatermarkIdle.
	WatermarkIdle time.Duration
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
}

// DefaultShadowRole is the shadow role's defaults, those of `strata live`.
func DefaultShadowRole() ShadowRole {
	return ShadowRole{LogLevel: DefaultLogLevel, Layers: "strategic,tactical,operational", Placement: DefaultPlacement, Transitions: "none",
		CheckpointEvery: DefaultShadowCheckpointEvery, WatermarkIdle: DefaultWatermarkIdle}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *ShadowRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Config.RegisterFlags(fs, prefix)
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
	r.Metrics.RegisterFlags(fs, prefix, "serve Prometheus metrics on `ADDR` (e.g. :9464); off by default")
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "the live run to follow (required): the --run-id of its strata ingest processes")
	fs.StringVar(&r.Layers, prefix+"layers", r.Layers, "layers whose decisions the shadow applies (comma-separated): those the run's agents serve")
	fs.StringVar(&r.Placement, prefix+"default-placement", r.Placement, "placement before any decision: provider/metro/memory MB")
	fs.StringVar(&r.Transitions, prefix+"transitions", r.Transitions, "layers whose transitions the shadow writes to strata.transitions.v1 for 'strata learner --run-id <run>' (comma-separated, or none)")
	fs.DurationVar(&r.CheckpointEvery, prefix+"checkpoint-every", r.CheckpointEvery, "wall time between two checkpoints, a multiple of 15s (0: none); restarted on the same --run-id, the shadow goes on from the last one (docs/twin.md)")
	fs.DurationVar(&r.WatermarkIdle, prefix+"watermark-idle", r.WatermarkIdle, watermarkIdleHelp)
}

// Validate reports a missing server, run id or a setting that does not
// parse.
func (r *ShadowRole) Validate() error {
	_, err := r.spec()
	return err
}

// spec parses the role's settings.
func (r *ShadowRole) spec() (liveShadow, error) {
	var s liveShadow
	if len(r.Brokers) == 0 || r.NATSURL == "" {
		return s, errors.New("strata shadow follows a live run on external servers: it needs --kafka and --nats (strata live runs the shadow on the embedded ones)")
	}
	if r.RunID == "" {
		return s, errors.New("strata shadow needs the --run-id of the live run to follow")
	}
	if err := r.Config.Validate(); err != nil {
		return s, err
	}
	var err error
	if s.Placement, err = ParsePlacement(r.Placement); err != nil {
		return s, err
	}
	if s.Layers, err = ParseLayers(r.Layers); err != nil {
		return s, fmt.Errorf("strata shadow --layers: %w", err)
	}
	if s.Transitions, err = ParseLayers(r.Transitions); err != nil {
		return s, fmt.Errorf("strata shadow --transitions: %w", err)
	}
	if s.CheckpointEvery, err = ticksOf("checkpoint-every", r.CheckpointEvery); err != nil {
		return s, err
	}
	s.WatermarkIdle = r.WatermarkIdle
	return s, nil
}

// Run runs the shadow until ctx is done and prints its counters to
// stdout.
func (r *ShadowRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	s, _ := r.spec() // Validate parsed it
	if s.Fault, err = FaultFromEnv(logger); err != nil {
		return err
	}
	reg := NewRegistry()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	model, err := ModelAt(r.NewModel, LiveEpoch)
	if err != nil {
		return err
	}
	c := r.Config
	c.Epoch, c.Logger, c.Registerer = LiveEpoch, logger, reg
	e, closeEnv, err := c.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	sh, err := newLiveShadow(ctx, e, c, model, s)
	if err != nil {
		return err
	}
	err = sh.Run(ctx)
	st := sh.Stats()
	fmt.Fprintf(stdout, "shadow: %d ticks, %d arrivals, %d decisions, %d rewards\n", st.Ticks, st.Arrivals, st.Decisions, st.Rewards)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

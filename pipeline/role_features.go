package pipeline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// FeaturesRole is `strata features`: the feature service alone against
// an external Kafka and NATS, until interrupted or, with StopAfterFinal,
// until a run ends.
type FeaturesRole struct {
	Common
	// Group is the consumer group; "" is strata-features under the prefix.
	Group string
	// InstanceID, if set, makes the process a static member of its group
	// (features.Config.InstanceID): restarted with the same id, it takes
	// its partitions back at once. Each process of a group needs its own.
	InstanceID string
	// RunID windows only this run; "" windows every run.
	RunID string
	// StopAfterFinal exits once every partition has seen its run's final
	// watermark.
	StopAfterFinal bool
	// CheckpointEvery is the wall-clock interval between checkpoints.
	CheckpointEvery time.Duration
	// WatermarkIdle is features.Config.WatermarkIdle.
	WatermarkIdle time.Duration
}

// DefaultWatermarkIdle is --watermark-idle's default: an ingest instance
// that stopped holds the ticks for this long, in event time, before the
// others' watermarks close them.
const DefaultWatermarkIdle = time.Minute

// watermarkIdleHelp is --watermark-idle's help text.
const watermarkIdleHelp = "with several ingest instances writing watermarks: how far one may fall behind the most advanced before it leaves the set whose minimum closes ticks (event time; 0: never; docs/ingest.md)"

// DefaultFeaturesRole is the feature role's defaults.
func DefaultFeaturesRole() FeaturesRole {
	return FeaturesRole{CheckpointEvery: 5 * time.Second, WatermarkIdle: DefaultWatermarkIdle}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *FeaturesRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Common.RegisterFlags(fs, prefix)
	fs.StringVar(&r.Group, prefix+"group", r.Group, "consumer group (default strata-features under --prefix)")
	fs.StringVar(&r.InstanceID, prefix+"instance-id", r.InstanceID, "static member `ID` of the consumer group, one per process: restarted with the same id after a crash, the process takes its partitions back at once instead of after the group's session timeout (45 s)")
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "only window this run (default: every run)")
	fs.BoolVar(&r.StopAfterFinal, prefix+"stop-after-final", r.StopAfterFinal, "exit once every partition this process holds has seen its run's final watermark (in a group, each process once its own have)")
	fs.DurationVar(&r.CheckpointEvery, prefix+"checkpoint-every", r.CheckpointEvery, "wall-clock interval between state checkpoints")
	fs.DurationVar(&r.WatermarkIdle, prefix+"watermark-idle", r.WatermarkIdle, watermarkIdleHelp)
}

// Validate reports a missing --kafka or --nats.
func (r *FeaturesRole) Validate() error {
	if len(r.Brokers) == 0 || r.NATSURL == "" {
		return errors.New("strata features needs --kafka and --nats (use strata run for the embedded pipeline)")
	}
	return nil
}

// Run serves the feature service until ctx is done (or the run ends) and
// prints its counters to stdout.
func (r *FeaturesRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
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
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	nc, err := natsbus.Connect(r.NATSURL, "strata-features", natsbus.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() { _ = nc.Drain() }()
	js, err := OpenJetStream(ctx, nc, r.Names)
	if err != nil {
		return err
	}
	ckpts, err := OpenFeatureCheckpoints(ctx, js, r.Names)
	if err != nil {
		return err
	}
	svc, err := features.NewService(ctx, features.Config{Brokers: r.Brokers, Group: r.Group, InstanceID: r.InstanceID,
		Epoch: epoch, StopAfterFinal: r.StopAfterFinal, RunID: r.RunID, CheckpointEvery: r.CheckpointEvery, Names: r.Names, OutageBound: r.KafkaOutage,
		WatermarkIdle: r.WatermarkIdle},
		r.publisher(js), ckpts, logger, reg)
	if err != nil {
		return err
	}
	err = svc.Run(ctx)
	st := svc.Stats()
	fmt.Fprintf(stdout, "features: %d invocations windowed, %d late, %d malformed, %d state batches %v\n",
		st.Invocations, st.Late, st.Malformed, st.StatesPublished, st.Ticks)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	return nil
}

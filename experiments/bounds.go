package experiments

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/experiments/bounds"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas/grid"
)

// BoundsConfig configures `strata bounds`.
type BoundsConfig struct {
	// Source is the trace.
	Source pipeline.Source
	// Epoch is trace time 0 in RFC 3339.
	Epoch string
	// Placement is the placement the days are replayed under, with no
	// decisions (static-best's training placement).
	Placement string
	// TrainDays and EvalDays are 1-based inclusive ranges ("1-10").
	TrainDays, EvalDays string
	// CSV, if set, is the file the function-hours are written to.
	CSV string
	// Lateness is how far out of start order the trace may be.
	Lateness time.Duration
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
}

// DefaultBoundsConfig is `strata bounds`' defaults: the 14-day synthetic
// trace of seed 1, trained on days 1–10, scored on days 13–14.
func DefaultBoundsConfig() BoundsConfig {
	return BoundsConfig{Source: pipeline.Source{SynthDays: 14, Seed: 1, SeedFlag: "trace-seed"}, Epoch: grid.DefaultEpoch.Format(time.RFC3339),
		Placement: pipeline.DefaultPlacement, TrainDays: fmt.Sprintf("1-%d", twin.TrainingDays), EvalDays: "13-14", Lateness: pipeline.DefaultLateness}
}

// RegisterFlags registers the command's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *BoundsConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.Source.RegisterFlags(fs, prefix)
	fs.StringVar(&c.Epoch, prefix+"trace-epoch", c.Epoch, "wall-clock instant of trace time 0 (sets hour of day)")
	fs.StringVar(&c.Placement, prefix+"default-placement", c.Placement, "placement the days are replayed under, with no decisions: provider/metro/memory MB (its metro and tier are the default rule's action)")
	fs.StringVar(&c.TrainDays, prefix+"train-days", c.TrainDays, "days static-best and the group rules are trained on, 1-based inclusive")
	fs.StringVar(&c.EvalDays, prefix+"eval-days", c.EvalDays, "days scored, 1-based inclusive")
	fs.StringVar(&c.CSV, prefix+"csv", c.CSV, "also write the replayed function-hours (invocations, descriptors, the 24 actions' rewards) as CSV to `FILE`")
	fs.DurationVar(&c.Lateness, prefix+"allowed-lateness", c.Lateness, "how far out of start order the trace may be")
}

// boundsConfig returns the computation's configuration: the days and the
// default placement's action.
func (c *BoundsConfig) boundsConfig() (bounds.Config, cloud.Placement, time.Time, error) {
	bc := bounds.DefaultConfig()
	var err error
	if bc.TrainFirst, bc.TrainLast, err = ParseDays(c.TrainDays); err != nil {
		return bc, cloud.Placement{}, time.Time{}, fmt.Errorf("--train-days: %w", err)
	}
	if bc.EvalFirst, bc.EvalLast, err = ParseDays(c.EvalDays); err != nil {
		return bc, cloud.Placement{}, time.Time{}, fmt.Errorf("--eval-days: %w", err)
	}
	pl, err := pipeline.ParsePlacement(c.Placement)
	if err != nil {
		return bc, pl, time.Time{}, err
	}
	bc.Default = twin.RegionTier{Metro: pl.Metro, Tier: pl.Tier}
	epoch, err := pipeline.ParseEpoch(c.Epoch)
	if err != nil {
		return bc, pl, epoch, err
	}
	if err := c.Source.Validate(); err != nil {
		return bc, pl, epoch, err
	}
	return bc, pl, epoch, bc.Validate()
}

// RunBounds runs `strata bounds`: it replays the trace's days 1 to the
// last training or evaluation day through the twin under the default
// placement with no decisions (twin.ReplayCounterfactuals, as
// twin.TrainStatic replays the training days), collects the 24 actions'
// rewards of every tactical function-hour, and prints the table of
// bounds.Compute to stdout; how long the replay took goes to stderr.
func RunBounds(ctx context.Context, c BoundsConfig, stdout, stderr io.Writer) error {
	bc, pl, epoch, err := c.boundsConfig()
	if err != nil {
		return err
	}
	m, err := pipeline.ModelAt(c.NewModel, epoch)
	if err != nil {
		return err
	}
	// Pass 1: the functions' properties from the training days, as
	// SetupLoop derives them.
	src, name, _, closeSrc, err := c.Source.Open()
	if err != nil {
		return err
	}
	profile, err := twin.ProfileOf(src, epoch, m)
	closeSrc()
	if err != nil {
		return fmt.Errorf("deriving function properties from %s: %w", name, err)
	}
	// Pass 2: the counterfactuals of every day up to the last one used.
	t0 := time.Now()
	days := max(bc.TrainLast, bc.EvalLast)
	col := bounds.NewCollector(profile)
	src, _, _, closeSrc, err = c.Source.Open()
	if err != nil {
		return err
	}
	err = twin.ReplayCounterfactuals(ctx, m, twin.Config{DefaultPlacement: pl, Reward: m.Config().Reward, Learn: col}, profile, src, c.Lateness.Microseconds(), days)
	closeSrc()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "strata bounds: replayed days 1–%d of %s under %s in %.1f s: %d tactical function-hours\n",
		days, name, pipeline.FormatPlacement(pl), time.Since(t0).Seconds(), len(col.Rows))
	if c.CSV != "" {
		if err := writeBoundsCSV(c.CSV, col.Rows); err != nil {
			return err
		}
	}
	res, err := bounds.Compute(col.Rows, bc)
	if err != nil {
		return fmt.Errorf("%w (%s has %d tactical function-hours in days 1–%d)", err, name, len(col.Rows), days)
	}
	return res.WriteText(stdout)
}

// writeBoundsCSV writes rows to the file at path.
func writeBoundsCSV(path string, rows []bounds.Row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := bounds.WriteCSV(f, rows); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

package train

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// ExportConfig configures `strata export sequences`: the closed loop over
// Days (the operational layer moving-average, docs/agents.md), its
// operational state batches turned into LSTM samples, a seeded sample of
// them written as Parquet.
type ExportConfig struct {
	// Common is where Kafka and NATS are (embedded when empty), the log
	// level and the trace epoch.
	pipeline.Common
	// Source is the trace; without --trace and --synth-days it is
	// LastDay synthetic days.
	Source pipeline.Source
	// Out is the Parquet file written (required).
	Out string
	// Days are the trace's days replayed, 1-based inclusive.
	Days string
	// Sample keeps a seeded sample of this many samples (0: all), seeded
	// with Seed.
	Sample int
	Seed   uint64
	// Strategic, Tactical and Operational are the policies during the
	// export.
	Strategic, Tactical, Operational string
	// Placement is the placement before any decision.
	Placement string
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Lateness is how far out of start order the trace may be.
	Lateness time.Duration
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
}

// DefaultExportConfig is `strata export sequences`' defaults.
func DefaultExportConfig() ExportConfig {
	return ExportConfig{Common: pipeline.DefaultCommon(),
		Source: pipeline.Source{Seed: 1, SeedFlag: "trace-seed"}, Days: "1-10", Sample: 200_000, Seed: 1,
		Strategic: pipeline.DefaultStrategicPolicy, Tactical: pipeline.DefaultTacticalPolicy, Operational: "moving-average",
		Placement: pipeline.DefaultPlacement, PolicySeed: pipeline.DefaultPolicySeed, Lateness: pipeline.DefaultLateness}
}

// RegisterFlags registers the export's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *ExportConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.RegisterBatchFlags(fs, prefix)
	c.Source.RegisterFlags(fs, prefix)
	fs.Lookup(prefix + "synth-days").Usage = "generate `N` days of synthetic trace when no --trace is given (default: the last of --days)"
	fs.StringVar(&c.Out, prefix+"out", c.Out, "write the samples to `FILE`.parquet (required)")
	fs.StringVar(&c.Days, prefix+"days", c.Days, "days of the trace to replay, 1-based inclusive")
	fs.IntVar(&c.Sample, prefix+"sample", c.Sample, "keep a seeded sample of this many samples (0: all)")
	fs.Uint64Var(&c.Seed, prefix+"seed", c.Seed, "seed of the sample")
	fs.StringVar(&c.Strategic, prefix+"strategic", c.Strategic, "strategic policy during the export: "+pipeline.PolicyNames(schemas.Strategic))
	fs.StringVar(&c.Tactical, prefix+"tactical", c.Tactical, "tactical policy during the export: "+pipeline.PolicyNames(schemas.Tactical))
	fs.StringVar(&c.Operational, prefix+"operational", c.Operational, "operational policy during the export: "+pipeline.PolicyNames(schemas.Operational))
	fs.StringVar(&c.Placement, prefix+"default-placement", c.Placement, "placement before any decision: provider/metro/memory MB")
	fs.Int64Var(&c.PolicySeed, prefix+"policy-seed", c.PolicySeed, "seed of the policies' random choices")
	fs.DurationVar(&c.Lateness, prefix+"allowed-lateness", c.Lateness, "how far out of start order the trace may be")
}

// Validate reports a missing --out, a negative --sample and days that do
// not parse.
func (c *ExportConfig) Validate() error {
	if c.Out == "" {
		return errors.New("strata export sequences: --out is required")
	}
	if c.Sample < 0 {
		return errors.New("strata export sequences: --sample must not be negative")
	}
	_, _, err := experiments.ParseDays(c.Days)
	return err
}

// Export runs the export and prints what it wrote to stdout; the log goes
// to stderr.
func Export(ctx context.Context, c ExportConfig, stdout, stderr io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	first, last, _ := experiments.ParseDays(c.Days)
	if c.Source.Trace == "" && c.Source.SynthDays == 0 {
		c.Source.SynthDays = last
	}
	logger, epoch, pl, err := c.LoopBasics(stderr, c.Placement)
	if err != nil {
		return err
	}
	fromUS := int64(first-1) * grid.StrategicTickUS
	toUS := int64(last) * grid.StrategicTickUS
	col := sequences.NewCollector(c.Seed, c.Sample)
	o := experiments.FullSpeed(c.Config, epoch, c.Lateness.Microseconds(), logger, fmt.Sprintf("export-sequences-%d", time.Now().UnixNano()))
	o.OnBatch = col.OnBatch
	lo := pipeline.LoopOptions{Strategic: c.Strategic, Tactical: c.Tactical, Operational: c.Operational, Placement: pl, PolicySeed: c.PolicySeed,
		Source: &c.Source, NewModel: c.NewModel}
	t0 := time.Now()
	_, name, _, err := experiments.RunWindow(ctx, lo, o, fromUS, toUS, 0, nil)
	if err != nil {
		return fmt.Errorf("exporting sequences: %w", err)
	}
	samples, err := col.Samples()
	if err != nil {
		return fmt.Errorf("exporting sequences: %w", err)
	}
	size, err := sequences.Write(c.Out, samples, sequences.Meta{Seed: c.Seed, FirstDay: first, LastDay: last, Source: name,
		Seen: col.Seen, Skipped: col.Skipped})
	if err != nil {
		return err
	}
	late := ""
	if col.Late > 0 {
		late = fmt.Sprintf(", %d late rows dropped", col.Late)
	}
	fmt.Fprintf(stdout, "export sequences: days %d-%d of %s, %d operational batches: %d samples seen, %d sampled (seed %d), %d skipped (missing target)%s; %s, %d bytes, %.1f s wall\n",
		first, last, name, col.Batches, col.Seen, len(samples), c.Seed, col.Skipped, late, c.Out, size, time.Since(t0).Seconds())
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

const exportUsage = "Usage: strata export sequences --out FILE.parquet [flags]\n"

// exportMain dispatches `strata export <what>`.
func exportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "export", args, stdout, stderr, exportUsage)
}

// exportSequencesMain runs `strata export sequences`: the closed loop over
// the given days (the operational layer moving-average, docs/agents.md), its
// operational state batches turned into LSTM samples, a seeded sample of
// them written as Parquet.
func exportSequencesMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return exportSequences(ctx, args, stdout, stderr, nil)
}

// exportSequences is exportSequencesMain with the cloud model of model
// (strata train's, for the LSTM's exports) unless args give a config file
// with the model's sections.
func exportSequences(ctx context.Context, args []string, stdout, stderr io.Writer, model *roleConfig) error {
	fs := flag.NewFlagSet("strata export sequences", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf        commonFlags
		sf        sourceFlags
		out       = fs.String("out", "", "write the samples to `FILE`.parquet (required)")
		daysF     = fs.String("days", "1-10", "days of the trace to replay, 1-based inclusive")
		sampleN   = fs.Int("sample", 200_000, "keep a seeded sample of this many samples (0: all)")
		seed      = fs.Uint64("seed", 1, "seed of the sample")
		strategic = fs.String("strategic", pipeline.DefaultStrategicPolicy, "strategic policy during the export: "+policyNames(schemas.Strategic))
		tactical  = fs.String("tactical", pipeline.DefaultTacticalPolicy, "tactical policy during the export: "+policyNames(schemas.Tactical))
		oper      = fs.String("operational", "moving-average", "operational policy during the export: "+policyNames(schemas.Operational))
		defPl     = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		polSeed   = fs.Int64("policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
		lateness  = fs.Duration("allowed-lateness", 600*time.Second, "how far out of start order the trace may be")
	)
	cf.registerBatch(fs)
	sf.registerWith(fs, "trace-seed", 0)
	fs.Lookup("synth-days").Usage = "generate `N` days of synthetic trace when no --trace is given (default: the last of --days)"
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("strata export sequences: --out is required")
	}
	if *sampleN < 0 {
		return errors.New("strata export sequences: --sample must not be negative")
	}
	first, last, err := parseDays(*daysF)
	if err != nil {
		return err
	}
	if sf.trace == "" && sf.synthDays == 0 {
		sf.synthDays = last
	}
	logger, epoch, pl, err := loopBasics(stderr, cf, *defPl)
	if err != nil {
		return err
	}
	fromUS := int64(first-1) * grid.StrategicTickUS
	toUS := int64(last) * grid.StrategicTickUS
	col := sequences.NewCollector(*seed, *sampleN)
	o := fullSpeedOpts(cf, epoch, lateness.Microseconds(), logger, fmt.Sprintf("export-sequences-%d", time.Now().UnixNano()))
	o.OnBatch = col.OnBatch
	if !conf.hasCloud() && model != nil {
		conf = model
	}
	lf := loopFlags{strategic: *strategic, tactical: *tactical, operational: *oper, placement: pl, policySeed: *polSeed, sources: &sf, conf: conf}
	t0 := time.Now()
	_, name, _, err := runWindow(ctx, lf, o, fromUS, toUS, 0)
	if err != nil {
		return fmt.Errorf("exporting sequences: %w", err)
	}
	samples, err := col.Samples()
	if err != nil {
		return fmt.Errorf("exporting sequences: %w", err)
	}
	size, err := sequences.Write(*out, samples, sequences.Meta{Seed: *seed, FirstDay: first, LastDay: last, Source: name,
		Seen: col.Seen, Skipped: col.Skipped})
	if err != nil {
		return err
	}
	late := ""
	if col.Late > 0 {
		late = fmt.Sprintf(", %d late rows dropped", col.Late)
	}
	fmt.Fprintf(stdout, "export sequences: days %d-%d of %s, %d operational batches: %d samples seen, %d sampled (seed %d), %d skipped (missing target)%s; %s, %d bytes, %.1f s wall\n",
		first, last, name, col.Batches, col.Seen, len(samples), *seed, col.Skipped, late, *out, size, time.Since(t0).Seconds())
	return nil
}

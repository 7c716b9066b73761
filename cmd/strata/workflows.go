package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/experiments/dataset"
	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/experiments/report"
	"github.com/strata-rl/strata/experiments/train"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/roleconf"
	"github.com/strata-rl/strata/replay"
)

// evalMain runs `strata eval`: the baselines (--baselines) or trained
// models (--models) on the evaluation days.
func evalMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := eval.DefaultConfig()
	fs := newFlagSet("strata eval", stderr)
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	c.NewModel, c.RunJSON = conf.NewModel, conf.RunJSON(args)
	return eval.Run(ctx, c, stdout, stderr)
}

// reportMain runs `strata report`: an evaluation run or read from the
// store, written as report.md, figures and summary.json.
func reportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := report.DefaultConfig()
	fs := newFlagSet("strata report", stderr)
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	c.Eval.NewModel, c.Eval.RunJSON = conf.NewModel, conf.RunJSON(args)
	c.VariantModel = func(sets []cloud.Setting) func(time.Time) (*cloud.Model, error) {
		return func(epoch time.Time) (*cloud.Model, error) {
			cat, err := conf.Catalog()
			if err != nil {
				return nil, err
			}
			return report.VariantModel(cat, conf.ModelConfig(), sets, epoch)
		}
	}
	return report.Run(ctx, c, stdout, stderr)
}

// boundsMain runs `strata bounds`: the tactical rules' mean reward against
// the per-hour oracle on the twin's counterfactuals (docs/bounds.md).
func boundsMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := experiments.DefaultBoundsConfig()
	fs := newFlagSet("strata bounds", stderr)
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	c.NewModel = conf.NewModel
	return experiments.RunBounds(ctx, c, stdout, stderr)
}

// trainMain runs `strata train`: DQN and PPO episodes with validation, and
// the LSTM.
func trainMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := train.DefaultConfig()
	fs := newFlagSet("strata train", stderr)
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	c.NewModel, c.RunJSON = conf.NewModel, conf.RunJSON(args)
	return train.Train(ctx, c, stdout, stderr)
}

// trainLSTMMain runs `strata train-lstm`: the operational LSTM on exported
// sequences.
func trainLSTMMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := train.DefaultLSTMConfig()
	fs := newFlagSet("strata train-lstm", stderr)
	c.RegisterFlags(fs, "")
	if _, err := roleconf.Parse(fs, args); err != nil {
		return err
	}
	return train.TrainLSTM(ctx, c, stdout, stderr)
}

const exportUsage = "Usage: strata export sequences --out FILE.parquet [flags]\n       strata export dataset --out DIR [flags]\n"

// exportMain dispatches `strata export <what>`.
func exportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "export", args, stdout, stderr, exportUsage)
}

// exportSequencesMain runs `strata export sequences`: the operational
// state of a closed-loop run as LSTM samples in Parquet.
func exportSequencesMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := train.DefaultExportConfig()
	fs := newFlagSet("strata export sequences", stderr)
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	c.NewModel = conf.NewModel
	return train.Export(ctx, c, stdout, stderr)
}

// exportDatasetMain runs `strata export dataset`: the seed's Phase-1
// dataset of a trace (experiments/dataset, docs/dataset.md). Without
// --trace and --synth-days the trace is synthetic, as long as the splits.
func exportDatasetMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := dataset.DefaultConfig()
	src := pipeline.Source{Seed: 1}
	fs := newFlagSet("strata export dataset", stderr)
	src.RegisterFlags(fs, "")
	fs.Lookup("synth-days").Usage = "generate `N` days of synthetic trace when no --trace is given (default: the last day of --splits)"
	c.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("strata export dataset: %w", err)
	}
	splits, _ := dataset.ParseSplits(c.Splits)
	epoch, _ := c.EpochTime()
	if src.Trace == "" && src.SynthDays == 0 {
		src.SynthDays = splits.LastDay()
	}
	s, name, lenUS, closeSrc, err := src.Open()
	if err != nil {
		return fmt.Errorf("strata export dataset: %w", err)
	}
	defer closeSrc()
	model, err := conf.NewModel(epoch)
	if err != nil {
		return fmt.Errorf("strata export dataset: building the cloud model: %w", err)
	}
	in := dataset.Input{Src: s, Name: name, LenUS: lenUS}
	if src.Trace == "" {
		in.Synthetic = &replay.SynthConfig{Days: src.SynthDays, Seed: src.Seed, Apps: src.Apps, Scale: src.Scale}
	}
	res, err := dataset.Export(ctx, c, in, model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "export dataset: %s, splits %s: train %d, valid %d, test %d rows (%d unassigned, %d late, %d malformed); %d functions of %d apps; %.1f s wall\n",
		name, res.Splits, res.Rows[0], res.Rows[1], res.Rows[2], res.Unassigned, res.Late, res.Malformed, res.Functions, res.Apps, res.Wall.Seconds())
	for _, f := range slices.Sorted(maps.Keys(res.Files)) {
		fmt.Fprintf(stdout, "  %s/%s  %d bytes\n", c.Out, f, res.Files[f])
	}
	return nil
}

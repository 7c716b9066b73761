package main

import (
	"context"
	"io"

	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/experiments/report"
	"github.com/strata-rl/strata/experiments/train"
	"github.com/strata-rl/strata/pipeline/roleconf"
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

const exportUsage = "Usage: strata export sequences --out FILE.parquet [flags]\n"

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

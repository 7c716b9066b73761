package report

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments/eval"
)

// Config configures `strata report`.
type Config struct {
	// Eval says which configurations run, over which days, and where
	// they are recorded (eval.Config.RegisterRunFlags).
	Eval eval.Config
	// Out is the directory of report.md, the figures and summary.json.
	Out string
	// FromStore builds the report from runs already in the store and runs
	// nothing (a configuration missing there is an error).
	FromStore bool
	// Partial, with FromStore, writes the report from the runs the store
	// has and lists the configurations that have none yet, instead of
	// failing on them (a long report seen while it still runs).
	Partial bool
	// FromRuns lists runs files (RunsFile, comma-separated) of earlier
	// reports: a run found there is taken with its figures as the file
	// has them and not run again, as if it were in the store.
	FromRuns string
	// KeepAlive lists keep-alive windows swept as a family of the
	// operational baseline keepalive (with --baselines and the operational
	// layer); "" sweeps none.
	KeepAlive string
	// Sensitivity re-runs the baseline comparison under each of Variants
	// and reports which rankings change.
	Sensitivity bool
	// Combinations adds, with the baselines, every combination of a causal
	// baseline per layer (eval.CombinationJobs, narrowed by --policies),
	// compared with the learned hierarchies in a section of their own.
	Combinations bool
	// VariantModel builds a variant's cloud model: the command's catalog
	// and configuration with the variant's settings (nil:
	// DefaultVariantModel).
	VariantModel func(sets []cloud.Setting) func(epoch time.Time) (*cloud.Model, error)
}

// DefaultConfig is `strata report`'s defaults: the baselines of every
// layer on days 13–14 of the 14-day synthetic trace after twelve warm-up
// days, a keep-alive sweep of 1 to 60 minutes, into report/.
func DefaultConfig() Config {
	c := eval.DefaultConfig()
	return Config{Eval: c, Out: "report", KeepAlive: "1m,5m,10m,20m,60m"}
}

// RegisterFlags registers the report's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.Eval.RegisterRunFlags(fs, prefix)
	fs.StringVar(&c.Out, prefix+"out", c.Out, "`DIR` of report.md, the PNG figures and summary.json")
	fs.BoolVar(&c.FromStore, prefix+"from-store", c.FromStore, "run nothing: build the report from the runs already in the store (each configuration's newest finished run)")
	fs.StringVar(&c.FromRuns, prefix+"from-runs", c.FromRuns, "earlier reports' "+RunsFile+" `FILE`s (comma-separated): their runs count as found, with the figures the files hold, as if they were in the store (a study resumed where its store is gone, or put together from several machines' reports); every report writes the runs it used to DIR/"+RunsFile)
	fs.BoolVar(&c.Partial, prefix+"partial", c.Partial, "with --from-store: write the report from the runs the store has, listing at its top the configurations that have no run yet (a long report seen while it still runs), instead of failing on them")
	fs.BoolVar(&c.Sensitivity, prefix+"sensitivity", c.Sensitivity, "with --baselines: re-run the baseline comparison with each ASSUMED hidden function property (working-set median and spread, CPU-bound fraction, runtime mix) at a low and a high value, and report which rankings change (8 × the baseline runs)")
	fs.BoolVar(&c.Combinations, prefix+"combinations", c.Combinations, "with --baselines: also run every combination of one causal baseline per layer (strategic × tactical × operational: 5 × 6 × 7 = 210 closed loops, fewer with --policies; the oracles are bounds, not combined; a combination --baselines runs already is not run twice) and compare the learned hierarchies of --models with them")
	fs.StringVar(&c.Eval.LSTMTest, prefix+"lstm-test", c.Eval.LSTMTest, "score the LSTMs of --models (the directories holding an lstm.ckpt) and --lstm-models, and the 5-step moving average, on the sequences `FILE`.parquet of the evaluation days (strata export sequences --days 13-14): the seed's §4.4 table")
	fs.StringVar(&c.Eval.LSTMModels, prefix+"lstm-models", c.Eval.LSTMModels, "with --lstm-test: more model `DIR`s whose lstm.ckpt is scored (comma-separated; one per training seed of a configuration)")
	fs.StringVar(&c.KeepAlive, prefix+"keepalive-sweep", c.KeepAlive, "with --baselines and the operational layer: keep-alive windows (durations, comma-separated) run as the keepalive baseline's family on the cold-start/keep-warm figure; \"\" none")
}

// Validate reports a report of nothing, without a store or a directory,
// and a sweep that does not parse.
func (c *Config) Validate() error {
	if c.Out == "" {
		return errors.New("strata report: --out DIR is required")
	}
	if c.Eval.Record.Store.Target() == "" {
		return errors.New("strata report: the report is read from the store: give --store FILE or --clickhouse DSN")
	}
	if _, err := c.keepAlive(); err != nil {
		return err
	}
	if c.Eval.LSTMModels != "" && c.Eval.LSTMTest == "" {
		return errors.New("strata report --lstm-models: give the test sequences with --lstm-test FILE")
	}
	if c.Partial && !c.FromStore {
		return errors.New("strata report --partial writes what the store has: give --from-store")
	}
	if c.Combinations && !c.Eval.Baselines {
		return errors.New("strata report --combinations extends the baseline comparison: give --baselines")
	}
	if c.Sensitivity && !c.Eval.Baselines {
		return errors.New("strata report --sensitivity re-runs the baseline comparison: give --baselines")
	}
	return c.Eval.Validate()
}

// keepAlive parses KeepAlive into keep-alive windows.
func (c *Config) keepAlive() ([]time.Duration, error) {
	var out []time.Duration
	for _, s := range strings.Split(c.KeepAlive, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("strata report --keepalive-sweep: %q is not a positive duration (e.g. 10m)", s)
		}
		out = append(out, d)
	}
	return out, nil
}

package pipeline

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

// Source selects the trace a run replays: a file or directory, or the
// synthetic generator.
type Source struct {
	// Trace is a trace file or directory in Format (docs/traces.md); ""
	// generates a synthetic trace.
	Trace string
	// Format is the trace's format, one of replay.Formats; "" is auto.
	Format string
	// Columns maps a csv or parquet trace's columns (replay.ParseColumns);
	// "" is the Azure 2021 trace's.
	Columns string
	// SynthDays, Seed and Apps configure the synthetic trace; Seed also
	// keys the expansion of an Azure 2019 trace's counts.
	SynthDays int
	Seed      int64
	Apps      int
	// Scale repeats the synthetic population (replay.SynthConfig.Scale).
	Scale int
	// SynthSet records that --synth-days was given: --trace excludes it.
	SynthSet bool
	// SeedFlag names the synthetic trace's seed flag; "" is "seed".
	SeedFlag string
}

// DefaultSource is the trace of a command that says nothing: one
// synthetic day of seed 1.
func DefaultSource() Source { return Source{SynthDays: 1, Seed: 1} }

// RegisterFlags registers --trace, --trace-format, --trace-columns,
// --synth-days, the seed flag (SeedFlag) and --apps, each name preceded by
// prefix; their defaults are s's values (an empty Format is auto), which
// --synth-days -h prints.
func (s *Source) RegisterFlags(fs *flag.FlagSet, prefix string) {
	seedFlag := s.SeedFlag
	if seedFlag == "" {
		seedFlag = "seed"
	}
	fs.StringVar(&s.Trace, prefix+"trace", s.Trace, "trace `PATH`: a file (an Azure 2021 or mapped CSV, plain or .gz, or Parquet) or an Azure 2019 directory, see docs/traces.md; default: a synthetic trace")
	fs.StringVar(&s.Format, prefix+"trace-format", cmp.Or(s.Format, string(replay.FormatAuto)),
		"`format` of --trace: auto (a directory is azure2019, .parquet is parquet, else azure2021, or csv with --trace-columns), azure2021, azure2019, csv or parquet")
	fs.StringVar(&s.Columns, prefix+"trace-columns", s.Columns,
		"column `mapping` of a csv or parquet --trace, e.g. app=owner_app,func=fn,end=ts,duration=dur_ms:ms,unit=s (default: app,func,end_timestamp,duration in seconds)")
	fs.Var(&daysValue{days: &s.SynthDays, set: &s.SynthSet}, prefix+"synth-days", "generate `N` days of synthetic trace when no --trace is given")
	fs.Int64Var(&s.Seed, prefix+seedFlag, s.Seed, "seed of the synthetic trace, and of the expansion of an Azure 2019 trace's counts into invocations")
	fs.IntVar(&s.Apps, prefix+"apps", s.Apps, "keep only this many apps of the synthetic trace (0 = all 119)")
	fs.IntVar(&s.Scale, prefix+"scale", s.Scale, "generate the synthetic trace's apps `N` times over, each copy under ids of its own (N× the apps, functions and invocations, the same mix; 0 and 1: once; docs/capacity.md)")
}

// Validate reports a trace file given together with --synth-days, a
// format or column mapping that does not parse or does not fit, and
// either given without a trace.
func (s *Source) Validate() error {
	if s.Trace != "" && s.SynthSet {
		return errors.New("--trace and --synth-days are exclusive")
	}
	if s.Trace != "" && s.Scale > 1 {
		return errors.New("--scale repeats the synthetic trace's apps: it does not apply to --trace")
	}
	if err := s.openConfig().Check(); err != nil {
		return fmt.Errorf("checking --trace-format and --trace-columns: %w", err)
	}
	if s.Trace == "" {
		if f := replay.Format(s.Format); f != "" && f != replay.FormatAuto {
			return fmt.Errorf("--trace-format %s needs a --trace", f)
		}
		if s.Columns != "" {
			return errors.New("--trace-columns needs a --trace")
		}
	}
	return nil
}

// openConfig is how s opens its trace.
func (s *Source) openConfig() replay.OpenConfig {
	return replay.OpenConfig{Format: replay.Format(s.Format), Columns: s.Columns, Seed: s.Seed}
}

// daysValue is the value of --synth-days: a number of days that records
// whether the command line (or a config file) set it.
type daysValue struct {
	days *int
	set  *bool
}

func (v *daysValue) String() string {
	if v == nil || v.days == nil {
		return "0"
	}
	return strconv.Itoa(*v.days)
}

func (v *daysValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number of days")
	}
	*v.days, *v.set = n, true
	return nil
}

// Open returns the selected source, its name for messages (the path of a
// 2021 CSV; with the format, and the seed or column mapping, for the
// others), its length in trace microseconds when known (0 otherwise) and a
// closer.
func (s *Source) Open() (src replay.Source, name string, lenUS int64, closeSrc func(), err error) {
	if err := s.Validate(); err != nil {
		return nil, "", 0, nil, err
	}
	if s.Trace != "" {
		r, f, err := replay.Open(s.Trace, s.openConfig())
		if err != nil {
			return nil, "", 0, nil, err
		}
		name = s.Trace
		switch f {
		case replay.FormatAzure2019:
			name = fmt.Sprintf("%s (azure2019, seed %d)", s.Trace, s.Seed)
		case replay.FormatCSV, replay.FormatParquet:
			cols, _ := replay.ParseColumns(s.Columns)
			name = fmt.Sprintf("%s (%s %s)", s.Trace, f, cols)
		}
		if l, ok := r.(interface{ LengthUS() int64 }); ok {
			lenUS = l.LengthUS()
		}
		return r, name, lenUS, func() { _ = r.Close() }, nil
	}
	days := s.SynthDays
	syn, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: s.Seed, Apps: s.Apps, Scale: s.Scale})
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("creating synthetic trace: %w", err)
	}
	name = fmt.Sprintf("synthetic(days=%d,seed=%d,apps=%d)", days, s.Seed, s.Apps)
	if s.Scale > 1 {
		name = fmt.Sprintf("synthetic(days=%d,seed=%d,apps=%d,scale=%d)", days, s.Seed, s.Apps, s.Scale)
	}
	return syn, name, int64(days) * grid.StrategicTickUS, func() {}, nil
}

// ReplayFlags are the flags of the roles that replay a trace, as the
// command line gave them.
type ReplayFlags struct {
	// Speed is trace seconds per wall second, or max.
	Speed string
	// RunID names the run; "" draws one.
	RunID string
	// Lateness is how far out of start order the trace may be.
	Lateness time.Duration
	// Progress shows a progress bar on stderr.
	Progress bool
}

// DefaultReplayFlags are the replay's defaults: full speed, a drawn run
// id, DefaultLateness, a progress bar.
func DefaultReplayFlags() ReplayFlags {
	return ReplayFlags{Speed: "max", Lateness: DefaultLateness, Progress: true}
}

// RegisterFlags registers --speed, --run-id, --allowed-lateness and
// --progress, each name preceded by prefix; their defaults are r's values.
func (r *ReplayFlags) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&r.Speed, prefix+"speed", r.Speed, "replay speed: trace seconds per wall second (3600 = an hour a second), or max")
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "run id (default: random)")
	fs.DurationVar(&r.Lateness, prefix+"allowed-lateness", r.Lateness, "how far out of start order the trace may be; later rows are dead-lettered")
	fs.BoolVar(&r.Progress, prefix+"progress", r.Progress, "show a progress bar on stderr")
}

// Validate reports a speed that does not parse.
func (r *ReplayFlags) Validate() error {
	_, err := replay.ParseSpeed(r.Speed)
	return err
}

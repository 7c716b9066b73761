package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

// sourceFlags select the trace: a file, or the synthetic generator.
type sourceFlags struct {
	trace     string
	synthDays int
	// synthSet records that --synth-days was given: --trace excludes it.
	synthSet bool
	seed     int64
	apps     int
}

// register registers the flags: one synthetic day by default, its seed
// called --seed.
func (f *sourceFlags) register(fs *flag.FlagSet) { f.registerWith(fs, "seed", 1) }

// registerWith registers the flags with the synthetic trace's seed called
// seedFlag and days synthetic days by default, which --synth-days -h
// prints.
func (f *sourceFlags) registerWith(fs *flag.FlagSet, seedFlag string, days int) {
	fs.StringVar(&f.trace, "trace", "", "trace `FILE` in the Azure 2021 format (plain or .gz); default: a synthetic trace")
	f.synthDays = days
	fs.Var(&daysValue{days: &f.synthDays, set: &f.synthSet}, "synth-days", "generate `N` days of synthetic trace when no --trace is given")
	fs.Int64Var(&f.seed, seedFlag, 1, "seed of the synthetic trace")
	fs.IntVar(&f.apps, "apps", 0, "keep only this many apps of the synthetic trace (0 = all 119)")
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

// open returns the selected source, its name for messages, its length in
// trace microseconds when known (0 otherwise) and a closer.
func (f *sourceFlags) open() (replay.Source, string, int64, func(), error) {
	if f.trace != "" {
		if f.synthSet {
			return nil, "", 0, nil, errors.New("--trace and --synth-days are exclusive")
		}
		r, err := replay.OpenTrace(f.trace)
		if err != nil {
			return nil, "", 0, nil, err
		}
		return r, f.trace, 0, func() { _ = r.Close() }, nil
	}
	days := f.synthDays
	s, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: f.seed, Apps: f.apps})
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("creating synthetic trace: %w", err)
	}
	return s, fmt.Sprintf("synthetic(days=%d,seed=%d,apps=%d)", days, f.seed, f.apps), int64(days) * grid.StrategicTickUS, func() {}, nil
}

// summary is the JSON that `strata run --summary` writes.
type summary struct {
	RunID                string           `json:"run_id"`
	Source               string           `json:"source"`
	Invocations          int64            `json:"invocations"`
	Windowed             int64            `json:"windowed_invocations"`
	Ticks                map[string]int64 `json:"ticks"`
	StatesPublished      int64            `json:"states_published"`
	DeadLetters          int64            `json:"dead_letters"`
	BadLines             int64            `json:"bad_lines"`
	Late                 int64            `json:"late"`
	HorizonSeconds       float64          `json:"horizon_seconds"`
	WallSeconds          float64          `json:"wall_seconds"`
	InvocationsPerSecond float64          `json:"invocations_per_second"`
	Speed                string           `json:"speed"`
	Kafka                string           `json:"kafka"`
	NATS                 string           `json:"nats"`
}

// newSummary builds the summary fields both loops share.
func newSummary(o pipeline.Config, source string, rep producers.ReplayResult, fs features.Stats, wall time.Duration) summary {
	s := summary{
		RunID: o.RunID, Source: source, Invocations: rep.Invocations, Windowed: fs.Invocations,
		Ticks: fs.Ticks, StatesPublished: fs.StatesPublished,
		DeadLetters: rep.DeadLetters + fs.Late + fs.Malformed,
		BadLines:    rep.BadLines, Late: rep.Late + fs.Late,
		HorizonSeconds: float64(rep.HorizonUS) / 1e6, WallSeconds: wall.Seconds(), Speed: o.Speed.String(),
		Kafka: orDefault(strings.Join(o.Brokers, ","), "embedded"), NATS: orDefault(o.NATSURL, "embedded"),
	}
	if w := wall.Seconds(); w > 0 {
		s.InvocationsPerSecond = float64(s.Invocations) / w
	}
	return s
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("parsing --log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func parseEpoch(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing --trace-epoch %q (want RFC 3339, e.g. 2022-01-30T00:00:00Z): %w", s, err)
	}
	return t.UTC(), nil
}

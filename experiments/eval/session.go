package eval

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas/grid"
)

// Session holds what every run of one evaluation shares: the window of
// days, the loop's options and the store the runs are recorded in. `strata
// eval` runs its configurations in one; `strata report` runs the Jobs it
// plans, one at a time or several at once.
type Session struct {
	base        pipeline.LoopOptions
	win         window
	first, last int
	rec         *pipeline.Recorder
	// shared marks a Variant: its store is its parent's, closed there.
	shared bool
}

// NewSession validates c and prepares its runs: the logger, the epoch, the
// placement and the store (c.Record; none when it names none).
func NewSession(ctx context.Context, c Config, stderr io.Writer) (*Session, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	first, last, _ := experiments.ParseDays(c.EvalDays)
	w := c.WarmupDays
	if w < 0 || w > first-1 {
		w = first - 1
	}
	logger, epoch, pl, err := c.LoopBasics(stderr, c.Placement)
	if err != nil {
		return nil, err
	}
	rec, err := c.Record.Open(ctx, logger)
	if err != nil {
		return nil, err
	}
	win := window{cfg: c.Config, epoch: epoch, latenessUS: c.Lateness.Microseconds(), logger: logger,
		fromUS: int64(first-1-w) * grid.StrategicTickUS, toUS: int64(last) * grid.StrategicTickUS, warmupDays: w,
		rec: rec, runJSON: c.RunJSON}
	base := pipeline.LoopOptions{Placement: pl, PolicySeed: c.PolicySeed, Source: &c.Source, Cache: &pipeline.LoopCache{}, NewModel: c.NewModel}
	return &Session{base: base, win: win, first: first, last: last, rec: rec}, nil
}

// Close closes the session's store (a Variant leaves it to its parent).
func (s *Session) Close() error {
	if s.rec == nil || s.shared {
		return nil
	}
	return s.rec.Close()
}

// Variant returns a session over the same window and store whose runs
// evaluate under the cloud model newModel builds (a sensitivity study's
// variant). Its static-best choices are computed afresh under that model.
func (s *Session) Variant(newModel func(epoch time.Time) (*cloud.Model, error)) *Session {
	v := *s
	v.shared = true
	v.base.NewModel, v.base.Cache = newModel, &pipeline.LoopCache{}
	return &v
}

// Recorder returns the store the runs are recorded in (nil: none).
func (s *Session) Recorder() *pipeline.Recorder { return s.rec }

// Job is one closed-loop run of an evaluation: a configuration, and for a
// learned one the model directory of one training seed.
type Job struct {
	// Section is the comparison it belongs to: reference, strategic,
	// tactical or operational (baselines), or the models evaluation's
	// tactical, strategic, ablation and hierarchy.
	Section string
	// Label is runs.label of its run: Section and the policy (or the
	// models evaluation's row label), "reference" for the reference.
	Label string
	// Policies are the policies per layer; Models the model directory
	// ("" for baselines); PolicySeed the seed of the policies' random
	// choices.
	Policies   map[string]string
	Models     string
	PolicySeed int64
	row        evalRow
}

// Jobs returns the runs c asks for, in order: with Baselines the
// reference and one run per baseline of each layer in Layers (Policies
// narrows them), with Models the models evaluation's configurations (Rows
// narrows them), one run per model directory where a configuration has a
// learned layer.
func (c Config) Jobs() ([]Job, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var jobs []Job
	if c.Baselines {
		layers, _ := pipeline.ParseLayers(c.Layers)
		var only []string
		if c.Policies != "" {
			only = SplitPolicies(c.Policies)
		}
		for _, r := range evalVariants(layers, only) {
			jobs = append(jobs, newJob(r.Varied, r, c.PolicySeed))
		}
	}
	if c.Models != "" {
		me := c.modelsEval()
		if len(me.dirs) == 0 {
			return nil, errNoModels
		}
		for _, mr := range modelsRows(me, allHaveLSTM(me.dirs)) {
			for k, r := range mr.Runs {
				seed := c.PolicySeed
				if r.Models != "" {
					seed = int64(k + 1) // as runModelsRows: each seed's own policy seed
				}
				jobs = append(jobs, newJob(mr.Section, r, seed))
			}
		}
	}
	return jobs, nil
}

func newJob(section string, r evalRow, seed int64) Job {
	return Job{Section: section, Label: runLabel(r), Policies: r.Policies, Models: r.Models, PolicySeed: seed, row: r}
}

// runLabel is runs.label of r's run: its section and policy, the model
// directory a learned row's policy names after "@" left out (runs.models
// holds it).
func runLabel(r evalRow) string {
	pol, _, _ := strings.Cut(r.Policy, "@")
	return strings.TrimSpace(r.Varied + " " + pol)
}

// Run runs job j over the session's window, recording it in the store,
// and returns its run id.
func (s *Session) Run(ctx context.Context, j Job) (string, error) {
	r := j.row
	r.label = j.Label
	lo := s.base
	lo.Models, lo.PolicySeed = j.Models, j.PolicySeed
	if err := runEvalRow(ctx, &r, lo, s.win); err != nil {
		return "", err
	}
	return r.RunID, nil
}

// modelsEval is the models evaluation c asks for.
func (c Config) modelsEval() modelsEval {
	return modelsEval{dirs: pipeline.SplitList(c.Models), tacticalOperational: c.TacticalOperational, lstmTest: c.LSTMTest,
		lstmExtra: pipeline.SplitList(c.LSTMModels), csv: c.CSV, summary: c.Summary, rows: pipeline.SplitList(c.Rows), parallel: c.Parallel, dqnMask: c.DQNMask, ppoMask: c.PPOMask}
}

// Window is what the runs table records of the session's runs besides
// their configuration: the trace's name and seed, the trace day replayed
// first, the scored days and the placement before any decision.
type Window struct {
	Source                            string
	Seed                              int64
	FirstDay, ScoredFirst, ScoredLast int32
	Placement                         string
}

// Window returns the session's window (it opens the trace source to read
// its name).
func (s *Session) Window() (Window, error) {
	_, name, _, closeSrc, err := s.base.Source.Open()
	if err != nil {
		return Window{}, err
	}
	closeSrc()
	return Window{Source: name, Seed: s.base.Source.Seed, FirstDay: int32(s.first - s.win.warmupDays), ScoredFirst: int32(s.first),
		ScoredLast: int32(s.last), Placement: pipeline.FormatPlacement(s.base.Placement)}, nil
}

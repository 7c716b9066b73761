package eval

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// The reference configuration of `strata eval --baselines`: `strata run`'s
// defaults. Each comparison row replaces one layer's policy of it.
const (
	refStrategic   = pipeline.DefaultStrategicPolicy
	refTactical    = pipeline.DefaultTacticalPolicy
	refOperational = pipeline.DefaultOperationalPolicy
)

// evalRow is one line of the comparison: a configuration and its figures
// over the evaluation days.
type evalRow struct {
	Varied     string             `json:"varied"`
	Policy     string             `json:"policy"`
	Policies   map[string]string  `json:"policies"`
	Models     string             `json:"models,omitempty"`
	MeanReward map[string]float64 `json:"mean_reward"`
	MeanRegret map[string]float64 `json:"mean_regret"`
	// MeanRewardInvoked and MeanRegretInvoked are the means over the
	// reward rows with invocations, InvokedShare their share of the rows
	// (the others have only pre-warm cost; docs/baselines.md, "Why these
	// rows look odd").
	MeanRewardInvoked map[string]float64 `json:"mean_reward_invoked"`
	MeanRegretInvoked map[string]float64 `json:"mean_regret_invoked"`
	InvokedShare      map[string]float64 `json:"invoked_share"`
	Invocations       int64              `json:"invocations"`
	CostPerM          float64            `json:"cost_per_million_usd"`
	KeepWarmPerM      float64            `json:"keep_warm_per_million_usd"`
	GCO2ePerM         float64            `json:"gco2e_per_million"`
	P50               float64            `json:"latency_p50_ms"`
	P95               float64            `json:"latency_p95_ms"`
	P99               float64            `json:"latency_p99_ms"`
	ColdRate          float64            `json:"cold_start_rate"`
	SLARate           float64            `json:"sla_violation_rate"`
	WallSeconds       float64            `json:"wall_seconds"`
	// RunID is the run's id in the store (runs.run_id).
	RunID string `json:"run_id"`
	// label, if set, is runs.label instead of runLabel's (a Job's).
	label string
}

// evalVariants returns the configurations to run: the reference, then for
// each layer in layers every other baseline of that layer, or, when only
// is not empty, the policies of only that belong to the layer, in only's
// order — a baseline, strata's own policies (agents.Own) or either with
// parameter overrides ("hazard-prewarm:threshold=0.05").
func evalVariants(layers []schemas.Layer, only []string) []evalRow {
	ref := map[string]string{string(schemas.Strategic): refStrategic, string(schemas.Tactical): refTactical, string(schemas.Operational): refOperational}
	out := []evalRow{{Varied: "reference", Policy: "", Policies: ref}}
	for _, l := range layers {
		names := Baselines(l)
		if len(only) > 0 {
			known := append(slices.Clone(names), agents.Own(l)...)
			names = nil
			for _, n := range only {
				if base, _, _ := strings.Cut(n, ":"); slices.Contains(known, base) {
					names = append(names, n)
				}
			}
		}
		for _, n := range names {
			if n == ref[string(l)] {
				continue
			}
			p := map[string]string{}
			for k, v := range ref {
				p[k] = v
			}
			p[string(l)] = n
			out = append(out, evalRow{Varied: string(l), Policy: n, Policies: p})
		}
	}
	return out
}

// Config configures `strata eval`.
type Config struct {
	// Common is where Kafka and NATS are (embedded when empty), the log
	// level and the trace epoch.
	pipeline.Common
	Source pipeline.Source
	// Baselines compares the baseline policies, varying one layer at a
	// time against the reference.
	Baselines bool
	// EvalDays are the scored days, 1-based inclusive; WarmupDays the days
	// before them replayed unscored (-1: every day before them).
	EvalDays   string
	WarmupDays int
	// Layers are the layers whose policies are varied; Policies, if set,
	// the only policies varied to (both comma-separated).
	Layers, Policies string
	// CSV prints CSV instead of a markdown table; Summary, if set, also
	// writes the rows as JSON to that file.
	CSV     bool
	Summary string
	// Models are the model directories of the learned policies evaluated
	// (one per training seed, comma-separated); TacticalOperational the
	// operational policy of the tactical comparison; LSTMTest the
	// sequences file of the evaluation days the LSTMs are scored on;
	// LSTMModels more directories whose lstm.ckpt is scored; Rows the only
	// configurations run.
	Models, TacticalOperational, LSTMTest, LSTMModels, Rows string
	// DQNMask, when set, overrides the action mask of the DQN checkpoints
	// evaluated (none or slo-risk; dqn.Config.Mask): their rows serve
	// "dqn:mask=DQNMask".
	DQNMask string
	// PPOMask likewise overrides the PPO checkpoints' mask (none or
	// memory; ppo.Config.Mask): "ppo:mask=PPOMask".
	PPOMask string
	// Placement is the placement before any decision.
	Placement string
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Lateness is how far out of start order the trace may be.
	Lateness time.Duration
	// Parallel is how many configurations run at once, each on brokers of
	// its own (embedded) or under a run id of its own (remote).
	Parallel int
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// Record says where each configuration's run is recorded (a runs row,
	// rewards and decisions of the evaluation days, latency histograms).
	Record pipeline.RecordFlags
	// RunJSON is the command's flags as JSON, for the runs rows.
	RunJSON string
}

// DefaultConfig is `strata eval`'s defaults.
func DefaultConfig() Config {
	return Config{Common: pipeline.DefaultCommon(), Source: pipeline.Source{SynthDays: 14, Seed: 1}, EvalDays: "13-14", WarmupDays: -1,
		Layers: "strategic,tactical,operational", TacticalOperational: "none", Placement: pipeline.DefaultPlacement,
		PolicySeed: pipeline.DefaultPolicySeed, Lateness: pipeline.DefaultLateness, Parallel: 1, Record: pipeline.DefaultRecordFlags()}
}

// RegisterFlags registers the evaluation's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.RegisterRunFlags(fs, prefix)
	fs.BoolVar(&c.CSV, prefix+"csv", c.CSV, "print CSV instead of a markdown table")
	fs.StringVar(&c.Summary, prefix+"summary", c.Summary, "also write the rows as JSON to `FILE`")
	fs.StringVar(&c.LSTMTest, prefix+"lstm-test", c.LSTMTest, "with --models: sequences `FILE`.parquet of the evaluation days (strata export sequences --days 13-14) to score the LSTMs on")
	fs.StringVar(&c.LSTMModels, prefix+"lstm-models", c.LSTMModels, "with --lstm-test: more `DIR`s whose lstm.ckpt is scored (e.g. symmetric-loss models)")
}

// RegisterRunFlags registers the flags that say which runs an evaluation
// makes and where they are recorded (every flag of `strata eval` but
// --csv, --summary, --lstm-test and --lstm-models; `strata report` takes
// these), each name preceded by prefix; their defaults are c's values.
func (c *Config) RegisterRunFlags(fs *flag.FlagSet, prefix string) {
	c.RegisterBatchFlags(fs, prefix)
	c.Source.RegisterFlags(fs, prefix)
	fs.BoolVar(&c.Baselines, prefix+"baselines", c.Baselines, "compare the baseline policies, varying one layer at a time against the reference ("+refStrategic+" / "+refTactical+" / "+refOperational+")")
	fs.StringVar(&c.EvalDays, prefix+"eval-days", c.EvalDays, "evaluation days, 1-based inclusive (scored)")
	fs.IntVar(&c.WarmupDays, prefix+"warmup-days", c.WarmupDays, "days before the evaluation window replayed unscored as warm-up (-1: every day before it, so pools, histograms and keep-alive state are those of a system that ran the whole trace)")
	fs.StringVar(&c.Layers, prefix+"layers", c.Layers, "layers whose policies are varied")
	fs.StringVar(&c.Policies, prefix+"policies", c.Policies, "vary only to these policies (comma-separated; a policy may carry overrides, hazard-prewarm:threshold=0.05,bandwidth_s=60; default every baseline of each layer)")
	fs.StringVar(&c.Models, prefix+"models", c.Models, "evaluate the learned policies of these model `DIR`s (one per training seed, comma-separated; from strata train): PPO against the tactical baselines, the DQN against the strategic ones, the ablations, the LSTM's metrics")
	fs.StringVar(&c.TacticalOperational, prefix+"tactical-operational", c.TacticalOperational, "with --models: operational policy of the tactical and strategic comparisons (the one strata train ran; none = no pre-warming)")
	fs.StringVar(&c.Rows, prefix+"rows", c.Rows, "with --models: run only these configurations (tactical policy names, ppo, \"strategic \" + a strategic policy name, dqn, random, DQN only, DQN+PPO, DQN+PPO+LSTM, or the full hierarchy's: \"baselines: reference\", \"baselines: static-best\", \"baselines: static-best + hazard-prewarm\", \"hindsight: oracle\", DQN+PPO+hybrid-histogram, DQN+PPO+hazard-prewarm, static-best+PPO+hybrid-histogram; comma-separated; a name two sections share, random, selects both unless preceded by its section: tactical random, ablation random)")
	fs.StringVar(&c.DQNMask, prefix+"dqn-mask", c.DQNMask, "with --models: serve every DQN checkpoint with this action `MASK` instead of the one it was trained with: none, or slo-risk (rules out a provider whose expected SLA penalty no cost, latency or carbon gain can pay for; docs/agents.md)")
	fs.StringVar(&c.PPOMask, prefix+"ppo-mask", c.PPOMask, "with --models: serve every PPO checkpoint with this state-dependent action `MASK` instead of the one it was trained with: none, or memory (rules out every tier below the memory the function has been seen using; placement-v2 checkpoints; docs/agents.md)")
	fs.StringVar(&c.Placement, prefix+"default-placement", c.Placement, "placement before any decision: provider/metro/memory MB")
	fs.Int64Var(&c.PolicySeed, prefix+"policy-seed", c.PolicySeed, "seed of the policies' random choices")
	fs.DurationVar(&c.Lateness, prefix+"allowed-lateness", c.Lateness, "how far out of start order the trace may be")
	fs.IntVar(&c.Parallel, prefix+"parallel", c.Parallel, "configurations run at once (each closed loop on embedded brokers of its own; results do not depend on it)")
	c.Record.RegisterFlags(fs, prefix)
}

// Validate reports an evaluation of nothing and days or layers that do
// not parse.
func (c *Config) Validate() error {
	if !c.Baselines && c.Models == "" {
		return errors.New("strata eval: say what to compare: --baselines, or --models DIR[,DIR…]")
	}
	if _, _, err := experiments.ParseDays(c.EvalDays); err != nil {
		return err
	}
	if _, err := pipeline.ParseLayers(c.Layers); err != nil {
		return fmt.Errorf("parsing --layers: %w", err)
	}
	if c.DQNMask != "" {
		if _, err := dqn.ParseMask(c.DQNMask); err != nil {
			return fmt.Errorf("strata eval --dqn-mask: %w", err)
		}
	}
	if c.PPOMask != "" {
		if _, err := ppo.ParseMask(c.PPOMask); err != nil {
			return fmt.Errorf("strata eval --ppo-mask: %w", err)
		}
	}
	if c.Parallel < 1 {
		return fmt.Errorf("strata eval: --parallel %d: at least 1 configuration must run at a time", c.Parallel)
	}
	return nil
}

// Run runs the evaluation: with Models the learned policies (Models),
// else the baselines, the closed loop once per configuration over the
// evaluation days after unscored warm-up days, and one comparison table
// on stdout; each run's figures go to stderr as it ends.
func Run(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	s, err := NewSession(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	base, win, first, last := s.base, s.win, s.first, s.last
	if c.Models != "" {
		me := c.modelsEval()
		if len(me.dirs) == 0 {
			return errNoModels
		}
		return evalModels(ctx, me, base, win, first, last, stdout, stderr)
	}
	layers, _ := pipeline.ParseLayers(c.Layers)
	w := win.warmupDays
	var only []string
	if c.Policies != "" {
		only = SplitPolicies(c.Policies)
	}
	rows := evalVariants(layers, only)
	p := newProgress(stderr, len(rows))
	err = runParallel(ctx, c.Parallel, len(rows), func(ctx context.Context, i int) error {
		r := &rows[i]
		if err := runEvalRow(ctx, r, base, win); err != nil {
			return err
		}
		p.printf("%s %s: %d invocations scored, %.1f s", r.Varied, r.Policy, r.Invocations, r.WallSeconds)
		return nil
	})
	if err != nil {
		return err
	}
	header := []string{"varied", "policy", "R strategic", "R tactical", "R tactical, invoked hours", "invoked % of tactical rows", "R operational", "regret strategic", "regret tactical", "regret operational",
		"USD / M inv", "keep-warm USD / M inv", "gCO2e / M inv", "p50 ms", "p95 ms", "p99 ms", "cold %", "SLA viol %"}
	table := make([][]string, len(rows))
	for i, r := range rows {
		pol := r.Policy
		if r.Varied == "reference" {
			pol = r.Policies["strategic"] + " / " + r.Policies["tactical"] + " / " + r.Policies["operational"]
		}
		table[i] = []string{r.Varied, pol,
			f4(r.MeanReward["strategic"]), f4(r.MeanReward["tactical"]), f4(r.MeanRewardInvoked["tactical"]), fmt.Sprintf("%.1f", 100*r.InvokedShare["tactical"]), f4(r.MeanReward["operational"]),
			f4(r.MeanRegret["strategic"]), f4(r.MeanRegret["tactical"]), f4(r.MeanRegret["operational"]),
			fmt.Sprintf("%.2f", r.CostPerM), fmt.Sprintf("%.2f", r.KeepWarmPerM), fmt.Sprintf("%.0f", r.GCO2ePerM),
			fmt.Sprintf("%.0f", r.P50), fmt.Sprintf("%.0f", r.P95), fmt.Sprintf("%.0f", r.P99),
			fmt.Sprintf("%.2f", 100*r.ColdRate), fmt.Sprintf("%.2f", 100*r.SLARate)}
	}
	if c.CSV {
		cw := csv.NewWriter(stdout)
		_ = cw.Write(header)
		_ = cw.WriteAll(table)
		if err := cw.Error(); err != nil {
			return fmt.Errorf("writing the comparison: %w", err)
		}
	} else {
		fmt.Fprintf(stdout, "Days %d–%d scored (%d warm-up day(s) before, unscored); mean reward and regret against the per-interval oracle per layer; figures over the scored invocations.\n\n", first, last, w)
		fmt.Fprintf(stdout, "| %s |\n", strings.Join(header, " | "))
		fmt.Fprintf(stdout, "|%s\n", strings.Repeat("---|", len(header)))
		for _, t := range table {
			fmt.Fprintf(stdout, "| %s |\n", strings.Join(t, " | "))
		}
	}
	if c.Summary != "" {
		return pipeline.WriteJSON(c.Summary, rows)
	}
	return nil
}

// window is the evaluation window every configuration runs over: the
// days [fromUS, toUS) of the trace, the first warmupDays of them
// unscored, on cfg's Kafka and NATS.
type window struct {
	cfg          pipeline.Config
	epoch        time.Time
	latenessUS   int64
	logger       *slog.Logger
	fromUS, toUS int64
	warmupDays   int
	// rec, if not nil, records each run; runJSON is the command's flags.
	rec     *pipeline.Recorder
	runJSON string
}

// runIDSafe maps s to the characters a run id may hold (it becomes part
// of NATS keys and subjects): letters, digits, '-' and '_'.
func runIDSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func f4(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// runEvalRow runs r's configuration (r.Policies; lo gives the rest) over
// the window w, and fills r's figures.
func runEvalRow(ctx context.Context, r *evalRow, lo pipeline.LoopOptions, w window) error {
	o := experiments.FullSpeed(w.cfg, w.epoch, w.latenessUS, w.logger, fmt.Sprintf("eval-%s-%s-%d", r.Varied, runIDSafe(r.Policy), time.Now().UnixNano()))
	lo.Strategic, lo.Tactical, lo.Operational = r.Policies["strategic"], r.Policies["tactical"], r.Policies["operational"]
	t0 := time.Now()
	var rec *experiments.RunRecord
	if w.rec != nil {
		label := r.label
		if label == "" {
			label = runLabel(*r)
		}
		rec = &experiments.RunRecord{Rec: w.rec, Row: &stratapb.Run{Kind: "eval", Label: label, ConfigJson: w.runJSON}}
	}
	res, name, o, err := experiments.RunWindow(ctx, lo, o, w.fromUS, w.toUS, int64(w.warmupDays)*grid.TicksPerDay, rec)
	if err != nil {
		return fmt.Errorf("evaluating %s=%s: %w", r.Varied, r.Policy, err)
	}
	sum := pipeline.NewLoopSummary(o, name, res, r.Policies)
	r.MeanReward, r.MeanRegret = map[string]float64{}, map[string]float64{}
	r.MeanRewardInvoked, r.MeanRegretInvoked, r.InvokedShare = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for l, ls := range res.Twin.Layers {
		r.MeanReward[l], r.MeanRegret[l] = ls.MeanReward, ls.MeanRegret
		r.MeanRewardInvoked[l], r.MeanRegretInvoked[l] = ls.MeanRewardInvoked, ls.MeanRegretInvoked
		if ls.Rewards > 0 {
			r.InvokedShare[l] = float64(ls.InvokedRewards) / float64(ls.Rewards)
		}
	}
	r.Invocations = res.Twin.ScoredInvocations
	r.CostPerM, r.KeepWarmPerM, r.GCO2ePerM, r.ColdRate, r.SLARate = sum.CostPerMillionUSD, sum.KeepWarmPerMillionUSD, sum.GCO2ePerMillion, sum.ColdStartRate, sum.SLAViolationRate
	r.P50, r.P95, r.P99 = sum.LatencyP50MS, sum.LatencyP95MS, sum.LatencyP99MS
	r.WallSeconds = time.Since(t0).Seconds()
	r.RunID = o.RunID
	return nil
}

// runParallel runs job(0) … job(n−1), at most parallel at once, and
// returns the first error; the jobs after a failed one are not started.
// Each job writes only its own results, so they are the same in any order.
func runParallel(ctx context.Context, parallel, n int, job func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return job(ctx, i) })
	}
	return g.Wait()
}

// progress numbers the lines of runs that finish, in the order they do.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	done  int
	total int
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

// printf prints "eval k/total: " and the line, k the runs finished so far.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	fmt.Fprintf(p.w, "eval %d/%d: "+format+"\n", append([]any{p.done, p.total}, args...)...)
}

// SplitPolicies splits a comma-separated list of policies whose names may
// carry parameter overrides ("a:k=v,k2=v2,b"): an element with "=" and no
// ":" continues the previous policy's overrides.
func SplitPolicies(list string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		if len(out) > 0 && strings.Contains(e, "=") && !strings.Contains(e, ":") && strings.Contains(out[len(out)-1], ":") {
			out[len(out)-1] += "," + e
			continue
		}
		out = append(out, e)
	}
	return out
}

package main

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
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// The reference configuration of `strata eval --baselines`: `strata run`'s
// defaults. Each comparison row replaces one layer's policy of it.
const (
	refStrategic   = "greedy-cost"
	refTactical    = "greedy-cost"
	refOperational = "hybrid-histogram"
)

// window replays the invocations of src that start in [fromUS, toUS),
// shifted by −fromUS so the window starts at trace time 0.
type window struct {
	src          replay.Source
	fromUS, toUS int64
}

func (w *window) Next() (replay.Invocation, error) {
	for {
		in, err := w.src.Next()
		if err != nil {
			return in, err
		}
		if s := in.StartUS(); s < w.fromUS || s >= w.toUS {
			continue
		}
		in.EndUS -= w.fromUS
		return in, nil
	}
}

// evalRow is one line of the comparison: a configuration and its figures
// over the evaluation days.
type evalRow struct {
	Varied      string             `json:"varied"`
	Policy      string             `json:"policy"`
	Policies    map[string]string  `json:"policies"`
	Models      string             `json:"models,omitempty"`
	MeanReward  map[string]float64 `json:"mean_reward"`
	MeanRegret  map[string]float64 `json:"mean_regret"`
	Invocations int64              `json:"invocations"`
	CostPerM    float64            `json:"cost_per_million_usd"`
	GCO2ePerM   float64            `json:"gco2e_per_million"`
	P50         float64            `json:"latency_p50_ms"`
	P95         float64            `json:"latency_p95_ms"`
	P99         float64            `json:"latency_p99_ms"`
	ColdRate    float64            `json:"cold_start_rate"`
	SLARate     float64            `json:"sla_violation_rate"`
	WallSeconds float64            `json:"wall_seconds"`
}

// parseDays parses "13-14" or "13" (1-based, inclusive).
func parseDays(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	if first, err = strconv.Atoi(strings.TrimSpace(a)); err == nil {
		last, err = strconv.Atoi(strings.TrimSpace(b))
	}
	if err != nil || first < 1 || last < first {
		return 0, 0, fmt.Errorf("parsing days %q: want FIRST-LAST, 1-based, e.g. 13-14", s)
	}
	return first, last, nil
}

// evalVariants returns the configurations to run: the reference, then for
// each layer in layers every other policy of that layer (only those in
// only, when it is not empty).
func evalVariants(layers []schemas.Layer, only []string) []evalRow {
	ref := map[string]string{string(schemas.Strategic): refStrategic, string(schemas.Tactical): refTactical, string(schemas.Operational): refOperational}
	out := []evalRow{{Varied: "reference", Policy: "", Policies: ref}}
	for _, l := range layers {
		names := agents.Names(l)
		if l != schemas.Operational {
			names = append(names, string(twin.PolicyStaticBest), string(twin.PolicyOracle))
		}
		for _, n := range names {
			if n == ref[string(l)] || len(only) > 0 && !slices.Contains(only, n) {
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

// evalMain runs `strata eval --baselines`: the closed loop once per
// configuration over the evaluation days, after unscored warm-up days, and
// one comparison table.
func evalMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf       commonFlags
		sf       sourceFlags
		base     = fs.Bool("baselines", false, "compare the baseline policies, varying one layer at a time against the reference ("+refStrategic+" / "+refTactical+" / "+refOperational+")")
		evalDays = fs.String("eval-days", "13-14", "evaluation days, 1-based inclusive (scored)")
		warmup   = fs.Int("warmup-days", -1, "days before the evaluation window replayed unscored as warm-up (-1: every day before it, so pools, histograms and keep-alive state are those of a system that ran the whole trace)")
		layersF  = fs.String("layers", "strategic,tactical,operational", "layers whose policies are varied")
		onlyF    = fs.String("policies", "", "vary only to these policies (comma-separated; default every policy of each layer)")
		csvOut   = fs.Bool("csv", false, "print CSV instead of a markdown table")
		summaryF = fs.String("summary", "", "also write the rows as JSON to `FILE`")
		modelsF  = fs.String("models", "", "evaluate the learned policies of these model `DIR`s (one per training seed, comma-separated; from strata train): PPO against the tactical baselines, the ablations, the LSTM's metrics")
		tacOp    = fs.String("tactical-operational", "none", "with --models: operational policy of the tactical comparison (the one strata train ran; none = no pre-warming)")
		lstmTest = fs.String("lstm-test", "", "with --models: sequences `FILE`.parquet of the evaluation days (strata export sequences --days 13-14) to score the LSTMs on")
		lstmMore = fs.String("lstm-models", "", "with --lstm-test: more `DIR`s whose lstm.ckpt is scored (e.g. symmetric-loss models)")
		rowsF    = fs.String("rows", "", "with --models: run only these configurations (tactical policy names, ppo, random, DQN only, DQN+PPO, DQN+PPO+LSTM; comma-separated)")
		defPl    = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		polSeed  = fs.Int64("policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
		lateness = fs.Duration("allowed-lateness", 600*time.Second, "how far out of start order the trace may be")
	)
	cf.registerBatch(fs)
	sf.registerWith(fs, "seed", 14)
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if !*base && *modelsF == "" {
		return errors.New("strata eval: say what to compare: --baselines, or --models DIR[,DIR…]")
	}
	first, last, err := parseDays(*evalDays)
	if err != nil {
		return err
	}
	w := *warmup
	if w < 0 || w > first-1 {
		w = first - 1
	}
	layers, err := parseLayers(*layersF)
	if err != nil {
		return fmt.Errorf("parsing --layers: %w", err)
	}
	logger, epoch, pl, err := loopBasics(stderr, cf, *defPl)
	if err != nil {
		return err
	}
	fromUS := int64(first-1-w) * grid.StrategicTickUS
	toUS := int64(last) * grid.StrategicTickUS
	cache := &loopCache{}
	if *modelsF != "" {
		me := modelsEval{dirs: splitNonEmpty(*modelsF), tacticalOperational: *tacOp, lstmTest: *lstmTest, lstmExtra: splitNonEmpty(*lstmMore),
			csv: *csvOut, summary: *summaryF, rows: splitNonEmpty(*rowsF)}
		if len(me.dirs) == 0 {
			return errNoModels
		}
		base := loopFlags{placement: pl, policySeed: *polSeed, sources: &sf, cache: cache, conf: conf}
		return evalModels(ctx, me, base, cf, epoch, lateness.Microseconds(), logger, fromUS, toUS, w, first, last, stdout, stderr)
	}
	var only []string
	if *onlyF != "" {
		only = strings.Split(*onlyF, ",")
	}
	rows := evalVariants(layers, only)
	for i := range rows {
		r := &rows[i]
		lf := loopFlags{placement: pl, policySeed: *polSeed, sources: &sf, cache: cache, conf: conf}
		if err := runEvalRow(ctx, r, lf, cf, epoch, lateness.Microseconds(), logger, fromUS, toUS, w); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "eval %d/%d: %s %s: %d invocations scored, %.1f s\n", i+1, len(rows), r.Varied, r.Policy, r.Invocations, r.WallSeconds)
	}
	header := []string{"varied", "policy", "R strategic", "R tactical", "R operational", "regret strategic", "regret tactical", "regret operational",
		"USD / M inv", "gCO2e / M inv", "p50 ms", "p95 ms", "p99 ms", "cold %", "SLA viol %"}
	table := make([][]string, len(rows))
	for i, r := range rows {
		pol := r.Policy
		if r.Varied == "reference" {
			pol = r.Policies["strategic"] + " / " + r.Policies["tactical"] + " / " + r.Policies["operational"]
		}
		table[i] = []string{r.Varied, pol,
			f4(r.MeanReward["strategic"]), f4(r.MeanReward["tactical"]), f4(r.MeanReward["operational"]),
			f4(r.MeanRegret["strategic"]), f4(r.MeanRegret["tactical"]), f4(r.MeanRegret["operational"]),
			fmt.Sprintf("%.2f", r.CostPerM), fmt.Sprintf("%.0f", r.GCO2ePerM),
			fmt.Sprintf("%.0f", r.P50), fmt.Sprintf("%.0f", r.P95), fmt.Sprintf("%.0f", r.P99),
			fmt.Sprintf("%.2f", 100*r.ColdRate), fmt.Sprintf("%.2f", 100*r.SLARate)}
	}
	if *csvOut {
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
	if *summaryF != "" {
		return writeJSON(*summaryF, rows)
	}
	return nil
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

// splitNonEmpty splits a comma-separated list, dropping empty items.
func splitNonEmpty(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func f4(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// fullSpeedOpts are the pipeline options of one evaluation, training,
// validation or export run: full speed, its own metrics registry, the
// brokers of cf (embedded when empty).
func fullSpeedOpts(cf commonFlags, epoch time.Time, latenessUS int64, logger *slog.Logger, runID string) pipeline.Config {
	return pipeline.Config{Brokers: cf.pipe.Brokers, NATSURL: cf.pipe.NATSURL, Partitions: cf.pipe.Partitions, Names: cf.pipe.Names,
		Speed: replay.Speed(0), Epoch: epoch, LatenessUS: latenessUS, Logger: logger, Registerer: newRegistry(), RunID: runID}
}

// runEvalRow runs r's configuration (r.Policies; lf gives the rest) over
// the window [fromUS, toUS) with its first warmupDays unscored, and fills
// r's figures.
func runEvalRow(ctx context.Context, r *evalRow, lf loopFlags, cf commonFlags, epoch time.Time, latenessUS int64, logger *slog.Logger,
	fromUS, toUS int64, warmupDays int) error {
	o := fullSpeedOpts(cf, epoch, latenessUS, logger, fmt.Sprintf("eval-%s-%s-%d", r.Varied, runIDSafe(r.Policy), time.Now().UnixNano()))
	lf.strategic, lf.tactical, lf.operational = r.Policies["strategic"], r.Policies["tactical"], r.Policies["operational"]
	t0 := time.Now()
	res, name, o, err := runWindow(ctx, lf, o, fromUS, toUS, int64(warmupDays)*grid.TicksPerDay)
	if err != nil {
		return fmt.Errorf("evaluating %s=%s: %w", r.Varied, r.Policy, err)
	}
	sum := newLoopSummary(o, name, res, r.Policies)
	r.MeanReward, r.MeanRegret = map[string]float64{}, map[string]float64{}
	for l, ls := range res.Twin.Layers {
		r.MeanReward[l], r.MeanRegret[l] = ls.MeanReward, ls.MeanRegret
	}
	r.Invocations = res.Twin.ScoredInvocations
	r.CostPerM, r.GCO2ePerM, r.ColdRate, r.SLARate = sum.CostPerMillionUSD, sum.GCO2ePerMillion, sum.ColdStartRate, sum.SLAViolationRate
	r.P50, r.P95, r.P99 = sum.LatencyP50MS, sum.LatencyP95MS, sum.LatencyP99MS
	r.WallSeconds = time.Since(t0).Seconds()
	return nil
}

// runWindow runs the closed loop over the invocations of lf.sources that
// start in [fromUS, toUS), replayed from trace time 0 with o.epoch moved by
// fromUS, so hours of day, weekdays and the carbon series stay those of the
// trace's days; function properties and static-best come from the
// unshifted trace under o.epoch. Ticks before scoreFromTick are warm-up.
// It returns the source's name and the options the run used.
func runWindow(ctx context.Context, lf loopFlags, o pipeline.Config, fromUS, toUS, scoreFromTick int64) (pipeline.LoopResult, string, pipeline.Config, error) {
	trainEpoch := o.Epoch
	o.Epoch = trainEpoch.Add(time.Duration(fromUS) * time.Microsecond)
	src, name, _, closeSrc, err := lf.sources.open()
	if err != nil {
		return pipeline.LoopResult{}, "", o, err
	}
	defer closeSrc()
	lo, _, err := setupLoop(ctx, lf, o, name, trainEpoch)
	if err != nil {
		return pipeline.LoopResult{}, name, o, err
	}
	lo.ScoreFromTick = scoreFromTick
	res, err := pipeline.ClosedLoop(ctx, lo, &window{src: src, fromUS: fromUS, toUS: toUS}, name, toUS-fromUS)
	return res, name, o, err
}

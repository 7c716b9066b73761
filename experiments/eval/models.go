package eval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/prewarm"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

// modelsEval configures `strata eval --models`.
type modelsEval struct {
	dirs []string
	// tacticalOperational is the operational policy of the tactical
	// comparison (the one the models were trained under).
	tacticalOperational string
	// lstmTest is the sequences file of the evaluation days; lstmExtra
	// more directories whose lstm.ckpt is scored on it (e.g. the
	// symmetric-loss models).
	lstmTest  string
	lstmExtra []string
	csv       bool
	summary   string
	// rows keeps only the configurations with these labels (tactical
	// policy names, or random, DQN only, DQN+PPO, DQN+PPO+LSTM, or the
	// hierarchy section's labels); all
	// when empty.
	rows []string
	// parallel is how many runs go at once.
	parallel int
	// dqnMask, when set, overrides the action mask of every DQN
	// checkpoint served (dqn.LoadOptions.Mask): its rows run the strategic
	// policy "dqn:mask=<dqnMask>".
	dqnMask string
	// ppoMask likewise overrides every PPO checkpoint's mask
	// (ppo.PolicyOptions.Mask): "ppo:mask=<ppoMask>".
	ppoMask string
}

// modelsRow is one configuration of the models evaluation, run once per
// seed where it depends on one: Runs holds the seeds' rows.
type modelsRow struct {
	Section string    `json:"section"`
	Label   string    `json:"label"`
	Runs    []evalRow `json:"runs"`
}

// LSTMRow is one predictor's metrics on the evaluation days' sequences,
// one entry per checkpoint (one for the moving average).
type LSTMRow struct {
	// Predictor names the predictor: "lstm (" + the checkpoint's training
	// configuration + ")", or "moving-average (5 steps)".
	Predictor string `json:"predictor"`
	// Dirs are the model directories of the checkpoints, in Metrics'
	// order (none for the moving average).
	Dirs    []string       `json:"dirs,omitempty"`
	Metrics []lstm.Metrics `json:"metrics"`
}

// evalModels runs `strata eval --models`: the learned policies of each
// seed's model directory on the evaluation days — PPO against every
// tactical baseline (and as a share of the oracle), the ablations of seed
// §4.5 — and the LSTM's prediction metrics against the 5-step moving
// average, with mean ± std across the seeds.
func evalModels(ctx context.Context, me modelsEval, base pipeline.LoopOptions, w window, first, last int, stdout, stderr io.Writer) error {
	hasLSTM := allHaveLSTM(me.dirs)
	if !hasLSTM {
		fmt.Fprintln(stderr, "eval: DQN+PPO+LSTM left out: not every model directory holds lstm.ckpt")
	}
	rows := modelsRows(me, hasLSTM)
	return runModelsRows(ctx, me, rows, base, w, first, last, stdout, stderr)
}

// allHaveLSTM reports whether every model directory holds lstm.ckpt: only
// then does the models evaluation run DQN+PPO+LSTM.
func allHaveLSTM(dirs []string) bool {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, agents.CheckpointFile(schemas.Operational))); err != nil {
			return false
		}
	}
	return true
}

// modelsRows returns the configurations of `strata eval --models`, those
// me.rows names when it is not empty: the tactical and strategic
// comparisons, the ablations (DQN+PPO+LSTM when hasLSTM) and the full
// hierarchy against the baselines' combinations.
func modelsRows(me modelsEval, hasLSTM bool) []modelsRow {
	// The tactical comparison: strategic greedy-cost, the training
	// operational policy; each baseline once, PPO once per seed.
	var rows []modelsRow
	dqnName := "dqn"
	if me.dqnMask != "" {
		dqnName += ":mask=" + me.dqnMask
	}
	ppoName := "ppo"
	if me.ppoMask != "" {
		ppoName += ":mask=" + me.ppoMask
	}
	tacticals := Baselines(schemas.Tactical)
	for _, n := range tacticals {
		rows = append(rows, modelsRow{Section: "tactical", Label: n, Runs: []evalRow{{Varied: "tactical", Policy: n,
			Policies: map[string]string{"strategic": refStrategic, "tactical": n, "operational": me.tacticalOperational}}}})
	}
	perSeed := func(section, label, s, t, op string) modelsRow {
		r := modelsRow{Section: section, Label: label}
		for _, d := range me.dirs {
			r.Runs = append(r.Runs, evalRow{Varied: section, Policy: label + "@" + d, Models: d,
				Policies: map[string]string{"strategic": s, "tactical": t, "operational": op}})
		}
		return r
	}
	rows = append(rows, perSeed("tactical", "ppo", refStrategic, ppoName, me.tacticalOperational))
	// The strategic comparison: the reference tactical policy, the same
	// operational policy; each strategic baseline once (labelled
	// "strategic <name>", as tactical baselines share names), the DQN once
	// per seed.
	strategics := Baselines(schemas.Strategic)
	for _, n := range strategics {
		rows = append(rows, modelsRow{Section: "strategic", Label: "strategic " + n, Runs: []evalRow{{Varied: "strategic", Policy: n,
			Policies: map[string]string{"strategic": n, "tactical": refTactical, "operational": me.tacticalOperational}}}})
	}
	rows = append(rows, perSeed("strategic", "dqn", dqnName, refTactical, me.tacticalOperational))
	// The ablations: layers not learned use random, or reactive for the
	// operational layer.
	rows = append(rows,
		perSeed("ablation", "random", "random", "random", "reactive"),
		perSeed("ablation", "DQN only", dqnName, "random", "reactive"),
		perSeed("ablation", "DQN+PPO", dqnName, ppoName, "reactive"))
	if hasLSTM {
		rows = append(rows, perSeed("ablation", "DQN+PPO+LSTM", dqnName, ppoName, "lstm"))
	}
	// The full hierarchy against the baselines' combinations: the
	// reference, the best causal baseline of each placement layer
	// (static-best) under either pre-warm policy, and the per-interval
	// hindsight oracles; the learned strategic and tactical layers per
	// seed under either pre-warm policy.
	sb, orc := string(twin.PolicyStaticBest), string(twin.PolicyOracle)
	for _, b := range []struct{ label, s, t, op string }{
		{"baselines: reference", refStrategic, refTactical, refOperational},
		{"baselines: static-best", sb, sb, refOperational},
		{"baselines: static-best + hazard-prewarm", sb, sb, prewarm.Name},
		{"hindsight: oracle", orc, orc, refOperational},
	} {
		rows = append(rows, modelsRow{Section: "hierarchy", Label: b.label, Runs: []evalRow{{Varied: "hierarchy", Policy: b.label,
			Policies: map[string]string{"strategic": b.s, "tactical": b.t, "operational": b.op}}}})
	}
	// static-best+PPO separates the strategic layer's share of a gap
	// between DQN+PPO and static-best on both placement layers: the
	// learned tactical layer under the best causal strategic baseline.
	rows = append(rows,
		perSeed("hierarchy", "DQN+PPO+hybrid-histogram", dqnName, ppoName, refOperational),
		perSeed("hierarchy", "DQN+PPO+hazard-prewarm", dqnName, ppoName, prewarm.Name),
		perSeed("hierarchy", "static-best+PPO+hybrid-histogram", sb, ppoName, refOperational))
	if len(me.rows) > 0 {
		kept := rows[:0]
		for _, r := range rows {
			// A label two sections share (random: the tactical baseline and
			// the ablation) may be preceded by its section.
			if slices.Contains(me.rows, r.Label) || slices.Contains(me.rows, r.Section+" "+r.Label) {
				kept = append(kept, r)
			}
		}
		rows = kept
	}
	return rows
}

// runModelsRows runs the models evaluation's rows and prints them (see
// evalModels).
func runModelsRows(ctx context.Context, me modelsEval, rows []modelsRow, base pipeline.LoopOptions, w window, first, last int, stdout, stderr io.Writer) error {
	// Every learned policy a kept row runs needs its checkpoint: a
	// tactical-only training directory serves the ppo row.
	learned := map[string]schemas.Layer{"dqn": schemas.Strategic, "ppo": schemas.Tactical, "lstm": schemas.Operational}
	total := 0
	for _, r := range rows {
		total += len(r.Runs)
		for _, run := range r.Runs {
			for _, p := range run.Policies {
				name, _, _ := strings.Cut(p, ":")
				l, ok := learned[name]
				if !ok || run.Models == "" {
					continue
				}
				if _, err := os.Stat(filepath.Join(run.Models, agents.CheckpointFile(l))); err != nil {
					return fmt.Errorf("strata eval --models: row %q needs %s's %s checkpoint: %w", r.Label, run.Models, l, err)
				}
			}
		}
	}
	type job struct{ i, k int }
	var jobs []job
	for i := range rows {
		for k := range rows[i].Runs {
			jobs = append(jobs, job{i, k})
		}
	}
	p := newProgress(stderr, total)
	err := runParallel(ctx, me.parallel, len(jobs), func(ctx context.Context, j int) error {
		i, k := jobs[j].i, jobs[j].k
		run := &rows[i].Runs[k]
		lo := base
		lo.Models = run.Models
		if run.Models != "" {
			// Each seed's random choices (random layers, exploration-free
			// learned policies) use its own policy seed.
			lo.PolicySeed = int64(k + 1)
		}
		if err := runEvalRow(ctx, run, lo, w); err != nil {
			return err
		}
		layer := "tactical" // the ablations' progress shows the tactical reward too
		if rows[i].Section == "strategic" {
			layer = "strategic"
		}
		p.printf("%s %s: %s R %.4f, %.1f s", rows[i].Section, run.Policy, layer, run.MeanReward[layer], run.WallSeconds)
		return nil
	})
	if err != nil {
		return err
	}
	var lrows []LSTMRow
	if me.lstmTest != "" {
		var err error
		if lrows, err = LSTMTestMetrics(ctx, me.lstmTest, append(append([]string(nil), me.dirs...), me.lstmExtra...)); err != nil {
			return err
		}
	}
	if me.summary != "" {
		if err := pipeline.WriteJSON(me.summary, map[string]any{"summary": summarize(rows), "rows": rows, "lstm": lrows}); err != nil {
			return err
		}
	}
	return printModelsEval(stdout, me, rows, lrows, first, last, w.warmupDays)
}

// LSTMTestMetrics scores each directory's lstm.ckpt and the 5-step moving
// average on the sequences in path (strata export sequences) and returns a
// row per predictor, the moving average last; checkpoints are grouped by
// their training configuration (Config.Describe), in the order of dirs. A
// checkpoint whose bytes equal one scored already (a hierarchy's directory
// holding a copy of an LSTM directory's, both given) is scored once, under
// the first directory: counted twice it would narrow the interval.
func LSTMTestMetrics(ctx context.Context, path string, dirs []string) ([]LSTMRow, error) {
	sf, err := sequences.Read(ctx, path)
	if err != nil {
		return nil, err
	}
	actual := lstm.Actuals(sf.Samples)
	ma, err := lstm.Evaluate(lstm.PredictMovingAverage5(sf.Samples), actual)
	if err != nil {
		return nil, err
	}
	byLoss := map[string]*LSTMRow{}
	var order []string
	scored := map[[sha256.Size]byte]bool{}
	for _, d := range dirs {
		p := filepath.Join(d, agents.CheckpointFile(schemas.Operational))
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("scoring the LSTM of %s: %w", d, err)
		}
		sum := sha256.Sum256(b)
		if scored[sum] {
			continue
		}
		scored[sum] = true
		c, err := lstm.ReadCheckpoint(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", p, err)
		}
		model := c.Model()
		c.Net.Close()
		pred, err := model.PredictSamples(sf.Samples)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", p, err)
		}
		m, err := lstm.Evaluate(pred, actual)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", p, err)
		}
		name := "lstm (" + c.Manifest.Config.Describe() + ")"
		if byLoss[name] == nil {
			byLoss[name] = &LSTMRow{Predictor: name}
			order = append(order, name)
		}
		byLoss[name].Metrics = append(byLoss[name].Metrics, m)
		byLoss[name].Dirs = append(byLoss[name].Dirs, d)
	}
	out := []LSTMRow{}
	for _, n := range order {
		out = append(out, *byLoss[n])
	}
	return append(out, LSTMRow{Predictor: "moving-average (5 steps)", Metrics: []lstm.Metrics{ma}}), nil
}

// meanStd returns the mean and the sample standard deviation (0 for one
// value).
func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / float64(len(xs))
	if len(xs) == 1 {
		return m, 0
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

// pm formats mean ± sample std of f over items with format verb (the mean
// alone for one item).
func pm[T any](items []T, f func(T) float64, verb string) string {
	xs := make([]float64, len(items))
	for i, it := range items {
		xs[i] = f(it)
	}
	m, s := meanStd(xs)
	if len(xs) == 1 {
		return fmt.Sprintf(verb, m)
	}
	return fmt.Sprintf(verb+" ± "+verb, m, s)
}

func printModelsEval(w io.Writer, me modelsEval, rows []modelsRow, lrows []LSTMRow, first, last, warmup int) error {
	var oracle float64
	for _, r := range rows {
		if r.Section == "tactical" && r.Label == string(twin.PolicyOracle) {
			oracle = r.Runs[0].MeanReward["tactical"]
		}
	}
	header := []string{"section", "configuration (strategic / tactical / operational)", "seeds", "R strategic", "R tactical", "R operational",
		"tactical R ÷ oracle", "USD / M inv", "keep-warm USD / M inv", "gCO2e / M inv", "p95 ms", "p99 ms", "cold %", "SLA viol %"}
	var table [][]string
	for _, r := range rows {
		p := r.Runs[0].Policies
		cfg := p["strategic"] + " / " + p["tactical"] + " / " + p["operational"]
		if r.Section == "ablation" || r.Section == "hierarchy" {
			cfg = r.Label + ": " + cfg
		}
		share := ""
		if r.Section == "tactical" && oracle != 0 {
			share = pm(r.Runs, func(e evalRow) float64 { return e.MeanReward["tactical"] / oracle }, "%.3f")
		}
		table = append(table, []string{r.Section, cfg, strconv.Itoa(len(r.Runs)),
			pm(r.Runs, func(e evalRow) float64 { return e.MeanReward["strategic"] }, "%.4f"),
			pm(r.Runs, func(e evalRow) float64 { return e.MeanReward["tactical"] }, "%.4f"),
			pm(r.Runs, func(e evalRow) float64 { return e.MeanReward["operational"] }, "%.4f"),
			share,
			pm(r.Runs, func(e evalRow) float64 { return e.CostPerM }, "%.2f"),
			pm(r.Runs, func(e evalRow) float64 { return e.KeepWarmPerM }, "%.2f"),
			pm(r.Runs, func(e evalRow) float64 { return e.GCO2ePerM }, "%.0f"),
			pm(r.Runs, func(e evalRow) float64 { return e.P95 }, "%.0f"),
			pm(r.Runs, func(e evalRow) float64 { return e.P99 }, "%.0f"),
			pm(r.Runs, func(e evalRow) float64 { return 100 * e.ColdRate }, "%.2f"),
			pm(r.Runs, func(e evalRow) float64 { return 100 * e.SLARate }, "%.2f")})
	}
	lheader := []string{"predictor", "checkpoints", "RMSE cpu", "RMSE mem", "RMSE rate", "MAE cpu", "MAE mem", "MAE rate", "R² cpu", "R² mem", "R² rate", "under-provisioning %"}
	var ltable [][]string
	for _, r := range lrows {
		row := []string{r.Predictor, strconv.Itoa(len(r.Metrics))}
		col := func(f func(lstm.Metrics) float64, verb string) string { return pm(r.Metrics, f, verb) }
		for _, part := range []func(lstm.Metrics) [lstm.Targets]float64{
			func(m lstm.Metrics) [lstm.Targets]float64 { return m.RMSE },
			func(m lstm.Metrics) [lstm.Targets]float64 { return m.MAE },
		} {
			for j := range lstm.Targets {
				row = append(row, col(func(m lstm.Metrics) float64 { return part(m)[j] }, "%.4f"))
			}
		}
		for j := range lstm.Targets {
			row = append(row, col(func(m lstm.Metrics) float64 { return m.R2[j] }, "%.3f"))
		}
		row = append(row, col(func(m lstm.Metrics) float64 { return 100 * m.UnderRate }, "%.2f"))
		ltable = append(ltable, row)
	}
	if me.csv {
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		_ = cw.WriteAll(table)
		if len(ltable) > 0 {
			_ = cw.Write(lheader)
			_ = cw.WriteAll(ltable)
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("writing the comparison: %w", err)
		}
		return nil
	}
	fmt.Fprintf(w, "Days %d–%d scored (%d warm-up day(s) before, unscored); %d seed(s): %s. Mean ± sample std across seeds; baselines without randomness from learning run once.\n\n",
		first, last, warmup, len(me.dirs), strings.Join(me.dirs, ", "))
	md := func(h []string, t [][]string) {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat("---|", len(h)))
		for _, r := range t {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
	}
	md(header, table)
	if len(ltable) > 0 {
		fmt.Fprintf(w, "\nLSTM next-step predictions on %s (raw units: CPU and memory utilisation as fractions, request rate in invocations/s):\n\n", me.lstmTest)
		md(lheader, ltable)
	}
	return nil
}

// errNoModels is returned when --models names no directory.
var errNoModels = errors.New("strata eval --models: no model directory given")

package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/experiments/internal/flagtest"
	"github.com/strata-rl/strata/experiments/train"
	"github.com/strata-rl/strata/infra/store"
)

// bruteFront marks the points no other point dominates, by comparing
// every pair.
func bruteFront(ps []point) []bool {
	on := make([]bool, len(ps))
	for i, p := range ps {
		on[i] = true
		for j, q := range ps {
			if j != i && q.x <= p.x && q.y <= p.y && (q.x < p.x || q.y < p.y) {
				on[i] = false
				break
			}
		}
	}
	return on
}

func TestParetoFrontEqualsBruteForce(t *testing.T) {
	tests := []struct {
		name string
		ps   []point
	}{
		{"empty", nil},
		{"one", []point{{1, 1}}},
		{"equal points", []point{{1, 1}, {1, 1}, {2, 0}}},
		{"same x", []point{{1, 3}, {1, 2}, {2, 1}, {2, 5}}},
		{"same y", []point{{1, 2}, {3, 2}, {0, 4}}},
		{"a line", []point{{1, 4}, {2, 3}, {3, 2}, {4, 1}}},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for k := range 200 {
		ps := make([]point, 1+r.IntN(25))
		for i := range ps {
			// Few distinct values, so that ties are common.
			ps[i] = point{float64(r.IntN(6)), float64(r.IntN(6))}
		}
		tests = append(tests, struct {
			name string
			ps   []point
		}{"random " + strconv.Itoa(k), ps})
	}
	for _, tt := range tests {
		got, want := paretoFront(tt.ps), bruteFront(tt.ps)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: point %d %v on the front: %v, brute force %v (points %v)", tt.name, i, tt.ps[i], got[i], want[i], tt.ps)
			}
		}
	}
}

// TestReport trains PPO for one episode with two seeds on a 2-day, 5-app
// trace, then builds a report of three configurations (tactical
// static-best, the oracle, PPO with both seeds) on day 2 after a warm-up
// day, and checks it: every figure decodes as PNG; the plotted cost and
// p95 of every configuration equal what the store's documented queries
// give; the Pareto fronts equal a brute-force computation over the plotted
// points; the learning curves are the two seeds'; and a second report with
// --from-store runs nothing and plots the same points.
func TestReport(t *testing.T) {
	if testing.Short() {
		t.Skip("two training episodes and four closed-loop runs")
	}
	dir := t.TempDir()
	var models []string
	for s := 1; s <= 2; s++ {
		m := filepath.Join(dir, "s"+strconv.Itoa(s))
		c := train.DefaultConfig()
		flagtest.Parse(t, &c, "--layers", "tactical", "--episodes", "1", "--synth-days", "2", "--apps", "5", "--train-days", "1-1",
			"--valid-days", "2-2", "--rollout", "64", "--seed", strconv.Itoa(s), "--store", "", "--progress=false", "--out", m)
		if err := train.Train(context.Background(), c, io.Discard, io.Discard); err != nil {
			t.Fatalf("training seed %d: %v", s, err)
		}
		models = append(models, m)
	}
	seq, lstms := lstmsAndSequences(t, dir)
	db, out := filepath.Join(dir, "runs.duckdb"), filepath.Join(dir, "report")
	args := []string{"--models", strings.Join(models, ","), "--rows", "static-best,oracle,ppo", "--synth-days", "2", "--apps", "5",
		"--eval-days", "2-2", "--warmup-days", "1", "--parallel", "2", "--store", db, "--out", out,
		"--lstm-test", seq, "--lstm-models", strings.Join(lstms, ",")}
	sum := runReport(t, args)
	if len(sum.Configs) != 3 {
		t.Fatalf("%d configurations, want 3: %+v", len(sum.Configs), sum.Configs)
	}
	checkPredictions(t, sum, out, seq, lstms)
	for _, f := range sum.Figures() {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s does not decode as PNG: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, FigCurves)); err != nil || len(sum.Curves) != 4 { // 2 seeds × train, validation
		t.Errorf("learning curves: %d, want the 2 seeds' train and validation curves (%v)", len(sum.Curves), err)
	}

	// The plotted points against the store's documented queries.
	st, err := store.OpenDuckDB(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	query := func(q store.RunQuery) map[string][]any {
		t.Helper()
		_, rows, err := st.Query(t.Context(), q.SQL(2, 2))
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		out := map[string][]any{}
		for _, r := range rows {
			out[r[0].(string)] = r
		}
		return out
	}
	p95s, costs := query(store.RunQueries[0]), query(store.RunQueries[2])
	// Each run's mean tactical reward, read straight from the rewards.
	_, rows, err := st.Query(t.Context(), "SELECT run_id, avg(reward) FROM rewards FINAL WHERE layer = 'tactical' GROUP BY run_id")
	if err != nil {
		t.Fatal(err)
	}
	runMeans := map[string]float64{}
	for _, r := range rows {
		runMeans[r[0].(string)] = num(r[1])
	}
	_ = st.Close()
	for _, c := range sum.Configs {
		if len(c.PerRun) != len(c.RunIDs) {
			t.Fatalf("%s: %d per-run rows for %d runs", c.Label, len(c.PerRun), len(c.RunIDs))
		}
		var xs []float64
		for i, r := range c.PerRun {
			got, want := r.MeanReward["tactical"], runMeans[r.RunID]
			if r.RunID != c.RunIDs[i] || math.Abs(got-want) > 1e-8*math.Abs(want) {
				t.Errorf("%s run %d: %s tactical %v, the store's rewards %s %v", c.Label, i, r.RunID, got, c.RunIDs[i], want)
			}
			xs = append(xs, got)
		}
		if m, h := eval.MeanCI95(xs); math.Abs(m-c.MeanReward["tactical"]) > 1e-8*math.Abs(m) || math.Abs(h-c.CI95["tactical"]) > 1e-8+1e-8*h {
			t.Errorf("%s: mean %v ± %v, from its runs %v ± %v", c.Label, c.MeanReward["tactical"], c.CI95["tactical"], m, h)
		}
	}
	if ppo := sum.byLabel("tactical ppo"); ppo != nil && (len(ppo.PerRun) != 2 || ppo.PerRun[0].Models != models[0] || ppo.PerRun[1].Models != models[1]) {
		t.Errorf("tactical ppo per-run rows %+v, want one per model directory %v", ppo.PerRun, models)
	}
	pts := sum.ParetoPoints(func(c *ConfigSummary) float64 { return c.P95 })
	for _, c := range sum.Configs {
		pt := pts[c.Label]
		if q := p95s[c.Label]; q == nil || pt[1] != num(q[1]) {
			t.Errorf("%s: plotted p95 %v, the store's query %v", c.Label, pt[1], q)
		}
		if q := costs[c.Label]; q == nil || math.Abs(pt[0]-num(q[2])) > 1e-8*pt[0] {
			t.Errorf("%s: plotted cost %v per million, the store's query %v", c.Label, pt[0], q)
		}
	}
	if n := len(sum.byLabel("tactical ppo").RunIDs); n != 2 {
		t.Errorf("tactical ppo: %d runs, want one per seed", n)
	}

	// The fronts against brute force over the plotted points.
	for _, f := range []struct {
		name  string
		y     func(c *ConfigSummary) float64
		front []string
	}{
		{"cost-p95", func(c *ConfigSummary) float64 { return c.P95 }, sum.ParetoCostP95},
		{"cost-carbon", func(c *ConfigSummary) float64 { return c.GCO2ePerM }, sum.ParetoCostCarbon},
	} {
		ps := make([]point, len(sum.Configs))
		for i, c := range sum.Configs {
			ps[i] = point{c.CostPerM, f.y(c)}
		}
		var want []string
		for i, on := range bruteFront(ps) {
			if on {
				want = append(want, sum.Configs[i].Label)
			}
		}
		if strings.Join(want, ";") != strings.Join(f.front, ";") {
			t.Errorf("%s front %v, brute force %v", f.name, f.front, want)
		}
	}

	// Resumed from the store: nothing runs, the same points.
	again := runReport(t, append(args, "--from-store", "--out", filepath.Join(dir, "again")))
	if a, b := jsonOf(t, again.Configs), jsonOf(t, sum.Configs); !sameJSON(a, b) {
		t.Errorf("--from-store configurations differ:\n%v\n%v", a, b)
	}

	// Seed 1's directory trained again (here: seed 2's checkpoint copied
	// over it): its stored run served other checkpoints, so --from-store
	// refuses it and a report runs it again — that run alone — and
	// scores it as seed 2's (greedy PPO: the same checkpoint decides the
	// same).
	ck, err := os.ReadFile(filepath.Join(models[1], "ppo.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models[0], "ppo.ckpt"), ck, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = reportOutput(append(args, "--from-store", "--out", filepath.Join(dir, "stale")))
	if err == nil || !strings.Contains(err.Error(), models[0]) || !strings.Contains(err.Error(), "served other checkpoints") {
		t.Errorf("--from-store after retraining %s: error %v, want it named as served other checkpoints", models[0], err)
	}
	stdout, stderr, err := reportOutput(append(args, "--out", filepath.Join(dir, "retrained")))
	if err != nil {
		t.Fatalf("report after retraining: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "(1 run now, 3 from the store") || !strings.Contains(stderr, "served other checkpoints than the directory holds now: run again") {
		t.Errorf("report after retraining %s ran other than its one run:\n%s%s", models[0], stdout, stderr)
	}
	var re Summary
	if b, err := os.ReadFile(filepath.Join(dir, "retrained", "summary.json")); err != nil || json.Unmarshal(b, &re) != nil {
		t.Fatalf("reading the retrained report's summary: %v", err)
	}
	var per []RunReward
	if ppo := re.byLabel("tactical ppo"); ppo != nil {
		per = ppo.PerRun
	}
	if len(per) != 2 || per[0].MeanReward["tactical"] != per[1].MeanReward["tactical"] {
		t.Errorf("tactical ppo per run after retraining %+v, want two equal means (one checkpoint)", per)
	}
}

// reportConfig parses strata report's flags.
func reportConfig(args []string) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs, "")
	return c, fs.Parse(args)
}

// reportOutput runs strata report with args and returns what it printed
// and its error.
func reportOutput(args []string) (stdout, stderr string, err error) {
	c, err := reportConfig(args)
	if err != nil {
		return "", "", err
	}
	var o, e bytes.Buffer
	err = Run(context.Background(), c, &o, &e)
	return o.String(), e.String(), err
}

// jsonOf returns v as decoded JSON (maps, slices, numbers, strings).
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameJSON compares decoded JSON, numbers to 1e-8 relative: the stores sum
// floating-point values in no fixed order, so a figure rounded to 9 digits
// may differ in its last one between two reads of the same rows.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !sameJSON(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && math.Abs(x-y) <= 1e-8*math.Max(math.Abs(x), math.Abs(y))
	default:
		return a == b
	}
}

// runReport runs `strata report` with args and returns its summary.json.
func runReport(t *testing.T, args []string) *Summary {
	t.Helper()
	c, err := reportConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := reportOutput(args); err != nil {
		t.Fatalf("strata report: %v\n%s", err, stderr)
	}
	b, err := os.ReadFile(filepath.Join(c.Out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestCompareOrders(t *testing.T) {
	tests := []struct {
		a, b  []string
		swaps []string
		tau   float64
	}{
		{[]string{"x", "y", "z"}, []string{"x", "y", "z"}, nil, 1},
		{[]string{"x", "y", "z"}, []string{"z", "y", "x"}, []string{"x > y", "x > z", "y > z"}, -1},
		{[]string{"x", "y", "z"}, []string{"y", "x", "z"}, []string{"x > y"}, 1 - 2.0/3},
		{[]string{"x", "y"}, []string{"y"}, nil, 1}, // one common: no pair
	}
	for _, tt := range tests {
		swaps, tau := compareOrders(tt.a, tt.b)
		if strings.Join(swaps, ";") != strings.Join(tt.swaps, ";") || math.Abs(tau-tt.tau) > 1e-12 {
			t.Errorf("compareOrders(%v, %v) = %v, %v; want %v, %v", tt.a, tt.b, swaps, tau, tt.swaps, tt.tau)
		}
	}
}

// TestRankingsIncomplete checks that a variant section a partial report
// has not finished is marked incomplete and not counted as changed, while
// a finished one that reorders is.
func TestRankingsIncomplete(t *testing.T) {
	cfg := func(section, label string, r float64) *ConfigSummary {
		return &ConfigSummary{Section: section, Label: label, MeanReward: map[string]float64{"tactical": r}}
	}
	full, part := Variants[0].Tag(), Variants[1].Tag()
	s := &Summary{Configs: []*ConfigSummary{
		cfg("reference", "reference", 0.5), cfg("tactical", "tactical a", 0.7), cfg("tactical", "tactical b", 0.6),
		cfg("reference", "reference"+full, 0.5), cfg("tactical", "tactical a"+full, 0.4), cfg("tactical", "tactical b"+full, 0.6),
		cfg("reference", "reference"+part, 0.5), cfg("tactical", "tactical c"+part, 0.9), cfg("tactical", "tactical d"+part, 0.8),
	}}
	tests := []struct {
		variant             string
		changed, incomplete bool
		ranked              string
	}{
		{Variants[0].Name + " " + Variants[0].Level, true, false, "tactical b > reference > tactical a"},
		// As many configurations as the default, but not the default's:
		// incomplete all the same.
		{Variants[1].Name + " " + Variants[1].Level, false, true, "tactical c > tactical d > reference"},
	}
	got := rankings(s)
	if len(got) != len(tests) {
		t.Fatalf("rankings: %d, want %d: %+v", len(got), len(tests), got)
	}
	for i, tt := range tests {
		r := got[i]
		if r.Variant != tt.variant || r.Changed != tt.changed || r.Incomplete != tt.incomplete || strings.Join(r.Ranked, " > ") != tt.ranked {
			t.Errorf("ranking %d = %+v; want variant %q changed %v incomplete %v order %q", i, r, tt.variant, tt.changed, tt.incomplete, tt.ranked)
		}
	}
	var b bytes.Buffer
	s.Sensitivity = got
	s.markdown(&b)
	for _, want := range []string{"incomplete (1 of 3 configurations run)", "1 of 1 rankings change. 1 more are incomplete"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// TestReportSensitivity re-runs a two-configuration tactical comparison
// under every variant of the hidden properties: each variant's runs are
// recorded under tagged labels with the variant's model, the rankings
// compare each variant's order with the default's (the default order being
// the configurations by tactical R), and a second report finds every run
// in the store.
func TestReportSensitivity(t *testing.T) {
	if testing.Short() {
		t.Skip("eighteen closed-loop runs of a day")
	}
	dir := t.TempDir()
	args := []string{"--baselines", "--layers", "tactical", "--policies", "static-best", "--synth-days", "1", "--apps", "3",
		"--eval-days", "1-1", "--warmup-days", "0", "--parallel", "2", "--sensitivity", "--store", filepath.Join(dir, "runs.duckdb"),
		"--out", filepath.Join(dir, "report")}
	sum := runReport(t, args)
	if len(sum.VariantConfigs) != 2*len(Variants) {
		t.Fatalf("%d variant configurations, want %d", len(sum.VariantConfigs), 2*len(Variants))
	}
	if len(sum.Sensitivity) != len(Variants) {
		t.Fatalf("%d rankings, want one per variant (tactical section): %+v", len(sum.Sensitivity), sum.Sensitivity)
	}
	ref, sb := sum.byLabel("reference"), sum.byLabel("tactical static-best")
	want := []string{"reference", "tactical static-best"}
	if sb.MeanReward["tactical"] > ref.MeanReward["tactical"] {
		want = []string{"tactical static-best", "reference"}
	}
	differs := false
	for i, r := range sum.Sensitivity {
		if strings.Join(r.Default, ",") != strings.Join(want, ",") || r.Changed != (len(r.Swaps) > 0) || len(r.Ranked) != 2 {
			t.Errorf("ranking %d: %+v (default order want %v)", i, r, want)
		}
		v := sum.VariantConfigs[2*i : 2*i+2]
		if !strings.HasSuffix(v[0].Label, Variants[i].Tag()) {
			t.Errorf("variant %d's configurations %q, %q lack the tag %q", i, v[0].Label, v[1].Label, Variants[i].Tag())
		}
		if v[0].MeanReward["tactical"] != ref.MeanReward["tactical"] || v[1].MeanReward["tactical"] != sb.MeanReward["tactical"] {
			differs = true
		}
	}
	if !differs {
		t.Error("no variant changed a configuration's reward: the variants' models were not used")
	}
	again := runReport(t, append(args, "--from-store", "--out", filepath.Join(dir, "again")))
	if a, b := jsonOf(t, again.Sensitivity), jsonOf(t, sum.Sensitivity); !sameJSON(a, b) {
		t.Errorf("--from-store rankings differ:\n%v\n%v", a, b)
	}

	// The store gone: a new, empty store and the first report's runs file
	// run nothing and give the same report, to the last digit (the
	// file's sums are the figures the store gave).
	runs := filepath.Join(dir, "report", RunsFile)
	carried := append(slices.Clone(args), "--store", filepath.Join(dir, "new.duckdb"), "--from-runs", runs, "--out", filepath.Join(dir, "carried"))
	stdout, stderr, err := reportOutput(carried)
	if err != nil {
		t.Fatalf("report from %s into a new store: %v\n%s", runs, err, stderr)
	}
	if strings.Contains(stderr, "report 1/") || !strings.Contains(stdout, "(0 run now, 0 from the store") || !strings.Contains(stderr, "in "+runs+" (run ") {
		t.Errorf("report from %s ran something or did not say where its runs came from:\n%s%s", runs, stdout, stderr)
	}
	var got Summary
	if b, err := os.ReadFile(filepath.Join(dir, "carried", "summary.json")); err != nil || json.Unmarshal(b, &got) != nil {
		t.Fatalf("reading the carried report's summary: %v", err)
	}
	for _, part := range []struct {
		name      string
		got, want any
	}{
		{"configurations", got.Configs, sum.Configs},
		{"variant configurations", got.VariantConfigs, sum.VariantConfigs},
		{"rankings", got.Sensitivity, sum.Sensitivity},
	} {
		if a, b := mustJSON(t, part.got), mustJSON(t, part.want); a != b {
			t.Errorf("%s from %s differ from the store's:\n%s\n%s", part.name, runs, a, b)
		}
	}
	for _, f := range []string{"report", "carried"} {
		if b, err := os.ReadFile(filepath.Join(dir, f, RunsFile)); err != nil || len(b) == 0 {
			t.Errorf("%s/%s: %v", f, RunsFile, err)
		}
	}
}

// mustJSON returns v encoded as JSON.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lstmsAndSequences exports test sequences of a 2-day, 5-app trace's
// second day and trains two tiny LSTMs (seeds 1 and 2) on them, for the
// report's §4.4 table.
func lstmsAndSequences(t *testing.T, dir string) (string, []string) {
	t.Helper()
	seq := filepath.Join(dir, "seq.parquet")
	ec := train.DefaultExportConfig()
	flagtest.Parse(t, &ec, "--synth-days", "2", "--apps", "5", "--days", "2-2", "--sample", "300", "--seed", "1", "--out", seq)
	if err := train.Export(t.Context(), ec, io.Discard, io.Discard); err != nil {
		t.Fatalf("exporting sequences: %v", err)
	}
	var dirs []string
	for s := 1; s <= 2; s++ {
		d := filepath.Join(dir, "lstm-s"+strconv.Itoa(s))
		lc := train.DefaultLSTMConfig()
		flagtest.Parse(t, &lc, "--data", seq, "--out", d, "--epochs", "1", "--hidden", "8,8", "--dense-hidden", "8", "--seed", strconv.Itoa(s))
		if err := train.TrainLSTM(t.Context(), lc, io.Discard, io.Discard); err != nil {
			t.Fatalf("training LSTM seed %d: %v", s, err)
		}
		dirs = append(dirs, d)
	}
	return seq, dirs
}

// checkPredictions checks the report's §4.4 rows against the metrics
// `strata eval --lstm-test` computes for the same checkpoints: one LSTM row
// of both seeds (their mean and 95 % interval), the moving average last,
// and the table in report.md.
func checkPredictions(t *testing.T, sum *Summary, out, seq string, lstms []string) {
	t.Helper()
	rows, err := eval.LSTMTestMetrics(t.Context(), seq, lstms)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Predictions) != 2 || len(rows) != 2 {
		t.Fatalf("%d prediction rows (eval: %d), want the LSTM's and the moving average's: %+v", len(sum.Predictions), len(rows), sum.Predictions)
	}
	l, ma := sum.Predictions[0], sum.Predictions[1]
	if !strings.HasPrefix(l.Predictor, "lstm (") || strings.Join(l.Dirs, ",") != strings.Join(lstms, ",") || len(l.PerCheckpoint) != 2 ||
		ma.Predictor != "moving-average (5 steps)" || len(ma.PerCheckpoint) != 1 || l.Samples == 0 || l.Samples != ma.Samples {
		t.Fatalf("prediction rows %+v", sum.Predictions)
	}
	for i, p := range sum.Predictions {
		var rmse, r2 []float64
		for _, m := range rows[i].Metrics {
			rmse, r2 = append(rmse, m.RMSE[2]), append(r2, m.R2[0])
		}
		if m, h := eval.MeanCI95(rmse); m != p.RMSE["request_rate"].Mean || h != p.RMSE["request_rate"].CI95 {
			t.Errorf("%s request-rate RMSE %+v, from the checkpoints %v ± %v", p.Predictor, p.RMSE["request_rate"], m, h)
		}
		if m, _ := eval.MeanCI95(r2); m != p.R2["cpu"].Mean {
			t.Errorf("%s CPU R² %+v, from the checkpoints %v", p.Predictor, p.R2["cpu"], m)
		}
	}
	if l.RMSE["request_rate"].CI95 <= 0 {
		t.Errorf("two different seeds gave no interval: %+v", l.RMSE["request_rate"])
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### §4.4 operational layer: next-step predictions", "| " + l.Predictor + " | 2 | ", "| moving-average (5 steps) | 1 | ", "R² 0.15–0.25"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// TestReportLSTMFlags checks the LSTM flags' errors: test sequences are
// needed for --lstm-models, and a checkpoint to score for --lstm-test.
func TestReportLSTMFlags(t *testing.T) {
	dir := t.TempDir()
	c := DefaultConfig()
	c.Eval.Record.Store.File, c.Out, c.Eval.Baselines = filepath.Join(dir, "r.duckdb"), dir, true
	c.Eval.LSTMModels = dir
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--lstm-test") {
		t.Errorf("--lstm-models alone: %v, want an error naming --lstm-test", err)
	}
	c.Eval.LSTMModels, c.Eval.LSTMTest, c.Eval.Models = "", filepath.Join(dir, "seq.parquet"), dir
	if _, err := c.lstmDirs(); !errors.Is(err, errNoLSTM) {
		t.Errorf("--lstm-test with no lstm.ckpt in --models: %v, want errNoLSTM", err)
	}
}

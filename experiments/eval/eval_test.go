package eval

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/internal/flagtest"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
)

// runEval runs the evaluation that args, `strata eval`'s flags, ask for.
func runEval(t *testing.T, stdout, stderr io.Writer, args []string) error {
	t.Helper()
	c := DefaultConfig()
	flagtest.Parse(t, &c, append([]string{"--store", ""}, args...)...)
	return Run(context.Background(), c, stdout, stderr)
}

func TestEvalVariants(t *testing.T) {
	rows := evalVariants([]schemas.Layer{schemas.Tactical, schemas.Operational}, nil)
	if rows[0].Varied != "reference" {
		t.Fatalf("first row %+v, want the reference", rows[0])
	}
	seen := map[string]bool{}
	for _, r := range rows[1:] {
		// One layer differs from the reference, never to the reference's
		// own policy.
		diff := 0
		for l, p := range r.Policies {
			if p != rows[0].Policies[l] {
				diff++
				if l != r.Varied || p != r.Policy {
					t.Fatalf("row %+v changes %s", r, l)
				}
			}
		}
		if diff != 1 {
			t.Fatalf("row %+v changes %d layers", r, diff)
		}
		seen[r.Varied+"/"+r.Policy] = true
	}
	for _, want := range []string{"tactical/oracle", "tactical/static-best", "tactical/power-tuning", "tactical/random", "operational/knative", "operational/reactive"} {
		if !seen[want] {
			t.Errorf("no row varies %s", want)
		}
	}
	if seen["tactical/greedy-cost"] || seen["operational/hybrid-histogram"] || seen["strategic/random"] {
		t.Errorf("rows vary the reference or an unselected layer: %v", seen)
	}
	if got := evalVariants([]schemas.Layer{schemas.Strategic}, []string{"oracle"}); len(got) != 2 || got[1].Policy != "oracle" {
		t.Fatalf("--policies oracle: %+v", got)
	}
	// Strata's own policies and overrides only when asked, in the order
	// given; names of other layers or unknown ones are not rows.
	got := evalVariants([]schemas.Layer{schemas.Operational}, []string{"hazard-prewarm:threshold=0.01", "knative", "oracle", "bogus"})
	if len(got) != 3 || got[1].Policy != "hazard-prewarm:threshold=0.01" || got[2].Policy != "knative" || got[1].Policies["operational"] != got[1].Policy {
		t.Fatalf("--policies hazard-prewarm:threshold=0.01,knative,oracle,bogus: %+v", got)
	}
	for _, r := range evalVariants([]schemas.Layer{schemas.Operational}, nil) {
		if strings.HasPrefix(r.Policy, "hazard-prewarm") {
			t.Errorf("--baselines without --policies runs %s, not a baseline", r.Policy)
		}
	}
}

// TestEvalOracle runs `strata eval --baselines` end to end on one synthetic
// day of 3 apps without warm-up, varying the tactical layer to the
// oracle only: two closed-loop runs, one table. The oracle's tactical
// regret is below the reference's and its tactical reward above (with the
// operational layer pre-warming, its regret need not be 0; see
// docs/baselines.md).
func TestEvalOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("two closed-loop runs of a day")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	js := filepath.Join(t.TempDir(), "eval.json")
	var out, errb bytes.Buffer
	err := runEval(t, &out, &errb, []string{"--baselines", "--synth-days", "1", "--apps", "3", "--eval-days", "1-1", "--warmup-days", "0",
		"--layers", "tactical", "--policies", "oracle", "--csv", "--summary", js})
	if err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, &out)
	}
	if len(recs) != 3 || recs[0][0] != "varied" || recs[1][0] != "reference" || recs[2][1] != "oracle" {
		t.Fatalf("table:\n%s", &out)
	}
	var rows []evalRow
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	ref, orc := rows[0], rows[1]
	if ref.Invocations == 0 || ref.Invocations != orc.Invocations {
		t.Fatalf("scored invocations %d and %d: want the same, positive", ref.Invocations, orc.Invocations)
	}
	if orc.MeanReward["tactical"] <= ref.MeanReward["tactical"] || orc.MeanRegret["tactical"] >= ref.MeanRegret["tactical"] {
		t.Fatalf("oracle tactical reward %.4f regret %.4f vs reference %.4f %.4f", orc.MeanReward["tactical"], orc.MeanRegret["tactical"],
			ref.MeanReward["tactical"], ref.MeanRegret["tactical"])
	}
	if recs[0][10] != "USD / M inv" {
		t.Fatalf("column 10 is %q, want the cost", recs[0][10])
	}
	if _, err := strconv.ParseFloat(recs[1][10], 64); err != nil {
		t.Fatalf("cost column %q: %v", recs[1][10], err)
	}
	// The keep-warm part of the cost: the reference pre-warms
	// (hybrid-histogram), so it is positive and at most the cost.
	if recs[0][11] != "keep-warm USD / M inv" || recs[1][11] != strconv.FormatFloat(ref.KeepWarmPerM, 'f', 2, 64) {
		t.Fatalf("column 11 %q = %q, want the keep-warm cost %.2f", recs[0][11], recs[1][11], ref.KeepWarmPerM)
	}
	if !(ref.KeepWarmPerM > 0 && ref.KeepWarmPerM < ref.CostPerM) {
		t.Fatalf("reference keep-warm %.2f USD per million of %.2f: want positive and below the cost", ref.KeepWarmPerM, ref.CostPerM)
	}
	// The tactical reward over the hours with invocations, and their share
	// of the tactical rows (the rest have only pre-warm cost).
	for _, r := range rows {
		sh := r.InvokedShare["tactical"]
		if !(sh > 0 && sh <= 1) || r.MeanRewardInvoked["tactical"] == 0 {
			t.Fatalf("%s %s: invoked share %g, mean reward over invoked hours %g", r.Varied, r.Policy, sh, r.MeanRewardInvoked["tactical"])
		}
		if sh == 1 && r.MeanRewardInvoked["tactical"] != r.MeanReward["tactical"] {
			t.Fatalf("%s %s: every tactical row invoked, yet means %g and %g", r.Varied, r.Policy, r.MeanRewardInvoked["tactical"], r.MeanReward["tactical"])
		}
	}
	if got, want := recs[1][5], strconv.FormatFloat(100*rows[0].InvokedShare["tactical"], 'f', 1, 64); got != want {
		t.Fatalf("invoked %% column %q, want %q", got, want)
	}
}

// TestMeanCI95 checks the confidence half-width against Student t's
// tabulated 97.5 % quantile for 4 degrees of freedom (2.776).
func TestMeanCI95(t *testing.T) {
	for _, tc := range []struct {
		name       string
		xs         []float64
		mean, half float64
	}{
		{"one value", []float64{0.3}, 0.3, 0},
		{"five seeds", []float64{1, 2, 3, 4, 5}, 3, 2.776 * math.Sqrt(2.5) / math.Sqrt(5)},
		{"equal", []float64{0.5, 0.5, 0.5}, 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mean, half := MeanCI95(tc.xs)
			if math.Abs(mean-tc.mean) > 1e-12 || math.Abs(half-tc.half) > 1e-3 {
				t.Errorf("MeanCI95(%v) = %v ± %v, want %v ± %v", tc.xs, mean, half, tc.mean, tc.half)
			}
		})
	}
}

// TestSummarizeOracleShare checks the summary's tactical share of the
// oracle row and its averaging over seeds.
func TestSummarizeOracleShare(t *testing.T) {
	run := func(r float64, models string) evalRow {
		return evalRow{Models: models, MeanReward: map[string]float64{"tactical": r}, CostPerM: r * 100}
	}
	rows := []modelsRow{
		{Section: "tactical", Label: "oracle", Runs: []evalRow{run(0.5, "")}},
		{Section: "tactical", Label: "ppo", Runs: []evalRow{run(0.3, "a"), run(0.5, "b")}},
	}
	s := summarize(rows)
	if len(s) != 2 || s[1].OracleShare == nil || math.Abs(*s[1].OracleShare-0.8) > 1e-12 || s[1].Seeds != 2 ||
		math.Abs(s[1].CostPerM-40) > 1e-9 || s[1].CI95["tactical"] <= 0 || len(s[1].Models) != 2 {
		t.Fatalf("summary: %+v", s)
	}
}

// TestEvalParallelSameRows runs the same small evaluation one
// configuration at a time and three at once: the rows are equal but for
// their wall times, static-best's choices (computed once, under the
// cache's lock) included.
func TestEvalParallelSameRows(t *testing.T) {
	if testing.Short() {
		t.Skip("six closed-loop runs of a day")
	}
	rowsOf := func(parallel string) []evalRow {
		js := filepath.Join(t.TempDir(), "eval.json")
		var out, errb bytes.Buffer
		err := runEval(t, &out, &errb, []string{"--baselines", "--synth-days", "2", "--apps", "3", "--eval-days", "2-2", "--warmup-days", "0",
			"--layers", "tactical", "--policies", "static-best,oracle", "--csv", "--summary", js, "--parallel", parallel})
		if err != nil {
			t.Fatalf("--parallel %s: %v\n%s", parallel, err, &errb)
		}
		if n := strings.Count(errb.String(), "eval "); n < 3 {
			t.Fatalf("--parallel %s: %d progress lines, want 3:\n%s", parallel, n, &errb)
		}
		b, err := os.ReadFile(js)
		if err != nil {
			t.Fatal(err)
		}
		var rows []evalRow
		if err := json.Unmarshal(b, &rows); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			rows[i].WallSeconds, rows[i].RunID = 0, ""
		}
		return rows
	}
	one, three := rowsOf("1"), rowsOf("3")
	a, _ := json.Marshal(one)
	b, _ := json.Marshal(three)
	if len(one) != 3 || !bytes.Equal(a, b) {
		t.Fatalf("rows differ:\n--parallel 1: %s\n--parallel 3: %s", a, b)
	}
	if c := DefaultConfig(); c.Parallel != 1 {
		t.Fatalf("default --parallel %d, want 1", c.Parallel)
	}
	c := DefaultConfig()
	c.Baselines, c.Parallel = true, 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--parallel 0") {
		t.Fatalf("--parallel 0: %v", err)
	}
}

func TestSplitPolicies(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"reactive", []string{"reactive"}},
		{"reactive,knative", []string{"reactive", "knative"}},
		{"hazard-prewarm:threshold=0.01,bandwidth_s=60,knative", []string{"hazard-prewarm:threshold=0.01,bandwidth_s=60", "knative"}},
		{"a:k=1,b:k=2,j=3", []string{"a:k=1", "b:k=2,j=3"}},
		{"k=1,reactive", []string{"k=1", "reactive"}},
	}
	for _, tt := range tests {
		if got := SplitPolicies(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("SplitPolicies(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEvalRecordsRuns evaluates two tactical configurations on day 2 after
// a warm-up day with a DuckDB store, and checks what the store holds: a
// runs row per configuration with its days and wall time; rewards of the
// scored day only; strategic and tactical decisions (static-best's, made
// once at the start, too); no operational decisions; a latency histogram of the scored day whose total is the
// scored invocations; and the documented queries agree with the printed
// figures (p95 within the histogram's 2 %, mean reward exactly).
func TestEvalRecordsRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("two closed-loop runs of two days")
	}
	dir := t.TempDir()
	db, js := filepath.Join(dir, "runs.duckdb"), filepath.Join(dir, "eval.json")
	var out, errb bytes.Buffer
	err := runEval(t, &out, &errb, []string{"--baselines", "--synth-days", "2", "--apps", "3", "--eval-days", "2-2", "--warmup-days", "1",
		"--layers", "tactical", "--policies", "static-best", "--summary", js, "--store", db})
	if err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rows []evalRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDuckDB(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := func(sql string) [][]any {
		t.Helper()
		_, res, err := st.Query(t.Context(), sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return res
	}
	got := q("SELECT label, kind, first_day, scored_first_day, scored_last_day, wall_ms > 0, tactical_policy FROM runs ORDER BY label")
	want := "[[reference eval 1 2 2 true greedy-cost] [tactical static-best eval 1 2 2 true static-best]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("runs rows %v, want %s", got, want)
	}
	const day = int64(86_400_000)
	for _, tc := range []struct{ what, sql string }{
		{"rewards of the warm-up day", fmt.Sprintf("SELECT count() FROM rewards WHERE tick_ms < %d", day)},
		{"operational decisions (not asked for)", "SELECT count() FROM decisions WHERE layer = 'operational'"},
		{"latency rows of the warm-up day", "SELECT count() FROM latency_hist WHERE day <> 2"},
	} {
		if n := q(tc.sql)[0][0]; n != int64(0) {
			t.Errorf("%s: %v rows, want none", tc.what, n)
		}
	}
	// Decisions are all stored, warm-up included: one in force on the
	// scored day may have been made before it (static-best decides once).
	for _, label := range []string{"reference", "tactical static-best"} {
		n := q(fmt.Sprintf("SELECT count() FROM decisions INNER JOIN runs USING (run_id) WHERE label = '%s' AND layer = 'tactical'", label))[0][0].(int64)
		if n == 0 {
			t.Errorf("%s: no tactical decisions stored", label)
		}
	}
	byLabel := map[string]evalRow{}
	for _, r := range rows {
		label := r.Varied
		if r.Policy != "" {
			label += " " + r.Policy
		}
		byLabel[label] = r
		tot := q(fmt.Sprintf("SELECT total FROM latency_hist WHERE run_id = '%s' AND bucket = %d", r.RunID, schemas.LatencyBuckets-1))
		if len(tot) != 1 || tot[0][0] != r.Invocations {
			t.Errorf("%s: latency histogram total %v, want the %d scored invocations", label, tot, r.Invocations)
		}
	}
	for _, row := range q(store.RunQueries[0].SQL(2, 2)) {
		r := byLabel[row[0].(string)]
		if p95 := row[1].(float64); p95 < r.P95 || p95 > r.P95*schemas.LatencyGrowth {
			t.Errorf("%s: p95 from the store %v, printed %v (want within 2 %% above)", row[0], p95, r.P95)
		}
	}
	means := q(store.RunQueries[1].SQL(2, 2))
	if len(means) != 2 {
		t.Fatalf("mean rewards %v, want two labels", means)
	}
	for _, row := range means {
		r := byLabel[row[0].(string)]
		if m := row[2].(float64); math.Abs(m-r.MeanReward["tactical"]) > 1e-9 {
			t.Errorf("%s: mean tactical reward from the store %v, printed %v", row[0], m, r.MeanReward["tactical"])
		}
	}
}

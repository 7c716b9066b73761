package report

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/infra/store"
)

// TestCompareCombinations checks a learned hierarchy's standing among the
// combinations on each figure (best, beaten, tied) and which combinations
// dominate it on the six figures of the issue and on cost, p95 and SLA
// violations alone.
func TestCompareCombinations(t *testing.T) {
	cfg := func(label string, rt, cost, p95, sla float64) *ConfigSummary {
		return &ConfigSummary{Label: label, MeanReward: map[string]float64{"tactical": rt}, Invocations: 100, CostPerM: cost, P95: p95, SLARate: sla}
	}
	h := cfg("hierarchy DQN+PPO", 0.5, 10, 100, 0.02)
	h.Models, h.Policies = []string{"m1"}, map[string]string{"strategic": "dqn", "tactical": "ppo", "operational": "reactive"}
	s := &Summary{
		Configs: []*ConfigSummary{h, {Label: "reference", Policies: map[string]string{"strategic": "greedy-cost", "tactical": "greedy-cost"}}},
		Combinations: []*ConfigSummary{
			cfg("combination a", 0.4, 9, 100, 0.02),  // cheaper, same p95 and SLA: dominates
			cfg("combination b", 0.6, 9, 120, 0.01),  // cheaper and fewer violations, slower: does not
			cfg("combination c", 0.5, 10, 100, 0.02), // equal: does not
			cfg("combination d", 0.3, 12, 90, 0.03),
			cfg("combination e", 0.3, 8, 100, 0.02), // cheaper, more cold starts: dominates on cost, p95 and SLA alone
		},
	}
	s.Combinations[4].ColdRate = 0.1
	s.compareCombinations()
	want := map[string]Standing{
		"R tactical":  {Value: 0.5, Best: "combination b", BestValue: 0.6, Beats: 3, Ties: 1, N: 5},
		"USD / M inv": {Value: 10, Best: "combination e", BestValue: 8, Beats: 1, Ties: 1, N: 5},
		"p95 ms":      {Value: 100, Best: "combination d", BestValue: 90, Beats: 1, Ties: 3, N: 5},
		"SLA viol %":  {Value: 2, Best: "combination b", BestValue: 1, Beats: 1, Ties: 3, N: 5},
		"cold %":      {Value: 0, Best: "combination a", BestValue: 0, Beats: 1, Ties: 4, N: 5},
	}
	got := map[string]Standing{}
	for _, st := range s.Standings {
		if st.Label != h.Label {
			t.Errorf("standing of %q: only the learned hierarchy is compared", st.Label)
		}
		got[st.Figure] = st
	}
	if _, ok := got["R strategic"]; ok {
		t.Error("a standing on R strategic, which no configuration measured")
	}
	for f, w := range want {
		g := got[f]
		w.Label, w.Figure = h.Label, f
		if g != w {
			t.Errorf("%s: %+v, want %+v", f, g, w)
		}
	}
	if len(s.Dominance) != 2 || !slices.Equal(s.Dominance[0].DominatedBy, []string{"combination a"}) ||
		!slices.Equal(s.Dominance[1].DominatedBy, []string{"combination a", "combination e"}) {
		t.Errorf("dominance %+v, want the hierarchy dominated by combination a on the six figures, by a and e on cost, p95 and SLA", s.Dominance)
	}
	var b bytes.Buffer
	s.combinationsMarkdown(&b)
	for _, w := range []string{"| R tactical | combination b | 0.6000 | 0.5000 (beats 3 of 5) |", "| SLA viol % | combination b | 1.00 | 2.00 (beats 1 of 5) |", "| p95 ms | combination d | 90 | 100 (beats 1 of 5) |",
		"dominated on cost, carbon, p95, p99, cold starts and SLA violations by 1 combination(s): combination a.",
		"dominated on cost, p95 and SLA violations by 2 combination(s): combination a; combination e.", "| d | —"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("markdown lacks %q:\n%s", w, b.String())
		}
	}
}

// TestReportCombinations runs a report with --combinations narrowed to
// two strategic and two tactical baselines: the two combinations the
// baseline comparison does not run are run, the two it does (the reference
// and tactical random) are its runs, the combinations stay out of the
// configurations' table and figures, have a figure of their own, and a
// second report finds them all in the store.
func TestReportCombinations(t *testing.T) {
	if testing.Short() {
		t.Skip("four closed-loop runs of a day")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "report")
	args := []string{"--baselines", "--layers", "tactical", "--policies", "random,greedy-cost", "--combinations", "--synth-days", "1", "--apps", "3",
		"--eval-days", "1-1", "--warmup-days", "0", "--parallel", "2", "--store", filepath.Join(dir, "runs.duckdb"), "--out", out}
	stdout, stderr, err := reportOutput(args)
	if err != nil {
		t.Fatalf("strata report: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "2 configurations, 4 runs (4 run now") {
		t.Errorf("report ran other than the 2 configurations' and the 2 new combinations' runs:\n%s", stdout)
	}
	sum := runReport(t, append(args, "--from-store", "--out", filepath.Join(dir, "again")))
	var labels []string
	for _, c := range sum.Combinations {
		labels = append(labels, c.Label)
	}
	want := []string{"combination random / random / hybrid-histogram", "combination random / greedy-cost / hybrid-histogram",
		"combination greedy-cost / random / hybrid-histogram", "combination greedy-cost / greedy-cost / hybrid-histogram"}
	if !slices.Equal(labels, want) {
		t.Fatalf("combinations %q, want %q", labels, want)
	}
	if len(sum.Configs) != 2 {
		t.Errorf("%d configurations, want the reference and tactical random (the combinations apart)", len(sum.Configs))
	}
	ref, rnd := sum.byLabel("reference"), sum.byLabel("tactical random")
	if ref == nil || rnd == nil {
		t.Fatalf("configurations %+v lack the reference or tactical random", sum.Configs)
	}
	for i, same := range []*ConfigSummary{nil, nil, rnd, ref} {
		c := sum.Combinations[i]
		if len(c.RunIDs) != 1 {
			t.Fatalf("%s: runs %v, want one", c.Label, c.RunIDs)
		}
		switch {
		case same != nil && (!slices.Equal(c.RunIDs, same.RunIDs) || c.MeanReward["tactical"] != same.MeanReward["tactical"]):
			t.Errorf("%s: run %v R %v, want %s's run %v R %v", c.Label, c.RunIDs, c.MeanReward["tactical"], same.Label, same.RunIDs, same.MeanReward["tactical"])
		case same == nil && (slices.Contains(ref.RunIDs, c.RunIDs[0]) || slices.Contains(rnd.RunIDs, c.RunIDs[0])):
			t.Errorf("%s answered by a baseline's run %v", c.Label, c.RunIDs)
		}
		if c.Invocations == 0 || c.P95 <= 0 {
			t.Errorf("%s: no figures (%d invocations, p95 %v)", c.Label, c.Invocations, c.P95)
		}
	}
	// The run time: the four distinct runs (aliases counted once), their
	// runs rows' wall times summed.
	st, err := store.OpenDuckDB(t.Context(), filepath.Join(dir, "runs.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	_, rows, err := st.Query(t.Context(), "SELECT count(*), sum(wall_ms) FROM runs FINAL WHERE kind = 'eval'")
	_ = st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n, ms := num(rows[0][0]), num(rows[0][1]); sum.Runs != 4 || n != 4 || math.Abs(sum.RunSeconds-ms/1000) > 1e-9 || ms <= 0 {
		t.Errorf("report: %d runs, %v s of run time; the store: %v runs, %v ms", sum.Runs, sum.RunSeconds, n, ms)
	}
	if sum.Combinations[0].MeanReward["strategic"] == ref.MeanReward["strategic"] {
		t.Error("strategic random scored as the reference's greedy-cost")
	}
	md, err := os.ReadFile(filepath.Join(dir, "again", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## The full hierarchy against every baseline combination", "No learned hierarchy was evaluated", "| random / random / hybrid-histogram |"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q", w)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "again", FigCombinations))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("%s does not decode as PNG: %v", FigCombinations, err)
	}
	// A partial report of more combinations than the store has: the
	// four found; the one-layer variation not run (which answers a
	// combination too) and the four other combinations listed.
	if _, _, err := reportOutput(append(slices.Clone(args), "--partial")); err == nil || !strings.Contains(err.Error(), "--from-store") {
		t.Errorf("--partial without --from-store: %v, want it refused", err)
	}
	wider := append(slices.Clone(args), "--from-store", "--policies", "random,greedy-cost,greedy-latency", "--out", filepath.Join(dir, "partial"))
	if _, _, err := reportOutput(wider); err == nil || !strings.Contains(err.Error(), "have no finished run") {
		t.Errorf("--from-store with runs missing: %v, want it refused without --partial", err)
	}
	part := runReport(t, append(wider, "--partial"))
	if len(part.Combinations) != 4 || part.CombinationsPlanned != 9 {
		t.Errorf("partial: %d combinations of %d planned, want 4 of 9", len(part.Combinations), part.CombinationsPlanned)
	}
	wantMissing := []string{"tactical greedy-latency", "combination random / greedy-latency / hybrid-histogram",
		"combination greedy-latency / random / hybrid-histogram", "combination greedy-latency / greedy-latency / hybrid-histogram",
		"combination greedy-latency / greedy-cost / hybrid-histogram"} // greedy-cost / greedy-latency / … is tactical greedy-latency's run
	for _, m := range wantMissing {
		if !slices.Contains(part.Missing, m) {
			t.Errorf("partial report's missing runs %q lack %q", part.Missing, m)
		}
	}
	if len(part.Missing) != len(wantMissing) {
		t.Errorf("partial report's missing runs %q, want %d", part.Missing, len(wantMissing))
	}
	if pm, err := os.ReadFile(filepath.Join(dir, "partial", "report.md")); err != nil || !strings.Contains(string(pm), "**Partial report**") ||
		!strings.Contains(string(pm), "4 of the 9 combinations planned have run") {
		t.Errorf("partial report.md does not say it is partial (%v)", err)
	}

	var first Summary
	if b, err := os.ReadFile(filepath.Join(out, "summary.json")); err != nil || json.Unmarshal(b, &first) != nil {
		t.Fatalf("reading the first report's summary: %v", err)
	}
	if a, b := jsonOf(t, first.Combinations), jsonOf(t, sum.Combinations); !sameJSON(a, b) {
		t.Errorf("the report that ran the combinations and the one from the store differ on them:\n%v\n%v", a, b)
	}
}

func TestETA(t *testing.T) {
	tests := []struct {
		elapsed     time.Duration
		done, total int
		want        string
	}{
		{10 * time.Minute, 2, 10, "; 8 left, ~40m at this pace"},
		{90 * time.Second, 1, 3, "; 2 left, ~3m at this pace"},
		{3 * time.Hour, 1, 2, "; 1 left, ~3h0m at this pace"},
		{time.Hour, 5, 5, ""},
		{0, 0, 5, ""},
	}
	for _, tt := range tests {
		if got := eta(tt.elapsed, tt.done, tt.total); got != tt.want {
			t.Errorf("eta(%v, %d, %d) = %q, want %q", tt.elapsed, tt.done, tt.total, got, tt.want)
		}
	}
}

// TestVariantJobs checks that the sensitivity study re-runs the baseline
// comparison alone: not the learned rows, the full hierarchy's baseline
// rows or the combinations.
func TestVariantJobs(t *testing.T) {
	base := []eval.Job{
		{Section: "reference", Label: "reference"},
		{Section: "tactical", Label: "tactical random"},
		{Section: "operational", Label: "operational keepalive-10m:keep_warm_ms=60000"},
		{Section: "tactical", Label: "tactical ppo", Models: "m1"},
		{Section: "hierarchy", Label: "hierarchy hindsight: oracle"},
		{Section: eval.SectionCombination, Label: "combination random / random / reactive"},
	}
	got := variantJobs(base)
	if len(got) != len(Variants) {
		t.Fatalf("jobs for %d variants, want %d", len(got), len(Variants))
	}
	for i, v := range Variants {
		var labels []string
		for _, j := range got[i] {
			labels = append(labels, j.Label)
		}
		want := []string{"reference" + v.Tag(), "tactical random" + v.Tag(), "operational keepalive-10m:keep_warm_ms=60000" + v.Tag()}
		if !slices.Equal(labels, want) {
			t.Errorf("variant %d: %q, want %q", i, labels, want)
		}
	}
}

func TestFirstOf(t *testing.T) {
	tests := []struct {
		xs   []string
		k    int
		want string
	}{
		{[]string{"a", "b"}, 5, "a; b"},
		{[]string{"a", "b", "c"}, 2, "a; b and 1 more"},
		{nil, 3, ""},
	}
	for _, tt := range tests {
		if got := firstOf(tt.xs, tt.k); got != tt.want {
			t.Errorf("firstOf(%q, %d) = %q, want %q", tt.xs, tt.k, got, tt.want)
		}
	}
}

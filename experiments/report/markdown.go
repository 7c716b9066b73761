package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// claim is a figure the seed report states, shown beside the measured one
// and labelled as a claim.
type claim struct {
	label, what, claimed string
}

// The seed's claimed figures (seed report §4.2–§4.5), by the label of the
// configuration that measures the same thing here.
var (
	tacticalClaims = []claim{
		{"tactical random", "random placement", "0.271 (± 0.031)"},
		{"tactical greedy-latency", "greedy locality (minimise latency)", "0.562 (± 0.018)"},
		{"tactical static-best", "(no static-best row in the seed)", "—"},
		{"tactical oracle", "static optimal, perfect hindsight", "0.931"},
		{"tactical ppo", "PPO, 5 seeds", "0.9021, 95 % CI [0.8987, 0.9055]"},
	}
	ablationClaims = []claim{
		{"ablation random", "random baseline", "0.271"},
		{"ablation DQN only", "strategic only (DQN)", "0.542"},
		{"ablation DQN+PPO", "strategic + tactical (DQN+PPO)", "0.9036"},
		{"ablation DQN+PPO+LSTM", "full framework", "0.947 (projected, not measured, in the seed)"},
	}
	strategicMixClaim = map[string]float64{"aws": 0.45, "azure": 0.35, "gcp": 0.20}
	termClaims        = map[string]string{"r_cost": "0.89", "r_perf": "0.94", "r_carbon": "0.87", "sla_penalty": "−0.002"}
)

// write writes report.md and summary.json into dir.
func (s *Summary) write(dir string) error {
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report summary: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, "summary.json"), err)
	}
	var b bytes.Buffer
	s.markdown(&b)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, "report.md"), err)
	}
	return nil
}

func (s *Summary) byLabel(label string) *ConfigSummary {
	for _, c := range s.Configs {
		if c.Label == label {
			return c
		}
	}
	return nil
}

// markdown writes report.md.
func (s *Summary) markdown(b *bytes.Buffer) {
	w := s.Window
	fmt.Fprintf(b, "# strata report\n\n")
	fmt.Fprintf(b, "`%s` — %.0f s wall for this invocation (runs found in the store are not run again); its %d closed-loop runs took %.1f h of run time in all "+
		"(each run's own wall clock, summed, whenever it ran and however many ran at a time).\n\n", s.Command, s.WallSeconds, s.Runs, s.RunSeconds/3600)
	fmt.Fprintf(b, "Trace `%s` (seed %d); scored days %d–%d after warm-up from day %d; placement before any decision %s. ",
		w.Source, w.Seed, w.ScoredFirst, w.ScoredLast, w.FirstDay, w.Placement)
	fmt.Fprintf(b, "Source revision(s) of the runs: %s.\n\n", orNone(strings.Join(s.Revisions, ", ")))
	b.WriteString("Every figure below is read back from the store (`runs`, `rewards`, `decisions`, `latency_hist`; " +
		"docs/report.md says how each is computed). R is a layer's mean reward per run, averaged over the configuration's runs " +
		"(one per training seed where a layer is learned) with its 95 % interval (Student t, n−1 degrees of freedom; none for one run). " +
		"Cost (keep-warm included), carbon, cold starts and SLA violations pool the runs' operational reward rows (the twin's totals); percentiles come from the runs' merged latency histograms " +
		"(at most 2 % above the exact value). **Claims** are the seed report's figures, quoted, not measured.\n\n")

	if n := len(s.Missing); n > 0 {
		fmt.Fprintf(b, "**Partial report** (`--partial`): %d planned run(s) have no run in the store yet and are left out; every figure below is over the runs found. "+
			"Not run yet: %s.\n\n", n, firstOf(s.Missing, 30))
	}
	b.WriteString("## Every configuration\n\n")
	b.WriteString("| section | configuration | runs | R strategic | R tactical | R operational | USD / M inv | keep-warm USD / M | gCO2e / M | p50 ms | p95 ms | p99 ms | cold % | SLA viol % | Pareto (cost–p95, cost–carbon) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range s.Configs {
		fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %s, %s |\n",
			c.Section, c.Label, len(c.RunIDs), rci(c, "strategic"), rci(c, "tactical"), rci(c, "operational"),
			c.CostPerM, c.KeepWarmPerM, c.GCO2ePerM, c.P50, c.P95, c.P99, 100*c.ColdRate, 100*c.SLARate, yes(c.OnFrontCostP95), yes(c.OnFrontCostCarbon))
	}

	s.perRunTable(b)

	b.WriteString("\n## The seed's tables, measured\n\n### §4.3 tactical layer: mean tactical reward\n\n")
	b.WriteString("| configuration | measured R tactical | runs | the seed's row | **claim** |\n|---|---|---|---|---|\n")
	for _, cl := range tacticalClaims {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", cl.label, measured(s.byLabel(cl.label), "tactical"), runs(s.byLabel(cl.label)), cl.what, cl.claimed)
	}
	if o, p := s.byLabel("tactical oracle"), s.byLabel("tactical ppo"); o != nil && p != nil && o.MeanReward["tactical"] != 0 {
		fmt.Fprintf(b, "\nPPO reaches **%.3f of the oracle** here (claim: 0.97).\n", p.MeanReward["tactical"]/o.MeanReward["tactical"])
	}
	b.WriteString("\n### §4.3 reward decomposition of the tactical reward\n\n| term | ")
	cols := []string{"tactical ppo", "tactical static-best", "tactical oracle", "reference"}
	for _, l := range cols {
		fmt.Fprintf(b, "%s | ", l)
	}
	b.WriteString("**claim** (PPO) |\n|---|")
	b.WriteString(strings.Repeat("---|", len(cols)+1) + "\n")
	for _, t := range []string{"r_cost", "r_perf", "r_carbon", "sla_penalty"} {
		fmt.Fprintf(b, "| %s | ", t)
		for _, l := range cols {
			if c := s.byLabel(l); c != nil && len(c.Terms) > 0 {
				fmt.Fprintf(b, "%.4f | ", c.Terms[t])
			} else {
				b.WriteString("not run | ")
			}
		}
		fmt.Fprintf(b, "%s |\n", termClaims[t])
	}
	b.WriteString("\n### §4.2 strategic layer: provider shares of the strategic decisions\n\n| configuration | aws | azure | gcp |\n|---|---|---|---|\n")
	for _, c := range s.Configs {
		if m := c.Mix["strategic provider"]; len(m) > 0 && (c.Section == "strategic" || c.Section == "reference") {
			fmt.Fprintf(b, "| %s | %.0f %% | %.0f %% | %.0f %% |\n", c.Label, 100*m["aws"], 100*m["azure"], 100*m["gcp"])
		}
	}
	fmt.Fprintf(b, "| **claim** (the seed's DQN) | %.0f %% | %.0f %% | %.0f %% |\n", 100*strategicMixClaim["aws"], 100*strategicMixClaim["azure"], 100*strategicMixClaim["gcp"])
	s.predictionsMarkdown(b)
	b.WriteString("\n### §4.5 ablations: the hierarchy level by level\n\n| configuration | measured R strategic | R tactical | R operational | runs | the seed's row | **claim** (its mean reward) |\n|---|---|---|---|---|---|---|\n")
	for _, cl := range ablationClaims {
		c := s.byLabel(cl.label)
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", cl.label, measured(c, "strategic"), measured(c, "tactical"), measured(c, "operational"), runs(c), cl.what, cl.claimed)
	}
	b.WriteString("\n### §4.5 multi-objective trade-off: the Pareto fronts\n\n")
	b.WriteString("On the front of cost against p95 latency: " + orNone(strings.Join(s.ParetoCostP95, "; ")) + ".\n\n")
	b.WriteString("On the front of cost against carbon: " + orNone(strings.Join(s.ParetoCostCarbon, "; ")) + ".\n\n")
	b.WriteString("| front member (cost–p95) | USD per invocation | p95 ms | gCO2e per invocation |\n|---|---|---|---|\n")
	for _, c := range s.Configs {
		if c.OnFrontCostP95 {
			fmt.Fprintf(b, "| %s | %.6f | %.0f | %.4f |\n", c.Label, c.CostPerM/1e6, c.P95, c.GCO2ePerM/1e6)
		}
	}
	b.WriteString("\n**Claims** (the seed, \"across 1000 placement decisions\", latency statistic unstated): cost-optimal $0.00031, 127 ms, 0.68 g; " +
		"performance-optimal $0.00062, 23 ms, 0.81 g; carbon-optimal $0.00048, 89 ms, 0.31 g; the framework $0.00040, 42 ms, 0.48 g.\n\n")
	s.combinationsMarkdown(b)
	if len(s.Sensitivity) > 0 {
		b.WriteString("## Sensitivity to the ASSUMED hidden function properties\n\n")
		b.WriteString("The baseline comparison re-run with each hidden property at a low and a high value (docs/report.md, \"Sensitivity\"); " +
			"each section's configurations ranked by that layer's R. τ is Kendall's rank correlation with the default order (1: the same order).\n\n")
		b.WriteString("| variant | setting | section | order changed | τ | pairs flipped | ranking under the variant (best first) |\n|---|---|---|---|---|---|---|\n")
		changed, incomplete := 0, 0
		for _, r := range s.Sensitivity {
			verdict := "no"
			switch {
			case r.Incomplete:
				incomplete++
				verdict = fmt.Sprintf("incomplete (%d of %d configurations run)", r.ran(), len(r.Default))
			case r.Changed:
				changed++
				verdict = "**yes**"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %.2f | %s | %s |\n", r.Variant, r.What, r.Section, verdict,
				r.KendallTau, orNone(strings.Join(r.Swaps, "; ")), strings.Join(r.Ranked, " > "))
		}
		fmt.Fprintf(b, "\n%d of %d rankings change.", changed, len(s.Sensitivity)-incomplete)
		if incomplete > 0 {
			fmt.Fprintf(b, " %d more are incomplete (a partial report: some of their configurations have not run) and not counted; their τ and flipped pairs are over the configurations that ran.", incomplete)
		}
		b.WriteString(" The default orders: ")
		seen := map[string]bool{}
		for _, r := range s.Sensitivity {
			if !seen[r.Section] {
				seen[r.Section] = true
				fmt.Fprintf(b, "%s: %s. ", r.Section, strings.Join(r.Default, " > "))
			}
		}
		b.WriteString("\n\n")
	}
	b.WriteString("## Figures\n\n")
	for _, f := range s.Figures() {
		fmt.Fprintf(b, "![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
	}
}

// firstOf joins the first k of xs with "; " and says how many more there
// are.
func firstOf(xs []string, k int) string {
	out := strings.Join(xs[:min(len(xs), k)], "; ")
	if len(xs) > k {
		out += fmt.Sprintf(" and %d more", len(xs)-k)
	}
	return out
}

// perRunTable writes each run's mean rewards for the configurations of
// more than one run: the per-seed values behind their means and intervals.
func (s *Summary) perRunTable(b *bytes.Buffer) {
	header := false
	for _, c := range s.Configs {
		if len(c.PerRun) < 2 {
			continue
		}
		if !header {
			b.WriteString("\n### Each run of the configurations with several\n\n")
			b.WriteString("| configuration | run | models | R strategic | R tactical | R operational |\n|---|---|---|---|---|---|\n")
			header = true
		}
		for _, r := range c.PerRun {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", c.Label, r.RunID, orNone(r.Models),
				runR(r, "strategic"), runR(r, "tactical"), runR(r, "operational"))
		}
	}
}

func runR(r RunReward, l string) string {
	m, ok := r.MeanReward[l]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.4f", m)
}

// rci formats a layer's mean reward with its interval.
func rci(c *ConfigSummary, l string) string {
	m, ok := c.MeanReward[l]
	if !ok {
		return "—"
	}
	return Stat{Mean: m, CI95: c.CI95[l]}.format("%.4f")
}

func measured(c *ConfigSummary, l string) string {
	if c == nil {
		return "not run"
	}
	return rci(c, l)
}

func runs(c *ConfigSummary) string {
	if c == nil {
		return "—"
	}
	return fmt.Sprint(len(c.RunIDs))
}

func yes(b bool) string {
	if b {
		return "**front**"
	}
	return "—"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

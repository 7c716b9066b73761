package report

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// FigCombinations is the figure of the combinations of baselines against
// the learned hierarchies (--combinations).
const FigCombinations = "combinations.png"

// combinationFigure is one figure a learned hierarchy is compared with
// every combination of baselines on.
type combinationFigure struct {
	name   string
	higher bool   // a higher value is better
	format string // how report.md prints its values
	get    func(c *ConfigSummary) (float64, bool)
}

func meanReward(l string) func(c *ConfigSummary) (float64, bool) {
	return func(c *ConfigSummary) (float64, bool) { v, ok := c.MeanReward[l]; return v, ok }
}

func always(f func(c *ConfigSummary) float64) func(c *ConfigSummary) (float64, bool) {
	return func(c *ConfigSummary) (float64, bool) { return f(c), c.Invocations > 0 }
}

var combinationFigures = []combinationFigure{
	{"R strategic", true, "%.4f", meanReward("strategic")},
	{"R tactical", true, "%.4f", meanReward("tactical")},
	{"R operational", true, "%.4f", meanReward("operational")},
	{"USD / M inv", false, "%.2f", always(func(c *ConfigSummary) float64 { return c.CostPerM })},
	{"keep-warm USD / M", false, "%.2f", always(func(c *ConfigSummary) float64 { return c.KeepWarmPerM })},
	{"gCO2e / M", false, "%.0f", always(func(c *ConfigSummary) float64 { return c.GCO2ePerM })},
	{"p95 ms", false, "%.0f", always(func(c *ConfigSummary) float64 { return c.P95 })},
	{"p99 ms", false, "%.0f", always(func(c *ConfigSummary) float64 { return c.P99 })},
	{"cold %", false, "%.2f", always(func(c *ConfigSummary) float64 { return 100 * c.ColdRate })},
	{"SLA viol %", false, "%.2f", always(func(c *ConfigSummary) float64 { return 100 * c.SLARate })},
}

// Standing is where a learned hierarchy stands among the combinations of
// baselines on one figure.
type Standing struct {
	// Label is the learned hierarchy's configuration; Figure the figure.
	Label  string  `json:"label"`
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	// Best is the combination best on the figure and BestValue its value.
	Best      string  `json:"best_combination"`
	BestValue float64 `json:"best_value"`
	// Beats counts the combinations the hierarchy is strictly better than,
	// Ties those it equals, of N with the figure.
	Beats int `json:"beats"`
	Ties  int `json:"ties"`
	N     int `json:"combinations"`
}

// Dominance lists, for a learned hierarchy, the combinations of baselines
// at least as good on every one of Figures and better on one of them.
type Dominance struct {
	Label       string   `json:"label"`
	Figures     []string `json:"figures"`
	DominatedBy []string `json:"dominated_by"`
}

// dominanceSets are the sets of figures dominance is judged on, each with
// how report.md names it: every figure the hierarchy is measured on at
// full scale but the rewards and keep-warm cost (cost, carbon, p95, p99,
// cold starts, SLA violations), and the narrower cost, p95 and SLA
// violations a user pays and is paid by. The first keeps a combination
// that is cheaper only by paying more cold starts or carbon from counting
// as better; the second shows which would be preferred by one who weighs
// those three alone.
var dominanceSets = []struct {
	figures []string
	text    string
}{
	{[]string{"USD / M inv", "gCO2e / M", "p95 ms", "p99 ms", "cold %", "SLA viol %"}, "cost, carbon, p95, p99, cold starts and SLA violations"},
	{[]string{"USD / M inv", "p95 ms", "SLA viol %"}, "cost, p95 and SLA violations"},
}

// dominanceText names a set of figures in report.md: its dominanceSets
// text, or the figures themselves for a set not among them.
func dominanceText(figs []string) string {
	for _, d := range dominanceSets {
		if slices.Equal(d.figures, figs) {
			return d.text
		}
	}
	return strings.Join(figs, ", ")
}

// learnedHierarchies returns the configurations whose strategic and
// tactical layers are learned (a DQN and a PPO served from --models).
func (s *Summary) learnedHierarchies() []*ConfigSummary {
	var out []*ConfigSummary
	for _, c := range s.Configs {
		if len(c.Models) > 0 && strings.HasPrefix(c.Policies["strategic"], "dqn") && strings.HasPrefix(c.Policies["tactical"], "ppo") {
			out = append(out, c)
		}
	}
	return out
}

// compareCombinations fills Standings and Dominance: every learned
// hierarchy against every combination of baselines.
func (s *Summary) compareCombinations() {
	s.Standings, s.Dominance = nil, nil
	for _, h := range s.learnedHierarchies() {
		for _, f := range combinationFigures {
			v, ok := f.get(h)
			if !ok {
				continue
			}
			st := Standing{Label: h.Label, Figure: f.name, Value: v}
			for _, c := range s.Combinations {
				cv, ok := f.get(c)
				if !ok {
					continue
				}
				if st.N == 0 || better(cv, st.BestValue, f.higher) {
					st.Best, st.BestValue = c.Label, cv
				}
				st.N++
				switch {
				case cv == v:
					st.Ties++
				case better(v, cv, f.higher):
					st.Beats++
				}
			}
			if st.N > 0 {
				s.Standings = append(s.Standings, st)
			}
		}
		for _, set := range dominanceSets {
			d := Dominance{Label: h.Label, Figures: set.figures, DominatedBy: []string{}}
			for _, c := range s.Combinations {
				if dominates(c, h, set.figures) {
					d.DominatedBy = append(d.DominatedBy, c.Label)
				}
			}
			s.Dominance = append(s.Dominance, d)
		}
	}
}

// better reports whether a is strictly better than b.
func better(a, b float64, higher bool) bool {
	if higher {
		return a > b
	}
	return a < b
}

// dominates reports whether a is at least as good as b on each of the
// named combinationFigures and strictly better on one of them (both
// measured on all of them).
func dominates(a, b *ConfigSummary, figs []string) bool {
	strict := false
	for _, f := range combinationFigures {
		if !slices.Contains(figs, f.name) {
			continue
		}
		x, okA := f.get(a)
		y, okB := f.get(b)
		if !okA || !okB || better(y, x, f.higher) {
			return false
		}
		strict = strict || better(x, y, f.higher)
	}
	return strict
}

// combinationsMarkdown writes the section of the learned hierarchies
// against every combination of baselines.
func (s *Summary) combinationsMarkdown(b *bytes.Buffer) {
	if len(s.Combinations) == 0 && s.CombinationsPlanned == 0 {
		return
	}
	hs := s.learnedHierarchies()
	fmt.Fprintf(b, "## The full hierarchy against every baseline combination\n\n")
	fmt.Fprintf(b, "%d combinations of one causal baseline per layer (strategic × tactical × operational; the oracles are bounds, not combined: "+
		"see the hindsight rows above), one run each; a combination the baseline comparison runs already (the reference, a one-layer variation) is that run. "+
		"The learned hierarchies are the configurations whose strategic and tactical layers are learned, their figures pooled or averaged over their seeds as above. "+
		"\"beats k\" counts the combinations strictly worse on the figure.\n\n", len(s.Combinations))
	if s.CombinationsPlanned > len(s.Combinations) {
		fmt.Fprintf(b, "**Partial**: %d of the %d combinations planned have run; the standings below are among those.\n\n", len(s.Combinations), s.CombinationsPlanned)
	}
	if len(hs) == 0 {
		b.WriteString("No learned hierarchy was evaluated (--models with rows such as DQN+PPO+hybrid-histogram).\n\n")
	} else {
		b.WriteString("| figure | best combination | its value |")
		for _, h := range hs {
			fmt.Fprintf(b, " %s |", h.Label)
		}
		b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(hs)) + "\n")
		for _, f := range combinationFigures {
			var best string
			var bv float64
			cells := make([]string, len(hs))
			found := false
			for i, h := range hs {
				cells[i] = "—"
				for _, st := range s.Standings {
					if st.Label == h.Label && st.Figure == f.name {
						best, bv, found = st.Best, st.BestValue, true
						cells[i] = fmt.Sprintf(f.format+" (beats %d of %d)", st.Value, st.Beats, st.N)
					}
				}
			}
			if !found {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | "+f.format+" | %s |\n", f.name, best, bv, strings.Join(cells, " | "))
		}
		b.WriteString("\n")
		for _, d := range s.Dominance {
			if n := len(d.DominatedBy); n == 0 {
				fmt.Fprintf(b, "- **%s**: no combination is at least as good on %s and better on one.\n", d.Label, dominanceText(d.Figures))
			} else {
				fmt.Fprintf(b, "- **%s** is dominated on %s by %d combination(s): %s.\n", d.Label, dominanceText(d.Figures), n, firstOf(d.DominatedBy, 5))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("### Every combination\n\n")
	b.WriteString("| strategic / tactical / operational | R strategic | R tactical | R operational | USD / M inv | keep-warm USD / M | gCO2e / M | p95 ms | p99 ms | cold % | SLA viol % |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range s.Combinations {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %.2f | %.2f | %.0f | %.0f | %.0f | %.2f | %.2f |\n",
			strings.TrimPrefix(c.Label, "combination "), rci(c, "strategic"), rci(c, "tactical"), rci(c, "operational"),
			c.CostPerM, c.KeepWarmPerM, c.GCO2ePerM, c.P95, c.P99, 100*c.ColdRate, 100*c.SLARate)
	}
	b.WriteString("\n")
}

// combinationsPlots draws every combination (unlabelled) and the learned
// hierarchies (labelled) at cost against p95 latency and against SLA
// violations.
func (s *Summary) combinationsPlots() ([]*plot.Plot, error) {
	hs := s.learnedHierarchies()
	var out []*plot.Plot
	for _, ax := range []struct {
		title, label string
		y            func(c *ConfigSummary) float64
	}{
		{"cost against p95 latency", "p95 latency, ms", func(c *ConfigSummary) float64 { return c.P95 }},
		{"cost against SLA violations", "SLA violations, %", func(c *ConfigSummary) float64 { return 100 * c.SLARate }},
	} {
		p := newPlot("baseline combinations: "+ax.title, "USD per million invocations", ax.label)
		p.Legend.Top = true
		var combos plotter.XYs
		for _, c := range s.Combinations {
			if c.Invocations > 0 {
				combos = append(combos, plotter.XY{X: c.CostPerM, Y: ax.y(c)})
			}
		}
		if len(combos) > 0 {
			sc, err := plotter.NewScatter(combos)
			if err != nil {
				return nil, err
			}
			sc.Color, sc.Radius = palette[7], vg.Points(2)
			p.Add(sc)
			p.Legend.Add(fmt.Sprintf("%d baseline combinations", len(combos)), sc)
		}
		for i, h := range hs {
			pt := plotter.XYs{{X: h.CostPerM, Y: ax.y(h)}}
			sc, err := plotter.NewScatter(pt)
			if err != nil {
				return nil, err
			}
			sc.Color, sc.Radius = palette[(i+1)%len(palette)], vg.Points(4)
			p.Add(sc)
			p.Legend.Add(short(h.Label), sc)
		}
		out = append(out, p)
	}
	return out, nil
}

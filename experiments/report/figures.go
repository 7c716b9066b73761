package report

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/strata-rl/strata/experiments"
)

// The figures the report writes beside report.md.
const (
	FigParetoP95     = "pareto-cost-p95.png"
	FigParetoCarbon  = "pareto-cost-carbon.png"
	FigOperational   = "operational-cold-vs-keepwarm.png"
	FigMix           = "placement-mix.png"
	FigTerms         = "reward-terms.png"
	FigRegret        = "regret-tactical.png"
	FigCurves        = "learning-curves.png"
	keepAlivePolicy  = "operational keepalive-10m:keep_warm_ms="
	figW, figH       = 7 * vg.Inch, 5 * vg.Inch
	maxLabelRunes    = 28
	regretMaxBuckets = 40
)

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255}, color.RGBA{255, 127, 14, 255},
	color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255}, color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
	color.RGBA{188, 189, 34, 255}, color.RGBA{23, 190, 207, 255},
}

// Figures lists the figures a report holds, in the order report.md shows
// them (the learning curves only when models were evaluated, the
// combinations' only with --combinations).
func (s *Summary) Figures() []string {
	out := []string{FigParetoP95, FigParetoCarbon, FigOperational, FigMix, FigTerms, FigRegret}
	if len(s.Curves) > 0 {
		out = append(out, FigCurves)
	}
	if len(s.Combinations) > 0 {
		out = append(out, FigCombinations)
	}
	return out
}

// writeFigures draws every figure into dir.
func (s *Summary) writeFigures(dir string) error {
	draws := map[string]func() ([]*plot.Plot, error){
		FigParetoP95: func() ([]*plot.Plot, error) {
			return []*plot.Plot{s.pareto("cost against p95 latency", "p95 latency, ms", func(c *ConfigSummary) (float64, bool) { return c.P95, c.OnFrontCostP95 })}, nil
		},
		FigParetoCarbon: func() ([]*plot.Plot, error) {
			return []*plot.Plot{s.pareto("cost against carbon", "gCO2e per million invocations", func(c *ConfigSummary) (float64, bool) { return c.GCO2ePerM, c.OnFrontCostCarbon })}, nil
		},
		FigOperational:  s.operational,
		FigMix:          s.mix,
		FigTerms:        s.terms,
		FigRegret:       s.regretPlot,
		FigCurves:       s.curves,
		FigCombinations: s.combinationsPlots,
	}
	for _, name := range s.Figures() {
		ps, err := draws[name]()
		if err != nil {
			return fmt.Errorf("drawing %s: %w", name, err)
		}
		if err := savePNG(filepath.Join(dir, name), ps); err != nil {
			return err
		}
	}
	return nil
}

// ParetoPoints returns the points the Pareto figure of cost against y
// plots, per configuration label: x = USD per million invocations.
func (s *Summary) ParetoPoints(y func(c *ConfigSummary) float64) map[string][2]float64 {
	out := map[string][2]float64{}
	for _, c := range s.Configs {
		out[c.Label] = [2]float64{c.CostPerM, y(c)}
	}
	return out
}

// pareto plots every configuration at (cost, y), the front's points
// joined and drawn larger.
func (s *Summary) pareto(title, ylabel string, y func(c *ConfigSummary) (float64, bool)) *plot.Plot {
	p := newPlot("Pareto front: "+title, "USD per million invocations", ylabel)
	var all, front plotter.XYs
	var labels []string
	for _, c := range s.Configs {
		v, on := y(c)
		all = append(all, plotter.XY{X: c.CostPerM, Y: v})
		labels = append(labels, short(c.Label))
		if on {
			front = append(front, plotter.XY{X: c.CostPerM, Y: v})
		}
	}
	sort.Slice(front, func(i, j int) bool { return front[i].X < front[j].X })
	p.Legend.Top = true
	if sc, err := plotter.NewScatter(all); err == nil {
		sc.Color = palette[0]
		p.Add(sc)
		p.Legend.Add("configuration", sc)
	}
	if len(front) > 0 {
		if line, pts, err := plotter.NewLinePoints(front); err == nil {
			line.Color, pts.Color = palette[1], palette[1]
			pts.Radius = vg.Points(4)
			p.Add(line, pts)
			p.Legend.Add("Pareto front", line, pts)
		}
	}
	if lb, err := plotter.NewLabels(plotter.XYLabels{XYs: all, Labels: labels}); err == nil {
		for i := range lb.TextStyle {
			lb.TextStyle[i].Font.Size = vg.Points(7)
		}
		p.Add(lb)
	}
	return p
}

// operational plots the cold-start rate against the keep-warm cost per
// configuration that varies the operational layer (and the reference),
// the keep-alive sweep joined as one family.
func (s *Summary) operational() ([]*plot.Plot, error) {
	p := newPlot("Operational: cold starts against keep-warm cost", "keep-warm USD per million invocations", "cold-start rate, %")
	p.Legend.Top = true
	var pts, sweep plotter.XYs
	var labels []string
	type sw struct {
		ms int64
		xy plotter.XY
	}
	var sws []sw
	for _, c := range s.Configs {
		if c.Section != "operational" && c.Section != "reference" {
			continue
		}
		xy := plotter.XY{X: c.KeepWarmPerM, Y: 100 * c.ColdRate}
		if ms, ok := strings.CutPrefix(c.Label, keepAlivePolicy); ok {
			if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
				sws = append(sws, sw{v, xy})
				continue
			}
		}
		pts = append(pts, xy)
		labels = append(labels, short(c.Label))
	}
	sort.Slice(sws, func(i, j int) bool { return sws[i].ms < sws[j].ms })
	var swLabels []string
	for _, v := range sws {
		sweep = append(sweep, v.xy)
		swLabels = append(swLabels, fmt.Sprintf("keep-alive %gm", float64(v.ms)/60000))
	}
	if len(pts) > 0 {
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.Color = palette[0]
		p.Add(sc)
		p.Legend.Add("policy", sc)
		if lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels}); err == nil {
			p.Add(lb)
		}
	}
	if len(sweep) > 0 {
		line, lp, err := plotter.NewLinePoints(sweep)
		if err != nil {
			return nil, err
		}
		line.Color, lp.Color = palette[1], palette[1]
		p.Add(line, lp)
		p.Legend.Add("keep-alive family", line, lp)
		if lb, err := plotter.NewLabels(plotter.XYLabels{XYs: sweep, Labels: swLabels}); err == nil {
			p.Add(lb)
		}
	}
	return []*plot.Plot{p}, nil
}

// mix draws the strategic provider shares and the tactical region and
// memory shares per configuration as stacked bars.
func (s *Summary) mix() ([]*plot.Plot, error) {
	var out []*plot.Plot
	for _, dim := range []string{"strategic provider", "tactical region", "tactical memory_mb"} {
		var cfgs []*ConfigSummary
		vals := map[string]bool{}
		for _, c := range s.Configs {
			if len(c.Mix[dim]) > 0 {
				cfgs = append(cfgs, c)
				for v := range c.Mix[dim] {
					vals[v] = true
				}
			}
		}
		unit := "function-hours"
		if strings.HasPrefix(dim, "strategic") {
			unit = "app-days"
		}
		p := newPlot(dim+": share of the scored "+unit+" in force", "", "share")
		if len(cfgs) == 0 {
			out = append(out, p)
			continue
		}
		keys := sortedKeys(vals, dim == "tactical memory_mb")
		var below *plotter.BarChart
		for i, v := range keys {
			ys := make(plotter.Values, len(cfgs))
			for j, c := range cfgs {
				ys[j] = c.Mix[dim][v]
			}
			b, err := plotter.NewBarChart(ys, vg.Points(8))
			if err != nil {
				return nil, err
			}
			b.Color, b.LineStyle.Width = palette[i%len(palette)], 0
			if below != nil {
				b.StackOn(below)
			}
			below = b
			p.Add(b)
			p.Legend.Add(v, b)
		}
		nominalConfigs(p, cfgs)
		out = append(out, p)
	}
	return out, nil
}

// terms draws the tactical reward's terms per configuration as grouped
// bars.
func (s *Summary) terms() ([]*plot.Plot, error) {
	p := newPlot("tactical reward terms (means over the rows)", "", "")
	var cfgs []*ConfigSummary
	for _, c := range s.Configs {
		if len(c.Terms) > 0 {
			cfgs = append(cfgs, c)
		}
	}
	terms := []string{"r_cost", "r_perf", "r_carbon", "sla_penalty"}
	w := vg.Points(5)
	for i, t := range terms {
		ys := make(plotter.Values, len(cfgs))
		for j, c := range cfgs {
			ys[j] = c.Terms[t]
		}
		b, err := plotter.NewBarChart(ys, w)
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = palette[i], 0
		b.Offset = vg.Length(i-len(terms)/2) * w
		p.Add(b)
		p.Legend.Add(t, b)
	}
	nominalConfigs(p, cfgs)
	return []*plot.Plot{p}, nil
}

// regretPlot draws the tactical regret distribution of each configuration
// that varies or learns the tactical layer: the share of its reward rows
// per regret bucket.
func (s *Summary) regretPlot() ([]*plot.Plot, error) {
	p := newPlot("tactical regret distribution", "regret (oracle's reward − the row's)", "share of tactical reward rows")
	k := 0
	for _, c := range s.Configs {
		if c.Section != "tactical" && c.Section != "reference" || len(c.regret) == 0 {
			continue
		}
		var tot int64
		var bs []int
		for b, n := range c.regret {
			tot += n
			bs = append(bs, b)
		}
		slices.Sort(bs)
		var xy plotter.XYs
		for _, b := range bs {
			if b > regretMaxBuckets {
				break
			}
			xy = append(xy, plotter.XY{X: float64(b) / regretBins, Y: float64(c.regret[b]) / float64(tot)})
		}
		line, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		line.Color = palette[k%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(short(c.Label), line)
		k++
	}
	p.Legend.Top = true
	return []*plot.Plot{p}, nil
}

// curves draws the learning curves: a panel per layer, a line per model
// directory (the validation phase; the training phase dashed).
func (s *Summary) curves() ([]*plot.Plot, error) {
	var layers []string
	for _, c := range s.Curves {
		if !slices.Contains(layers, c.Layer) {
			layers = append(layers, c.Layer)
		}
	}
	var out []*plot.Plot
	for _, l := range layers {
		p := newPlot(l+": mean reward per episode", "episode", "mean reward")
		k := 0
		var dirs []string
		for _, c := range s.Curves {
			if c.Layer != l {
				continue
			}
			if !slices.Contains(dirs, c.Models) {
				dirs = append(dirs, c.Models)
			}
			xy := make(plotter.XYs, len(c.X))
			for i := range c.X {
				xy[i] = plotter.XY{X: c.X[i], Y: c.Y[i]}
			}
			line, pts, err := plotter.NewLinePoints(xy)
			if err != nil {
				return nil, err
			}
			col := palette[slices.Index(dirs, c.Models)%len(palette)]
			line.Color, pts.Color = col, col
			if c.Phase != "validation" {
				line.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
			}
			p.Add(line, pts)
			p.Legend.Add(filepath.Base(c.Models)+" "+c.Phase, line)
			k++
		}
		p.Legend.Top = true
		out = append(out, p)
	}
	return out, nil
}

// nominalConfigs labels p's x axis with the configurations, slanted, and
// puts the legend on top.
func nominalConfigs(p *plot.Plot, cfgs []*ConfigSummary) {
	names := make([]string, len(cfgs))
	for i, c := range cfgs {
		names[i] = short(c.Label)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	p.Legend.Top = true
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Add(plotter.NewGrid())
	return p
}

// short shortens a label for a figure.
func short(s string) string {
	s = strings.Replace(s, keepAlivePolicy, "keep-alive ms=", 1)
	if r := []rune(s); len(r) > maxLabelRunes {
		return string(r[:maxLabelRunes-1]) + "…"
	}
	return s
}

// sortedKeys sorts a dimension's values, numerically for memory sizes.
func sortedKeys(m map[string]bool, numeric bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if numeric {
			a, _ := strconv.Atoi(out[i])
			b, _ := strconv.Atoi(out[j])
			return a < b
		}
		return out[i] < out[j]
	})
	return out
}

// savePNG draws plots side by side into a PNG file.
func savePNG(path string, plots []*plot.Plot) error {
	if len(plots) == 0 {
		plots = []*plot.Plot{newPlot("(nothing to plot)", "", "")}
	}
	img := vgimg.New(figW*vg.Length(len(plots)), figH)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter, PadY: vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for j, p := range plots {
		p.Draw(canvases[0][j])
	}
	return experiments.WritePNG(path, img)
}

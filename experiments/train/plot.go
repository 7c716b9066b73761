package train

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/strata-rl/strata/experiments"
)

// plotCurves draws the learning curves to a PNG: one panel per layer, the
// mean reward per episode on the training days (exploring) and on the
// validation days (greedy).
func plotCurves(path string, rows []curve) error {
	var layers []string
	for _, r := range rows {
		if !slices.Contains(layers, r.Layer) {
			layers = append(layers, r.Layer)
		}
	}
	plots := make([][]*plot.Plot, 1)
	for _, l := range layers {
		p := plot.New()
		p.Title.Text = l + " mean reward per episode"
		p.X.Label.Text = "episode"
		p.Y.Label.Text = "mean reward"
		p.Add(plotter.NewGrid())
		for i, phase := range []string{"train", "validation"} {
			var xy plotter.XYs
			for _, r := range rows {
				if r.Layer == l && r.Phase == phase {
					xy = append(xy, plotter.XY{X: float64(r.Episode), Y: r.MeanReward})
				}
			}
			if len(xy) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xy)
			if err != nil {
				return fmt.Errorf("plotting %s %s curve: %w", l, phase, err)
			}
			c := []color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255}}[i]
			line.Color, points.Color = c, c
			p.Add(line, points)
			p.Legend.Add(phase, line, points)
		}
		p.Legend.Top = true
		plots[0] = append(plots[0], p)
	}
	const w, h = 6 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(w*vg.Length(len(plots[0])), h)
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: 1, Cols: len(plots[0]), PadX: vg.Millimeter, PadY: vg.Millimeter}, dc)
	for j, p := range plots[0] {
		p.Draw(canvases[0][j])
	}
	return experiments.WritePNG(path, img)
}

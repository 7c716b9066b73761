package train

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/experiments/sequences"
)

// DefaultLSTMSample is `strata train`'s --lstm-sample: the size of the
// LSTM's training sample of days 1–10, where the learning curve in the
// README (`strata train --layers operational --lstm-curve …`, seed 1)
// flattens: from 25,000 samples each doubling up to 100,000 improved the
// best validation loss by less than 2 % (1.3 %, 0.5 %).
const DefaultLSTMSample = 25_000

// DefaultLSTMValidSample is `strata train`'s --lstm-valid-sample: the
// size of the LSTM's validation sample of days 11–12, the same for every
// training-sample size.
const DefaultLSTMValidSample = 50_000

// curvePoint is one training-sample size of the LSTM's learning curve.
type curvePoint struct {
	// Samples is the training-sample size.
	Samples int
	// BestValLoss is the best epoch's validation loss on the curve's
	// common scale; BestEpoch that epoch, Epochs the epochs run.
	BestValLoss       float64
	BestEpoch, Epochs int
	EarlyStopped      bool
	LRReductions      int
	// Seconds is the training's wall time (without reading the files).
	Seconds float64
	// Gain is the relative improvement of BestValLoss over the previous
	// size's per doubling of the sample (NaN for the first size).
	Gain float64
	// Metrics are the best epoch's validation metrics in raw units.
	Metrics lstm.Metrics
}

// parseSizes parses --lstm-curve: positive sample sizes, returned sorted
// without repeats.
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("sample size %q: want a positive integer", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// gainPerDoubling is the relative improvement from loss a at size na to
// loss b at size nb > na, per doubling of the size: 1 − (b/a)^(1/log2(nb/na)).
func gainPerDoubling(a, b float64, na, nb int) float64 {
	return 1 - math.Pow(b/a, 1/math.Log2(float64(nb)/float64(na)))
}

// flatFrom returns the index of the smallest size after which every
// larger size improves on the one before by less than flat per doubling,
// or -1 when the last step still improves by flat or more (the curve has
// not flattened by the largest size).
func flatFrom(pts []curvePoint, flat float64) int {
	i := len(pts) - 1
	for i > 0 && pts[i].Gain < flat {
		i--
	}
	if i == len(pts)-1 {
		return -1
	}
	return i
}

// lstmCurve trains one LSTM per --lstm-curve size with the real training
// configuration (at most --lstm-epochs epochs, early stopping, the
// plateau schedule) and writes the learning curve. The training samples
// are nested: one export of the training days at the largest size (or
// --lstm-data), shuffled with --seed, of which each size takes a prefix.
// Every size is validated on the same validation export, and every
// network trains with the same scalers (fitted on the largest sample), so
// the validation losses are on one scale. The moving average's loss on
// that scale is the reference.
func (c *Config) lstmCurve(ctx context.Context, stdout, stderr io.Writer) error {
	t0 := time.Now()
	sizes, err := parseSizes(c.LSTMCurve)
	if err != nil {
		return fmt.Errorf("strata train --lstm-curve: %w", err)
	}
	largest := sizes[len(sizes)-1]
	data, valid, err := c.lstmExports(ctx, stderr, largest)
	if err != nil {
		return err
	}
	l := c.lstmConfig(data, valid)
	cfg, err := l.config()
	if err != nil {
		return err
	}
	tf, err := sequences.Read(ctx, data)
	if err != nil {
		return err
	}
	vf, err := sequences.Read(ctx, valid)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6375727665)) // "curve"
	shuffled := make([]lstm.Sample, 0, len(tf.Samples))
	for _, k := range rng.Perm(len(tf.Samples)) {
		shuffled = append(shuffled, tf.Samples[k])
	}
	all, err := sequences.Dataset(shuffled)
	if err != nil {
		return fmt.Errorf("reading %s: %w", data, err)
	}
	if all.Len() < largest {
		return fmt.Errorf("strata train --lstm-curve: %s holds %d usable samples (%d rejected), fewer than the largest size %d", data, all.Len(), all.Rejected, largest)
	}
	val, err := sequences.Dataset(vf.Samples)
	if err != nil {
		return fmt.Errorf("reading %s: %w", valid, err)
	}
	if val.Len() == 0 {
		return fmt.Errorf("strata train --lstm-curve: %s holds no usable samples", valid)
	}
	sc, err := lstm.FitScalers(cfg.Scaler, all.Samples[:largest])
	if err != nil {
		return fmt.Errorf("strata train --lstm-curve: %w", err)
	}
	maLoss, err := cfg.ScaledLoss(sc, lstm.PredictMovingAverage5(val.Samples), val.Samples)
	if err != nil {
		return fmt.Errorf("strata train --lstm-curve: the moving average's loss: %w", err)
	}
	maMetrics, err := lstm.Evaluate(lstm.PredictMovingAverage5(val.Samples), lstm.Actuals(val.Samples))
	if err != nil {
		return fmt.Errorf("strata train --lstm-curve: the moving average's metrics: %w", err)
	}
	fmt.Fprintf(stdout, "lstm-curve: sizes %v of %d samples from %s (days %s, %s seen), shuffled with seed %d; %d validation samples from %s (days %s); loss %s, batch %d, at most %d epochs, early stop after %d, scalers fitted on the largest sample (read in %.1f s)\n",
		sizes, len(tf.Samples), data, tf.Meta[sequences.KeyDays], tf.Meta[sequences.KeySeen], cfg.Seed, val.Len(), valid, vf.Meta[sequences.KeyDays],
		cfg.Loss, cfg.BatchSize, cfg.MaxEpochs, cfg.EarlyStopPatience, time.Since(t0).Seconds())

	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", c.Out, err)
	}
	csvPath, pngPath := filepath.Join(c.Out, "lstm-curve.csv"), filepath.Join(c.Out, "lstm-curve.png")
	var pts []curvePoint
	for i, n := range sizes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("strata train --lstm-curve: %w", err)
		}
		train := &lstm.Dataset{Samples: all.Samples[:n]}
		ts, te := time.Now(), time.Now()
		onEpoch := func(e lstm.Epoch) {
			fmt.Fprintf(stderr, "lstm-curve: %d samples, epoch %d: train loss %.6f, validation loss %.6f, lr %.3g, %.1f s\n",
				n, e.Epoch, e.TrainLoss, e.ValLoss, e.LR, time.Since(te).Seconds())
			te = time.Now()
		}
		res, err := lstm.TrainWith(cfg, lstm.Options{Scalers: &sc, OnEpoch: onEpoch, Context: ctx}, train, val)
		if err != nil {
			return fmt.Errorf("strata train --lstm-curve: training on %d samples: %w", n, err)
		}
		p := curvePoint{Samples: n, BestValLoss: res.BestValLoss, BestEpoch: res.BestEpoch, Epochs: len(res.Curve),
			EarlyStopped: res.Stats.EarlyStopped, LRReductions: res.Stats.LRReductions, Seconds: time.Since(ts).Seconds(), Gain: math.NaN()}
		pred, err := res.PredictSamples(val.Samples)
		res.Net.Close()
		if err != nil {
			return fmt.Errorf("strata train --lstm-curve: predicting with the %d-sample network: %w", n, err)
		}
		if p.Metrics, err = lstm.Evaluate(pred, lstm.Actuals(val.Samples)); err != nil {
			return fmt.Errorf("strata train --lstm-curve: scoring the %d-sample network: %w", n, err)
		}
		if i > 0 {
			p.Gain = gainPerDoubling(pts[i-1].BestValLoss, p.BestValLoss, pts[i-1].Samples, n)
		}
		pts = append(pts, p)
		fmt.Fprintf(stderr, "lstm-curve: %d samples: best validation loss %.6f (epoch %d of %d), %.0f s\n", n, p.BestValLoss, p.BestEpoch, p.Epochs, p.Seconds)
		// The files are rewritten after every size, so that a run stopped
		// for time leaves the sizes it finished.
		if err := writeCurveCSV(csvPath, pts, maLoss, maMetrics); err != nil {
			return err
		}
		if err := plotLSTMCurve(pngPath, pts, maLoss, cfg.Loss, val.Len()); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "| training samples | best validation loss | gain per doubling | best epoch | epochs run | early stop | s per epoch | training s | RMSE rate | R² rate | under-provisioning %% |\n")
	fmt.Fprintf(stdout, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		gain := "–"
		if !math.IsNaN(p.Gain) {
			gain = fmt.Sprintf("%.1f %%", 100*p.Gain)
		}
		fmt.Fprintf(stdout, "| %d | %.6f | %s | %d | %d | %v | %.1f | %.0f | %.4f | %.3f | %.2f |\n", p.Samples, p.BestValLoss, gain, p.BestEpoch, p.Epochs,
			p.EarlyStopped, p.Seconds/float64(p.Epochs), p.Seconds, p.Metrics.RMSE[lstm.TargetRequestRate], p.Metrics.R2[lstm.TargetRequestRate], 100*p.Metrics.UnderRate)
	}
	fmt.Fprintf(stdout, "| moving average (5 steps) | %.6f | | | | | | | %.4f | %.3f | %.2f |\n", maLoss,
		maMetrics.RMSE[lstm.TargetRequestRate], maMetrics.R2[lstm.TargetRequestRate], 100*maMetrics.UnderRate)
	if k := flatFrom(pts, c.LSTMFlat); len(pts) < 2 {
		fmt.Fprintln(stdout, "one size: no curve to judge flat")
	} else if k >= 0 {
		fmt.Fprintf(stdout, "the curve is flat from %d samples: every larger size improves the best validation loss by less than %.1f %% per doubling\n", pts[k].Samples, 100*c.LSTMFlat)
	} else {
		fmt.Fprintf(stdout, "the curve has not flattened by %d samples: the last step improves the best validation loss by %.1f %% per doubling (threshold %.1f %%)\n",
			largest, 100*pts[len(pts)-1].Gain, 100*c.LSTMFlat)
	}
	fmt.Fprintf(stdout, "wrote %s and %s in %.0f s\n", csvPath, pngPath, time.Since(t0).Seconds())
	return nil
}

// writeCurveCSV writes lstm-curve.csv: one row per training-sample size,
// then the moving average's row (no size).
func writeCurveCSV(path string, pts []curvePoint, maLoss float64, ma lstm.Metrics) error {
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	recs := [][]string{{"predictor", "train_samples", "best_val_loss", "gain_per_doubling", "best_epoch", "epochs", "early_stopped", "lr_reductions",
		"train_seconds", "rmse_cpu", "rmse_mem", "rmse_rate", "r2_rate", "under_rate"}}
	for _, p := range pts {
		gain := ""
		if !math.IsNaN(p.Gain) {
			gain = g(p.Gain)
		}
		m := p.Metrics
		recs = append(recs, []string{"lstm", strconv.Itoa(p.Samples), g(p.BestValLoss), gain, strconv.Itoa(p.BestEpoch), strconv.Itoa(p.Epochs),
			strconv.FormatBool(p.EarlyStopped), strconv.Itoa(p.LRReductions), fmt.Sprintf("%.1f", p.Seconds),
			g(m.RMSE[0]), g(m.RMSE[1]), g(m.RMSE[2]), g(m.R2[2]), g(m.UnderRate)})
	}
	recs = append(recs, []string{"moving-average-5", "", g(maLoss), "", "", "", "", "", "",
		g(ma.RMSE[0]), g(ma.RMSE[1]), g(ma.RMSE[2]), g(ma.R2[2]), g(ma.UnderRate)})
	return writeCSVFile(path, recs)
}

// plotLSTMCurve draws lstm-curve.png: the best validation loss against
// the training-sample size (log scale), the moving average's loss as a
// dashed line.
func plotLSTMCurve(path string, pts []curvePoint, maLoss float64, loss string, nVal int) error {
	if len(pts) == 0 {
		return errors.New("plotting the LSTM's learning curve: no points")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("LSTM learning curve (%d validation samples)", nVal)
	p.X.Label.Text = "training samples (log scale)"
	p.Y.Label.Text = "best validation loss (" + loss + ")"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks(pts)
	p.Add(plotter.NewGrid())
	xy := make(plotter.XYs, len(pts))
	for i, c := range pts {
		xy[i] = plotter.XY{X: float64(c.Samples), Y: c.BestValLoss}
	}
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("plotting the LSTM's learning curve: %w", err)
	}
	blue := color.RGBA{R: 31, G: 119, B: 180, A: 255}
	line.Color, points.Color = blue, blue
	p.Add(line, points)
	p.Legend.Add("lstm", line, points)
	ma, err := plotter.NewLine(plotter.XYs{{X: float64(pts[0].Samples), Y: maLoss}, {X: float64(pts[len(pts)-1].Samples), Y: maLoss}})
	if err != nil {
		return fmt.Errorf("plotting the moving average's loss: %w", err)
	}
	ma.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	ma.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(ma)
	p.Legend.Add("moving average (5 steps)", ma)
	// The curve falls towards the right: the legend goes bottom left, and
	// the y axis spans the losses (not from 0, which would flatten any
	// curve whose losses differ by a few per cent).
	p.Legend.Left = true
	if err := p.Save(6*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// sizeTicks labels the x axis at the curve's sizes.
func sizeTicks(pts []curvePoint) plot.ConstantTicks {
	t := make(plot.ConstantTicks, len(pts))
	for i, p := range pts {
		label := strconv.Itoa(p.Samples)
		if p.Samples%1000 == 0 {
			label = strconv.Itoa(p.Samples/1000) + "k"
		} else if p.Samples >= 1000 {
			label = strconv.FormatFloat(float64(p.Samples)/1000, 'f', 1, 64) + "k"
		}
		t[i] = plot.Tick{Value: float64(p.Samples), Label: label}
	}
	return t
}

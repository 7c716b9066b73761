package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

// Prediction is one forecaster's next-step prediction metrics on the test
// sequences (the seed's §4.4): per target, the mean over the forecaster's
// checkpoints (one per training seed; one value for the moving average)
// with its 95 % interval (Student t, n−1 degrees of freedom). CPU and
// memory are utilisation fractions, the request rate invocations per
// second: raw units, as `strata eval --lstm-test` prints them.
type Prediction struct {
	Predictor string `json:"predictor"`
	// Dirs are the model directories of the checkpoints (none for the
	// moving average).
	Dirs []string `json:"dirs,omitempty"`
	// Samples is the number of test sequences each checkpoint was scored
	// on.
	Samples int `json:"samples"`
	// RMSE, MAE and R2 are keyed by target: cpu, memory, request_rate.
	RMSE map[string]Stat `json:"rmse"`
	MAE  map[string]Stat `json:"mae"`
	R2   map[string]Stat `json:"r2"`
	// UnderRate is the share of samples whose predicted request rate is
	// below the actual one (under-provisioning).
	UnderRate Stat `json:"under_rate"`
	// PerCheckpoint are the values the means are computed from, in Dirs'
	// order.
	PerCheckpoint []lstm.Metrics `json:"per_checkpoint"`
}

// Stat is a mean with the half-width of its 95 % interval (0 for one
// value).
type Stat struct {
	Mean float64 `json:"mean"`
	CI95 float64 `json:"ci95_half_width"`
}

// targetNames are the keys of Prediction's per-target maps, in lstm's
// target order.
var targetNames = [lstm.Targets]string{lstm.TargetCPU: "cpu", lstm.TargetMemory: "memory", lstm.TargetRequestRate: "request_rate"}

// errNoLSTM is returned for --lstm-test without a checkpoint to score.
var errNoLSTM = errors.New("strata report --lstm-test: no LSTM to score: no directory of --models holds an " +
	agents.CheckpointFile(schemas.Operational) + " and --lstm-models names none")

// lstmDirs returns the directories whose LSTM checkpoint the report
// scores: those of --models that hold one, then every --lstm-models one
// (which must).
func (c *Config) lstmDirs() ([]string, error) {
	var dirs []string
	for _, d := range pipeline.SplitList(c.Eval.Models) {
		_, err := os.Stat(filepath.Join(d, agents.CheckpointFile(schemas.Operational)))
		if err == nil {
			dirs = append(dirs, d)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("looking for the LSTM of %s: %w", d, err)
		}
	}
	dirs = append(dirs, pipeline.SplitList(c.Eval.LSTMModels)...)
	if len(dirs) == 0 {
		return nil, errNoLSTM
	}
	return dirs, nil
}

// predictions scores the LSTMs of lstmDirs and the 5-step moving average
// on the test sequences of --lstm-test.
func (c *Config) predictions(ctx context.Context) ([]Prediction, error) {
	dirs, err := c.lstmDirs()
	if err != nil {
		return nil, err
	}
	rows, err := eval.LSTMTestMetrics(ctx, c.Eval.LSTMTest, dirs)
	if err != nil {
		return nil, err
	}
	out := make([]Prediction, 0, len(rows))
	for _, r := range rows {
		out = append(out, prediction(r))
	}
	return out, nil
}

// prediction summarises one predictor's checkpoints.
func prediction(r eval.LSTMRow) Prediction {
	p := Prediction{Predictor: r.Predictor, Dirs: r.Dirs, RMSE: map[string]Stat{}, MAE: map[string]Stat{}, R2: map[string]Stat{}, PerCheckpoint: r.Metrics}
	stat := func(f func(lstm.Metrics) float64) Stat {
		xs := make([]float64, len(r.Metrics))
		for i, m := range r.Metrics {
			xs[i] = f(m)
		}
		m, h := eval.MeanCI95(xs)
		return Stat{Mean: m, CI95: h}
	}
	for j, name := range targetNames {
		p.RMSE[name] = stat(func(m lstm.Metrics) float64 { return m.RMSE[j] })
		p.MAE[name] = stat(func(m lstm.Metrics) float64 { return m.MAE[j] })
		p.R2[name] = stat(func(m lstm.Metrics) float64 { return m.R2[j] })
	}
	p.UnderRate = stat(func(m lstm.Metrics) float64 { return m.UnderRate })
	if len(r.Metrics) > 0 {
		p.Samples = r.Metrics[0].N
	}
	return p
}

// predictionClaims are the seed's §4.4 figures for its forecasters,
// quoted.
var predictionClaims = []struct{ what, claimed string }{
	{"LSTM after its normalisation fix (\"expected post-fix results\")", "RMSE 0.05–0.15, MAE 0.03–0.10 (in normalised [0, 1] units), R² 0.3–0.6"},
	{"LSTM before the fix (unnormalised features)", "RMSE 370.79, MAE 2.87, R² −0.078"},
	{"5-step moving average (\"expected\")", "R² 0.15–0.25"},
	{"reactive, no prediction", "R² 0.0 \"by definition\""},
	{"asymmetric loss (β_under 5, β_over 1)", "under-provisioning < 2 % (8–12 % with the symmetric loss)"},
}

// predictionsMarkdown writes the §4.4 table: every predictor's metrics,
// then the seed's claims.
func (s *Summary) predictionsMarkdown(b *bytes.Buffer) {
	if len(s.Predictions) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### §4.4 operational layer: next-step predictions\n\n")
	fmt.Fprintf(b, "On the test sequences of `%s` (each checkpoint scored on the same %d samples). "+
		"Mean over the predictor's checkpoints with its 95 %% interval; CPU and memory are utilisation fractions, "+
		"the request rate invocations per second (raw units: the seed's RMSE and MAE are in normalised units, so only R² "+
		"and the under-provisioning rate compare directly).\n\n", s.LSTMTest, s.Predictions[0].Samples)
	b.WriteString("| predictor | checkpoints | request rate RMSE | request rate MAE | request rate R² | CPU R² | memory R² | CPU RMSE | memory RMSE | under-provisioning % |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range s.Predictions {
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Predictor, len(p.PerCheckpoint),
			p.RMSE["request_rate"].format("%.5f"), p.MAE["request_rate"].format("%.5f"), p.R2["request_rate"].format("%.3f"),
			p.R2["cpu"].format("%.3f"), p.R2["memory"].format("%.3f"), p.RMSE["cpu"].format("%.4f"), p.RMSE["memory"].format("%.4f"),
			Stat{100 * p.UnderRate.Mean, 100 * p.UnderRate.CI95}.format("%.1f"))
	}
	b.WriteString("\n| the seed's row | **claim** |\n|---|---|\n")
	for _, cl := range predictionClaims {
		fmt.Fprintf(b, "| %s | %s |\n", cl.what, cl.claimed)
	}
}

// format writes the mean, and ± the half-width when there is one.
func (s Stat) format(verb string) string {
	if s.CI95 > 0 {
		return fmt.Sprintf(verb+" ± "+verb, s.Mean, s.CI95)
	}
	return fmt.Sprintf(verb, s.Mean)
}

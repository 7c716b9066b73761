package train_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/internal/flagtest"
	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/experiments/train"
)

// writeSineSequences writes n synthetic samples (smooth, positive series
// with a per-sample phase) as a sequences file of days first–last.
func writeSineSequences(t *testing.T, path string, n, phase, first, last int) {
	t.Helper()
	samples := make([]*sequences.Sample, n)
	for i := range samples {
		s := &sequences.Sample{Tick: int64(i), App: "app", Func: "f" + strconv.Itoa(i%7)}
		for k := range sequences.InputDim {
			u := float64(i+phase) + float64(k)/5
			s.Input[k] = float32(1 + 0.5*math.Sin(u/3+float64(k%5)))
		}
		u := float64(i+phase) + 12
		s.Target = [sequences.TargetDim]float32{float32(0.5 + 0.3*math.Sin(u/3)), float32(0.4 + 0.2*math.Cos(u/3)), float32(2 + math.Sin(u/3))}
		samples[i] = s
	}
	if _, err := sequences.Write(path, samples, sequences.Meta{Seed: 1, FirstDay: first, LastDay: last, Source: "test", Seen: int64(n)}); err != nil {
		t.Fatal(err)
	}
}

// TestLSTMCurve runs `strata train --layers operational --lstm-curve` on
// tiny synthetic sequences files and checks the curve it writes: one row
// per size in increasing order with finite losses and at most the epochs
// asked for, the moving average's row, a PNG, and the printed table.
func TestLSTMCurve(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small LSTMs")
	}
	dir := t.TempDir()
	data, valid := filepath.Join(dir, "train.parquet"), filepath.Join(dir, "valid.parquet")
	writeSineSequences(t, data, 400, 0, 1, 10)
	writeSineSequences(t, valid, 80, 1000, 11, 12)
	out := filepath.Join(dir, "curve")
	c := train.DefaultConfig()
	flagtest.Parse(t, &c, "--layers", "operational", "--lstm-curve", "400,100,200", "--lstm-data", data, "--lstm-valid", valid,
		"--lstm-epochs", "2", "--out", out)
	var stdout, stderr bytes.Buffer
	if err := train.Train(context.Background(), c, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, &stderr)
	}
	f, err := os.Open(filepath.Join(out, "lstm-curve.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("lstm-curve.csv has %d lines, want a header, 3 sizes and the moving average:\n%v", len(recs), recs)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, want := range []int{100, 200, 400} {
		r := recs[i+1]
		if r[col["predictor"]] != "lstm" || r[col["train_samples"]] != strconv.Itoa(want) {
			t.Errorf("row %d: %v, want lstm at %d samples", i+1, r, want)
		}
		loss, err := strconv.ParseFloat(r[col["best_val_loss"]], 64)
		if err != nil || !(loss > 0) || math.IsInf(loss, 0) {
			t.Errorf("row %d: best validation loss %q", i+1, r[col["best_val_loss"]])
		}
		if ep, err := strconv.Atoi(r[col["epochs"]]); err != nil || ep < 1 || ep > 2 {
			t.Errorf("row %d: %q epochs run, want 1 or 2", i+1, r[col["epochs"]])
		}
		if g := r[col["gain_per_doubling"]]; (i == 0) != (g == "") {
			t.Errorf("row %d: gain per doubling %q", i+1, g)
		}
	}
	if ma := recs[4]; ma[col["predictor"]] != "moving-average-5" || ma[col["best_val_loss"]] == "" {
		t.Errorf("last row %v, want the moving average's", ma)
	}
	png, err := os.ReadFile(filepath.Join(out, "lstm-curve.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("lstm-curve.png: %v, %d bytes", err, len(png))
	}
	for _, want := range []string{"| training samples |", "| 400 |", "moving average (5 steps)", "wrote "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &stdout)
		}
	}
	if !strings.Contains(stderr.String(), "lstm-curve: 100 samples, epoch 1") {
		t.Errorf("no per-epoch progress on stderr:\n%s", &stderr)
	}
}

// TestLSTMCurveRefused checks the flag combinations `strata train`
// refuses before it starts.
func TestLSTMCurveRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "with other layers", args: []string{"--layers", "strategic,operational", "--lstm-curve", "100,200"}, want: "--layers operational alone"},
		{name: "bad size", args: []string{"--layers", "operational", "--lstm-curve", "100,x"}, want: "sample size"},
		{name: "bad threshold", args: []string{"--layers", "operational", "--lstm-curve", "100,200", "--lstm-flat", "1.5"}, want: "--lstm-flat"},
		{name: "no validation sample", args: []string{"--layers", "operational", "--lstm-valid-sample", "0"}, want: "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := train.DefaultConfig()
			flagtest.Parse(t, &c, append(tc.args, "--out", t.TempDir())...)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestLSTMCurveTooFewSamples checks that a curve whose largest size
// exceeds the training file is refused, not silently truncated.
func TestLSTMCurveTooFewSamples(t *testing.T) {
	dir := t.TempDir()
	data, valid := filepath.Join(dir, "train.parquet"), filepath.Join(dir, "valid.parquet")
	writeSineSequences(t, data, 50, 0, 1, 10)
	writeSineSequences(t, valid, 20, 1000, 11, 12)
	c := train.DefaultConfig()
	c.Layers, c.LSTMCurve, c.LSTMData, c.LSTMValid, c.Out = "operational", "25,100", data, valid, filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := train.Train(context.Background(), c, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "fewer than the largest size 100") {
		t.Fatalf("Train() = %v, want a refusal of the 100-sample size", err)
	}
}

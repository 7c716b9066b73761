package eval

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/experiments/internal/flagtest"
	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/experiments/train"
	"github.com/strata-rl/strata/schemas"
)

// TestExportSequencesAndTrainLSTM exports a small synthetic slice twice
// (same bytes), reads it back, trains a tiny LSTM on it and scores it as
// `strata eval --lstm-test` does.
func TestExportSequencesAndTrainLSTM(t *testing.T) {
	if testing.Short() {
		t.Skip("closed-loop export in -short mode")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	export := func(name string) string {
		out := filepath.Join(dir, name)
		var stdout, stderr bytes.Buffer
		c := train.DefaultExportConfig()
		flagtest.Parse(t, &c, "--synth-days", "1", "--apps", "2", "--days", "1-1", "--sample", "500", "--seed", "3", "--out", out)
		if err := train.Export(ctx, c, &stdout, &stderr); err != nil {
			t.Fatalf("export: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "samples seen") {
			t.Fatalf("no summary line: %q", stdout.String())
		}
		return out
	}
	p1, p2 := export("a.parquet"), export("b.parquet")
	b1, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := os.ReadFile(p2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatal("two exports with the same seed differ")
	}
	sf, err := sequences.Read(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	n := len(sf.Samples)
	if n == 0 || n > 500 || len(sf.Ticks) != n || len(sf.Apps) != n || len(sf.Funcs) != n {
		t.Fatalf("%d samples, %d ticks, %d apps, %d funcs; want equal, 1..500", n, len(sf.Ticks), len(sf.Apps), len(sf.Funcs))
	}
	if sf.Meta[sequences.KeyFormat] != sequences.Format || sf.Meta[sequences.KeySeed] != "3" || sf.Meta[sequences.KeyDays] != "1-1" || sf.Meta[sequences.KeySampled] != strconv.Itoa(n) {
		t.Fatalf("metadata %v", sf.Meta)
	}
	seen, err := strconv.Atoi(sf.Meta[sequences.KeySeen])
	if err != nil || seen < n {
		t.Fatalf("samples seen %q for %d sampled", sf.Meta[sequences.KeySeen], n)
	}
	for i := 1; i < n; i++ {
		if sf.Ticks[i] < sf.Ticks[i-1] {
			t.Fatalf("rows not in tick order at %d", i)
		}
	}
	// The target is the next tick's newest step: its request rate is the
	// newest rate of the next row, so it is never negative.
	for _, s := range sf.Samples {
		if s.Target[lstm.TargetRequestRate] < 0 {
			t.Fatalf("negative target rate %v", s.Target)
		}
	}

	out := filepath.Join(dir, "model")
	var stdout, stderr bytes.Buffer
	lc := train.DefaultLSTMConfig()
	flagtest.Parse(t, &lc, "--data", p1, "--out", out, "--epochs", "2", "--hidden", "8,8", "--dense-hidden", "8")
	if err := train.TrainLSTM(ctx, lc, &stdout, &stderr); err != nil {
		t.Fatalf("train-lstm: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"train loss", "moving-average (5 steps)", "lstm (asymmetric loss)", "under-provisioning"} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("train-lstm output lacks %q:\n%s", want, stdout.String())
		}
	}
	f, err := os.Open(filepath.Join(out, "lstm.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	ck, err := lstm.ReadCheckpoint(f)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Net != nil {
		ck.Net.Close()
	}
	curve, err := os.ReadFile(filepath.Join(out, "lstm_curve.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(curve), "\n"); lines != 3 {
		t.Fatalf("curve has %d lines, want a header and 2 epochs:\n%s", lines, curve)
	}
	// strata eval --models scores the checkpoint on a sequences file
	// against the moving average.
	rows, err := LSTMTestMetrics(ctx, p1, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Predictor != "lstm (asymmetric loss)" || rows[1].Predictor != "moving-average (5 steps)" ||
		rows[0].Metrics[0].N == 0 || rows[0].Metrics[0].N != rows[1].Metrics[0].N {
		t.Fatalf("LSTM test metrics %+v, want the LSTM and the moving average on the same samples", rows)
	}
	// The same checkpoint given again, and a copy of it in another
	// directory, is scored once.
	cp := filepath.Join(t.TempDir(), "copy")
	b, err := os.ReadFile(filepath.Join(out, agents.CheckpointFile(schemas.Operational)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cp, agents.CheckpointFile(schemas.Operational)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := LSTMTestMetrics(ctx, p1, []string{out, cp, out})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 || len(again[0].Metrics) != 1 || len(again[0].Dirs) != 1 || again[0].Dirs[0] != out || again[0].Metrics[0] != rows[0].Metrics[0] {
		t.Errorf("one checkpoint given three times: %+v, want it scored once under %s", again, out)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/schemas"
)

// TestSampleKeyOrderIndependent checks that the kept sample depends only on
// the seed and the samples, not on the order they arrive in.
func TestSampleKeyOrderIndependent(t *testing.T) {
	mk := func(order []int) []*seqSample {
		c := newSeqCollector(7, 5)
		for _, k := range order {
			cur := &seqRow{ok: true}
			next := &seqRow{ok: true, target: [3]float32{float32(k), 0, 0}}
			c.pair(int64(k), "a", "f", cur, next)
		}
		return c.samples()
	}
	var fwd, rev []int
	for k := range 50 {
		fwd = append(fwd, k)
		rev = append([]int{k}, rev...)
	}
	a, b := mk(fwd), mk(rev)
	if len(a) != 5 || len(b) != 5 {
		t.Fatalf("kept %d and %d samples, want 5", len(a), len(b))
	}
	for i := range a {
		if a[i].Tick != b[i].Tick {
			t.Fatalf("sample %d: tick %d forward, %d reversed", i, a[i].Tick, b[i].Tick)
		}
	}
	if sampleKey(1, 3, "a", "f") == sampleKey(2, 3, "a", "f") {
		t.Fatal("the key does not depend on the seed")
	}
	c := newSeqCollector(1, 0)
	c.pair(1, "a", "f", &seqRow{ok: true}, &seqRow{ok: false})
	if c.Seen != 1 || c.Skipped != 1 || len(c.samples()) != 0 {
		t.Fatalf("missing target: seen %d skipped %d kept %d, want 1 1 0", c.Seen, c.Skipped, len(c.samples()))
	}
}

// TestExportSequencesAndTrainLSTM exports a small synthetic slice twice
// (same bytes), reads it back, and trains a tiny LSTM on it.
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
		if err := run(ctx, []string{"export", "sequences", "--synth-days", "1", "--apps", "2", "--days", "1-1",
			"--sample", "500", "--seed", "3", "--out", out}, &stdout, &stderr); err != nil {
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
	sf, err := readSequences(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	n := len(sf.Samples)
	if n == 0 || n > 500 || len(sf.Ticks) != n || len(sf.Apps) != n || len(sf.Funcs) != n {
		t.Fatalf("%d samples, %d ticks, %d apps, %d funcs; want equal, 1..500", n, len(sf.Ticks), len(sf.Apps), len(sf.Funcs))
	}
	if sf.Meta[seqKeyFormat] != seqFormat || sf.Meta[seqKeySeed] != "3" || sf.Meta[seqKeyDays] != "1-1" || sf.Meta[seqKeySampled] != strconv.Itoa(n) {
		t.Fatalf("metadata %v", sf.Meta)
	}
	seen, err := strconv.Atoi(sf.Meta[seqKeySeen])
	if err != nil || seen < n {
		t.Fatalf("samples seen %q for %d sampled", sf.Meta[seqKeySeen], n)
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
	if err := run(ctx, []string{"train-lstm", "--data", p1, "--out", out, "--epochs", "2", "--hidden", "8,8", "--dense-hidden", "8"}, &stdout, &stderr); err != nil {
		t.Fatalf("train-lstm: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"train loss", "moving-average (5 steps)", "lstm (asymmetric)", "under-provisioning"} {
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
	rows, err := lstmTestMetrics(ctx, p1, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Predictor != "lstm (asymmetric loss)" || rows[1].Predictor != "moving-average (5 steps)" ||
		rows[0].Metrics[0].N == 0 || rows[0].Metrics[0].N != rows[1].Metrics[0].N {
		t.Fatalf("LSTM test metrics %+v, want the LSTM and the moving average on the same samples", rows)
	}
}

// TestSeqCollectorShardsAtTheirOwnPace feeds the same operational batches
// of two shards interleaved tick by tick and one shard after the other (a
// lagging partition): the samples kept are the same, none late.
func TestSeqCollectorShardsAtTheirOwnPace(t *testing.T) {
	const ticks = 100 // more than seqWindow: one shard runs far ahead
	batch := func(shard int, k int64) []byte {
		r := schemas.OperationalRow{App: fmt.Sprintf("app%d", shard), Func: "f"}
		for i := range schemas.SeqLen {
			r.RequestRate[i] = float64(k + int64(i))
			r.CPUUtil[i], r.MemoryUtil[i] = schemas.Some(0.5), schemas.Some(0.25)
		}
		h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * 15_000_000, Shard: shard, NShards: 2}
		data, err := schemas.EncodeState(&schemas.StateBatch{Header: h, Operational: []schemas.OperationalRow{r}})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	collect := func(order [][2]int64) *seqCollector {
		c := newSeqCollector(7, 10)
		for _, o := range order {
			c.onBatch(schemas.BatchHeader{Layer: schemas.Operational}, 1, batch(int(o[0]), o[1]))
		}
		return c
	}
	var interleaved, lagging [][2]int64
	for k := range int64(ticks) {
		interleaved = append(interleaved, [2]int64{0, k}, [2]int64{1, k})
	}
	for s := range int64(2) {
		for k := range int64(ticks) {
			lagging = append(lagging, [2]int64{s, k})
		}
	}
	a, b := collect(interleaved), collect(lagging)
	if a.Late != 0 || b.Late != 0 || a.Seen != b.Seen || a.Seen != 2*(ticks-1) {
		t.Fatalf("late %d/%d, seen %d/%d; want 0 late and %d seen each", a.Late, b.Late, a.Seen, b.Seen, 2*(ticks-1))
	}
	key := func(c *seqCollector) []string {
		var ks []string
		for _, s := range c.kept {
			ks = append(ks, fmt.Sprintf("%s/%d", s.App, s.Tick))
		}
		slices.Sort(ks)
		return ks
	}
	if !slices.Equal(key(a), key(b)) {
		t.Fatalf("kept %v interleaved, %v with a lagging shard", key(a), key(b))
	}
}

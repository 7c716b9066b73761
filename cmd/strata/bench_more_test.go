package main

import (
	"bytes"
	"context"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchRatio runs `strata bench` with args and returns its output and the
// ratio its last line reports under label; it fails the test unless the
// ratio is positive and finite. No timing is asserted.
func benchRatio(t *testing.T, label string, args ...string) (string, float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := benchMain(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("strata bench %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	v, ok := strings.CutPrefix(last, label+" ratio: ")
	if !ok {
		t.Fatalf("last line %q is not the %s ratio; output:\n%s", last, label, out)
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || !(r > 0) || math.IsInf(r, 0) {
		t.Fatalf("%s ratio %q is not a positive number; output:\n%s", label, v, out)
	}
	return out, r
}

// checkInterleaved fails the test unless out's run lines alternate between
// the side that runs first in a round (lines starting with ceiling) and
// the other (starting with measured), runs of each, numbered run 1, run 1,
// run 2, run 2, …, and the line before the ratio gives both sides' best
// rates. The loop bench runs its measured side first (its ceiling replays
// what the loop decided): it passes the sides the other way round.
func checkInterleaved(t *testing.T, out, ceiling, measured string, runs int) {
	t.Helper()
	var seq []string
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, ceiling):
			seq = append(seq, "ceiling"+runNumber(l))
		case strings.HasPrefix(l, measured):
			seq = append(seq, "measured"+runNumber(l))
		}
	}
	var want []string
	for i := range runs {
		n := strconv.Itoa(i + 1)
		want = append(want, "ceiling"+n, "measured"+n)
	}
	if !slices.Equal(seq, want) {
		t.Errorf("run lines %v, want %v (interleaved); output:\n%s", seq, want, out)
	}
	if len(lines) < 2 || strings.Count(lines[len(lines)-2], "(best run): ") != 2 || strings.Count(lines[len(lines)-2], "/s") < 2 {
		t.Errorf("want both sides' best rates just before the ratio; output:\n%s", out)
	}
}

// runNumber returns N of the first ", run N:" in line ("?" if none).
func runNumber(line string) string {
	_, after, ok := strings.Cut(line, ", run ")
	if !ok {
		return "?"
	}
	n, _, _ := strings.Cut(after, ":")
	return n
}

func TestBenchTwinRealRowsAndSyntheticSlice(t *testing.T) {
	// --replay-runs is the deprecated alias of --runs.
	out, _ := benchRatio(t, "twin/replay", "twin", "--trace", pipelinetest.RealTrace, "--replay-runs", "1", "--prewarm", "1")
	if !strings.Contains(out, "998 arrivals") {
		t.Errorf("the twin did not evaluate the 998 real rows:\n%s", out)
	}
	checkInterleaved(t, out, "replay (source", "twin engine (prewarm 1)", 1)
	out, _ = benchRatio(t, "twin/replay", "twin", "--days", "1", "--apps", "2", "--runs", "2")
	if !strings.Contains(out, "5760 ticks") {
		t.Errorf("want every tick of the day evaluated:\n%s", out)
	}
	checkInterleaved(t, out, "replay (source", "twin engine (prewarm 0)", 2)
}

func TestBenchLoopRealRows(t *testing.T) {
	out, _ := benchRatio(t, "loop/engine", "loop", "--trace", pipelinetest.RealTrace, "--partitions", "2", "--runs", "2")
	if strings.Count(out, "998 invocations") != 2 {
		t.Errorf("the closed loop did not replay the 998 real rows in each run:\n%s", out)
	}
	if strings.Count(out, "digests equal the loop's") != 2 {
		t.Errorf("want each ceiling run to reproduce the loop's decisions and rewards:\n%s", out)
	}
	checkInterleaved(t, out, "closed loop", "twin engine alone", 2)
}

func TestBenchIngest(t *testing.T) {
	for _, tc := range []struct {
		format string
		runs   int
	}{{"json", 2}, {"otlp-proto", 1}} {
		out, _ := benchRatio(t, "ingest/raw", "ingest", "--records", "3000", "--runs", strconv.Itoa(tc.runs), "--batch", "100", "--format", tc.format)
		if strings.Count(out, "3000 records in") != 2*tc.runs || !strings.Contains(out, "p99") {
			t.Errorf("%s: want every record sent in every run and the latency percentiles:\n%s", tc.format, out)
		}
		checkInterleaved(t, out, "raw franz-go produce", "ingest over HTTP", tc.runs)
	}
}

func TestBenchPipelineSlice(t *testing.T) {
	out, _ := benchRatio(t, "pipeline/raw", "pipeline", "--days", "1", "--apps", "2", "--runs", "2", "--raw-sample", "1000", "--partitions", "2")
	// Each round replays the whole slice: as many invocations as the raw
	// ceiling produced records.
	_, after, _ := strings.Cut(out, "raw franz-go produce, run 1: ")
	n, _, _ := strings.Cut(after, " records")
	if _, err := strconv.Atoi(n); err != nil || strings.Count(out, ": "+n+" invocations, ") != 2 {
		t.Errorf("want the trace's %s invocations replayed in each pipeline run:\n%s", n, out)
	}
	checkInterleaved(t, out, "raw franz-go produce", "pipeline replay", 2)
}

func TestBenchUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"sink"}, {"sink", "--clickhouse", "clickhouse://x:9000", "--store", "x.duckdb"}} {
		if err := benchMain(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("strata bench %v: want a usage error", args)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"math"
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

func TestBenchTwinRealRowsAndSyntheticSlice(t *testing.T) {
	out, _ := benchRatio(t, "twin/replay", "twin", "--trace", realTrace, "--replay-runs", "1", "--prewarm", "1")
	if !strings.Contains(out, "998 arrivals") {
		t.Errorf("the twin did not evaluate the 998 real rows:\n%s", out)
	}
	out, _ = benchRatio(t, "twin/replay", "twin", "--days", "1", "--apps", "2", "--replay-runs", "2")
	if !strings.Contains(out, "5760 ticks") || strings.Count(out, "replay (source") != 2 {
		t.Errorf("want two replay runs and every tick of the day evaluated:\n%s", out)
	}
}

func TestBenchLoopRealRows(t *testing.T) {
	out, _ := benchRatio(t, "loop/engine", "loop", "--trace", realTrace, "--partitions", "2")
	if !strings.Contains(out, "998 invocations") {
		t.Errorf("the closed loop did not replay the 998 real rows:\n%s", out)
	}
}

func TestBenchIngest(t *testing.T) {
	for _, format := range []string{"json", "otlp-proto"} {
		out, _ := benchRatio(t, "ingest/raw", "ingest", "--records", "3000", "--raw-runs", "1", "--batch", "100", "--format", format)
		if !strings.Contains(out, "3000 records in") || !strings.Contains(out, "p99") {
			t.Errorf("%s: want every record sent and the latency percentiles:\n%s", format, out)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"sink"}, {"sink", "--clickhouse", "clickhouse://x:9000", "--store", "x.duckdb"}} {
		if err := benchMain(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("strata bench %v: want a usage error", args)
		}
	}
}

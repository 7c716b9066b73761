package bench_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/bench"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{4, 1}, 2.5}, {[]float64{5, 1, 3}, 3}, {[]float64{9, 1, 8, 2, 7}, 7}, {[]float64{4, 3, 2, 1}, 2.5}} {
		in := append([]float64(nil), tc.xs...)
		if got := bench.Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Fatalf("Median reordered its argument: %v, was %v", in, tc.xs)
			}
		}
	}
	if got := bench.Median([]time.Duration{3 * time.Millisecond, time.Millisecond}); got != 2*time.Millisecond {
		t.Errorf("Median of durations = %v, want 2ms", got)
	}
}

// runIngest runs a small ingest benchmark of runs rounds on c and checks
// its output: the runs interleaved (raw, ingest, raw, …), every run's
// rate, the medians, and the ratio of the medians last.
func runIngest(t *testing.T, c pipeline.Config, format string, runs int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := bench.Ingest(ctx, bench.IngestConfig{Config: c, Records: 2000, Batch: 100, Concurrency: 4, Format: format, Runs: runs}, &out)
	if err != nil {
		t.Fatalf("bench ingest: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var seq []string
	rates := map[string][]float64{}
	for _, l := range lines {
		side := ""
		switch {
		case strings.HasPrefix(l, "raw franz-go produce, run "):
			side = "raw"
		case strings.HasPrefix(l, "ingest over HTTP ("):
			side = "ingest"
		default:
			continue
		}
		seq = append(seq, side)
		_, after, _ := strings.Cut(l, "2000 records in ")
		_, after, _ = strings.Cut(after, " = ")
		r, _, _ := strings.Cut(after, " records/s")
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v <= 0 {
			t.Fatalf("run line without a rate of 2000 records: %q", l)
		}
		rates[side] = append(rates[side], v)
	}
	if len(seq) != 2*runs {
		t.Fatalf("%d run lines, want %d:\n%s", len(seq), 2*runs, out.String())
	}
	for i, s := range seq {
		if want := [2]string{"raw", "ingest"}[i%2]; s != want {
			t.Fatalf("run lines %v are not interleaved raw, ingest, …:\n%s", seq, out.String())
		}
	}
	last := lines[len(lines)-1]
	v, ok := strings.CutPrefix(last, "ingest/raw ratio: ")
	ratio, err := strconv.ParseFloat(v, 64)
	if !ok || err != nil || ratio <= 0 {
		t.Fatalf("last line %q is not the ratio:\n%s", last, out.String())
	}
	want := bench.Median(rates["ingest"]) / bench.Median(rates["raw"])
	if diff := ratio - want; diff > 0.001 || diff < -0.001 {
		t.Errorf("ratio %v, want the ratio of the medians of the printed rates %.3f:\n%s", ratio, want, out.String())
	}
	if m := lines[len(lines)-2]; !strings.Contains(m, "median of "+strconv.Itoa(runs)+" runs") || strings.Count(m, "records/s") != 4 {
		t.Errorf("want both sides' medians and best runs, with absolute rates, before the ratio: %q", m)
	}
	if !strings.Contains(out.String(), "request latency, median of") || !strings.HasPrefix(lines[0], "machine: ") {
		t.Errorf("want the machine and the median request latency percentiles:\n%s", out.String())
	}
}

func TestIngestEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a broker and ten benchmark runs")
	}
	runIngest(t, pipeline.Config{}, "json", 5)
	runIngest(t, pipeline.Config{}, "otlp-proto", 1)
}

package bench_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/bench"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestMain fails the package if a benchmark leaves goroutines behind (the
// nats.go goroutine cmd/strata's TestMain explains is ignored).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

// defaultPlacement is pipeline.DefaultPlacement parsed.
func defaultPlacement(t *testing.T) cloud.Placement {
	t.Helper()
	pl, err := pipeline.ParsePlacement(pipeline.DefaultPlacement)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// benchRatio runs the benchmark bench, its log written to the logger it
// is handed, and returns its output and the ratio its last line reports
// under label; it fails the test unless the ratio is positive and finite.
// No timing is asserted.
func benchRatio(t *testing.T, label string, bench func(ctx context.Context, logger *slog.Logger, stdout io.Writer) error) (string, float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	logger, err := pipeline.NewLogger(&stderr, pipeline.DefaultLogLevel)
	if err != nil {
		t.Fatal(err)
	}
	if err := bench(ctx, logger, &stdout); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", label, err, stdout.String(), stderr.String())
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
	twin := func(c bench.TwinConfig) func(context.Context, *slog.Logger, io.Writer) error {
		return func(ctx context.Context, logger *slog.Logger, w io.Writer) error {
			c.Placement, c.Logger = defaultPlacement(t), logger
			return bench.Twin(ctx, c, w)
		}
	}
	out, _ := benchRatio(t, "twin/replay", twin(bench.TwinConfig{Source: bench.Source{Days: 2, Seed: 1, Trace: pipelinetest.RealTrace}, Runs: 1, Prewarm: 1}))
	if !strings.Contains(out, "998 arrivals") {
		t.Errorf("the twin did not evaluate the 998 real rows:\n%s", out)
	}
	checkInterleaved(t, out, "replay (source", "twin engine (prewarm 1)", 1)
	out, _ = benchRatio(t, "twin/replay", twin(bench.TwinConfig{Source: bench.Source{Days: 1, Seed: 1, Apps: 2}, Runs: 2}))
	if !strings.Contains(out, "5760 ticks") {
		t.Errorf("want every tick of the day evaluated:\n%s", out)
	}
	checkInterleaved(t, out, "replay (source", "twin engine (prewarm 0)", 2)
}

func TestBenchLoopRealRows(t *testing.T) {
	// The loop as `strata run` runs it, transitions included.
	transitions, err := pipeline.ParseLayers(pipeline.DefaultTransitions)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := benchRatio(t, "loop/engine", func(ctx context.Context, logger *slog.Logger, w io.Writer) error {
		return bench.Loop(ctx, bench.LoopConfig{Config: pipeline.Config{Partitions: 2, Epoch: grid.DefaultEpoch, Logger: logger},
			Source: bench.Source{Days: 1, Seed: 1, Trace: pipelinetest.RealTrace}, Strategic: pipeline.DefaultStrategicPolicy, Tactical: pipeline.DefaultTacticalPolicy,
			Operational: pipeline.DefaultOperationalPolicy, Placement: defaultPlacement(t), PolicySeed: pipeline.DefaultPolicySeed,
			Transitions: transitions, Runs: 2}, w)
	})
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
		out, _ := benchRatio(t, "ingest/raw", func(ctx context.Context, logger *slog.Logger, w io.Writer) error {
			return bench.Ingest(ctx, bench.IngestConfig{Config: pipeline.Config{Logger: logger}, Records: 3000, Batch: 100, Concurrency: 8,
				Format: tc.format, Runs: tc.runs}, w)
		})
		if strings.Count(out, "3000 records in") != 2*tc.runs || !strings.Contains(out, "p99") {
			t.Errorf("%s: want every record sent in every run and the latency percentiles:\n%s", tc.format, out)
		}
		checkInterleaved(t, out, "raw franz-go produce", "ingest over HTTP", tc.runs)
	}
}

func TestBenchPipelineSlice(t *testing.T) {
	out, _ := benchRatio(t, "pipeline/raw", func(ctx context.Context, logger *slog.Logger, w io.Writer) error {
		return bench.Pipeline(ctx, bench.PipelineConfig{Config: pipeline.Config{Partitions: 2, Logger: logger}, Days: 1, Seed: 1, Apps: 2,
			RawSample: 1000, Runs: 2, StateRetention: 128 << 20}, w)
	})
	// Each round replays the whole slice: as many invocations as the raw
	// ceiling produced records.
	_, after, _ := strings.Cut(out, "raw franz-go produce, run 1: ")
	n, _, _ := strings.Cut(after, " records")
	if _, err := strconv.Atoi(n); err != nil || strings.Count(out, ": "+n+" invocations, ") != 2 {
		t.Errorf("want the trace's %s invocations replayed in each pipeline run:\n%s", n, out)
	}
	checkInterleaved(t, out, "raw franz-go produce", "pipeline replay", 2)
}

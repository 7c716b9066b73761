package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/experiments/bounds"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestBoundsCommand runs `strata bounds` on a 4-day, 4-app synthetic
// trace scored on days 3–4: the table is printed, no rule beats the
// oracle, and its static-best (trained on days 1–10, here the whole
// trace) is what static-best runs with in the closed loop: the choices
// SetupLoop gets from twin.TrainStatic, scored on the function-hours the
// command wrote with --csv.
func TestBoundsCommand(t *testing.T) {
	csvPath := filepath.Join(t.TempDir(), "rows.csv")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"bounds", "--synth-days", "4", "--apps", "4", "--eval-days", "3-4", "--csv", csvPath}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	line := regexp.MustCompile(`(?m)^\| ([^|]+) \| (yes|no) \| (-?[0-9.]+) \| (-?[0-9.]+) \|$`)
	printed := map[string]float64{}
	var oracle float64
	for i, m := range line.FindAllStringSubmatch(out.String(), -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if !strings.HasPrefix(m[1], bounds.NameOracle) {
				t.Fatalf("first line %q is not the oracle:\n%s", m[1], &out)
			}
			oracle = v
		}
		if v > oracle {
			t.Errorf("%s: %.4f beats the oracle's %.4f", m[1], v, oracle)
		}
		printed[m[1]] = v
	}
	const static = bounds.NameStaticBest + " (days 1–10)"
	for _, want := range []string{static, bounds.NameFollow + " (every earlier hour)", bounds.NameStaticBest + " (days 1–2)"} {
		if _, ok := printed[want]; !ok {
			t.Fatalf("no line %q in\n%s", want, &out)
		}
	}
	if !strings.Contains(out.String(), "| "+static+" | no |") {
		t.Errorf("static-best trained on the evaluation days is not marked non-causal:\n%s", &out)
	}
	if !strings.Contains(errb.String(), "replayed days 1–10 of synthetic(days=4,seed=1,apps=4)") {
		t.Errorf("stderr: %s", &errb)
	}

	// Static-best as the closed loop chooses it.
	src := pipeline.Source{SynthDays: 4, Seed: 1, Apps: 4}
	pl, err := pipeline.ParsePlacement(pipeline.DefaultPlacement)
	if err != nil {
		t.Fatal(err)
	}
	lc, _, err := pipeline.SetupLoop(context.Background(), pipeline.LoopOptions{Strategic: "none", Tactical: string(twin.PolicyStaticBest), Operational: "none",
		Placement: pl, Source: &src}, pipeline.Config{Epoch: grid.DefaultEpoch, LatenessUS: pipeline.DefaultLateness.Microseconds(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "test", grid.DefaultEpoch)
	if err != nil {
		t.Fatal(err)
	}
	choices := lc.Engine.Static.Placements
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	rows, err := bounds.ReadCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	def := twin.RegionTier{Metro: pl.Metro, Tier: pl.Tier}
	sum, n := 0.0, 0
	for _, r := range rows {
		if r.Hour < 2*24 || r.Hour >= 4*24 {
			continue
		}
		a, ok := choices[twin.FuncID{App: r.App, Func: r.Func}]
		if !ok {
			a = def
		}
		sum += r.Rewards[a.Action()]
		n++
	}
	if n == 0 || len(choices) == 0 {
		t.Fatalf("%d evaluation rows, %d static-best choices", n, len(choices))
	}
	// The table's figure, exactly and as printed.
	c := bounds.DefaultConfig()
	c.EvalFirst, c.EvalLast = 3, 4
	res, err := bounds.Compute(rows, c)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := res.Policy(static)
	if want := sum / float64(n); got.Mean != want || math.Abs(printed[static]-want) > 5e-5 {
		t.Errorf("static-best: table %.6f (printed %.4f), TrainStatic's choices %.6f", got.Mean, printed[static], want)
	}
	if res.Rows != n {
		t.Errorf("the table scored %d function-hours, the CSV has %d on days 3–4", res.Rows, n)
	}
}

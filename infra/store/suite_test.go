package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

func ptr[T any](v T) *T { return &v }

func testDecisions(run string, n int) []*stratapb.Decision {
	out := make([]*stratapb.Decision, 0, n)
	for i := range n {
		d := &stratapb.Decision{RunId: run, Layer: "operational", Tick: int64(i / 3), TickMs: int64(i/3) * 15000,
			App: "app-1", Func: fmt.Sprintf("f%d", i%3), Policy: "ppo", PolicyVersion: "v1", Action: int32(i % 5),
			Provider: "aws", Region: "us-east-1", MemoryMb: 512, Prewarm: int32(i % 5), KeepWarmMs: 60000,
			Carried: i%2 == 0}
		if i%2 == 1 {
			d.LogProb, d.Value = ptr(-0.5), ptr(1.25)
		}
		out = append(out, d)
	}
	return out
}

func testRewards(run string, n int) []*stratapb.Reward {
	out := make([]*stratapb.Reward, 0, n)
	for i := range n {
		out = append(out, &stratapb.Reward{RunId: run, Layer: "tactical", Tick: int64(i / 2), TickMs: int64(i/2) * 3600000,
			App: "app-2", Func: fmt.Sprintf("g%d", i%2), Reward: -1.5, RCost: -1, RPerf: -0.5, Invocations: 100,
			ColdStarts: 3, CostUsd: 0.01, LatencyP95Ms: 120.5, Underprovisioned: 1, OracleReward: -1, Regret: 0.5})
	}
	return out
}

// runStoreSuite is the contract every Store implementation passes; open
// returns an empty store with its schema not yet created.
func runStoreSuite(t *testing.T, open func(t *testing.T) Store) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	count := func(t *testing.T, s Store, q string) int64 {
		t.Helper()
		_, rows, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || len(rows[0]) != 1 {
			t.Fatalf("%s: got %v, want one value", q, rows)
		}
		switch v := rows[0][0].(type) {
		case uint64:
			return int64(v)
		case int64:
			return v
		default:
			t.Fatalf("%s: count is %T", q, v)
			return 0
		}
	}

	t.Run("SchemaColumns", func(t *testing.T) {
		s := open(t)
		for range 2 { // idempotent
			if err := s.EnsureSchema(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, tb := range tables {
			cols, _, err := s.Query(ctx, "SELECT * FROM "+tb.name+" LIMIT 0")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cols, Columns(tb.name)) {
				t.Errorf("%s columns = %v, want %v", tb.name, cols, Columns(tb.name))
			}
		}
	})

	t.Run("DecisionsIdempotent", func(t *testing.T) {
		s := open(t)
		if err := s.EnsureSchema(ctx); err != nil {
			t.Fatal(err)
		}
		ds := testDecisions("run-a", 30)
		// A batch that repeats keys, then the whole batch again (a replay),
		// then one row changed: 30 distinct keys, the change wins.
		batch := append(slices.Clone(ds), ds[:10]...)
		for range 2 {
			if err := s.WriteDecisions(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		changed := testDecisions("run-a", 1)[0]
		changed.Prewarm = 42
		if err := s.WriteDecisions(ctx, []*stratapb.Decision{changed}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteDecisions(ctx, testDecisions("run-b", 6)); err != nil {
			t.Fatal(err)
		}
		if got := count(t, s, "SELECT count() FROM decisions FINAL WHERE run_id = 'run-a'"); got != 30 {
			t.Errorf("run-a decisions = %d, want 30", got)
		}
		if got := count(t, s, "SELECT count() FROM decisions FINAL"); got != 36 {
			t.Errorf("decisions = %d, want 36", got)
		}
		_, rows, err := s.Query(ctx, "SELECT prewarm, carried, log_prob FROM decisions FINAL WHERE run_id = 'run-a' AND tick = 0 AND func = 'f0'")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || fmt.Sprint(rows[0]) != "[42 1 <nil>]" {
			t.Errorf("replaced row = %v, want [[42 1 <nil>]]", rows)
		}
		_, rows, err = s.Query(ctx, "SELECT log_prob, value FROM decisions FINAL WHERE run_id = 'run-a' AND tick = 0 AND func = 'f1'")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || fmt.Sprint(rows[0]) != "[-0.5 1.25]" {
			t.Errorf("ppo row = %v, want [[-0.5 1.25]]", rows)
		}
	})

	t.Run("RewardsRunsOutcomes", func(t *testing.T) {
		s := open(t)
		if err := s.EnsureSchema(ctx); err != nil {
			t.Fatal(err)
		}
		rs := testRewards("run-r", 20)
		if err := s.WriteRewards(ctx, append(rs, rs...)); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteRewards(ctx, rs[:5]); err != nil {
			t.Fatal(err)
		}
		if got := count(t, s, "SELECT count() FROM rewards FINAL WHERE run_id = 'run-r'"); got != 20 {
			t.Errorf("rewards = %d, want 20", got)
		}
		started := time.Date(2026, 3, 1, 12, 0, 0, 500e6, time.UTC)
		run := &stratapb.Run{RunId: "run-r", StartedUnixMs: started.UnixMilli(), Source: "synthetic", Seed: 7,
			Speed: "max", StrategicPolicy: "greedy-cost", ConfigJson: `{"seed":7}`}
		for range 2 {
			if err := s.WriteRuns(ctx, []*stratapb.Run{run, run}); err != nil {
				t.Fatal(err)
			}
		}
		_, rows, err := s.Query(ctx, "SELECT run_id, started_ms, started, seed, config_json FROM runs FINAL")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint([]any{"run-r", started.UnixMilli(), started.Truncate(time.Second), int64(7), `{"seed":7}`})
		if len(rows) != 1 || fmt.Sprint(rows[0]) != want {
			t.Errorf("runs = %v, want [%s]", rows, want)
		}
		oc := []*stratapb.Outcome{
			{RunId: "run-r", InvocationId: "i1", App: "a", Func: "f", StartUs: 10, ColdStart: true, LatencyMs: 5},
			{RunId: "run-r", InvocationId: "i2", App: "a", Func: "f", StartUs: 20, Failed: true},
		}
		for range 2 {
			if err := s.WriteOutcomes(ctx, oc); err != nil {
				t.Fatal(err)
			}
		}
		if got := count(t, s, "SELECT count() FROM outcomes FINAL WHERE cold_start = 1 OR failed = 1"); got != 2 {
			t.Errorf("outcomes = %d, want 2", got)
		}
		if err := s.WriteOutcomes(ctx, nil); err != nil {
			t.Errorf("empty write: %v", err)
		}
	})

	t.Run("RunQueries", func(t *testing.T) {
		s := open(t)
		if err := s.EnsureSchema(ctx); err != nil {
			t.Fatal(err)
		}
		testRunQueries(ctx, t, s)
	})
}

// queryRun is one planted run of testRunQueries.
type queryRun struct {
	id, kind, label string
	first, last     int32
	// rewards are its tactical rewards; latency its latencies per day.
	rewards []float64
	latency map[int32][]float64
}

// testRunQueries plants runs (each row written twice, the second time with
// its wall time, as the workflows do), their latency histograms and tactical
// rewards, then checks RunQueries against the same figures computed here:
// only the eval runs of the days asked for count, a label's runs merge.
func testRunQueries(ctx context.Context, t *testing.T, s Store) {
	t.Helper()
	lat := func(seed uint64, n int) []float64 {
		r := rand.New(rand.NewPCG(seed, 9))
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Exp(4 + 1.5*r.NormFloat64())
		}
		return out
	}
	runs := []queryRun{
		{"q-ppo-1", "eval", "tactical ppo", 13, 14, []float64{0.5, 0.7}, map[int32][]float64{13: lat(1, 400), 14: lat(2, 300)}},
		{"q-ppo-2", "eval", "tactical ppo", 13, 14, []float64{0.6, 0.6, 0.9}, map[int32][]float64{13: lat(3, 500), 14: lat(4, 100)}},
		{"q-sb", "eval", "tactical static-best", 13, 14, []float64{0.4}, map[int32][]float64{13: lat(5, 800), 14: lat(6, 50)}},
		// Not counted: a training run, an evaluation of other days.
		{"q-train", "validation", "tactical ppo", 13, 14, []float64{-5}, map[int32][]float64{13: lat(7, 100)}},
		{"q-other", "eval", "tactical ppo", 2, 2, []float64{-5}, map[int32][]float64{2: lat(8, 100)}},
	}
	type want struct {
		hist     schemas.LatencyHistogram
		means    []float64
		inv      int64
		cost     float64
		keepWarm float64
		carbon   float64
		coldSum  int64
	}
	wants := map[string]*want{}
	for _, r := range runs {
		row := &stratapb.Run{RunId: r.id, Kind: r.kind, Label: r.label, ScoredFirstDay: r.first, ScoredLastDay: r.last, FirstDay: r.first - 1}
		if err := s.WriteRuns(ctx, []*stratapb.Run{row}); err != nil {
			t.Fatal(err)
		}
		row.WallMs = 1234
		if err := s.WriteRuns(ctx, []*stratapb.Run{row}); err != nil {
			t.Fatal(err)
		}
		counted := r.kind == "eval" && r.first == 13
		w := wants[r.label]
		if counted && w == nil {
			w = &want{}
			wants[r.label] = w
		}
		var buckets []*stratapb.LatencyBucket
		for day, xs := range r.latency {
			var h schemas.LatencyHistogram
			for _, x := range xs {
				h.Add(x)
			}
			buckets = append(buckets, h.Rows(r.id, day)...)
			if counted {
				w.hist.Merge(&h)
			}
		}
		for range 2 { // idempotent
			if err := s.WriteLatencyBuckets(ctx, buckets); err != nil {
				t.Fatal(err)
			}
		}
		var rws []*stratapb.Reward
		sum := 0.0
		for i, x := range r.rewards {
			inv := int64(10 * (i + 1))
			rws = append(rws, &stratapb.Reward{RunId: r.id, Layer: "tactical", Tick: int64(300 + i), TickMs: int64(300+i) * 3600000, App: "a", Func: "f",
				Reward: x, Invocations: inv, ColdStarts: int64(i), CostUsd: 0.5 * float64(i+1), PrewarmCostUsd: 0.25, RCost: x / 2, RPerf: 1, RCarbon: x / 4},
				// The operational rows of the same invocations (the cost
				// figures' rows), with a reward the tactical mean must not see.
				&stratapb.Reward{RunId: r.id, Layer: "operational", Tick: int64(300*240 + i), TickMs: int64(300*240+i) * 15000, App: "a", Func: "f",
					Reward: 99, Invocations: inv, ColdStarts: int64(i), CostUsd: 0.5 * float64(i+1), PrewarmCostUsd: 0.25, CarbonG: 2})
			sum += x
			if counted {
				w.inv += inv
				w.cost += 0.5 * float64(i+1)
				w.keepWarm += 0.25
				w.carbon += 2
				w.coldSum += int64(i)
			}
		}
		if err := s.WriteRewards(ctx, rws); err != nil {
			t.Fatal(err)
		}
		if counted {
			w.means = append(w.means, sum/float64(len(r.rewards)))
		}
	}
	query := func(q RunQuery) [][]any {
		t.Helper()
		_, rows, err := s.Query(ctx, q.SQL(13, 14))
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		if len(rows) != len(wants) {
			t.Fatalf("%s: %d rows %v, want one per counted label (%d)", q.Name, len(rows), rows, len(wants))
		}
		return rows
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }
	for _, row := range query(RunQueries[0]) {
		w := wants[row[0].(string)]
		if p95 := Number(row[1]); p95 != w.hist.Quantile(0.95) || Number(row[2]) != float64(w.hist.Total) {
			t.Errorf("%s: p95 %v of %v invocations, want %v of %d", row[0], row[1], row[2], w.hist.Quantile(0.95), w.hist.Total)
		}
	}
	for _, row := range query(RunQueries[1]) {
		w := wants[row[0].(string)]
		mean, ss := 0.0, 0.0
		for _, m := range w.means {
			mean += m / float64(len(w.means))
		}
		for _, m := range w.means {
			ss += (m - mean) * (m - mean)
		}
		if Number(row[1]) != float64(len(w.means)) || !near(Number(row[2]), mean) {
			t.Errorf("%s: %v runs, mean %v; want %d, %v", row[0], row[1], row[2], len(w.means), mean)
		}
		if len(w.means) > 1 && !near(Number(row[3]), math.Sqrt(ss/float64(len(w.means)-1))) {
			t.Errorf("%s: sd %v, want %v", row[0], row[3], math.Sqrt(ss/float64(len(w.means)-1)))
		}
	}
	for _, row := range query(RunQueries[2]) {
		w := wants[row[0].(string)]
		perM := func(x float64) float64 { return x * 1e6 / float64(w.inv) }
		if Number(row[1]) != float64(w.inv) || !near(Number(row[2]), perM(w.cost)) || !near(Number(row[3]), perM(w.keepWarm)) ||
			!near(Number(row[4]), perM(w.carbon)) || !near(Number(row[5]), perM(float64(w.coldSum))) {
			t.Errorf("%s: %v; want %d invocations, %v USD/M, %v keep-warm USD/M, %v gCO2e/M, %v cold/M", row[0], row, w.inv,
				perM(w.cost), perM(w.keepWarm), perM(w.carbon), perM(float64(w.coldSum)))
		}
	}
}

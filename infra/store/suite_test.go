package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
}

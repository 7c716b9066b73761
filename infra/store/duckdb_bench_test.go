package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchRowsPerTick is about the operational reward rows of one 15 s tick
// in the synthetic trace (17.4 M rows over 80,640 ticks).
const benchRowsPerTick = 216

// benchID is a 64-character hex id, as the trace's app and function hashes.
func benchID(kind string, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s%d", kind, i))
	return hex.EncodeToString(sum[:])
}

// benchRewards returns n operational reward rows from row first on, in
// tick order, benchRowsPerTick functions a tick.
func benchRewards(first, n int) []*stratapb.Reward {
	out := make([]*stratapb.Reward, n)
	for k := range n {
		i := first + k
		tick, fn := int64(i/benchRowsPerTick), i%benchRowsPerTick
		out[k] = &stratapb.Reward{RunId: "run-bench", Layer: "operational", Tick: tick, TickMs: tick * 15000,
			App: benchID("app", fn%40), Func: benchID("func", fn), Reward: 0.9, Invocations: int64(i % 7),
			CostUsd: 1e-6, LatencyP50Ms: 120, LatencyP95Ms: 900, OracleReward: 1, Regret: 0.1}
	}
	return out
}

// prefillRewards inserts n operational reward rows (ticks before the
// benchmark's) in one SQL statement.
func prefillRewards(ctx context.Context, d *DuckDB, n int) error {
	q := fmt.Sprintf(`INSERT INTO rewards (run_id, layer, tick, tick_ms, app, func, reward, r_cost, r_perf,
		r_carbon, sla_penalty, invocations, cold_starts, sla_violations, cost_usd, prewarm_cost_usd, carbon_g,
		latency_p50_ms, latency_p95_ms, pred_error, underprovisioned, oracle_reward, regret)
		SELECT 'run-bench', 'operational', i // %[2]d, (i // %[2]d) * 15000,
			sha256('app' || ((i %% %[2]d) %% 40)::VARCHAR), sha256('func' || (i %% %[2]d)::VARCHAR),
			0.9, 0, 0, 0, 0, i %% 7, 0, 0, 1e-6, 0, 0, 120, 900, 0, 0, 1, 0.1
		FROM range(%[1]d) t(i)`, n, benchRowsPerTick)
	if _, err := d.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("prefilling %d rewards: %w", n, err)
	}
	return nil
}

// BenchmarkDuckDBWriteRewards writes the sink's 10,000-row batches of
// operational rewards into a DuckDB file whose rewards table already holds
// 0, 1 M or 10 M rows of earlier ticks, and reports rows/s: whether the
// write slows down as the table grows. schema=pk is the table as it was
// created before December 2026, with the key as PRIMARY KEY (INSERT OR
// REPLACE); schema=span is today's, without a key index. (pk has no 10 M
// case: filling a keyed table with 10 M rows runs out of DuckDB's 1 GB,
// DuckDBMemoryLimit, on the key index.) The file is filled once per
// sub-benchmark and every later call of it appends after the rows before:
// run it with -benchtime=Nx.
func BenchmarkDuckDBWriteRewards(b *testing.B) {
	const batch = 10000
	for _, c := range []struct {
		schema  string
		prefill int
	}{{"pk", 0}, {"pk", 1_000_000}, {"span", 0}, {"span", 1_000_000}, {"span", 10_000_000}} {
		prefill := c.prefill
		var (
			d    *DuckDB
			next int
		)
		b.Cleanup(func() {
			if d != nil {
				_ = d.Close()
			}
		})
		dir := b.TempDir()
		b.Run(fmt.Sprintf("schema=%s/prefill=%dM", c.schema, prefill/1_000_000), func(b *testing.B) {
			ctx := context.Background()
			if d == nil {
				var err error
				if d, err = OpenDuckDB(ctx, filepath.Join(dir, "bench.duckdb")); err != nil {
					b.Fatal(err)
				}
				if c.schema == "pk" {
					if _, err := d.db.ExecContext(ctx, rewardsTable.duckDBDDLKeyed(true)); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.EnsureSchema(ctx); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := prefillRewards(ctx, d, prefill); err != nil {
					b.Fatal(err)
				}
				b.Logf("prefilled %d rows in %v", prefill, time.Since(t0).Round(time.Millisecond))
				next = prefill
			}
			batches := make([][]*stratapb.Reward, b.N)
			for i := range batches {
				batches[i] = benchRewards(next, batch)
				next += batch
			}
			b.ResetTimer()
			for i := range b.N {
				if err := d.WriteRewards(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

//go:build integration

package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// The write benchmarks measure a 10,000-row decisions batch through each
// store against a raw clickhouse-go batch insert of the same rows (the
// floor for ClickHouse). ns/row is reported per benchmark.
const benchRows = 10000

func benchWrite(b *testing.B, write func(context.Context, []*stratapb.Decision) error) {
	ctx := context.Background()
	rows := testDecisions("bench", benchRows)
	for b.Loop() {
		if err := write(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
}

func openBenchClickHouse(b *testing.B) *ClickHouse {
	s, err := OpenClickHouse(context.Background(), clickHouseTestDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.EnsureSchema(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkWriteDecisionsClickHouseStore(b *testing.B) {
	s := openBenchClickHouse(b)
	benchWrite(b, s.WriteDecisions)
}

func BenchmarkWriteDecisionsClickHouseRaw(b *testing.B) {
	s := openBenchClickHouse(b)
	benchWrite(b, func(ctx context.Context, rows []*stratapb.Decision) error {
		batch, err := s.Conn().PrepareBatch(ctx, "INSERT INTO decisions (run_id, layer, tick, tick_ms, app, func, policy, policy_version, action, provider, region, memory_mb, prewarm, keep_warm_ms, log_prob, value, carried)")
		if err != nil {
			return err
		}
		for _, d := range rows {
			var carried uint8
			if d.Carried {
				carried = 1
			}
			if err := batch.Append(d.RunId, d.Layer, d.Tick, d.TickMs, d.App, d.Func, d.Policy, d.PolicyVersion,
				d.Action, d.Provider, d.Region, d.MemoryMb, d.Prewarm, d.KeepWarmMs, d.LogProb, d.Value, carried); err != nil {
				return err
			}
		}
		return batch.Send()
	})
}

func BenchmarkWriteDecisionsDuckDB(b *testing.B) {
	s, err := OpenDuckDB(context.Background(), filepath.Join(b.TempDir(), "bench.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.EnsureSchema(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchWrite(b, s.WriteDecisions)
}

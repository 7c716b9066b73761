//go:build integration

package bench_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline/bench"
)

// sinkBench returns the sink benchmark of c, its log written to the logger
// benchRatio hands it.
func sinkBench(c bench.SinkConfig) func(context.Context, *slog.Logger, io.Writer) error {
	return func(ctx context.Context, logger *slog.Logger, w io.Writer) error {
		c.Logger = logger
		return bench.Sink(ctx, c, w)
	}
}

// TestIntegrationBenchSink runs the sink benchmark on a few thousand rows
// into STRATA_CLICKHOUSE, through the embedded broker and through the real
// Kafka (scratch topics), and checks the ratio and that the benchmark
// dropped its databases.
func TestIntegrationBenchSink(t *testing.T) {
	dsn := os.Getenv("STRATA_CLICKHOUSE")
	if dsn == "" {
		t.Fatal("STRATA_CLICKHOUSE must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	brokers := kafka.ParseBrokers(os.Getenv("STRATA_KAFKA"))
	if len(brokers) == 0 {
		t.Fatal("STRATA_KAFKA must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	for _, c := range []struct {
		name    string
		brokers []string
	}{
		{"embedded-kafka", nil},
		{"real-kafka", brokers},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _ := benchRatio(t, "sink/raw", sinkBench(bench.SinkConfig{ClickHouseDSN: dsn, Brokers: c.brokers, Partitions: kafka.DefaultPartitions,
				Rows: 5000, BatchRows: 2000, Runs: 2, Seed: 1}))
			if !strings.Contains(out, "5001 rows") {
				t.Errorf("want 5000 rows and the run row written:\n%s", out)
			}
			db := regexp.MustCompile(`strata_bench_\d+`).FindString(out)
			if db == "" {
				t.Fatalf("no benchmark database named in the output:\n%s", out)
			}
			st, err := store.OpenClickHouse(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, rows, err := st.Query(context.Background(), "SELECT name FROM system.databases")
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(rows, func(r []any) bool { s, _ := r[0].(string); return strings.HasPrefix(s, db) }) {
				t.Errorf("database %s* was not dropped", db)
			}
		})
	}
}

// TestIntegrationBenchSinkDuckDB runs the DuckDB variant and checks that
// it removes its files.
func TestIntegrationBenchSinkDuckDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.duckdb")
	benchRatio(t, "sink/raw", sinkBench(bench.SinkConfig{DuckDBFile: path, Partitions: kafka.DefaultPartitions, Rows: 3000, BatchRows: 10_000, Runs: 1, Seed: 1}))
	if m, _ := filepath.Glob(path + "*"); len(m) > 0 {
		t.Errorf("files left behind: %v", m)
	}
}

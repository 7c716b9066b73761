//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/infra/store"
)

// TestIntegrationBenchSink runs `strata bench sink` on a few thousand rows
// into STRATA_CLICKHOUSE, through the embedded broker and through the real
// Kafka (scratch topics), and checks the ratio and that the benchmark
// dropped its databases.
func TestIntegrationBenchSink(t *testing.T) {
	dsn := os.Getenv("STRATA_CLICKHOUSE")
	if dsn == "" {
		t.Fatal("STRATA_CLICKHOUSE must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	brokers, _ := servers(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"embedded-kafka", nil},
		{"real-kafka", []string{"--kafka", strings.Join(brokers, ",")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"sink", "--clickhouse", dsn, "--rows", "5000", "--batch-rows", "2000", "--runs", "2"}, c.args...)
			out, _ := benchRatio(t, "sink/raw", args...)
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
	benchRatio(t, "sink/raw", "sink", "--store", path, "--rows", "3000", "--runs", "1")
	if m, _ := filepath.Glob(path + "*"); len(m) > 0 {
		t.Errorf("files left behind: %v", m)
	}
}

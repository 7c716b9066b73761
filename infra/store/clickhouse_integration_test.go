//go:build integration

package store

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"
)

// clickHouseTestDSN returns STRATA_CLICKHOUSE with a fresh database name in
// its path; the database is dropped when the test ends.
func clickHouseTestDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STRATA_CLICKHOUSE")
	if base == "" {
		t.Fatal("STRATA_CLICKHOUSE must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("strata_test_%d", time.Now().UnixNano())
	u.Path = "/" + db
	t.Cleanup(func() {
		s, err := OpenClickHouse(context.Background(), base)
		if err != nil {
			t.Error(err)
			return
		}
		defer s.Close()
		if err := s.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Error(err)
		}
	})
	return u.String()
}

func TestIntegrationClickHouseStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(t.Context(), clickHouseTestDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

// clickHouseKit opens a fresh ClickHouse database per store for the
// migration and retention suites.
func clickHouseKit() backendKit {
	return backendKit{
		name: "clickhouse",
		open: func(t *testing.T, opts ...Option) Store {
			s, err := OpenClickHouse(t.Context(), clickHouseTestDSN(t), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		exec: func(t *testing.T, s Store, q string) {
			t.Helper()
			if err := s.(*ClickHouse).conn.Exec(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		insert: func(t *testing.T, s Store, tb table, row []any) {
			t.Helper()
			if err := s.(*ClickHouse).write(t.Context(), tb, 1, func(int) []any { return row }); err != nil {
				t.Fatal(err)
			}
		},
		ddl:    func(tb table) string { return tb.clickHouseDDL() },
		typeOf: func(c column) string { return c.ch },
		settle: waitMutations,
	}
}

// waitMutations returns once the mutations of the store's database have
// finished (ClickHouse 18.16 has no mutations_sync setting).
func waitMutations(t *testing.T, s Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := s.(*ClickHouse)
	for {
		var pending uint64
		if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0").Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d mutations still running: %v", pending, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestIntegrationClickHouseMigration(t *testing.T) { runMigrationSuite(t, clickHouseKit()) }

func TestIntegrationClickHouseRetention(t *testing.T) { runRetentionSuite(t, clickHouseKit()) }

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

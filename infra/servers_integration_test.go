//go:build integration

package infra_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// TestIntegrationClickHouseAnswers checks that the ClickHouse server the
// integration tier starts (infra/scripts/up.sh) accepts the table engine and
// FINAL queries the sink will rely on.
func TestIntegrationClickHouseAnswers(t *testing.T) {
	base := os.Getenv("STRATA_CLICKHOUSE_HTTP")
	if base == "" {
		t.Fatal("STRATA_CLICKHOUSE_HTTP must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	query := func(q string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/?query="+url.QueryEscape(q), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("querying clickhouse: %v", err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s: %s", q, resp.Status, body)
		}
		return strings.TrimSpace(string(body))
	}
	db := fmt.Sprintf("strata_it_servers_%d", time.Now().UnixNano()) // the test's own database
	query("CREATE DATABASE " + db)
	defer query("DROP DATABASE " + db)
	query("CREATE TABLE " + db + ".t (id UInt64, v String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY id")
	query("INSERT INTO " + db + ".t (id, v, ver) VALUES (1, 'old', 1), (1, 'new', 2), (2, 'x', 1)")
	if got := query("SELECT count() FROM " + db + ".t FINAL"); got != "2" {
		t.Fatalf("count with FINAL = %q, want 2", got)
	}
	if got := query("SELECT v FROM " + db + ".t FINAL WHERE id = 1"); got != "new" {
		t.Fatalf("latest version = %q, want new", got)
	}
}

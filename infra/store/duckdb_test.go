package store

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDuckDBStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "strata.duckdb"))
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

func TestDuckDBReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.duckdb")
	s, err := OpenDuckDB(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteDecisions(ctx, testDecisions("r", 600)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenDuckDB(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, rows, err := s.Query(ctx, "SELECT count() FROM decisions FINAL")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != int64(600) {
		t.Errorf("after reopen: %v rows, want 600", rows[0][0])
	}
}

func TestStripFinal(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT count() FROM decisions FINAL WHERE x":         "SELECT count() FROM decisions WHERE x",
		"select * from rewards final":                         "select * from rewards",
		"SELECT * FROM finals FINAL":                          "SELECT * FROM finals FINAL",
		"SELECT 1 FROM runs\n  FINAL JOIN decisions FINAL ON": "SELECT 1 FROM runs JOIN decisions ON",
	} {
		if got := StripFinal(in); got != want {
			t.Errorf("StripFinal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenEmpty(t *testing.T) {
	if _, err := Open(context.Background(), ""); err == nil {
		t.Fatal("want an error for an empty target")
	}
}

// TestDuckDBMemoryLimit checks that a file and an in-memory store run with
// DuckDB's buffer pool bounded by DuckDBMemoryLimit, not DuckDB's default
// of 80 % of the machine.
func TestDuckDBMemoryLimit(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "m.duckdb"), ":memory:"} {
		d, err := OpenDuckDB(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		var limit string
		if err := d.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&limit); err != nil {
			t.Fatal(err)
		}
		_ = d.Close()
		// DuckDB reports 1GB as 953.6 MiB.
		if limit != "953.6 MiB" {
			t.Errorf("%s: memory_limit %q, want 1GB (953.6 MiB)", path, limit)
		}
	}
}

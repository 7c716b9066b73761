package store

import (
	"context"
	"fmt"
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

// TestDuckDBOneRowPerKey checks that a replayed batch replaces its rows in
// both DuckDB schemas: today's, where decisions and rewards have no key
// index and a write deletes the rows of its keys in its tick_ms range
// first, and the one of files created before December 2026, where every
// table has its key as PRIMARY KEY. The replay comes after later batches,
// as a sink's redelivery after a crash does, and changes a value: the
// replayed rows win.
func TestDuckDBOneRowPerKey(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keyed bool
	}{{"span delete", false}, {"legacy primary key", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			d, err := OpenDuckDB(ctx, filepath.Join(t.TempDir(), "k.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = d.Close() }()
			if tc.keyed {
				for _, tb := range tables {
					if _, err := d.db.ExecContext(ctx, tb.duckDBDDLKeyed(true)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := d.EnsureSchema(ctx); err != nil {
				t.Fatal(err)
			}
			keyed, err := d.keyedTables(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if keyed["rewards"] != tc.keyed || keyed["decisions"] != tc.keyed || !keyed["runs"] {
				t.Fatalf("tables with a primary key: %v", keyed)
			}
			all := benchRewards(0, 3000)
			for i := 0; i < len(all); i += 1000 {
				if err := d.WriteRewards(ctx, all[i:i+1000]); err != nil {
					t.Fatal(err)
				}
			}
			// Another run's rows over the same ticks must stay.
			other := benchRewards(0, 500)
			for _, r := range other {
				r.RunId = "run-other"
			}
			if err := d.WriteRewards(ctx, other); err != nil {
				t.Fatal(err)
			}
			replay := benchRewards(0, 1000)
			for _, r := range replay {
				r.Reward = 7
			}
			if err := d.WriteRewards(ctx, replay); err != nil {
				t.Fatal(err)
			}
			for q, want := range map[string]string{
				"SELECT count() FROM rewards WHERE run_id = 'run-bench'":                                  "3000",
				"SELECT count(DISTINCT (layer, tick, app, func)) FROM rewards WHERE run_id = 'run-bench'": "3000",
				"SELECT count() FROM rewards WHERE run_id = 'run-bench' AND reward = 7":                   "1000",
				"SELECT count() FROM rewards WHERE run_id = 'run-other'":                                  "500",
			} {
				_, rows, err := d.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprint(rows[0][0]); got != want {
					t.Errorf("%s = %s, want %s", q, got, want)
				}
			}
		})
	}
}

// TestDuckDBWriteLeavesNoStagingTable checks that a write drops its
// temporary staging table: one kept and emptied with DELETE did not give
// its space back, and a 14-day run spilled half a gigabyte of it. The
// store is held to one connection, whose temporary tables the check sees.
func TestDuckDBWriteLeavesNoStagingTable(t *testing.T) {
	ctx := t.Context()
	d, err := OpenDuckDB(ctx, filepath.Join(t.TempDir(), "s.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	d.db.SetMaxOpenConns(1)
	if err := d.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	for _, write := range []func() error{
		func() error { return d.WriteRewards(ctx, benchRewards(0, 100)) },
		func() error { return d.WriteDecisions(ctx, testDecisions("run-s", 30)) },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE temporary").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d temporary tables after a write, want 0", n)
		}
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
// of 80 % of the machine, and checkpoint at DuckDBCheckpointThreshold.
func TestDuckDBMemoryLimit(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "m.duckdb"), ":memory:"} {
		d, err := OpenDuckDB(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		var limit, checkpoint string
		if err := d.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit'), current_setting('checkpoint_threshold')").Scan(&limit, &checkpoint); err != nil {
			t.Fatal(err)
		}
		_ = d.Close()
		// DuckDB reports 1GB as 953.6 MiB, 256MB as 244.1 MiB.
		if limit != "953.6 MiB" {
			t.Errorf("%s: memory_limit %q, want 1GB (953.6 MiB)", path, limit)
		}
		if checkpoint != "244.1 MiB" {
			t.Errorf("%s: checkpoint_threshold %q, want 256MB (244.1 MiB)", path, checkpoint)
		}
	}
}

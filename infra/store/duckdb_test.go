package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
		// DuckDB reports 256MB as 244.1 MiB, 48MB as 45.7 MiB.
		if limit != "244.1 MiB" {
			t.Errorf("%s: memory_limit %q, want 256MB (244.1 MiB)", path, limit)
		}
		if checkpoint != "45.7 MiB" {
			t.Errorf("%s: checkpoint_threshold %q, want 48MB (45.7 MiB)", path, checkpoint)
		}
	}
}

// duckDBKit opens DuckDB files for the migration and retention suites.
func duckDBKit() backendKit {
	return backendKit{
		name: "duckdb",
		open: func(t *testing.T, opts ...Option) Store {
			d, err := OpenDuckDB(t.Context(), filepath.Join(t.TempDir(), "m.duckdb"), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			return d
		},
		exec: func(t *testing.T, s Store, q string) {
			t.Helper()
			if _, err := s.(*DuckDB).db.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		insert: func(t *testing.T, s Store, tb table, row []any) {
			t.Helper()
			q := "INSERT INTO " + tb.name + " (" + tb.quotedCols() + ") VALUES (?" + strings.Repeat(", ?", len(row)-1) + ")"
			if _, err := s.(*DuckDB).db.ExecContext(t.Context(), q, row...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		ddl:    func(tb table) string { return tb.duckDBDDL() },
		typeOf: func(c column) string { return c.duck },
	}
}

func TestDuckDBMigration(t *testing.T) { runMigrationSuite(t, duckDBKit()) }

func TestDuckDBRetention(t *testing.T) { runRetentionSuite(t, duckDBKit()) }

// TestDuckDBMigrationLegacyPrimaryKey migrates a decisions table with its
// key as PRIMARY KEY (files created before December 2026) that lacks the
// last two columns, and writes and replaces rows in it afterwards.
func TestDuckDBMigrationLegacyPrimaryKey(t *testing.T) {
	k := duckDBKit()
	s := k.open(t)
	k.exec(t, s, without(decisionsTable, "carried", writtenCol).duckDBDDLKeyed(true))
	if err := s.EnsureSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds := testDecisions("run-k", 30)
	for range 2 {
		if err := s.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
	}
	if got := queryOne(t, s, "SELECT count(), sum(carried) FROM decisions"); got != "30 15" {
		t.Errorf("count, sum(carried) = %s, want 30 15", got)
	}
	var nullable string
	if err := s.(*DuckDB).db.QueryRowContext(t.Context(), "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'decisions' AND column_name = 'carried'").Scan(&nullable); err != nil {
		t.Fatal(err)
	}
	if nullable != "NO" {
		t.Errorf("migrated column carried is_nullable = %s, want NO (NOT NULL as in a new table)", nullable)
	}
}

// TestDuckDBExpireChunks checks that one Expire deletes at most a chunk
// of each table and says that more is left until nothing is.
func TestDuckDBExpireChunks(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{t: t0}
	d, err := OpenDuckDB(t.Context(), filepath.Join(t.TempDir(), "c.duckdb"), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	d.chunk = 7
	if err := d.EnsureSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteDecisions(t.Context(), testDecisions("run-c", 30)); err != nil {
		t.Fatal(err)
	}
	clock.set(t0.Add(time.Hour))
	if err := d.WriteDecisions(t.Context(), testDecisions("run-d", 3)); err != nil {
		t.Fatal(err)
	}
	var calls []int64
	for more := true; more; {
		var n int64
		if n, more, err = d.Expire(t.Context(), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, n)
		if len(calls) > 10 {
			t.Fatalf("Expire still says more after %v", calls)
		}
	}
	if want := []int64{7, 7, 7, 7, 2}; !slices.Equal(calls, want) {
		t.Errorf("rows deleted per call %v, want %v", calls, want)
	}
	if got := queryOne(t, d, "SELECT count(), min(run_id) FROM decisions"); got != "3run-d" {
		t.Errorf("left: %s, want 3 run-d", got)
	}
}

// TestRunQueriesDocumented checks that docs/tables.md shows each of
// RunQueries as it runs, for days 13–14.
func TestRunQueriesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/tables.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range RunQueries {
		if !strings.Contains(string(doc), q.SQL(13, 14)) {
			t.Errorf("docs/tables.md lacks the query %s as RunQueries has it:\n%s", q.Name, q.SQL(13, 14))
		}
	}
}

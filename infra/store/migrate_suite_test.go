package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// backendKit is what the migration and retention suites need from a
// backend beyond the Store: a store opened with options on an empty
// database, a statement run on it, the backend's CREATE TABLE and column
// type of a table description, and (ClickHouse) a wait for its background
// mutations to finish.
type backendKit struct {
	name string
	open func(t *testing.T, opts ...Option) Store
	exec func(t *testing.T, s Store, q string)
	// insert writes one row of values in tb's columns into tb.
	insert func(t *testing.T, s Store, tb table, row []any)
	ddl    func(tb table) string
	typeOf func(c column) string
	// settle returns once the deletions Expire started have finished; nil
	// where Expire deletes before it returns.
	settle func(t *testing.T, s Store)
}

// testClock is a settable wall clock for WithClock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// without returns tb without the named columns: the table as an earlier
// release created it.
func without(tb table, names ...string) table {
	tb.cols = slices.DeleteFunc(slices.Clone(tb.cols), func(c column) bool { return slices.Contains(names, c.name) })
	tb.retained = tb.retained && !slices.Contains(names, writtenCol)
	return tb
}

// oldRow is one row of tb whose run_id is run and whose other columns
// hold a value of their type (1, "old", NULL).
func oldRow(tb table, run string) []any {
	vals := make([]any, len(tb.cols))
	for i, c := range tb.cols {
		switch {
		case c.name == "run_id":
			vals[i] = run
		case c.nullable():
			vals[i] = (*float64)(nil)
		case c.ch == "String":
			vals[i] = "old"
		case c.ch == "Int64":
			vals[i] = int64(1)
		case c.ch == "Int32":
			vals[i] = int32(1)
		case c.ch == "UInt8":
			vals[i] = uint8(1)
		default:
			vals[i] = float64(1)
		}
	}
	return vals
}

func queryRows(t *testing.T, s Store, q string) [][]any {
	t.Helper()
	_, rows, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func queryOne(t *testing.T, s Store, q string) string {
	t.Helper()
	rows := queryRows(t, s, q)
	if len(rows) != 1 {
		t.Fatalf("%s: %d rows, want 1", q, len(rows))
	}
	return fmt.Sprint(rows[0]...)
}

// runMigrationSuite checks EnsureSchema's migrations on a backend.
func runMigrationSuite(t *testing.T, k backendKit) {
	migrated := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// A decisions table from before policy_version (a middle column),
	// carried and written (the last two), with one row: EnsureSchema adds
	// the three; the old row reads the documented defaults; current rows
	// are written and read back.
	t.Run("AddsMissingColumns", func(t *testing.T) {
		clock := &testClock{t: migrated}
		var logs syncBuffer
		s := k.open(t, WithClock(clock.now), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		old := without(decisionsTable, "policy_version", "carried", writtenCol)
		k.exec(t, s, k.ddl(old))
		k.insert(t, s, old, oldRow(old, "run-old"))
		for range 2 { // the second finds nothing to do
			if err := s.EnsureSchema(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		cols, _, err := s.Query(t.Context(), "SELECT * FROM decisions LIMIT 0")
		if err != nil {
			t.Fatal(err)
		}
		want := Columns(decisionsTable.name)
		if k.name == "duckdb" {
			// DuckDB adds a column at the end.
			want = append(old.colNames(), "policy_version", "carried", writtenCol)
		}
		if !slices.Equal(cols, want) {
			t.Errorf("columns after the migration:\n got %v\nwant %v", cols, want)
		}
		for _, col := range []string{"policy_version", "carried", writtenCol} {
			if n := strings.Count(logs.String(), "column="+col+" "); n != 1 {
				t.Errorf("the migration of %s is logged %d times, want once; log:\n%s", col, n, logs.String())
			}
		}
		if got, want := queryOne(t, s, "SELECT policy_version, carried, written, policy FROM decisions FINAL WHERE run_id = 'run-old'"),
			fmt.Sprint("", uint8(0), migrated, "old"); got != want {
			t.Errorf("the row from before the migration reads %q, want %q", got, want)
		}
		written := migrated.Add(90 * time.Minute)
		clock.set(written.Add(400 * time.Millisecond))
		ds := testDecisions("run-new", 30)
		if err := s.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
		if got := queryOne(t, s, "SELECT count() FROM decisions FINAL WHERE run_id = 'run-new'"); got != "30" {
			t.Errorf("%s rows of run-new, want 30", got)
		}
		if got, want := queryOne(t, s, "SELECT policy_version, carried, prewarm, log_prob, written FROM decisions FINAL WHERE run_id = 'run-new' AND tick = 0 AND func = 'f1'"),
			fmt.Sprint("v1", uint8(0), int32(1), -0.5, written); got != want {
			t.Errorf("a current row reads %q, want %q", got, want)
		}
		if got := queryOne(t, s, "SELECT count() FROM decisions FINAL WHERE run_id = 'run-new' AND carried = 1"); got != "15" {
			t.Errorf("%s carried rows of run-new, want 15", got)
		}
	})

	// A column of another type is an error that names the table, the
	// column and both types, and EnsureSchema then changes nothing (the
	// column rewards lacks stays missing).
	t.Run("RefusesRetype", func(t *testing.T) {
		s := k.open(t)
		retyped := decisionsTable
		retyped.cols = slices.Clone(retyped.cols)
		for i, c := range retyped.cols {
			if c.name == "tick_ms" {
				retyped.cols[i] = colI32("tick_ms")
			}
		}
		k.exec(t, s, k.ddl(retyped))
		k.exec(t, s, k.ddl(without(rewardsTable, writtenCol)))
		err := s.EnsureSchema(t.Context())
		var ce *ColumnTypeError
		if !errors.As(err, &ce) {
			t.Fatalf("EnsureSchema = %v, want a *ColumnTypeError", err)
		}
		wantHave, wantWant := k.typeOf(colI32("x")), k.typeOf(colI64("x"))
		if ce.Table != "decisions" || ce.Column != "tick_ms" || ce.Have != wantHave || ce.Want != wantWant || ce.Backend != k.name {
			t.Errorf("error %+v, want decisions.tick_ms %s (described %s) on %s", ce, wantHave, wantWant, k.name)
		}
		for _, part := range []string{"decisions", "tick_ms", wantHave, wantWant} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not name %s", err, part)
			}
		}
		cols, _, err := s.Query(t.Context(), "SELECT * FROM rewards LIMIT 0")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(cols, writtenCol) {
			t.Errorf("rewards got its written column although EnsureSchema failed")
		}
	})
}

// runRetentionSuite checks Expire on a backend: rows of decisions, rewards
// and outcomes written before the cutoff go, later ones and every run row
// stay.
func runRetentionSuite(t *testing.T, k backendKit) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &testClock{t: t0}
	s := k.open(t, WithClock(clock.now))
	ctx := t.Context()
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	write := func(run string) {
		t.Helper()
		if err := s.WriteRuns(ctx, []*stratapb.Run{{RunId: run, StartedUnixMs: clock.now().UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteDecisions(ctx, testDecisions(run, 30)); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteRewards(ctx, testRewards(run, 20)); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteOutcomes(ctx, []*stratapb.Outcome{{RunId: run, InvocationId: "i1", App: "a", Func: "f", StartUs: 10}}); err != nil {
			t.Fatal(err)
		}
	}
	write("run-old")
	clock.set(t0.Add(2 * time.Hour))
	write("run-new")
	// Nothing is older than an hour before the first write.
	if n, _, err := s.Expire(ctx, t0.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Expire before any row = %d, %v; want 0, nil", n, err)
	}
	n, more, err := s.Expire(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 30+20+1 || more {
		t.Errorf("Expire = %d, more %v; want 51, false", n, more)
	}
	if k.settle != nil {
		k.settle(t, s)
	}
	for q, want := range map[string]string{
		"SELECT count() FROM decisions FINAL WHERE run_id = 'run-old'": "0",
		"SELECT count() FROM rewards FINAL WHERE run_id = 'run-old'":   "0",
		"SELECT count() FROM outcomes FINAL WHERE run_id = 'run-old'":  "0",
		"SELECT count() FROM runs FINAL WHERE run_id = 'run-old'":      "1",
		"SELECT count() FROM decisions FINAL WHERE run_id = 'run-new'": "30",
		"SELECT count() FROM rewards FINAL WHERE run_id = 'run-new'":   "20",
		"SELECT count() FROM outcomes FINAL WHERE run_id = 'run-new'":  "1",
	} {
		if got := queryOne(t, s, q); got != want {
			t.Errorf("after the sweep: %s = %s, want %s", q, got, want)
		}
	}
}

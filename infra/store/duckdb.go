package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// DuckDB is the Store in a DuckDB file: the embedded tier's database. A
// table holds one row per natural key, and writing a key again replaces its
// row, so a replayed batch replaces the rows it wrote before: runs has its
// key as PRIMARY KEY and is written with INSERT OR REPLACE; decisions,
// rewards and outcomes have no key index, and a write deletes the rows with
// its keys among the newest rows (by the table's span column, see table)
// before it appends its own, in one transaction. One process at a time may
// open the file for writing.
type DuckDB struct {
	db   *sql.DB
	path string
	opt  options
	// chunk is the most rows Expire deletes from a table (ExpireChunk).
	chunk int

	// mu guards keyed: the tables that have a PRIMARY KEY in this file
	// (runs, and every table of a file created before December 2026),
	// nil until EnsureSchema or the first write read them.
	mu    sync.Mutex
	keyed map[string]bool
}

var _ Store = (*DuckDB)(nil)

// OpenDuckDB opens (creating if needed) the DuckDB database in file path;
// ":memory:" or "" opens a private in-memory database.
func OpenDuckDB(ctx context.Context, path string, opts ...Option) (*DuckDB, error) {
	dsn := path
	if path == ":memory:" {
		dsn = ""
	}
	// DuckDB's buffer pool defaults to 80 % of the machine's memory, and a
	// 14-day closed loop's 17 M reward rows grew the process to 8.9 GB;
	// past the limit DuckDB spills to disk.
	dsn += "?memory_limit=" + DuckDBMemoryLimit + "&checkpoint_threshold=" + DuckDBCheckpointThreshold
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening duckdb %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening duckdb %s: %w", path, err)
	}
	return &DuckDB{db: db, path: path, opt: buildOptions(opts), chunk: ExpireChunk}, nil
}

// DuckDBMemoryLimit bounds the memory DuckDB's buffer pool may hold in a
// strata process (a DuckDB size, e.g. "1GB"). With `strata run`'s Go soft
// limit of 512 MiB beside it the process stays under 1 GiB: a 14-day
// closed loop into DuckDB peaked at 957 MB (1,073 MB with 320MB and 576
// MiB, 1,121 MB with 320MB and 640 MiB; 1,579 MB with the 1GB and 768 MiB
// before), a 2-day run at 899–904 MB (1,203–1,212 MB before), 3–7 %
// slower (README, "Backpressure").
const DuckDBMemoryLimit = "256MB"

// DuckDBCheckpointThreshold is the write-ahead log size at which DuckDB
// writes its tables to the file (DuckDB's default is 16MB). A checkpoint
// at a commit made the sink's commits 39 % of its write time in a 14-day
// run; a larger threshold checkpoints less often (BenchmarkDuckDBWriteRewards
// after 1 M rows: 45k rows/s with 16MB, 59k rows/s with 256MB). The rows
// not yet checkpointed stay in DuckDB's buffer pool, within
// DuckDBMemoryLimit, so the threshold is about a fifth of it.
const DuckDBCheckpointThreshold = "48MB"

// DB returns the underlying database handle.
func (d *DuckDB) DB() *sql.DB { return d.db }

// EnsureSchema creates the tables that do not exist yet and adds to the
// existing ones the columns they lack, at the end of their columns (see
// duckDBAddColumn for the value the rows already there get). A column with another type than described is a
// *ColumnTypeError, and then nothing changes. A table created by an
// earlier release keeps its PRIMARY KEY and is written as before.
func (d *DuckDB) EnsureSchema(ctx context.Context) error {
	err := ensureSchema(ctx, "duckdb",
		func(ctx context.Context, t table) error {
			_, err := d.db.ExecContext(ctx, t.duckDBDDL())
			return err
		},
		d.columns, func(c column) string { return c.duck }, d.addColumns)
	if err != nil {
		return err
	}
	_, err = d.keyedTables(ctx, true)
	return err
}

// columns reads the columns of table t of the main schema from DuckDB's
// catalog.
func (d *DuckDB) columns(ctx context.Context, t table) (dbColumns, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT column_name, data_type FROM information_schema.columns "+
		"WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?", t.name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	return scanColumns(rows)
}

// addColumns adds the missing columns to t, one statement at a time: in
// one transaction, DuckDB refuses the NOT NULL of a TIMESTAMP column added
// to a table holding rows ("Cannot create index with outstanding
// updates"). A column added whose NOT NULL then failed stays nullable.
func (d *DuckDB) addColumns(ctx context.Context, t table, missing []column, _ dbColumns) error {
	now := d.opt.now()
	for _, c := range missing {
		stmts, dflt := c.duckDBAddColumn(t.name, now)
		for _, q := range stmts {
			if _, err := d.db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrating duckdb table %s: adding column %s %s: %w", t.name, c.name, c.duck, err)
			}
		}
		d.opt.log.Info("store migration: added column", "backend", "duckdb", "table", t.name, "column", c.name,
			"type", c.duck, "existing_rows", dflt)
	}
	return nil
}

// keyedTables returns the tables with a PRIMARY KEY in the file, read from
// DuckDB's catalog the first time or when reload is set.
func (d *DuckDB) keyedTables(ctx context.Context, reload bool) (map[string]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keyed != nil && !reload {
		return d.keyed, nil
	}
	rows, err := d.db.QueryContext(ctx, "SELECT DISTINCT table_name FROM duckdb_constraints() "+
		"WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main'")
	if err != nil {
		return nil, fmt.Errorf("reading duckdb primary keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	keyed := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("reading duckdb primary keys: %w", err)
		}
		keyed[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading duckdb primary keys: %w", err)
	}
	d.keyed = keyed
	return keyed, nil
}

// write upserts n rows of t. The rows go through the Appender (DuckDB's
// bulk path) into a temporary staging table of the connection; then, in
// one transaction, a table with a PRIMARY KEY takes them with INSERT OR
// REPLACE, and a table without one first loses its rows with the batch's
// keys (looked for only among rows whose span column lies in the batch's
// range, which DuckDB's row-group min/max skips to) and then takes them
// with a plain INSERT. The rows must have distinct keys.
func (d *DuckDB) write(ctx context.Context, t table, n int, row func(i int) []any) (err error) {
	if n == 0 {
		return nil
	}
	keyed, err := d.keyedTables(ctx, false)
	if err != nil {
		return fmt.Errorf("writing %d %s to duckdb: %w", n, t.name, err)
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("writing %d %s to duckdb: taking a connection: %w", n, t.name, err)
	}
	defer func() { _ = conn.Close() }()
	stage := "strata_stage_" + t.name
	// Temporary tables belong to the connection. The staging table lives
	// for one write: kept and emptied with DELETE, its space was not given
	// back (a 14-day run had spilled 0.5 GB to FILE.duckdb.tmp/ after 12
	// minutes; with a table dropped after each write nothing spills).
	// The staging table has the described columns in the described order,
	// the Appender's, whatever order a migration left the table's in.
	cols := t.quotedCols()
	if _, err := conn.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE "+stage+" AS SELECT "+cols+" FROM "+t.name+" LIMIT 0"); err != nil {
		return fmt.Errorf("writing %d %s to duckdb: preparing staging table: %w", n, t.name, err)
	}
	defer func() {
		if _, derr := conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stage); derr != nil && err == nil {
			err = fmt.Errorf("writing %d %s to duckdb: dropping staging table: %w", n, t.name, derr)
		}
	}()
	row = t.withWritten(row, d.opt.now())
	span := t.spanIndex()
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	err = conn.Raw(func(dc any) error {
		drv, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected duckdb connection type %T", dc)
		}
		a, err := duckdb.NewAppender(drv, "temp", "main", stage)
		if err != nil {
			return fmt.Errorf("creating appender: %w", err)
		}
		vals := make([]driver.Value, len(t.cols))
		for i := range n {
			for j, v := range row(i) {
				if p, ok := v.(*float64); ok {
					if p == nil {
						v = nil
					} else {
						v = *p
					}
				}
				vals[j] = v
			}
			if span >= 0 {
				v, _ := vals[span].(int64)
				lo, hi = min(lo, v), max(hi, v)
			}
			if err := a.AppendRow(vals...); err != nil {
				_ = a.Close()
				return fmt.Errorf("appending row %d: %w", i, err)
			}
		}
		if err := a.Close(); err != nil {
			return fmt.Errorf("flushing appender: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d %s to duckdb: %w", n, t.name, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writing %d %s to duckdb: beginning transaction: %w", n, t.name, err)
	}
	var qs []string
	if keyed[t.name] || span < 0 {
		qs = []string{"INSERT OR REPLACE INTO " + t.name + " (" + cols + ") SELECT " + cols + " FROM " + stage}
	} else {
		qs = []string{t.deleteKeysIn(stage, lo, hi), "INSERT INTO " + t.name + " (" + cols + ") SELECT " + cols + " FROM " + stage}
	}
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("writing %d %s to duckdb: %w", n, t.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writing %d %s to duckdb: committing: %w", n, t.name, err)
	}
	return nil
}

// spanIndex is the position of t's span column among its columns, or -1.
func (t table) spanIndex() int {
	for i, c := range t.cols {
		if c.name == t.span {
			return i
		}
	}
	return -1
}

// deleteKeysIn is the DELETE that removes from t the rows whose key is in
// the staging table stage, among the rows whose span column lies in
// [lo, hi], the range of the staged rows: a row's key determines its span
// value, so no row with a staged key lies outside. The bounds are
// literals, not parameters, so that DuckDB's planner turns them into a
// table filter that skips row groups by their min/max.
func (t table) deleteKeysIn(stage string, lo, hi int64) string {
	var on []string
	for _, k := range t.key {
		on = append(on, fmt.Sprintf("%s.%s = s.%s", t.name, quoteIdent(k), quoteIdent(k)))
	}
	return fmt.Sprintf("DELETE FROM %s USING %s s WHERE %s.%s BETWEEN %d AND %d AND %s",
		t.name, stage, t.name, quoteIdent(t.span), lo, hi, strings.Join(on, " AND "))
}

// WriteRuns upserts runs rows.
func (d *DuckDB) WriteRuns(ctx context.Context, rows []*stratapb.Run) error {
	rows = lastByKey(rows, RunKey)
	return d.write(ctx, runsTable, len(rows), func(i int) []any { return RunValues(rows[i]) })
}

// WriteDecisions upserts decisions rows.
func (d *DuckDB) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	rows = lastByKey(rows, DecisionKey)
	return d.write(ctx, decisionsTable, len(rows), func(i int) []any { return decisionValues(rows[i]) })
}

// WriteRewards upserts rewards rows.
func (d *DuckDB) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	rows = lastByKey(rows, RewardKey)
	return d.write(ctx, rewardsTable, len(rows), func(i int) []any { return rewardValues(rows[i]) })
}

// WriteOutcomes upserts outcomes rows.
func (d *DuckDB) WriteOutcomes(ctx context.Context, rows []*stratapb.Outcome) error {
	rows = lastByKey(rows, OutcomeKey)
	return d.write(ctx, outcomesTable, len(rows), func(i int) []any { return outcomeValues(rows[i]) })
}

// WriteLatencyBuckets upserts latency_hist rows.
func (d *DuckDB) WriteLatencyBuckets(ctx context.Context, rows []*stratapb.LatencyBucket) error {
	rows = lastByKey(rows, LatencyKey)
	return d.write(ctx, latencyTable, len(rows), func(i int) []any { return latencyValues(rows[i]) })
}

// finalRE matches the ClickHouse FINAL modifier after one of the store's
// tables.
var finalRE = regexp.MustCompile(`(?i)\b(runs|decisions|rewards|outcomes|latency_hist)\s+FINAL\b`)

// StripFinal removes the ClickHouse FINAL modifier after the store's table
// names, so a query written for ClickHouse (SELECT count() FROM decisions
// FINAL) runs on DuckDB, whose tables never hold duplicates.
func StripFinal(query string) string { return finalRE.ReplaceAllString(query, "$1") }

// Query runs query (after StripFinal) and returns its columns and rows.
func (d *DuckDB) Query(ctx context.Context, query string) ([]string, [][]any, error) {
	rows, err := d.db.QueryContext(ctx, StripFinal(query))
	if err != nil {
		return nil, nil, fmt.Errorf("querying duckdb: %w", err)
	}
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, fmt.Errorf("reading duckdb columns: %w", err)
	}
	var out [][]any
	for rows.Next() {
		row := make([]any, len(cols))
		dest := make([]any, len(cols))
		for i := range row {
			dest[i] = &row[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("reading duckdb row %d: %w", len(out), err)
		}
		for i, v := range row {
			if t, ok := v.(time.Time); ok {
				row[i] = t.UTC()
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading duckdb rows: %w", err)
	}
	return cols, out, nil
}

// Close closes the database; its file stays.
func (d *DuckDB) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("closing duckdb %s: %w", d.path, err)
	}
	return nil
}

// ExpireChunk is the most rows one Expire deletes from one table of a
// DuckDB file, so that a sweep holds the sink's writes up briefly: the
// first sweep over a long history takes several calls.
const ExpireChunk = 50000

// Expire deletes from decisions, rewards and outcomes the rows written
// before before, at most ExpireChunk of each table, each table's in its
// own transaction. It returns the rows deleted and whether a table may
// hold more such rows (it deleted a full chunk): then call it again.
func (d *DuckDB) Expire(ctx context.Context, before time.Time) (deleted int64, more bool, err error) {
	// A literal, not a parameter, so that DuckDB skips the row groups whose
	// min/max of written lies after it.
	cutoff := "TIMESTAMP '" + wallTime(before).Format(time.DateTime) + "'"
	for _, t := range tables {
		if !t.retained {
			continue
		}
		res, err := d.db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE %s < %s LIMIT %d)",
			t.name, t.name, quoteIdent(writtenCol), cutoff, d.chunk))
		if err != nil {
			return deleted, more, fmt.Errorf("expiring duckdb %s written before %s: %w", t.name, wallTime(before).Format(time.DateTime), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, more, fmt.Errorf("expiring duckdb %s: %w", t.name, err)
		}
		if n > 0 {
			d.opt.log.Info("store retention: deleted rows", "backend", "duckdb", "table", t.name, "rows", n, "written_before", wallTime(before))
		}
		deleted += n
		more = more || n >= int64(d.chunk)
	}
	return deleted, more, nil
}

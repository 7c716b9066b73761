package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// DuckDB is the Store in a DuckDB file: the embedded tier's database. Every
// table has its natural key as PRIMARY KEY and rows are written with INSERT
// OR REPLACE, so a replayed batch replaces the rows it wrote before. One
// process at a time may open the file for writing.
type DuckDB struct {
	db   *sql.DB
	path string
}

var _ Store = (*DuckDB)(nil)

// OpenDuckDB opens (creating if needed) the DuckDB database in file path;
// ":memory:" or "" opens a private in-memory database.
func OpenDuckDB(ctx context.Context, path string) (*DuckDB, error) {
	dsn := path
	if path == ":memory:" {
		dsn = ""
	}
	// DuckDB's buffer pool defaults to 80 % of the machine's memory, and a
	// 14-day closed loop's 17 M reward rows grew the process to 8.9 GB;
	// past the limit DuckDB spills to disk.
	dsn += "?memory_limit=" + DuckDBMemoryLimit
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening duckdb %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening duckdb %s: %w", path, err)
	}
	return &DuckDB{db: db, path: path}, nil
}

// DuckDBMemoryLimit bounds the memory DuckDB's buffer pool may hold in a
// strata process (a DuckDB size, e.g. "1GB").
const DuckDBMemoryLimit = "1GB"

// DB returns the underlying database handle.
func (d *DuckDB) DB() *sql.DB { return d.db }

// EnsureSchema creates the tables that do not exist yet.
func (d *DuckDB) EnsureSchema(ctx context.Context) error {
	for _, t := range tables {
		if _, err := d.db.ExecContext(ctx, t.duckDBDDL()); err != nil {
			return fmt.Errorf("creating duckdb table %s: %w", t.name, err)
		}
	}
	return nil
}

// write upserts n rows of t. The rows go through the Appender (DuckDB's
// bulk path) into a temporary staging table of the connection, then one
// INSERT OR REPLACE moves them into t in a transaction. The rows must have
// distinct keys: DuckDB refuses to replace a row twice in one statement.
func (d *DuckDB) write(ctx context.Context, t table, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("writing %d %s to duckdb: taking a connection: %w", n, t.name, err)
	}
	defer func() { _ = conn.Close() }()
	stage := "strata_stage_" + t.name
	// Temporary tables belong to the connection; an earlier failed write
	// may have left rows in it.
	for _, q := range []string{
		"CREATE TEMP TABLE IF NOT EXISTS " + stage + " AS SELECT * FROM " + t.name + " LIMIT 0",
		"DELETE FROM " + stage,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("writing %d %s to duckdb: preparing staging table: %w", n, t.name, err)
		}
	}
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
	cols := t.quotedCols()
	for _, q := range []string{
		"INSERT OR REPLACE INTO " + t.name + " (" + cols + ") SELECT " + cols + " FROM " + stage,
		"DELETE FROM " + stage,
	} {
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

// WriteRuns upserts runs rows.
func (d *DuckDB) WriteRuns(ctx context.Context, rows []*stratapb.Run) error {
	rows = lastByKey(rows, RunKey)
	return d.write(ctx, runsTable, len(rows), func(i int) []any { return runValues(rows[i]) })
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

// finalRE matches the ClickHouse FINAL modifier after one of the store's
// tables.
var finalRE = regexp.MustCompile(`(?i)\b(runs|decisions|rewards|outcomes)\s+FINAL\b`)

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

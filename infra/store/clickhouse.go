package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// ClickHouse is the Store on a ClickHouse server over the native protocol.
// Its tables are ReplacingMergeTrees keyed by the natural key: a replayed
// batch adds rows that the next merge folds into the earlier ones, so
// counts are exact with FINAL (SELECT count() FROM decisions FINAL).
type ClickHouse struct {
	conn driver.Conn
	db   string
}

var _ Store = (*ClickHouse)(nil)

// OpenClickHouse connects to the server of dsn
// (clickhouse://user:password@host:9000/database?dial_timeout=5s) and
// creates the database it names if it does not exist.
func OpenClickHouse(ctx context.Context, dsn string) (*ClickHouse, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing clickhouse dsn: %w", err)
	}
	db := opts.Auth.Database
	if db != "" && db != "default" {
		// The handshake fails on a database that does not exist, so create
		// it through the default one first.
		admin := *opts
		admin.Auth.Database = "default"
		if err := createDatabase(ctx, &admin, db); err != nil {
			return nil, err
		}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse %s: %w", strings.Join(opts.Addr, ","), err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connecting to clickhouse %s: %w", strings.Join(opts.Addr, ","), err)
	}
	return &ClickHouse{conn: conn, db: db}, nil
}

func createDatabase(ctx context.Context, opts *clickhouse.Options, db string) error {
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("opening clickhouse %s: %w", strings.Join(opts.Addr, ","), err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
		return fmt.Errorf("creating clickhouse database %s: %w", db, err)
	}
	return nil
}

// Conn returns the underlying connection (benchmarks compare against it).
func (c *ClickHouse) Conn() driver.Conn { return c.conn }

// EnsureSchema creates the tables that do not exist yet.
func (c *ClickHouse) EnsureSchema(ctx context.Context) error {
	for _, t := range tables {
		if err := c.conn.Exec(ctx, t.clickHouseDDL()); err != nil {
			return fmt.Errorf("creating clickhouse table %s: %w", t.name, err)
		}
	}
	return nil
}

// write sends n rows of t as one INSERT with its columns named.
func (c *ClickHouse) write(ctx context.Context, t table, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+t.name+" ("+t.quotedCols()+")")
	if err != nil {
		return fmt.Errorf("preparing insert of %d %s into clickhouse: %w", n, t.name, err)
	}
	defer func() { _ = b.Close() }()
	for i := range n {
		if err := b.Append(row(i)...); err != nil {
			_ = b.Abort()
			return fmt.Errorf("appending row %d of %d %s: %w", i, n, t.name, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("writing %d %s to clickhouse: %w", n, t.name, err)
	}
	return nil
}

// WriteRuns writes runs rows.
func (c *ClickHouse) WriteRuns(ctx context.Context, rows []*stratapb.Run) error {
	return c.write(ctx, runsTable, len(rows), func(i int) []any { return runValues(rows[i]) })
}

// WriteDecisions writes decisions rows.
func (c *ClickHouse) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	return c.write(ctx, decisionsTable, len(rows), func(i int) []any { return decisionValues(rows[i]) })
}

// WriteRewards writes rewards rows.
func (c *ClickHouse) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	return c.write(ctx, rewardsTable, len(rows), func(i int) []any { return rewardValues(rows[i]) })
}

// WriteOutcomes writes outcomes rows.
func (c *ClickHouse) WriteOutcomes(ctx context.Context, rows []*stratapb.Outcome) error {
	return c.write(ctx, outcomesTable, len(rows), func(i int) []any { return outcomeValues(rows[i]) })
}

// Query runs query and returns its columns and rows; each value is the Go
// type the driver scans the column into (nil for NULL).
func (c *ClickHouse) Query(ctx context.Context, query string) ([]string, [][]any, error) {
	rows, err := c.conn.Query(ctx, query)
	if err != nil {
		return nil, nil, fmt.Errorf("querying clickhouse: %w", err)
	}
	defer func() { _ = rows.Close() }()
	types := rows.ColumnTypes()
	cols := rows.Columns()
	var out [][]any
	for rows.Next() {
		dest := make([]any, len(types))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("reading clickhouse row %d: %w", len(out), err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = deref(reflect.ValueOf(d).Elem())
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading clickhouse rows: %w", err)
	}
	return cols, out, nil
}

// deref turns a scanned value into a plain one: nil pointers into nil,
// other pointers into what they point at.
func deref(v reflect.Value) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.UTC()
	}
	return v.Interface()
}

// Close closes the connection pool.
func (c *ClickHouse) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("closing clickhouse: %w", err)
	}
	return nil
}

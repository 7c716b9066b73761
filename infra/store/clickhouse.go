package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ClickHouse is the Store on a ClickHouse server over the native protocol.
// Its tables are ReplacingMergeTrees keyed by the natural key: a replayed
// batch adds rows that the next merge folds into the earlier ones, so
// counts are exact with FINAL (SELECT count() FROM decisions FINAL).
type ClickHouse struct {
	conn driver.Conn
	db   string
	opt  options
}

var _ Store = (*ClickHouse)(nil)

// OpenClickHouse connects to the server of dsn
// (clickhouse://user:password@host:9000/database?dial_timeout=5s) and
// creates the database it names if it does not exist. A DSN without a
// password takes STRATA_CLICKHOUSE_PASSWORD's, so that it stays off
// command lines. STRATA_CLICKHOUSE_CA (a PEM file) connects over TLS
// checked against its authorities (secure=true in the DSN: the system's).
func OpenClickHouse(ctx context.Context, dsn string, sopts ...Option) (*ClickHouse, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		// The parser's error may quote the DSN, password and all.
		return nil, fmt.Errorf("parsing clickhouse dsn %s: %s", secret.Redact(dsn), strings.ReplaceAll(err.Error(), dsn, secret.Redact(dsn)))
	}
	if p := os.Getenv("STRATA_CLICKHOUSE_PASSWORD"); opts.Auth.Password == "" && p != "" {
		opts.Auth.Password = p
	}
	if ca := os.Getenv("STRATA_CLICKHOUSE_CA"); ca != "" {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(ca)
		if err == nil && !pool.AppendCertsFromPEM(b) {
			err = fmt.Errorf("%s holds no PEM certificate", ca)
		}
		if err != nil {
			return nil, fmt.Errorf("reading STRATA_CLICKHOUSE_CA: %w", err)
		}
		if opts.TLS == nil {
			opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts.TLS.RootCAs = pool
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
	return &ClickHouse{conn: conn, db: db, opt: buildOptions(sopts)}, nil
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

// EnsureSchema creates the tables that do not exist yet and adds to the
// existing ones the columns they lack, each after the column that
// precedes it in the description (see clickHouseAddColumn for the value
// the rows already there read). A column with another type than described
// is a *ColumnTypeError, and then nothing changes.
func (c *ClickHouse) EnsureSchema(ctx context.Context) error {
	return ensureSchema(ctx, "clickhouse",
		func(ctx context.Context, t table) error { return c.conn.Exec(ctx, t.clickHouseDDL()) },
		c.columns, func(col column) string { return col.ch }, c.addColumns)
}

// columns reads the columns of table t from system.columns.
func (c *ClickHouse) columns(ctx context.Context, t table) (dbColumns, error) {
	rows, err := c.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '"+t.name+"'")
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	return scanColumns(rows)
}

// addColumns adds the missing columns to t, one ALTER each, in description
// order, so that each one's predecessor exists when it is added.
func (c *ClickHouse) addColumns(ctx context.Context, t table, missing []column, have dbColumns) error {
	now := c.opt.now()
	present := map[string]bool{}
	for name := range have {
		present[name] = true
	}
	isMissing := map[string]bool{}
	for _, col := range missing {
		isMissing[col.name] = true
	}
	after := ""
	for _, col := range t.cols {
		if !isMissing[col.name] {
			if present[col.name] {
				after = col.name
			}
			continue
		}
		stmt, dflt := col.clickHouseAddColumn(t.name, after, now)
		if err := c.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrating clickhouse table %s: adding column %s %s: %w", t.name, col.name, col.ch, err)
		}
		c.opt.log.Info("store migration: added column", "backend", "clickhouse", "table", t.name, "column", col.name,
			"after", after, "existing_rows", dflt)
		present[col.name], after = true, col.name
	}
	return nil
}

// Expire starts, on each of decisions, rewards and outcomes that holds
// rows written before before, the mutation ALTER TABLE … DELETE WHERE
// written < before (ClickHouse 18.16 has no table TTL; a mutation runs in
// the background and rewrites the parts that hold such rows, without
// blocking inserts). A table whose earlier mutation has not finished gets
// none. It returns the rows the mutations will delete (counted before,
// without FINAL) and more = false: one call covers every such row.
func (c *ClickHouse) Expire(ctx context.Context, before time.Time) (deleted int64, more bool, err error) {
	cutoff := fmt.Sprintf("toDateTime(%d)", wallTime(before).Unix())
	for _, t := range tables {
		if !t.retained {
			continue
		}
		var pending uint64
		if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = '"+t.name+"' AND is_done = 0").Scan(&pending); err != nil {
			return deleted, false, fmt.Errorf("expiring clickhouse %s: reading its mutations: %w", t.name, err)
		}
		if pending > 0 {
			c.opt.log.Info("store retention: a deletion still runs, none started", "backend", "clickhouse", "table", t.name)
			continue
		}
		var n uint64
		if err := c.conn.QueryRow(ctx, "SELECT count() FROM "+t.name+" WHERE "+quoteIdent(writtenCol)+" < "+cutoff).Scan(&n); err != nil {
			return deleted, false, fmt.Errorf("expiring clickhouse %s: counting rows: %w", t.name, err)
		}
		if n == 0 {
			continue
		}
		if err := c.conn.Exec(ctx, "ALTER TABLE "+t.name+" DELETE WHERE "+quoteIdent(writtenCol)+" < "+cutoff); err != nil {
			return deleted, false, fmt.Errorf("expiring clickhouse %s written before %s: %w", t.name, wallTime(before).Format(time.DateTime), err)
		}
		c.opt.log.Info("store retention: deleting rows", "backend", "clickhouse", "table", t.name, "rows", n, "written_before", wallTime(before))
		deleted += int64(n)
	}
	return deleted, false, nil
}

// write sends n rows of t as one INSERT with its columns named.
func (c *ClickHouse) write(ctx context.Context, t table, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	row = t.withWritten(row, c.opt.now())
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
	return c.write(ctx, runsTable, len(rows), func(i int) []any { return RunValues(rows[i]) })
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

// WriteLatencyBuckets writes latency_hist rows.
func (c *ClickHouse) WriteLatencyBuckets(ctx context.Context, rows []*stratapb.LatencyBucket) error {
	return c.write(ctx, latencyTable, len(rows), func(i int) []any { return latencyValues(rows[i]) })
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

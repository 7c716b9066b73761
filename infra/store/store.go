// Package store writes the sink's tables (runs, decisions, rewards,
// outcomes) to ClickHouse or to a DuckDB file and runs ad-hoc queries on
// them. Both backends have the same tables and columns; the DDL lives in
// this package (schema.go). Writes are idempotent: every table has a
// natural key, and writing a row again replaces the earlier one (DuckDB at
// once, ClickHouse when parts merge, so ClickHouse reads use FINAL).
package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// DefaultDuckDBFile is the DuckDB file the embedded tier writes to.
const DefaultDuckDBFile = "strata.duckdb"

// Store is what the sink and `strata sql` need from a database. The Write
// methods are durable when they return nil; a batch may repeat keys (the
// last row of a key wins) and may repeat rows written before.
type Store interface {
	// EnsureSchema creates the tables that do not exist yet and adds the
	// columns an existing table lacks; it never drops or retypes a column
	// (a column of another type is a *ColumnTypeError).
	EnsureSchema(ctx context.Context) error
	WriteRuns(ctx context.Context, rows []*stratapb.Run) error
	WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error
	WriteRewards(ctx context.Context, rows []*stratapb.Reward) error
	WriteOutcomes(ctx context.Context, rows []*stratapb.Outcome) error
	// WriteLatencyBuckets writes latency_hist rows: a run's latency
	// histogram per trace day (schemas.LatencyHistogram.Rows).
	WriteLatencyBuckets(ctx context.Context, rows []*stratapb.LatencyBucket) error
	// Expire deletes (DuckDB) or starts deleting (ClickHouse) the rows of
	// decisions, rewards and outcomes written before before; more reports
	// that rows may be left for another call (see docs/tables.md,
	// Retention).
	Expire(ctx context.Context, before time.Time) (deleted int64, more bool, err error)
	// Query runs one statement and returns its column names and rows.
	Query(ctx context.Context, query string) (columns []string, rows [][]any, err error)
	// Close releases the connection.
	Close() error
}

// ErrEmptyTarget is returned by Open when neither a DSN nor a file is given.
var ErrEmptyTarget = errors.New("no store: give a clickhouse:// DSN or a DuckDB file")

// Open opens ClickHouse when target is a clickhouse:// (or tcp://) DSN and
// a DuckDB file otherwise.
func Open(ctx context.Context, target string, opts ...Option) (Store, error) {
	switch {
	case target == "":
		return nil, ErrEmptyTarget
	case IsClickHouseDSN(target):
		return OpenClickHouse(ctx, target, opts...)
	default:
		return OpenDuckDB(ctx, target, opts...)
	}
}

// IsClickHouseDSN reports whether target names a ClickHouse server.
func IsClickHouseDSN(target string) bool {
	return strings.HasPrefix(target, "clickhouse://") || strings.HasPrefix(target, "tcp://")
}

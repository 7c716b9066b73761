package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/strata-rl/strata/schemas"
)

// column is one column of a table with its type in each backend. The two
// types hold the same values: booleans are 0/1 in an unsigned byte in both,
// so sum(carried) and carried = 1 read the same everywhere.
type column struct {
	name, ch, duck string
}

// table describes one table: its columns in INSERT order and its natural
// key, which is the ClickHouse sort key (ReplacingMergeTree keeps one row
// per key). On DuckDB only a table without a span column has the key as
// its PRIMARY KEY (INSERT OR REPLACE); a table with one keeps one row per
// key by deleting, before it inserts a batch, the rows with the batch's
// keys among the rows whose span column lies in the batch's range.
type table struct {
	name string
	cols []column
	key  []string
	// span is a column whose value a row's key determines (within a run:
	// the start of a tick, of an invocation) and that grows as a run's
	// records arrive, so DuckDB's per-row-group min/max of it narrows the
	// rows that may hold a batch's keys to the newest few row groups. Empty
	// for a table with a DuckDB primary key.
	span string
	// retained marks a table whose rows a retention removes once they are
	// older than it by their written column (see Expire): decisions,
	// rewards, outcomes; not runs.
	retained bool
}

// writtenCol is the column of a retained table that holds the wall-clock
// time, to the second (UTC), at which the store wrote the row: the store
// fills it, the record has no such field, and a retention keys on it.
const writtenCol = "written"

var (
	colStr  = func(n string) column { return column{n, "String", "VARCHAR"} }
	colI64  = func(n string) column { return column{n, "Int64", "BIGINT"} }
	colI32  = func(n string) column { return column{n, "Int32", "INTEGER"} }
	colF64  = func(n string) column { return column{n, "Float64", "DOUBLE"} }
	colNF64 = func(n string) column { return column{n, "Nullable(Float64)", "DOUBLE"} }
	colBool = func(n string) column { return column{n, "UInt8", "UTINYINT"} }
	colTime = func(n string) column { return column{n, "DateTime", "TIMESTAMP"} }
)

var tickKey = []string{"run_id", "layer", "tick", "app", "func"}

var (
	runsTable = table{name: schemas.TableRuns, key: []string{"run_id"}, cols: []column{
		colStr("run_id"), colI64("started_ms"), colTime("started"), colStr("source"), colI64("seed"),
		colStr("speed"), colStr("strategic_policy"), colStr("tactical_policy"), colStr("operational_policy"),
		colStr("default_placement"), colStr("trace_epoch"), colStr("config_json"),
		colStr("kind"), colStr("label"), colStr("revision"), colI64("wall_ms"), colI32("first_day"),
		colI32("scored_first_day"), colI32("scored_last_day"), colStr("models"), colI32("episode"),
		colI64("policy_seed"), colStr("models_digest"),
	}}
	decisionsTable = table{name: schemas.TableDecisions, retained: true, key: tickKey, span: "tick_ms", cols: []column{
		colStr("run_id"), colStr("layer"), colI64("tick"), colI64("tick_ms"), colStr("app"), colStr("func"),
		colStr("policy"), colStr("policy_version"), colI32("action"), colStr("provider"), colStr("region"),
		colI32("memory_mb"), colI32("prewarm"), colI64("keep_warm_ms"), colNF64("log_prob"), colNF64("value"),
		colBool("carried"), colTime(writtenCol),
	}}
	rewardsTable = table{name: schemas.TableRewards, retained: true, key: tickKey, span: "tick_ms", cols: []column{
		colStr("run_id"), colStr("layer"), colI64("tick"), colI64("tick_ms"), colStr("app"), colStr("func"),
		colF64("reward"), colF64("r_cost"), colF64("r_perf"), colF64("r_carbon"), colF64("sla_penalty"),
		colI64("invocations"), colI64("cold_starts"), colI64("sla_violations"), colF64("cost_usd"),
		colF64("prewarm_cost_usd"), colF64("carbon_g"), colF64("latency_p50_ms"), colF64("latency_p95_ms"),
		colF64("pred_error"), colI32("underprovisioned"), colF64("oracle_reward"), colF64("regret"),
		colTime(writtenCol),
	}}
	outcomesTable = table{name: schemas.TableOutcomes, retained: true, key: []string{"run_id", "app", "func", "invocation_id"}, span: "start_us", cols: []column{
		colStr("run_id"), colStr("invocation_id"), colStr("app"), colStr("func"), colI64("start_us"),
		colStr("provider"), colStr("region"), colI32("memory_mb"), colF64("latency_ms"), colF64("exec_ms"),
		colF64("queue_wait_ms"), colBool("cold_start"), colBool("failed"), colBool("sla_violation"),
		colF64("cost_usd"), colF64("carbon_g"), colTime(writtenCol),
	}}
	// latencyTable is written by the workflows (strata run, eval, train)
	// at a run's end, not by the sink: a handful of rows a run and day.
	latencyTable = table{name: schemas.TableLatencyHist, key: []string{"run_id", "day", "bucket"}, cols: []column{
		colStr("run_id"), colI32("day"), colI32("bucket"), colF64("upper_ms"), colI64("count"), colI64("count_le"), colI64("total"),
	}}
	tables = []table{runsTable, decisionsTable, rewardsTable, outcomesTable, latencyTable}
)

// Columns returns the column names of a table in the order the stores
// insert them, or nil for an unknown table.
func Columns(tableName string) []string {
	for _, t := range tables {
		if t.name == tableName {
			return t.colNames()
		}
	}
	return nil
}

func (t table) colNames() []string {
	out := make([]string, len(t.cols))
	for i, c := range t.cols {
		out[i] = c.name
	}
	return out
}

// quotedCols is the column list of an INSERT. Every INSERT names its
// columns: ClickHouse 18.16 rejects a batch insert without them.
func (t table) quotedCols() string {
	names := t.colNames()
	for i, n := range names {
		names[i] = quoteIdent(n)
	}
	return strings.Join(names, ", ")
}

// quoteIdent quotes a column name; func and value are keywords in some
// dialects. Double quotes work in ClickHouse and DuckDB.
func quoteIdent(s string) string { return `"` + s + `"` }

// clickHouseDDL is the CREATE TABLE statement of t for ClickHouse. It uses
// only what ClickHouse 18.16 understands: a ReplacingMergeTree with the new
// ORDER BY syntax, no LowCardinality, no DateTime64. Without a version
// column the row inserted last wins when parts merge; reads use FINAL.
func (t table) clickHouseDDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", t.name)
	for i, c := range t.cols {
		sep := ","
		if i == len(t.cols)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s\n", quoteIdent(c.name), c.ch, sep)
	}
	fmt.Fprintf(&b, ") ENGINE = ReplacingMergeTree ORDER BY (%s)", t.quotedKey())
	return b.String()
}

// duckDBDDL is the CREATE TABLE statement of t for DuckDB: with the key as
// PRIMARY KEY for a table without a span column, without one otherwise
// (the index over a 14-day run's 17 M reward rows made every batch slower
// than the one before; see docs/tables.md).
func (t table) duckDBDDL() string { return t.duckDBDDLKeyed(t.span == "") }

// duckDBDDLKeyed is the CREATE TABLE statement of t for DuckDB, with the
// key as PRIMARY KEY when keyed (as every table had before December 2026).
func (t table) duckDBDDLKeyed(keyed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", t.name)
	for i, c := range t.cols {
		null := " NOT NULL"
		if strings.HasPrefix(c.ch, "Nullable(") {
			null = ""
		}
		sep := ","
		if i == len(t.cols)-1 && !keyed {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s%s\n", quoteIdent(c.name), c.duck, null, sep)
	}
	if keyed {
		fmt.Fprintf(&b, "    PRIMARY KEY (%s)\n", t.quotedKey())
	}
	b.WriteString(")")
	return b.String()
}

// quotedKey is the key's column list.
func (t table) quotedKey() string {
	keys := make([]string, len(t.key))
	for i, k := range t.key {
		keys[i] = quoteIdent(k)
	}
	return strings.Join(keys, ", ")
}

// ClickHouseDDL returns the CREATE TABLE statements EnsureSchema runs on
// ClickHouse.
func ClickHouseDDL() []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = t.clickHouseDDL()
	}
	return out
}

// DuckDBDDL returns the CREATE TABLE statements EnsureSchema runs on
// DuckDB.
func DuckDBDDL() []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = t.duckDBDDL()
	}
	return out
}

// withWritten returns row for a table without a written column, and for a
// retained one row's values followed by at, the written column's value
// (the last column; the record converters of rows.go leave it out).
func (t table) withWritten(row func(i int) []any, at time.Time) func(i int) []any {
	if !t.retained {
		return row
	}
	at = wallTime(at)
	return func(i int) []any { return append(row(i), at) }
}

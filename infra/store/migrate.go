package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Option configures a store opened by Open, OpenDuckDB or OpenClickHouse.
type Option func(*options)

type options struct {
	log *slog.Logger
	now func() time.Time
}

// WithLogger makes the store log its schema migrations and retention
// sweeps to l (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithClock makes the store read the wall clock from now (default
// time.Now): the written column of the rows it writes, and the value a
// migration gives that column in the rows written before it existed.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// wallTime is the value of a written column for a row written at now: UTC,
// to the second, as a ClickHouse DateTime holds it.
func wallTime(now time.Time) time.Time { return now.UTC().Truncate(time.Second) }

// ColumnTypeError is EnsureSchema's error for a column that exists with
// another type than the schema describes. A migration only adds columns:
// it never drops or retypes one, so such a table needs a person's
// decision (convert the column by hand, or write to another database).
type ColumnTypeError struct {
	// Backend is "clickhouse" or "duckdb".
	Backend string
	Table   string
	Column  string
	// Have is the column's type in the database, Want the described one.
	Have, Want string
}

func (e *ColumnTypeError) Error() string {
	return fmt.Sprintf("%s table %s: column %s has type %s, the schema describes %s "+
		"(a migration only adds missing columns, it never retypes one: convert the column by hand or use another database; docs/tables.md, Migrations)",
		e.Backend, e.Table, e.Column, e.Have, e.Want)
}

// dbColumns is a table's columns as the database's catalog lists them:
// type by name.
type dbColumns map[string]string

// missingColumns compares the table's columns in the database with t's
// description: it returns the described columns the database lacks, in
// description order, or the ColumnTypeErrors (joined) of the columns
// whose type differs. typeOf gives a described column's type in the
// backend; types compare without regard to case. Columns the database has
// beyond the description are left alone.
func (t table) missingColumns(backend string, have dbColumns, typeOf func(column) string) ([]column, error) {
	var missing []column
	var errs []error
	for _, c := range t.cols {
		typ, ok := have[c.name]
		switch {
		case !ok:
			missing = append(missing, c)
		case !strings.EqualFold(typ, typeOf(c)):
			errs = append(errs, &ColumnTypeError{Backend: backend, Table: t.name, Column: c.name, Have: typ, Want: typeOf(c)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return missing, nil
}

// nullable reports whether c holds NULL (Nullable in ClickHouse).
func (c column) nullable() bool { return strings.HasPrefix(c.ch, "Nullable(") }

// isTime reports whether c is a time column (DateTime, TIMESTAMP).
func (c column) isTime() bool { return c.ch == "DateTime" }

// duckDBAddColumn returns the statements that add c to table on DuckDB, at
// the end of its columns (DuckDB cannot place one elsewhere), and the
// default the rows already in the table get: NULL for a nullable column,
// the migration time for a time column, the empty string for a string and 0 for a
// number. DuckDB adds no column with a constraint, so a NOT NULL column
// gets it in a second statement.
func (c column) duckDBAddColumn(table string, now time.Time) (stmts []string, dflt string) {
	switch {
	case c.nullable():
		dflt = "NULL"
	case c.isTime():
		dflt = "TIMESTAMP '" + wallTime(now).Format(time.DateTime) + "'"
	case c.duck == "VARCHAR":
		dflt = "''"
	default:
		dflt = "0"
	}
	add := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, quoteIdent(c.name), c.duck)
	if c.nullable() {
		return []string{add}, dflt
	}
	return []string{add + " DEFAULT " + dflt,
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", table, quoteIdent(c.name))}, dflt
}

// clickHouseAddColumn returns the ALTER that adds c to table on ClickHouse
// after the column after ("" puts it last) and the default the rows
// already in the table read: the type's own default (NULL, the empty string or 0) for
// every column but a time column, which gets the migration time as a
// DEFAULT expression (the type's default would be 1970, which a retention
// removes at once).
func (c column) clickHouseAddColumn(table, after string, now time.Time) (stmt, dflt string) {
	stmt = fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, quoteIdent(c.name), c.ch)
	switch {
	case c.nullable():
		dflt = "NULL"
	case c.isTime():
		dflt = fmt.Sprintf("toDateTime(%d)", wallTime(now).Unix())
		stmt += " DEFAULT " + dflt
	case c.ch == "String":
		dflt = "''"
	default:
		dflt = "0"
	}
	if after != "" {
		stmt += " AFTER " + quoteIdent(after)
	}
	return stmt, dflt
}

// ensureSchema is EnsureSchema on either backend: it creates the missing
// tables, reads every table's columns, refuses (with ColumnTypeErrors,
// before any change) a column whose type differs from the description,
// and then adds the missing columns.
func ensureSchema(ctx context.Context, backend string,
	create func(ctx context.Context, t table) error,
	columns func(ctx context.Context, t table) (dbColumns, error),
	typeOf func(column) string,
	add func(ctx context.Context, t table, missing []column, have dbColumns) error,
) error {
	missing := make([][]column, len(tables))
	have := make([]dbColumns, len(tables))
	var errs []error
	for i, t := range tables {
		if err := create(ctx, t); err != nil {
			return fmt.Errorf("creating %s table %s: %w", backend, t.name, err)
		}
		cols, err := columns(ctx, t)
		if err != nil {
			return fmt.Errorf("reading the columns of %s table %s: %w", backend, t.name, err)
		}
		have[i] = cols
		if missing[i], err = t.missingColumns(backend, cols, typeOf); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i, t := range tables {
		if len(missing[i]) == 0 {
			continue
		}
		if err := add(ctx, t, missing[i], have[i]); err != nil {
			return err
		}
	}
	return nil
}

// columnRows is what both backends' query results offer: rows of (name,
// type) from their catalogs.
type columnRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanColumns reads (name, type) rows into a dbColumns.
func scanColumns(rows columnRows) (dbColumns, error) {
	cols := dbColumns{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		cols[name] = typ
	}
	return cols, rows.Err()
}

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/roleconf"
)

// sqlMain runs one query on the tables and prints its result.
func sqlMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("strata sql", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata sql [--store FILE | --clickhouse DSN] [--format table|csv|json] "QUERY"

Runs QUERY on the sink's tables (runs, decisions, rewards, outcomes; see
docs/tables.md). On DuckDB, FINAL after a table name is dropped, so the
ClickHouse form of a query (SELECT count() FROM decisions FINAL) runs on both.

`)
		fs.PrintDefaults()
	}
	var sf pipeline.StoreFlags
	sf.RegisterFlags(fs, "")
	format := fs.String("format", "table", "output format: table, csv or json")
	if _, err := roleconf.Parse(fs, args); err != nil {
		return err
	}
	query := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if query == "" {
		fs.Usage()
		return errors.New("strata sql needs a query")
	}
	var write func(io.Writer, []string, [][]any) error
	switch *format {
	case "table":
		write = writeTable
	case "csv":
		write = writeCSV
	case "json":
		write = writeJSONRows
	default:
		return fmt.Errorf("unknown --format %q: want table, csv or json", *format)
	}
	st, err := store.Open(ctx, sf.Target())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	cols, rows, err := st.Query(ctx, query)
	if err != nil {
		return err
	}
	return write(stdout, cols, rows)
}

// formatValue renders one value for the table and csv formats.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		if x.Nanosecond() == 0 {
			return x.Format(time.DateTime)
		}
		return x.Format("2006-01-02 15:04:05.000")
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func writeTable(w io.Writer, cols []string, rows [][]any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			// Tabs and newlines inside a value would break the columns.
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	line(append([]string(nil), cols...))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, v := range r {
			cells[i] = formatValue(v)
		}
		line(cells)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing result: %w", err)
	}
	fmt.Fprintf(w, "(%d rows)\n", len(rows))
	return nil
}

func writeCSV(w io.Writer, cols []string, rows [][]any) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(cols)
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, v := range r {
			if v != nil {
				cells[i] = formatValue(v)
			}
		}
		_ = cw.Write(cells)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}

// writeJSONRows writes an array of objects whose keys keep the column order.
func writeJSONRows(w io.Writer, cols []string, rows [][]any) error {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(cols[j])
			b.Write(k)
			b.WriteString(": ")
			val, err := json.Marshal(jsonValue(v))
			if err != nil {
				return fmt.Errorf("encoding column %s of row %d: %w", cols[j], i, err)
			}
			b.Write(val)
		}
		b.WriteString("}")
	}
	if len(rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing json: %w", err)
	}
	return nil
}

// jsonValue maps values JSON cannot hold: non-finite floats become null,
// times their table form, bytes a string.
func jsonValue(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case time.Time:
		return formatValue(x)
	case []byte:
		return string(x)
	}
	return v
}

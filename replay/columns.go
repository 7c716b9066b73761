package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// TimeUnit is the unit of a trace's time column, as the number of
// microseconds in one unit.
type TimeUnit int64

// The time units a column mapping accepts.
const (
	// Microseconds is the unit "us".
	Microseconds TimeUnit = 1
	// Milliseconds is the unit "ms".
	Milliseconds TimeUnit = 1_000
	// Seconds is the unit "s", the Azure 2021 trace's.
	Seconds TimeUnit = 1_000_000
)

// String returns the unit's name: s, ms or us.
func (u TimeUnit) String() string {
	switch u {
	case Seconds:
		return "s"
	case Milliseconds:
		return "ms"
	case Microseconds:
		return "us"
	}
	return fmt.Sprintf("TimeUnit(%d)", int64(u))
}

// ParseTimeUnit parses s, ms or us.
func ParseTimeUnit(s string) (TimeUnit, error) {
	switch s {
	case "s":
		return Seconds, nil
	case "ms":
		return Milliseconds, nil
	case "us":
		return Microseconds, nil
	}
	return 0, fmt.Errorf("time unit %q: want s, ms or us: %w", s, ErrColumns)
}

// ErrColumns is wrapped by the errors of a column mapping that does not
// parse, and of a trace that lacks a mapped column.
var ErrColumns = errors.New("invalid trace column mapping")

// ColumnMap says which columns of a CSV or Parquet trace hold an
// invocation's fields, and in which unit its time columns are. Exactly one
// of End and Start is set; an invocation ends at End, or at Start plus
// Duration.
type ColumnMap struct {
	// App and Func name the application and function id columns.
	App, Func string
	// End names the end timestamp column, or Start the start timestamp
	// column; the other is "".
	End, Start string
	// Duration names the duration column.
	Duration string
	// TimeUnit is the unit of End or Start; DurationUnit that of Duration.
	TimeUnit, DurationUnit TimeUnit
}

// DefaultColumns is the Azure 2021 trace's mapping: app, func,
// end_timestamp and duration, in seconds.
var DefaultColumns = ColumnMap{App: "app", Func: "func", End: "end_timestamp", Duration: "duration",
	TimeUnit: Seconds, DurationUnit: Seconds}

// ParseColumns parses a column mapping: comma-separated key=value pairs
// with the keys app, func, end or start, duration and unit. The value of
// app, func, end, start and duration is a column name; that of end, start
// and duration may end in :s, :ms or :us, that column's unit. unit=U sets
// the unit of the time columns that give none (default s). A key left out
// keeps DefaultColumns' column, except that start replaces end. "" is
// DefaultColumns. Column names cannot hold ',', '=' or ':'.
//
// For example "app=owner_app,func=fn,start=ts,duration=dur_ms:ms" reads
// start timestamps in seconds and durations in milliseconds.
func ParseColumns(spec string) (ColumnMap, error) {
	m := DefaultColumns
	if strings.TrimSpace(spec) == "" {
		return m, nil
	}
	var unit, endUnit, durUnit TimeUnit
	seen := map[string]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return ColumnMap{}, fmt.Errorf("parsing %q: %q is not key=value: %w", spec, part, ErrColumns)
		}
		if seen[key] {
			return ColumnMap{}, fmt.Errorf("parsing %q: %s given twice: %w", spec, key, ErrColumns)
		}
		seen[key] = true
		if key == "unit" {
			u, err := ParseTimeUnit(val)
			if err != nil {
				return ColumnMap{}, fmt.Errorf("parsing %q: %w", spec, err)
			}
			unit = u
			continue
		}
		name, us, hasUnit := strings.Cut(val, ":")
		if name == "" {
			return ColumnMap{}, fmt.Errorf("parsing %q: %s names no column: %w", spec, key, ErrColumns)
		}
		var u TimeUnit
		if hasUnit {
			if key == "app" || key == "func" {
				return ColumnMap{}, fmt.Errorf("parsing %q: %s is not a time column and takes no unit: %w", spec, key, ErrColumns)
			}
			var err error
			if u, err = ParseTimeUnit(us); err != nil {
				return ColumnMap{}, fmt.Errorf("parsing %q: %s: %w", spec, key, err)
			}
		}
		switch key {
		case "app":
			m.App = name
		case "func":
			m.Func = name
		case "end":
			m.End, endUnit = name, u
		case "start":
			m.Start, endUnit = name, u
		case "duration":
			m.Duration, durUnit = name, u
		default:
			return ColumnMap{}, fmt.Errorf("parsing %q: unknown key %q (want app, func, end, start, duration, unit): %w", spec, key, ErrColumns)
		}
	}
	if seen["start"] && seen["end"] {
		return ColumnMap{}, fmt.Errorf("parsing %q: give end or start, not both: %w", spec, ErrColumns)
	}
	if seen["start"] {
		m.End = ""
	}
	m.TimeUnit, m.DurationUnit = cmp.Or(endUnit, unit, Seconds), cmp.Or(durUnit, unit, Seconds)
	return m, nil
}

// String renders m in the syntax ParseColumns reads, every unit spelled
// out.
func (m ColumnMap) String() string {
	t := "end=" + m.End
	if m.Start != "" {
		t = "start=" + m.Start
	}
	return fmt.Sprintf("app=%s,func=%s,%s:%s,duration=%s:%s", m.App, m.Func, t, m.TimeUnit, m.Duration, m.DurationUnit)
}

// timeColumn returns the name and role of m's timestamp column.
func (m ColumnMap) timeColumn() (name, role string) {
	if m.Start != "" {
		return m.Start, "start"
	}
	return m.End, "end"
}

// resolve returns the index of each of m's columns (app, func, the
// timestamp, duration) in header, or an error naming the one missing.
func (m ColumnMap) resolve(header []string, file string) ([4]int, error) {
	tname, trole := m.timeColumn()
	want := [4][2]string{{"app", m.App}, {"func", m.Func}, {trole, tname}, {"duration", m.Duration}}
	var idx [4]int
	for i, w := range want {
		idx[i] = -1
		for j, h := range header {
			if h == w[1] {
				if idx[i] >= 0 {
					return idx, fmt.Errorf("%s: column %q appears twice in the header: %w", file, w[1], ErrColumns)
				}
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return idx, fmt.Errorf("%s: no column %q for %s (map it with --trace-columns %s=NAME); the columns are %s: %w",
				file, w[1], w[0], w[0], strings.Join(header, ","), ErrColumns)
		}
	}
	return idx, nil
}

// invocation builds an invocation from its four fields, in m's units; a
// non-empty reason says what is wrong.
func (m ColumnMap) invocation(app, fn, ts, dur []byte) (Invocation, string) {
	if len(app) == 0 {
		return Invocation{}, "empty " + m.App
	}
	if len(fn) == 0 {
		return Invocation{}, "empty " + m.Func
	}
	tname, _ := m.timeColumn()
	t, reason := parseTime(ts, m.TimeUnit)
	if reason != "" {
		return Invocation{}, tname + " " + reason
	}
	d, reason := parseTime(dur, m.DurationUnit)
	if reason != "" {
		return Invocation{}, m.Duration + " " + reason
	}
	in := Invocation{App: string(app), Func: string(fn), EndUS: t, DurationUS: d}
	if m.Start != "" {
		in.EndUS = t + d
	} else if d > t {
		return Invocation{}, fmt.Sprintf("%s %q exceeds %s %q: start would be before the trace start", m.Duration, dur, m.End, ts)
	}
	return in, ""
}

// ColumnReader streams invocations from a CSV trace whose columns a
// ColumnMap names: a header line first, then one invocation a line; the
// columns the mapping does not name are ignored, and fields may be quoted
// ("a ""b""" is a "b") but may not span lines. Like CSVReader it holds one
// line in memory, numbers every data row (malformed ones included) and
// reports a malformed line as a *LineError from Next, then goes on with the
// next line.
type ColumnReader struct {
	name    string
	br      *bufio.Reader
	cols    ColumnMap
	idx     [4]int
	ncol    int
	line    int64
	row     int64
	fields  [][]byte
	closer  io.Closer
	scratch []byte
}

// NewColumnReader reads the header of r (plain or gzip) and returns a
// reader over the rest; name is used in error messages. It fails, wrapping
// ErrColumns, when the header lacks a column that cols names.
func NewColumnReader(r io.Reader, name string, cols ColumnMap) (*ColumnReader, error) {
	br, err := newTextReader(r, name)
	if err != nil {
		return nil, err
	}
	cr := &ColumnReader{name: name, br: br, cols: cols}
	raw, tooLong, err := readLine(br, &cr.scratch)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty trace, want a header line: %w", name, ErrColumns)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the header of %s: %w", name, err)
	}
	cr.line = 1
	if tooLong {
		return nil, fmt.Errorf("%s:1: header longer than %d bytes: %w", name, maxLineBytes, ErrColumns)
	}
	fields, reason := splitCSV(bytes.TrimPrefix(bytes.TrimRight(raw, "\r\n"), []byte("\ufeff")), nil)
	if reason != "" {
		return nil, fmt.Errorf("%s:1: header: %s: %w", name, reason, ErrColumns)
	}
	header := make([]string, len(fields))
	for i, f := range fields {
		header[i] = string(f)
	}
	if cr.idx, err = cols.resolve(header, name); err != nil {
		return nil, err
	}
	cr.ncol = len(header)
	return cr, nil
}

// OpenColumnTrace opens a CSV trace file (plain or gzip) read through
// cols. Close the returned reader when done.
func OpenColumnTrace(path string, cols ColumnMap) (*ColumnReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening trace: %w", err)
	}
	r, err := NewColumnReader(f, path, cols)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// Close closes the underlying file when the reader was made by
// OpenColumnTrace.
func (r *ColumnReader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Next returns the next invocation, io.EOF at the end of the trace, a
// *LineError for a malformed line (reading may continue), or another error
// if the underlying stream failed.
func (r *ColumnReader) Next() (Invocation, error) {
	for {
		raw, tooLong, err := readLine(r.br, &r.scratch)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Invocation{}, io.EOF
			}
			return Invocation{}, fmt.Errorf("reading %s line %d: %w", r.name, r.line+1, err)
		}
		r.line++
		line := bytes.TrimRight(raw, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.row++
		if tooLong {
			return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line),
				Reason: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
		}
		var reason string
		r.fields, reason = splitCSV(line, r.fields[:0])
		if reason == "" && len(r.fields) != r.ncol {
			reason = fmt.Sprintf("got %d fields, the header has %d", len(r.fields), r.ncol)
		}
		if reason != "" {
			return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line), Reason: reason}
		}
		f := r.fields
		inv, reason := r.cols.invocation(f[r.idx[0]], f[r.idx[1]], f[r.idx[2]], f[r.idx[3]])
		if reason != "" {
			return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line), Reason: reason}
		}
		inv.Row = r.row
		return inv, nil
	}
}

// splitCSV appends the comma-separated fields of line to dst and returns
// them. An unquoted field is trimmed of spaces; a field that starts with
// a double quote runs to the matching quote, "" standing for one quote. A
// non-empty reason says what is wrong with the line. The fields alias line
// unless they held "".
func splitCSV(line []byte, dst [][]byte) ([][]byte, string) {
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i < len(line) && line[i] == '"' {
			var field []byte
			j := i + 1
			esc := false
			for {
				k := bytes.IndexByte(line[j:], '"')
				if k < 0 {
					return dst, fmt.Sprintf("field %d: unterminated quote", len(dst)+1)
				}
				if j+k+1 < len(line) && line[j+k+1] == '"' {
					if !esc {
						field = append([]byte(nil), line[i+1:j+k+1]...)
						esc = true
					} else {
						field = append(field, line[j:j+k+1]...)
					}
					j += k + 2
					continue
				}
				if esc {
					field = append(field, line[j:j+k]...)
				} else {
					field = line[i+1 : j+k]
				}
				i = j + k + 1
				break
			}
			for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
				i++
			}
			dst = append(dst, field)
			if i == len(line) {
				return dst, ""
			}
			if line[i] != ',' {
				return dst, fmt.Sprintf("field %d: text after the closing quote", len(dst))
			}
			i++
			continue
		}
		k := bytes.IndexByte(line[i:], ',')
		if k < 0 {
			dst = append(dst, trimSpace(line[i:]))
			return dst, ""
		}
		dst = append(dst, trimSpace(line[i:i+k]))
		i += k + 1
	}
}

// trimSpace is bytes.TrimSpace with a fast path for a field that starts
// and ends with printable ASCII, the common case.
func trimSpace(b []byte) []byte {
	if len(b) == 0 || (b[0] > ' ' && b[0] < 0x7f && b[len(b)-1] > ' ' && b[len(b)-1] < 0x7f) {
		return b
	}
	return bytes.TrimSpace(b)
}

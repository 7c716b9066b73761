package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// DefaultParquetRowGroup is the number of rows in a row group that
// WriteParquet writes when told 0.
const DefaultParquetRowGroup = 1 << 17

// parquetBatch is the number of rows a ParquetReader decodes at a time.
const parquetBatch = 1 << 14

// parquetSchema is the schema WriteParquet writes: the Azure 2021 CSV's
// columns, times in float64 seconds.
var parquetSchema = arrow.NewSchema([]arrow.Field{
	{Name: "app", Type: arrow.BinaryTypes.String},
	{Name: "func", Type: arrow.BinaryTypes.String},
	{Name: "end_timestamp", Type: arrow.PrimitiveTypes.Float64},
	{Name: "duration", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// WriteParquet writes invocations from src to w as Parquet with the Azure
// 2021 trace's columns, app and func (strings), end_timestamp and duration
// (float64 seconds), zstd-compressed in row groups of rowGroup rows
// (0: DefaultParquetRowGroup), and returns the number of rows written. Rows
// are written in the order src yields them, so a reader numbers them as
// src did when src numbers from 1 without gaps. It holds one row group in
// memory and leaves w open.
func WriteParquet(w io.Writer, src Source, rowGroup int) (int64, error) {
	if rowGroup <= 0 {
		rowGroup = DefaultParquetRowGroup
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCreatedBy("strata"),
		parquet.WithMaxRowGroupLength(int64(rowGroup)))
	// The writer closes a sink that is an io.Closer; w is the caller's.
	fw, err := pqarrow.NewFileWriter(parquetSchema, struct{ io.Writer }{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return 0, fmt.Errorf("creating parquet writer: %w", err)
	}
	mem := memory.NewGoAllocator()
	rb := array.NewRecordBuilder(mem, parquetSchema)
	defer rb.Release()
	apps := rb.Field(0).(*array.StringBuilder)
	fns := rb.Field(1).(*array.StringBuilder)
	ends := rb.Field(2).(*array.Float64Builder)
	durs := rb.Field(3).(*array.Float64Builder)
	var n int64
	pending := 0
	flush := func() error {
		rec := rb.NewRecordBatch()
		defer rec.Release()
		if err := fw.Write(rec); err != nil {
			return fmt.Errorf("writing parquet row group ending at row %d: %w", n, err)
		}
		pending = 0
		return nil
	}
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = fw.Close()
			return n, fmt.Errorf("reading invocation %d: %w", n+1, err)
		}
		apps.Append(in.App)
		fns.Append(in.Func)
		ends.Append(float64(in.EndUS) / 1e6)
		durs.Append(float64(in.DurationUS) / 1e6)
		n++
		if pending++; pending == rowGroup {
			if err := flush(); err != nil {
				_ = fw.Close()
				return n, err
			}
		}
	}
	if pending > 0 || n == 0 {
		if err := flush(); err != nil {
			_ = fw.Close()
			return n, err
		}
	}
	if err := fw.Close(); err != nil {
		return n, fmt.Errorf("closing parquet writer: %w", err)
	}
	return n, nil
}

// ParquetReader streams invocations from a Parquet trace: by default the
// columns WriteParquet writes, or those a ColumnMap names. It decodes a
// batch of rows at a time and reads the file's column chunks page by page,
// so memory does not grow with the file. Id columns may be strings or
// integers; time columns floats or integers, in the mapping's units. Row
// numbers count every row of the file from 1, and a row that cannot be an
// invocation (a null, a negative or non-finite time) is reported as a
// *LineError whose Line is that row number; reading continues after it.
type ParquetReader struct {
	name string
	cols ColumnMap
	pf   *file.Reader
	rr   pqarrow.RecordReader
	cur  [4]arrow.Array // app, func, time, duration of the current batch
	i, n int
	row  int64
	err  error
}

// OpenParquet opens a Parquet trace read through cols (DefaultColumns for
// the files WriteParquet writes). It fails, wrapping ErrColumns, when a
// mapped column is missing or of a type it cannot read. Close it when done.
func OpenParquet(path string, cols ColumnMap) (*ParquetReader, error) {
	rprops := parquet.NewReaderProperties(memory.DefaultAllocator)
	rprops.BufferedStreamEnabled = true // page by page, not whole column chunks
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(rprops))
	if err != nil {
		return nil, fmt.Errorf("opening parquet trace %s: %w", path, err)
	}
	r := &ParquetReader{name: path, cols: cols, pf: pf}
	if err := r.open(); err != nil {
		_ = pf.Close()
		return nil, err
	}
	return r, nil
}

// mapped returns the role and column name of each field r reads.
func (r *ParquetReader) mapped() [4][2]string {
	tname, trole := r.cols.timeColumn()
	return [4][2]string{{"app", r.cols.App}, {"func", r.cols.Func}, {trole, tname}, {"duration", r.cols.Duration}}
}

// open checks the mapped columns and starts the record reader.
func (r *ParquetReader) open() error {
	fr, err := pqarrow.NewFileReader(r.pf, pqarrow.ArrowReadProperties{BatchSize: parquetBatch}, memory.NewGoAllocator())
	if err != nil {
		return fmt.Errorf("reading parquet trace %s: %w", r.name, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("reading the schema of %s: %w", r.name, err)
	}
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	var leaves []int
	for i, w := range r.mapped() {
		idx := sc.FieldIndices(w[1])
		if len(idx) != 1 {
			return fmt.Errorf("%s: no column %q for %s (map it with --trace-columns %s=NAME); the columns are %s: %w",
				r.name, w[1], w[0], w[0], strings.Join(names, ","), ErrColumns)
		}
		t := sc.Field(idx[0]).Type
		if ok := (i < 2 && idType(t)) || (i >= 2 && timeType(t)); !ok {
			kind := "a string or integer"
			if i >= 2 {
				kind = "a float or integer"
			}
			return fmt.Errorf("%s: column %q (%s) is of type %s, want %s: %w", r.name, w[1], w[0], t, kind, ErrColumns)
		}
		leaf := r.pf.MetaData().Schema.ColumnIndexByName(w[1])
		if leaf < 0 {
			return fmt.Errorf("%s: column %q is not a top-level column: %w", r.name, w[1], ErrColumns)
		}
		leaves = append(leaves, leaf)
	}
	slices.Sort(leaves)
	rr, err := fr.GetRecordReader(context.Background(), slices.Compact(leaves), nil)
	if err != nil {
		return fmt.Errorf("reading parquet trace %s: %w", r.name, err)
	}
	r.rr = rr
	return nil
}

// idType reports whether an id column of type t can be read.
func idType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY,
		arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

// timeType reports whether a time column of type t can be read.
func timeType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT32, arrow.FLOAT64,
		arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

// Close releases the reader and closes the file.
func (r *ParquetReader) Close() error {
	if r.rr != nil {
		r.rr.Release()
		r.rr = nil
	}
	if err := r.pf.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", r.name, err)
	}
	return nil
}

// Next returns the next invocation, io.EOF at the end of the trace, a
// *LineError for a row that is not an invocation (reading may continue),
// or another error if the file cannot be read, after which Next returns it
// again.
func (r *ParquetReader) Next() (Invocation, error) {
	for r.i >= r.n {
		if r.err != nil {
			return Invocation{}, r.err
		}
		if !r.rr.Next() {
			if err := r.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				r.err = fmt.Errorf("reading %s after row %d: %w", r.name, r.row, err)
				return Invocation{}, r.err
			}
			r.err = io.EOF
			return Invocation{}, io.EOF
		}
		rec := r.rr.RecordBatch()
		for k, w := range r.mapped() {
			idx := rec.Schema().FieldIndices(w[1])
			if len(idx) != 1 {
				r.err = fmt.Errorf("reading %s after row %d: batch without column %q", r.name, r.row, w[1])
				return Invocation{}, r.err
			}
			r.cur[k] = rec.Column(idx[0])
		}
		r.i, r.n = 0, int(rec.NumRows())
	}
	i := r.i
	r.i++
	r.row++
	app, ok1 := idAt(r.cur[0], i)
	fn, ok2 := idAt(r.cur[1], i)
	ts, reason := timeAt(r.cur[2], i, r.cols.TimeUnit)
	var dur int64
	var reason2 string
	if reason == "" {
		dur, reason2 = timeAt(r.cur[3], i, r.cols.DurationUnit)
	}
	m := r.mapped()
	switch {
	case !ok1 || app == "":
		reason = "app column " + m[0][1] + " is null or empty"
	case !ok2 || fn == "":
		reason = "func column " + m[1][1] + " is null or empty"
	case reason != "":
		reason = m[2][1] + " " + reason
	case reason2 != "":
		reason = m[3][1] + " " + reason2
	}
	if reason == "" {
		in := Invocation{App: app, Func: fn, EndUS: ts, DurationUS: dur, Row: r.row}
		if r.cols.Start != "" {
			in.EndUS = ts + dur
			return in, nil
		}
		if dur <= ts {
			return in, nil
		}
		reason = fmt.Sprintf("%s exceeds %s: start would be before the trace start", m[3][1], m[2][1])
	}
	return Invocation{}, &LineError{File: r.name, Line: r.row, Text: r.rowText(i), Reason: reason}
}

// rowText renders row i of the current batch for a LineError.
func (r *ParquetReader) rowText(i int) string {
	parts := make([]string, 4)
	for k, a := range r.cur {
		if a.IsNull(i) {
			parts[k] = "null"
		} else {
			parts[k] = a.ValueStr(i)
		}
	}
	return clip([]byte(strings.Join(parts, ",")))
}

// idAt returns row i of an id column as a string; ok is false for a null.
func idAt(a arrow.Array, i int) (string, bool) {
	if a.IsNull(i) {
		return "", false
	}
	switch c := a.(type) {
	case *array.String:
		return strings.Clone(c.Value(i)), true
	case *array.LargeString:
		return strings.Clone(c.Value(i)), true
	case *array.Binary:
		return string(c.Value(i)), true
	case *array.LargeBinary:
		return string(c.Value(i)), true
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10), true
	case *array.Int32:
		return strconv.FormatInt(int64(c.Value(i)), 10), true
	case *array.Int16:
		return strconv.FormatInt(int64(c.Value(i)), 10), true
	case *array.Int8:
		return strconv.FormatInt(int64(c.Value(i)), 10), true
	case *array.Uint64:
		return strconv.FormatUint(c.Value(i), 10), true
	case *array.Uint32:
		return strconv.FormatUint(uint64(c.Value(i)), 10), true
	case *array.Uint16:
		return strconv.FormatUint(uint64(c.Value(i)), 10), true
	case *array.Uint8:
		return strconv.FormatUint(uint64(c.Value(i)), 10), true
	}
	return "", false
}

// timeAt returns row i of a time column in microseconds; a non-empty
// reason says what is wrong with it.
func timeAt(a arrow.Array, i int, unit TimeUnit) (int64, string) {
	if a.IsNull(i) {
		return 0, "is null"
	}
	var v float64
	switch c := a.(type) {
	case *array.Float64:
		v = c.Value(i)
	case *array.Float32:
		v = float64(c.Value(i))
	case *array.Int64:
		return intTime(c.Value(i), unit)
	case *array.Int32:
		return intTime(int64(c.Value(i)), unit)
	case *array.Int16:
		return intTime(int64(c.Value(i)), unit)
	case *array.Int8:
		return intTime(int64(c.Value(i)), unit)
	case *array.Uint64:
		if c.Value(i) > math.MaxInt64 {
			return 0, "is out of range"
		}
		return intTime(int64(c.Value(i)), unit)
	case *array.Uint32:
		return intTime(int64(c.Value(i)), unit)
	case *array.Uint16:
		return intTime(int64(c.Value(i)), unit)
	case *array.Uint8:
		return intTime(int64(c.Value(i)), unit)
	default:
		return 0, "is of type " + a.DataType().String()
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Sprintf("%v is not finite", v)
	case v < 0:
		return 0, fmt.Sprintf("%v is negative", v)
	case v*float64(unit) > maxSeconds*1e6:
		return 0, fmt.Sprintf("%v is out of range", v)
	}
	return int64(math.Round(v * float64(unit))), ""
}

// intTime converts a whole number of units to microseconds.
func intTime(v int64, unit TimeUnit) (int64, string) {
	switch {
	case v < 0:
		return 0, fmt.Sprintf("%d is negative", v)
	case v > int64(maxSeconds*1e6)/int64(unit):
		return 0, fmt.Sprintf("%d is out of range", v)
	}
	return v * int64(unit), ""
}

package dataset

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/strata-rl/strata/replay"
)

// The split files' schema metadata keys and the file format.
const (
	// Format is the split files' format version (KeyFormat).
	Format     = "dataset/1"
	KeyFormat  = "strata.format"
	KeySplit   = "strata.split"
	KeyDays    = "strata.days"
	KeySource  = "strata.source"
	KeyEpoch   = "strata.epoch"
	KeyValues  = "strata.values"
	valuesNote = "raw (unscaled) feature values; scaler.json holds the robust scaler fitted on the train split"
	// RowGroupRows is the number of rows of a row group.
	RowGroupRows = 1 << 16
)

// Identifier and label columns, before the features.
const (
	colID = iota
	colApp
	colFunc
	colRow
	colStart
	colDay
	colSplit
	colDuration
	numIDCols
)

// IDColumns names the identifier and label columns, in column order:
// id (replay.Invocation.ID), app, func, row (the trace row), start_us
// (trace time), day (1-based), split, and duration_ms, the invocation's
// own duration — a label, not a feature: it is not known when the
// invocation is placed.
var IDColumns = [numIDCols]string{"id", "app", "func", "row", "start_us", "day", "split", "duration_ms"}

// schema returns a split file's Arrow schema with meta as its metadata;
// each feature's field carries its group, unit, source and proxy flag.
func schema(meta map[string]string) *arrow.Schema {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = meta[k]
	}
	md := arrow.NewMetadata(keys, vals)
	fields := []arrow.Field{
		{Name: IDColumns[colID], Type: arrow.BinaryTypes.String},
		{Name: IDColumns[colApp], Type: arrow.BinaryTypes.String},
		{Name: IDColumns[colFunc], Type: arrow.BinaryTypes.String},
		{Name: IDColumns[colRow], Type: arrow.PrimitiveTypes.Int64},
		{Name: IDColumns[colStart], Type: arrow.PrimitiveTypes.Int64},
		{Name: IDColumns[colDay], Type: arrow.PrimitiveTypes.Int32},
		{Name: IDColumns[colSplit], Type: arrow.BinaryTypes.String},
		{Name: IDColumns[colDuration], Type: arrow.PrimitiveTypes.Float64,
			Metadata: arrow.NewMetadata([]string{"strata.role", "strata.unit"}, []string{"label (not a feature: unknown at decision time)", "ms"})},
	}
	for _, f := range features {
		fields = append(fields, arrow.Field{Name: f.Name, Type: arrow.PrimitiveTypes.Float64, Metadata: arrow.NewMetadata(
			[]string{"strata.group", "strata.proxy", "strata.source", "strata.unit"},
			[]string{string(f.Group), strconv.FormatBool(f.Proxy), f.Source, f.Unit})})
	}
	return arrow.NewSchema(fields, &md)
}

// splitWriter streams one split's rows into its Parquet file, a row group
// every RowGroupRows rows.
type splitWriter struct {
	path  string
	split Split
	fw    *pqarrow.FileWriter
	rb    *array.RecordBuilder
	n     int   // rows in rb
	rows  int64 // rows written or buffered
}

// newSplitWriter creates path for split with the given schema metadata.
func newSplitWriter(path string, split Split, meta map[string]string) (*splitWriter, error) {
	sc := schema(meta)
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	// Dictionary encoding only where values repeat (app, func, split);
	// the ids are unique and most features take many distinct values.
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCreatedBy("strata"),
		parquet.WithMaxRowGroupLength(RowGroupRows), parquet.WithDictionaryDefault(false),
		parquet.WithDictionaryFor(IDColumns[colApp], true), parquet.WithDictionaryFor(IDColumns[colFunc], true),
		parquet.WithDictionaryFor(IDColumns[colSplit], true))
	fw, err := pqarrow.NewFileWriter(sc, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &splitWriter{path: path, split: split, fw: fw, rb: array.NewRecordBuilder(memory.NewGoAllocator(), sc)}, nil
}

// add appends one row.
func (w *splitWriter) add(in replay.Invocation, day int, feat *[NumFeatures]float64) error {
	if w.n == 0 {
		w.rb.Reserve(RowGroupRows) // one allocation per row group, not a doubling series
	}
	w.rb.Field(colID).(*array.StringBuilder).Append(in.ID())
	w.rb.Field(colApp).(*array.StringBuilder).Append(in.App)
	w.rb.Field(colFunc).(*array.StringBuilder).Append(in.Func)
	w.rb.Field(colRow).(*array.Int64Builder).Append(in.Row)
	w.rb.Field(colStart).(*array.Int64Builder).Append(in.StartUS())
	w.rb.Field(colDay).(*array.Int32Builder).Append(int32(day))
	w.rb.Field(colSplit).(*array.StringBuilder).Append(w.split.Name)
	w.rb.Field(colDuration).(*array.Float64Builder).Append(float64(in.DurationUS) / 1000)
	for i, v := range feat {
		w.rb.Field(numIDCols + i).(*array.Float64Builder).Append(v)
	}
	w.n++
	w.rows++
	if w.n == RowGroupRows {
		return w.flush()
	}
	return nil
}

// flush writes the buffered rows as one row group.
func (w *splitWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.n = 0
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return nil
}

// close flushes the last row group and closes the file.
func (w *splitWriter) close() error {
	err := w.flush()
	w.rb.Release()
	if cerr := w.fw.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing %s: %w", w.path, cerr)
	}
	return err
}

// abort closes the file after an error, ignoring further errors.
func (w *splitWriter) abort() {
	w.rb.Release()
	_ = w.fw.Close()
}

// readColumn reads the float64 column name of the Parquet file at path.
func readColumn(ctx context.Context, path, name string) ([]float64, error) {
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer func() { _ = rdr.Close() }()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: RowGroupRows}, memory.NewGoAllocator())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	idx := sc.FieldIndices(name)
	if len(idx) != 1 {
		return nil, fmt.Errorf("reading %s: no column %q", path, name)
	}
	rgs := make([]int, rdr.NumRowGroups())
	for i := range rgs {
		rgs[i] = i
	}
	tbl, err := fr.ReadRowGroups(ctx, idx, rgs)
	if err != nil {
		return nil, fmt.Errorf("reading %s column %s: %w", path, name, err)
	}
	defer tbl.Release()
	col := tbl.Column(0).Data()
	out := make([]float64, 0, col.Len())
	for _, ch := range col.Chunks() {
		a, ok := ch.(*array.Float64)
		if !ok {
			return nil, fmt.Errorf("reading %s column %s: type %s, want float64", path, name, ch.DataType())
		}
		out = append(out, a.Float64Values()...)
	}
	return out, nil
}

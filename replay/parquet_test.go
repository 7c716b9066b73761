package replay_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/strata-rl/strata/replay"
)

// readAllSource reads src to io.EOF, failing on any error.
func readAllSource(tb testing.TB, src replay.Source) []replay.Invocation {
	tb.Helper()
	var out []replay.Invocation
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, in)
	}
}

// TestParquetRoundTrip writes a synthetic day as Parquet in several row
// groups and reads it back: the same invocations, rows included.
func TestParquetRoundTrip(t *testing.T) {
	synth := func() replay.Source {
		s, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 3, Apps: 12})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := readAllSource(t, synth())
	path := filepath.Join(t.TempDir(), "synth.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := replay.WriteParquet(f, synth(), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) || n < 20_000 {
		t.Fatalf("wrote %d rows, want %d (and several row groups)", n, len(want))
	}
	r, err := replay.OpenParquet(path, replay.DefaultColumns)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if got := readAllSource(t, r); !slices.Equal(got, want) {
		t.Fatalf("read back %d invocations, not the %d written", len(got), len(want))
	}
}

// writeMapped writes a Parquet file with a custom schema: an int64 id
// column, the app as a string, the start and the duration in ms as int64
// and float32, nulls where valid is false.
func writeMapped(tb testing.TB, path string, rows [][4]any) {
	tb.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "fid", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String},
		{Name: "application", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "start_ms", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "dur_ms", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		tb.Fatal(err)
	}
	rb := array.NewRecordBuilder(memory.NewGoAllocator(), sc)
	defer rb.Release()
	for _, row := range rows {
		rb.Field(1).(*array.StringBuilder).Append("n")
		for k, v := range row {
			b := rb.Field([]int{0, 2, 3, 4}[k])
			if v == nil {
				b.AppendNull()
				continue
			}
			switch b := b.(type) {
			case *array.Int64Builder:
				b.Append(v.(int64))
			case *array.StringBuilder:
				b.Append(v.(string))
			case *array.Float32Builder:
				b.Append(v.(float32))
			}
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	if err := fw.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestParquetMapped reads a Parquet file through a column mapping: integer
// ids, start times in ms, float durations; a row with a null or a
// negative time is a *LineError with its row number and the others are
// read.
func TestParquetMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped.parquet")
	writeMapped(t, path, [][4]any{
		{int64(7), "a", int64(1000), float32(2.5)},
		{int64(8), nil, int64(2000), float32(1)},
		{int64(9), "b", int64(-5), float32(1)},
		{int64(10), "b", int64(3000), float32(0.25)},
	})
	cols, err := replay.ParseColumns("app=application,func=fid,start=start_ms,duration=dur_ms,unit=ms")
	if err != nil {
		t.Fatal(err)
	}
	r, err := replay.OpenParquet(path, cols)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	var ins []replay.Invocation
	var bad []string
	for {
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			bad = append(bad, strings.TrimPrefix(le.Error(), filepath.Dir(path)+"/"))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	want := []replay.Invocation{
		{App: "a", Func: "7", EndUS: 1_002_500, DurationUS: 2_500, Row: 1},
		{App: "b", Func: "10", EndUS: 3_000_250, DurationUS: 250, Row: 4},
	}
	if !slices.Equal(ins, want) {
		t.Errorf("invocations %+v, want %+v", ins, want)
	}
	wantBad := []string{"mapped.parquet:2: app column application is null or empty", "mapped.parquet:3: start_ms -5 is negative"}
	if !slices.Equal(bad, wantBad) {
		t.Errorf("line errors %q, want %q", bad, wantBad)
	}
}

// TestParquetColumnErrors checks that a missing or mistyped column fails
// at open, naming it.
func TestParquetColumnErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped.parquet")
	writeMapped(t, path, [][4]any{{int64(1), "a", int64(1), float32(1)}})
	tests := []struct{ spec, want string }{
		{"", `no column "app" for app`},
		{"app=application,func=fid,start=start_ms,duration=dur", `no column "dur" for duration`},
		{"app=application,func=dur_ms,start=start_ms,duration=dur_ms", `column "dur_ms" (func) is of type float32`},
		{"app=application,func=fid,start=note,duration=dur_ms", `column "note" (start) is of type utf8`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			cols, err := replay.ParseColumns(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			_, err = replay.OpenParquet(path, cols)
			if err == nil || !errors.Is(err, replay.ErrColumns) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenParquet: %v, want an ErrColumns error containing %q", err, tt.want)
			}
		})
	}
}

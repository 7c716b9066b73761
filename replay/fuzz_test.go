package replay_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// FuzzCSVReader feeds arbitrary bytes to the CSV reader. It must never panic
// or loop; every error is io.EOF, a *LineError with a sensible line number,
// or a wrapped read error that ends the stream; every invocation it accepts
// is well formed and survives a WriteCSV round trip.
//
// The committed corpus under testdata/fuzz/FuzzCSVReader holds real trace
// rows and malformed variants of them.
func FuzzCSVReader(f *testing.F) {
	const row = "7b2c43a2bc30f6bb438074df88b603d2cb982d3e7961de05270735055950a568,e3cdb48830f66eb8689cc0223514569a69812b77e6611e3d59814fac0747bd2f,0.07949090003967285,0.078\n"
	f.Add([]byte(csvHeader + row))
	f.Add([]byte(csvHeader + row + "a,b,1\n" + row))
	f.Add([]byte(csvHeader + "a,b,NaN,1\r\n\r\na,b,2,3\n"))
	f.Add([]byte("bad header\n" + row))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := replay.NewCSVReader(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("NewCSVReader error %q does not name the stream", err)
			}
			return
		}
		var (
			got      []replay.Invocation
			lastLine int64
			lastRow  int64
		)
		for i := 0; ; i++ {
			if i > 1<<20 {
				return // a large gzip stream; enough checked
			}
			in, err := r.Next()
			if errors.Is(err, io.EOF) {
				if _, again := r.Next(); !errors.Is(again, io.EOF) {
					t.Fatalf("Next after io.EOF = %v, want io.EOF", again)
				}
				break
			}
			var le *replay.LineError
			if errors.As(err, &le) {
				if le.Line < 1 || le.Line <= lastLine || le.Line != r.Line() {
					t.Fatalf("LineError at line %d after line %d (reader at line %d)", le.Line, lastLine, r.Line())
				}
				if le.File != "fuzz.csv" || le.Reason == "" || len(le.Text) > 200 {
					t.Fatalf("malformed LineError %#v", le)
				}
				lastLine = le.Line
				continue
			}
			if err != nil {
				// A stream error (empty input, broken gzip) ends reading.
				if !strings.HasPrefix(err.Error(), "reading fuzz.csv") {
					t.Fatalf("Next error %q is neither io.EOF, a *LineError nor a wrapped read error", err)
				}
				return
			}
			if in.App == "" || in.Func == "" || in.DurationUS < 0 || in.EndUS < in.DurationUS {
				t.Fatalf("accepted invalid invocation %+v", in)
			}
			if strings.ContainsAny(in.App+in.Func, ",\n") {
				t.Fatalf("accepted invocation with a separator in its ids: %+v", in)
			}
			if in.Row <= lastRow || in.Row >= r.Line() {
				t.Fatalf("row %d after row %d at line %d", in.Row, lastRow, r.Line())
			}
			lastRow, lastLine = in.Row, r.Line()
			got = append(got, in)
		}

		// Whatever was accepted is written and read back unchanged.
		src := sliceSource(got)
		var buf bytes.Buffer
		if _, err := replay.WriteCSV(&buf, &src); err != nil {
			t.Fatal(err)
		}
		back, err := replay.NewCSVReader(&buf, "back.csv")
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range got {
			in, err := back.Next()
			want.Row = int64(i + 1)
			if err != nil || in != want {
				t.Fatalf("round trip row %d: %+v, %v; want %+v", i+1, in, err, want)
			}
		}
		if _, err := back.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("round trip: extra result %v", err)
		}
	})
}

// FuzzColumnReader feeds arbitrary bytes to the column-mapped CSV reader
// (start and duration in ms, the time column mapped by name). It must
// never panic or loop; a header without the mapped columns fails at once
// naming the stream; every later error is io.EOF, a *LineError at a later
// line, or a read error that ends the stream; every accepted invocation
// is well formed and reads back unchanged from a fully quoted rendering.
func FuzzColumnReader(f *testing.F) {
	f.Add([]byte("x,s,a,f,d\n1,1000,app,fn,250\n"))
	f.Add([]byte("s,a,f,d\n\"1\",\"a,b\",\"q\"\"q\",0.5\r\n\n7,a,f\n8,a,f,-1\n9,a,f,1,2\n"))
	f.Add([]byte("s,a,f,d\n\"unterminated,a,f,1\n1,a,f,NaN\n"))
	f.Add([]byte("a,f\n"))
	f.Add([]byte{})
	cols, err := replay.ParseColumns("app=a,func=f,start=s,duration=d,unit=ms")
	if err != nil {
		f.Fatal(err)
	}
	back, err := replay.ParseColumns("app=a,func=f,start=s,duration=d,unit=us")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := replay.NewColumnReader(bytes.NewReader(data), "fuzz.csv", cols)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("NewColumnReader error %q does not name the stream", err)
			}
			return
		}
		var got []replay.Invocation
		var lastLine, lastRow int64
		for i := 0; ; i++ {
			if i > 1<<20 {
				return
			}
			in, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			var le *replay.LineError
			if errors.As(err, &le) {
				if le.Line < 2 || le.Line <= lastLine || le.File != "fuzz.csv" || le.Reason == "" || len(le.Text) > 200 {
					t.Fatalf("malformed LineError %#v after line %d", le, lastLine)
				}
				lastLine = le.Line
				continue
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "reading fuzz.csv") {
					t.Fatalf("Next error %q is neither io.EOF, a *LineError nor a wrapped read error", err)
				}
				return
			}
			if in.App == "" || in.Func == "" || in.DurationUS < 0 || in.EndUS < in.DurationUS || in.Row <= lastRow {
				t.Fatalf("accepted invalid invocation %+v after row %d", in, lastRow)
			}
			lastRow = in.Row
			got = append(got, in)
		}
		var buf bytes.Buffer
		buf.WriteString("s,a,f,d\n")
		quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
		for _, in := range got {
			fmt.Fprintf(&buf, "%d,%s,%s,%d\n", in.StartUS(), quote(in.App), quote(in.Func), in.DurationUS)
		}
		rb, err := replay.NewColumnReader(&buf, "back.csv", back)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range got {
			in, err := rb.Next()
			if err != nil || in.App != want.App || in.Func != want.Func || in.EndUS != want.EndUS || in.DurationUS != want.DurationUS {
				t.Fatalf("round trip: %+v, %v; want %+v", in, err, want)
			}
		}
		if _, err := rb.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("round trip: extra result %v", err)
		}
	})
}

package replay_test

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// realSamplePath is the 998-row excerpt of the Azure Functions 2021 trace.
const realSamplePath = "../testdata/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv"

const csvHeader = "app,func,end_timestamp,duration\n"

// readRealSample returns the bytes of the real sample. The sample is
// committed (testdata/azure2021), so a missing file is a failure, not a
// reason to skip.
func readRealSample(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(realSamplePath)
	if err != nil {
		tb.Fatalf("reading the committed real sample: %v", err)
	}
	return b
}

// readerStep is one result of CSVReader.Next: an invocation or an error.
type readerStep struct {
	inv replay.Invocation
	err error
}

// readSteps calls Next until io.EOF or a non-line error and returns every
// result (the terminating io.EOF excluded).
func readSteps(tb testing.TB, r *replay.CSVReader) []readerStep {
	tb.Helper()
	var out []readerStep
	for i := 0; ; i++ {
		if i > 1<<22 {
			tb.Fatalf("reader did not reach io.EOF after %d calls", i)
		}
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		out = append(out, readerStep{in, err})
		var le *replay.LineError
		if err != nil && !errors.As(err, &le) {
			return out
		}
	}
}

// readAllInvocations reads a whole trace and fails on any error.
func readAllInvocations(tb testing.TB, data []byte, name string) []replay.Invocation {
	tb.Helper()
	r, err := replay.NewCSVReader(bytes.NewReader(data), name)
	if err != nil {
		tb.Fatalf("NewCSVReader: %v", err)
	}
	var out []replay.Invocation
	for _, s := range readSteps(tb, r) {
		if s.err != nil {
			tb.Fatalf("reading %s: %v", name, s.err)
		}
		out = append(out, s.inv)
	}
	return out
}

func TestCSVReaderRealSample(t *testing.T) {
	data := readRealSample(t)
	got := readAllInvocations(t, data, "sample.csv")
	if len(got) != 998 {
		t.Fatalf("read %d invocations, want 998", len(got))
	}

	// An independent parse with encoding/csv gives the expected fields.
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:]
	if len(recs) != len(got) {
		t.Fatalf("encoding/csv sees %d rows, CSVReader %d", len(recs), len(got))
	}
	us := func(s string) int64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return int64(math.Round(v * 1e6))
	}

	apps := map[string]bool{}
	pairs := map[[2]string]bool{}
	ids := map[string]bool{}
	for i, in := range got {
		rec := recs[i]
		want := replay.Invocation{App: rec[0], Func: rec[1], EndUS: us(rec[2]), DurationUS: us(rec[3]), Row: int64(i + 1)}
		if in != want {
			t.Fatalf("row %d = %+v, want %+v", i+1, in, want)
		}
		if in.StartUS() < 0 {
			t.Errorf("row %d starts at %d µs, before the trace start", in.Row, in.StartUS())
		}
		apps[in.App] = true
		pairs[[2]string{in.App, in.Func}] = true
		ids[in.ID()] = true
	}
	if len(apps) != 21 || len(pairs) != 49 {
		t.Errorf("got %d apps and %d (app,func) pairs, want 21 and 49", len(apps), len(pairs))
	}
	if len(ids) != len(got) {
		t.Errorf("%d distinct ids for %d rows", len(ids), len(got))
	}
}

func TestCSVReaderGzipMatchesPlain(t *testing.T) {
	data := readRealSample(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	plain := readAllInvocations(t, data, "sample.csv")
	zipped := readAllInvocations(t, gz.Bytes(), "sample.csv.gz")
	if !slices.Equal(plain, zipped) {
		t.Fatalf("gzip input gave %d invocations differing from the %d of the plain input", len(zipped), len(plain))
	}

	// OpenTrace detects gzip from the content, not the name.
	path := t.TempDir() + "/trace.bin"
	if err := os.WriteFile(path, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := replay.OpenTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var fromFile []replay.Invocation
	for _, s := range readSteps(t, r) {
		if s.err != nil {
			t.Fatal(s.err)
		}
		fromFile = append(fromFile, s.inv)
	}
	if !slices.Equal(plain, fromFile) {
		t.Fatalf("OpenTrace of gzip file gave %d invocations differing from plain", len(fromFile))
	}
	if r.Line() != 999 {
		t.Errorf("Line() = %d after the whole file, want 999", r.Line())
	}
}

func TestCSVReaderTruncatedGzip(t *testing.T) {
	data := readRealSample(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(data)
	_ = zw.Close()
	cut := gz.Bytes()[:gz.Len()/2]
	r, err := replay.NewCSVReader(bytes.NewReader(cut), "cut.gz")
	if err != nil {
		t.Fatal(err)
	}
	steps := readSteps(t, r)
	last := steps[len(steps)-1].err
	var le *replay.LineError
	if last == nil || errors.As(last, &le) || !errors.Is(last, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated gzip ended with %v, want a read error wrapping io.ErrUnexpectedEOF", last)
	}
	if !strings.Contains(last.Error(), "cut.gz") {
		t.Errorf("read error %q does not name the stream", last)
	}
}

func TestCSVReaderMalformedLines(t *testing.T) {
	const (
		good1 = "app1,f1,10.5,0.5"
		good2 = "app2,f2,20,1.25"
	)
	inv1 := replay.Invocation{App: "app1", Func: "f1", EndUS: 10_500_000, DurationUS: 500_000}
	inv2 := replay.Invocation{App: "app2", Func: "f2", EndUS: 20_000_000, DurationUS: 1_250_000}

	// Each case is the header, good1, bad, good2 unless input is set. want
	// lists the expected results in order: an invocation (with its Row) or
	// a line error (line number and a fragment of the reason).
	type want struct {
		inv    *replay.Invocation
		row    int64
		line   int64
		reason string
	}
	ok := func(in replay.Invocation, row int64) want { return want{inv: &in, row: row} }
	bad := func(line int64, reason string) want { return want{line: line, reason: reason} }

	cases := []struct {
		name  string
		bad   string // middle line (line 3)
		input string // overrides the default layout when set
		want  []want
	}{
		{name: "too few fields", bad: "a,b,1", want: []want{ok(inv1, 1), bad(3, "got 3 fields"), ok(inv2, 3)}},
		{name: "one field", bad: "justtext", want: []want{ok(inv1, 1), bad(3, "got 1 fields"), ok(inv2, 3)}},
		{name: "too many fields", bad: "a,b,2,1,9", want: []want{ok(inv1, 1), bad(3, "too many fields"), ok(inv2, 3)}},
		{name: "non-numeric end", bad: "a,b,x,1", want: []want{ok(inv1, 1), bad(3, `end_timestamp "x" is not a number`), ok(inv2, 3)}},
		{name: "non-numeric duration", bad: "a,b,2,1s", want: []want{ok(inv1, 1), bad(3, `duration "1s" is not a number`), ok(inv2, 3)}},
		{name: "empty end", bad: "a,b,,1", want: []want{ok(inv1, 1), bad(3, "end_timestamp is empty"), ok(inv2, 3)}},
		{name: "negative end", bad: "a,b,-1,0", want: []want{ok(inv1, 1), bad(3, `end_timestamp "-1" is negative`), ok(inv2, 3)}},
		{name: "negative duration", bad: "a,b,5,-0.5", want: []want{ok(inv1, 1), bad(3, `duration "-0.5" is negative`), ok(inv2, 3)}},
		{name: "NaN end", bad: "a,b,NaN,1", want: []want{ok(inv1, 1), bad(3, `end_timestamp "NaN" is not finite`), ok(inv2, 3)}},
		{name: "Inf duration", bad: "a,b,5,+Inf", want: []want{ok(inv1, 1), bad(3, `duration "+Inf" is not finite`), ok(inv2, 3)}},
		{name: "infinity end", bad: "a,b,infinity,1", want: []want{ok(inv1, 1), bad(3, "is not finite"), ok(inv2, 3)}},
		{name: "out of range", bad: "a,b,1e11,1", want: []want{ok(inv1, 1), bad(3, "out of range"), ok(inv2, 3)}},
		{name: "duration exceeds end", bad: "a,b,1,2", want: []want{ok(inv1, 1), bad(3, "exceeds end_timestamp"), ok(inv2, 3)}},
		{name: "empty app", bad: ",b,2,1", want: []want{ok(inv1, 1), bad(3, "empty app"), ok(inv2, 3)}},
		{name: "blank app", bad: "  ,b,2,1", want: []want{ok(inv1, 1), bad(3, "empty app"), ok(inv2, 3)}},
		{name: "empty func", bad: "a,,2,1", want: []want{ok(inv1, 1), bad(3, "empty func"), ok(inv2, 3)}},
		{name: "only commas", bad: ",,,", want: []want{ok(inv1, 1), bad(3, "empty app"), ok(inv2, 3)}},
		{
			name:  "two bad lines in a row",
			input: csvHeader + good1 + "\nx\ny,z\n" + good2 + "\n",
			want:  []want{ok(inv1, 1), bad(3, "got 1 fields"), bad(4, "got 2 fields"), ok(inv2, 4)},
		},
		{
			name:  "bad header",
			input: "application,function,end,duration\n" + good1 + "\n" + good2 + "\n",
			want:  []want{bad(1, replay.ErrBadHeader.Error()), ok(inv1, 1), ok(inv2, 2)},
		},
		{
			name:  "header with BOM and CRLF",
			input: "\ufeffapp,func,end_timestamp,duration\r\n" + good1 + "\r\n" + good2 + "\r\n",
			want:  []want{ok(inv1, 1), ok(inv2, 2)},
		},
		{
			name:  "CRLF line endings with a bad line",
			input: strings.ReplaceAll(csvHeader+good1+"\na,b\n"+good2+"\n", "\n", "\r\n"),
			want:  []want{ok(inv1, 1), bad(3, "got 2 fields"), ok(inv2, 3)},
		},
		{
			name:  "blank lines skipped",
			input: csvHeader + "\n" + good1 + "\n\n   \n\r\n" + good2 + "\n\n",
			want:  []want{ok(inv1, 1), ok(inv2, 2)},
		},
		{
			name:  "blank line then bad line keeps line numbers",
			input: csvHeader + good1 + "\n\nbad\n" + good2 + "\n",
			want:  []want{ok(inv1, 1), bad(4, "got 1 fields"), ok(inv2, 3)},
		},
		{
			name:  "no trailing newline",
			input: csvHeader + good1 + "\n" + good2,
			want:  []want{ok(inv1, 1), ok(inv2, 2)},
		},
		{
			name:  "bad last line without newline",
			input: csvHeader + good1 + "\n" + good2 + "\na,b,c,d",
			want:  []want{ok(inv1, 1), ok(inv2, 2), bad(4, `"c" is not a number`)},
		},
		{
			name:  "spaces around fields",
			input: csvHeader + " app1 , f1 , 10.5 , 0.5 \n" + good2 + "\n",
			want:  []want{ok(inv1, 1), ok(inv2, 2)},
		},
		{
			name:  "overlong line is an error and the next line survives",
			input: csvHeader + good1 + "\n" + strings.Repeat("x", 100_000) + "\n" + good2 + "\n",
			want:  []want{ok(inv1, 1), bad(3, "line longer than 65536 bytes"), ok(inv2, 3)},
		},
		{
			name:  "header only",
			input: csvHeader,
			want:  nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.input
			if input == "" {
				input = csvHeader + good1 + "\n" + tc.bad + "\n" + good2 + "\n"
			}
			r, err := replay.NewCSVReader(strings.NewReader(input), "trace.csv")
			if err != nil {
				t.Fatal(err)
			}
			steps := readSteps(t, r)
			if len(steps) != len(tc.want) {
				t.Fatalf("got %d results %+v, want %d", len(steps), steps, len(tc.want))
			}
			for i, w := range tc.want {
				s := steps[i]
				if w.inv != nil {
					exp := *w.inv
					exp.Row = w.row
					if s.err != nil || s.inv != exp {
						t.Errorf("result %d = %+v, %v; want %+v", i, s.inv, s.err, exp)
					}
					continue
				}
				var le *replay.LineError
				if !errors.As(s.err, &le) {
					t.Fatalf("result %d = %+v, %v; want a *LineError", i, s.inv, s.err)
				}
				if le.File != "trace.csv" || le.Line != w.line || !strings.Contains(le.Reason, w.reason) {
					t.Errorf("result %d = %#v; want file trace.csv, line %d, reason containing %q", i, le, w.line, w.reason)
				}
				if !strings.HasPrefix(le.Error(), "trace.csv:"+strconv.FormatInt(w.line, 10)+": ") {
					t.Errorf("Error() = %q does not start with file:line", le.Error())
				}
				if len(le.Text) > 200 {
					t.Errorf("LineError.Text is %d bytes, want ≤ 200", len(le.Text))
				}
			}
			// io.EOF is sticky.
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("Next after the end = %v, want io.EOF", err)
			}
		})
	}
}

// TestCSVReaderOverlongLineNotAccepted documents a line longer than the
// reader's 64 KiB bound whose first 64 KiB parse as a valid row: the full
// line has five fields and must be rejected.
func TestCSVReaderOverlongLineNotAccepted(t *testing.T) {
	line := "app,func,100,1" + strings.Repeat(" ", 70_000) + ",extra"
	r, err := replay.NewCSVReader(strings.NewReader(csvHeader+line+"\n"), "long.csv")
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Next()
	var le *replay.LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(le.Reason, "longer than") {
		t.Fatalf("a %d-byte line with 5 fields gave %+v, %v; want a *LineError for line 2 saying it is too long", len(line), in, err)
	}
}

func TestCSVReaderEmptyInput(t *testing.T) {
	r, err := replay.NewCSVReader(strings.NewReader(""), "empty.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	var le *replay.LineError
	if !errors.Is(err, replay.ErrBadHeader) || errors.As(err, &le) || errors.Is(err, io.EOF) {
		t.Fatalf("empty input: Next = %v, want a non-line error wrapping ErrBadHeader", err)
	}
}

func TestCSVReaderBadGzipHeader(t *testing.T) {
	_, err := replay.NewCSVReader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), "bad.gz")
	if err == nil || !strings.Contains(err.Error(), "bad.gz") {
		t.Fatalf("NewCSVReader of a broken gzip header = %v, want an error naming the stream", err)
	}
}

// sliceSource yields a fixed list of invocations.
type sliceSource []replay.Invocation

func (s *sliceSource) Next() (replay.Invocation, error) {
	if len(*s) == 0 {
		return replay.Invocation{}, io.EOF
	}
	in := (*s)[0]
	*s = (*s)[1:]
	return in, nil
}

func TestWriteCSVRoundTrip(t *testing.T) {
	real := readAllInvocations(t, readRealSample(t), "sample.csv")
	cases := []struct {
		name string
		in   []replay.Invocation
	}{
		{"empty", nil},
		{"real sample", real},
		{"edge values", []replay.Invocation{
			{App: "a", Func: "f", EndUS: 0, DurationUS: 0},
			{App: "a", Func: "g", EndUS: 1, DurationUS: 1},
			{App: "b", Func: "f", EndUS: 999_999, DurationUS: 1},
			{App: "b", Func: "f", EndUS: 1_209_600_000_000, DurationUS: 404_987_000}, // two weeks
			{App: "c", Func: "h", EndUS: 4_503_599_627_370_497, DurationUS: 123_456_789},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := sliceSource(slices.Clone(tc.in))
			var buf bytes.Buffer
			n, err := replay.WriteCSV(&buf, &src)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(tc.in)) {
				t.Fatalf("WriteCSV wrote %d rows, want %d", n, len(tc.in))
			}
			back := readAllInvocations(t, buf.Bytes(), "written.csv")
			if len(back) != len(tc.in) {
				t.Fatalf("read back %d rows, want %d", len(back), len(tc.in))
			}
			for i, want := range tc.in {
				want.Row = int64(i + 1)
				if back[i] != want {
					t.Errorf("row %d: read back %+v, want %+v", i+1, back[i], want)
				}
				if back[i].ID() != want.ID() {
					t.Errorf("row %d: ID %s, want %s", i+1, back[i].ID(), want.ID())
				}
			}
		})
	}
}

func TestWriteCSVStopsOnSourceError(t *testing.T) {
	boom := errors.New("boom")
	_, err := replay.WriteCSV(io.Discard, errSource{boom})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteCSV = %v, want it to wrap the source error", err)
	}
}

type errSource struct{ err error }

func (s errSource) Next() (replay.Invocation, error) { return replay.Invocation{}, s.err }

func TestInvocationID(t *testing.T) {
	base := replay.Invocation{App: "a", Func: "f", EndUS: 10, DurationUS: 3, Row: 7}
	if got := base.ID(); len(got) != 32 || got != base.ID() {
		t.Fatalf("ID() = %q, want 32 stable hex characters", got)
	}
	for _, v := range []replay.Invocation{
		{App: "b", Func: "f", EndUS: 10, DurationUS: 3, Row: 7},
		{App: "a", Func: "g", EndUS: 10, DurationUS: 3, Row: 7},
		{App: "a", Func: "f", EndUS: 11, DurationUS: 3, Row: 7},
		{App: "a", Func: "f", EndUS: 10, DurationUS: 4, Row: 7},
		{App: "a", Func: "f", EndUS: 10, DurationUS: 3, Row: 8},
		{App: "af", Func: "", EndUS: 10, DurationUS: 3, Row: 7},
	} {
		if v.ID() == base.ID() {
			t.Errorf("%+v has the same ID as %+v", v, base)
		}
	}
}

func BenchmarkCSVReader(b *testing.B) {
	data := readRealSample(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := replay.NewCSVReader(bytes.NewReader(data), "sample.csv")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 998 {
			b.Fatalf("read %d rows, want 998", n)
		}
	}
}

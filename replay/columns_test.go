package replay_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// TestParseColumns checks the column mapping syntax, its defaults and
// its errors.
func TestParseColumns(t *testing.T) {
	tests := []struct {
		spec    string
		want    string // ColumnMap.String()
		wantErr string
	}{
		{"", "app=app,func=func,end=end_timestamp:s,duration=duration:s", ""},
		{"app=owner_app,func=fn,end=ts_end,duration=dur_ms,unit=ms", "app=owner_app,func=fn,end=ts_end:ms,duration=dur_ms:ms", ""},
		{"start=ts, duration=dur_ms:ms", "app=app,func=func,start=ts:s,duration=dur_ms:ms", ""},
		{"unit=us,start=t:s", "app=app,func=func,start=t:s,duration=duration:us", ""},
		{"duration=d:us", "app=app,func=func,end=end_timestamp:s,duration=d:us", ""},
		{"end=a,start=b", "", "not both"},
		{"app=x,app=y", "", "app given twice"},
		{"colour=red", "", `unknown key "colour"`},
		{"app", "", "not key=value"},
		{"app=", "", "names no column"},
		{"unit=h", "", `time unit "h"`},
		{"duration=d:min", "", `time unit "min"`},
		{"app=a:ms", "", "takes no unit"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			m, err := replay.ParseColumns(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, replay.ErrColumns) {
					t.Fatalf("ParseColumns(%q) = %v, %v; want an ErrColumns error containing %q", tt.spec, m, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.String(); got != tt.want {
				t.Errorf("ParseColumns(%q) = %s, want %s", tt.spec, got, tt.want)
			}
			again, err := replay.ParseColumns(m.String())
			if err != nil || again != m {
				t.Errorf("String() %s does not parse back: %v, %v", m, again, err)
			}
		})
	}
}

// remapped renders invocations as a CSV with other column names, other
// column order, an extra column, quoted ids and times in ms; start says
// whether the time column is the start rather than the end.
func remapped(ins []replay.Invocation, start bool) []byte {
	var b bytes.Buffer
	b.WriteString("region,dur_ms,fn,ts_ms,owner_app\n")
	for _, in := range ins {
		ts := in.EndUS
		if start {
			ts = in.StartUS()
		}
		fmt.Fprintf(&b, "west,%s,%s,%s,\"%s\"\n", ms(in.DurationUS), in.Func, ms(ts), in.App)
	}
	return b.Bytes()
}

// ms renders microseconds as milliseconds with three decimals.
func ms(us int64) string { return fmt.Sprintf("%d.%03d", us/1000, us%1000) }

// readColumns reads a whole mapped CSV, failing on any error.
func readColumns(tb testing.TB, data []byte, spec string) []replay.Invocation {
	tb.Helper()
	cols, err := replay.ParseColumns(spec)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := replay.NewColumnReader(bytes.NewReader(data), "mapped.csv", cols)
	if err != nil {
		tb.Fatal(err)
	}
	var out []replay.Invocation
	for {
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, in)
	}
}

// TestColumnReaderMatchesAzure2021 reads the real sample through a column
// mapping, renamed, reordered, quoted and in milliseconds, by end and by
// start time: the invocations, rows included, are the 2021 reader's.
func TestColumnReaderMatchesAzure2021(t *testing.T) {
	want := readAllInvocations(t, readRealSample(t), "real.csv")
	tests := []struct {
		name  string
		start bool
		spec  string
	}{
		{"end", false, "app=owner_app,func=fn,end=ts_ms,duration=dur_ms,unit=ms"},
		{"start", true, "app=owner_app,func=fn,start=ts_ms:ms,duration=dur_ms:ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readColumns(t, remapped(want, tt.start), tt.spec)
			if !slices.Equal(got, want) {
				t.Fatalf("read %d invocations, want the 2021 reader's %d", len(got), len(want))
			}
		})
	}
	// The default mapping reads the 2021 file itself.
	if got := readColumns(t, readRealSample(t), ""); !slices.Equal(got, want) {
		t.Errorf("the default mapping read %d invocations differently from the 2021 reader", len(got))
	}
}

// TestColumnReaderErrors checks a missing column, which fails at once,
// and malformed lines, which are *LineErrors naming the line while the
// other lines are read.
func TestColumnReaderErrors(t *testing.T) {
	cols, _ := replay.ParseColumns("func=fn,start=ts,duration=d,unit=ms")
	_, err := replay.NewColumnReader(strings.NewReader("app,fn,d\n"), "x.csv", cols)
	if err == nil || !errors.Is(err, replay.ErrColumns) || !strings.Contains(err.Error(), `x.csv: no column "ts" for start`) {
		t.Errorf("missing column: %v", err)
	}
	if _, err := replay.NewColumnReader(strings.NewReader(""), "x.csv", cols); err == nil || !strings.Contains(err.Error(), "empty trace") {
		t.Errorf("empty file: %v", err)
	}
	data := "ts,app,fn,d,extra\n" +
		"1000,a,f,10,x\n" + // line 2: fine
		"2000,a,f,10\n" + // line 3: a field short
		"3000,a,f,ten,x\n" + // line 4: not a number
		"\"4000,a,f,1,x\n" + // line 5: unterminated quote
		"5000,\"a\"\"b\",f,-1,x\n" + // line 6: negative duration
		"6000,\"a\"\"b\",f,1,\"y\"\n" // line 7: fine
	r, err := replay.NewColumnReader(strings.NewReader(data), "x.csv", cols)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var ins []replay.Invocation
	for {
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			got = append(got, le.Error())
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	want := []string{
		"x.csv:3: got 4 fields, the header has 5",
		`x.csv:4: d "ten" is not a number`,
		"x.csv:5: field 1: unterminated quote",
		`x.csv:6: d "-1" is negative`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("line errors\n%q\nwant\n%q", got, want)
	}
	wantIns := []replay.Invocation{
		{App: "a", Func: "f", EndUS: 1_010_000, DurationUS: 10_000, Row: 1},
		{App: `a"b`, Func: "f", EndUS: 6_001_000, DurationUS: 1_000, Row: 6},
	}
	if !slices.Equal(ins, wantIns) {
		t.Errorf("invocations %+v, want %+v", ins, wantIns)
	}
}

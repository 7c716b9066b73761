package replay_test

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// fn2019 is one function of a generated Azure 2019 trace: its hashes, its
// counts by day and minute, and its duration percentiles (ms) by day.
type fn2019 struct {
	owner, app, fn string
	counts         map[int]map[int]int // day → minute (0-based) → count
	dur            [7]float64
}

// trace2019 is a generated Azure 2019 trace.
type trace2019 struct {
	fns  []fn2019
	days []int
	// shuffle, if non-nil, permutes each file's rows and the durations
	// file's columns.
	shuffle *rand.Rand
	// gzip writes .csv.gz files.
	gzip bool
	// extra lines appended to a file, by its base name.
	extra map[string][]string
	// skip leaves a file out, by its base name.
	skip map[string]bool
	// memory rows by day.
	memory map[int][]string
}

var durHeader = []string{"HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum",
	"percentile_Average_0", "percentile_Average_1", "percentile_Average_25", "percentile_Average_50",
	"percentile_Average_75", "percentile_Average_99", "percentile_Average_100"}

const memHeader = "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100"

// invocationsHeader is the header of an invocations file.
func invocationsHeader() string {
	var b strings.Builder
	b.WriteString("HashOwner,HashApp,HashFunction,Trigger")
	for m := 1; m <= 1440; m++ {
		b.WriteString("," + strconv.Itoa(m))
	}
	return b.String()
}

// invocationsLine renders a function's counts of one day.
func invocationsLine(f fn2019, day int) string {
	var b strings.Builder
	b.WriteString(f.owner + "," + f.app + "," + f.fn + ",http")
	for m := range 1440 {
		b.WriteString("," + strconv.Itoa(f.counts[day][m]))
	}
	return b.String()
}

// write writes tr into dir.
func (tr trace2019) write(tb testing.TB, dir string) {
	tb.Helper()
	for _, day := range tr.days {
		inv := []string{}
		durs := []string{}
		for _, f := range tr.fns {
			if len(f.counts[day]) == 0 {
				continue
			}
			inv = append(inv, invocationsLine(f, day))
			n := 0
			for _, c := range f.counts[day] {
				n += c
			}
			vals := []string{f.owner, f.app, f.fn, fmt.Sprint(f.dur[3]), strconv.Itoa(n), fmt.Sprint(f.dur[0]), fmt.Sprint(f.dur[6])}
			for _, p := range f.dur {
				vals = append(vals, fmt.Sprint(p))
			}
			durs = append(durs, strings.Join(vals, ","))
		}
		header := slices.Clone(durHeader)
		if tr.shuffle != nil {
			tr.shuffle.Shuffle(len(inv), func(i, j int) { inv[i], inv[j] = inv[j], inv[i] })
			tr.shuffle.Shuffle(len(durs), func(i, j int) { durs[i], durs[j] = durs[j], durs[i] })
			perm := tr.shuffle.Perm(len(header))
			header = permute(header, perm)
			for i, l := range durs {
				durs[i] = strings.Join(permute(strings.Split(l, ","), perm), ",")
			}
		}
		tr.file(tb, dir, fmt.Sprintf("invocations_per_function_md.anon.d%02d.csv", day), invocationsHeader(), inv)
		tr.file(tb, dir, fmt.Sprintf("function_durations_percentiles.anon.d%02d.csv", day), strings.Join(header, ","), durs)
		if rows, ok := tr.memory[day]; ok {
			tr.file(tb, dir, fmt.Sprintf("app_memory_percentiles.anon.d%02d.csv", day), memHeader, rows)
		}
	}
}

func permute(s []string, perm []int) []string {
	out := make([]string, len(s))
	for i, p := range perm {
		out[i] = s[p]
	}
	return out
}

// file writes one file of the trace, with its extra lines.
func (tr trace2019) file(tb testing.TB, dir, name, header string, lines []string) {
	tb.Helper()
	if tr.skip[name] {
		return
	}
	body := header + "\n" + strings.Join(append(lines, tr.extra[name]...), "\n") + "\n"
	path := filepath.Join(dir, name)
	if !tr.gzip {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	f, err := os.Create(path + ".gz")
	if err != nil {
		tb.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(body)); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// knownTrace is a small trace with known counts over days 3 and 4: a busy
// function, a rare one, one with constant durations and two functions of
// one app.
func knownTrace() trace2019 {
	busy := map[int]int{}
	for m := range 1440 {
		busy[m] = 1 + m%4
	}
	return trace2019{days: []int{3, 4}, fns: []fn2019{
		{owner: "o1", app: "a1", fn: "f1", counts: map[int]map[int]int{3: busy, 4: {0: 2, 1439: 7}},
			dur: [7]float64{1, 2, 10, 50, 120, 900, 5000}},
		{owner: "o1", app: "a1", fn: "f2", counts: map[int]map[int]int{3: {17: 1}, 4: {600: 3}},
			dur: [7]float64{0.5, 0.5, 0.75, 1, 1.25, 2, 2.5}},
		{owner: "o2", app: "a2", fn: "f1", counts: map[int]map[int]int{4: {60: 40, 61: 1}},
			dur: [7]float64{30, 30, 30, 30, 30, 30, 30}},
		{owner: "o3", app: "a3", fn: "g", counts: map[int]map[int]int{3: {0: 1, 720: 2, 1439: 1}},
			dur: [7]float64{0, 0, 0, 0.001, 1, 1000, 60000}},
	}}
}

// readAll2019 reads a whole 2019 trace, failing on any error.
func readAll2019(tb testing.TB, dir string, seed int64) []replay.Invocation {
	tb.Helper()
	r, err := replay.NewAzure2019Reader(replay.Azure2019Config{Dir: dir, Seed: seed})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	var out []replay.Invocation
	for {
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("reading %s: %v", dir, err)
		}
		out = append(out, in)
	}
}

// TestAzure2019ReadsKnownCounts builds a trace from known counts and
// percentiles and checks what the reader makes of it: exactly those counts
// per function per minute, starts inside their minute and in order, rows
// numbered from 1, durations within the percentiles' range, the app and
// function hashes as ids; plain and gzip files alike.
func TestAzure2019ReadsKnownCounts(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			tr := knownTrace()
			tr.gzip = gz
			dir := t.TempDir()
			tr.write(t, dir)
			got := readAll2019(t, dir, 1)
			type cell struct {
				app, fn     string
				day, minute int
			}
			counts := map[cell]int{}
			byFn := map[[2]string]fn2019{}
			for _, f := range tr.fns {
				byFn[[2]string{f.app, f.fn}] = f
			}
			var lastStart int64
			for i, in := range got {
				if in.Row != int64(i+1) {
					t.Fatalf("invocation %d has row %d", i, in.Row)
				}
				s := in.StartUS()
				if s < lastStart {
					t.Fatalf("row %d starts at %d, before row %d's %d", in.Row, s, in.Row-1, lastStart)
				}
				lastStart = s
				f, ok := byFn[[2]string{in.App, in.Func}]
				if !ok {
					t.Fatalf("row %d: unknown function %s/%s", in.Row, in.App, in.Func)
				}
				// Trace time 0 is the start of day 3, the first present.
				counts[cell{in.App, in.Func, 3 + int(s/86_400_000_000), int(s % 86_400_000_000 / 60_000_000)}]++
				lo, hi := int64(f.dur[0]*1000+0.5), int64(f.dur[6]*1000+0.5)
				if in.DurationUS < lo || in.DurationUS > hi {
					t.Errorf("row %d of %s/%s lasts %d us, outside [%d, %d]", in.Row, in.App, in.Func, in.DurationUS, lo, hi)
				}
			}
			want := map[cell]int{}
			total := 0
			for _, f := range tr.fns {
				for day, cs := range f.counts {
					for m, c := range cs {
						want[cell{f.app, f.fn, day, m}] = c
						total += c
					}
				}
			}
			if len(got) != total {
				t.Errorf("read %d invocations, want %d", len(got), total)
			}
			for k, c := range want {
				if counts[k] != c {
					t.Errorf("%+v: %d invocations, want %d", k, counts[k], c)
				}
			}
			for k, c := range counts {
				if want[k] == 0 {
					t.Errorf("%+v: %d invocations, want none", k, c)
				}
			}
		})
	}
}

// TestAzure2019Seeded checks that the expansion depends on the seed and on
// nothing else: the same seed gives the same invocations whatever the
// order of the files' rows and of the durations file's columns, another
// seed other start times.
func TestAzure2019Seeded(t *testing.T) {
	write := func(shuffle *rand.Rand) string {
		tr := knownTrace()
		tr.shuffle = shuffle
		dir := t.TempDir()
		tr.write(t, dir)
		return dir
	}
	base := readAll2019(t, write(nil), 7)
	tests := []struct {
		name string
		dir  string
		seed int64
		same bool
	}{
		{"same seed", write(nil), 7, true},
		{"rows shuffled", write(rand.New(rand.NewPCG(1, 2))), 7, true},
		{"rows shuffled again", write(rand.New(rand.NewPCG(3, 4))), 7, true},
		{"other seed", write(nil), 8, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll2019(t, tt.dir, tt.seed)
			if eq := slices.Equal(got, base); eq != tt.same {
				t.Errorf("equal to seed 7's: %v, want %v (%d and %d invocations)", eq, tt.same, len(got), len(base))
			}
		})
	}
}

// TestAzure2019DurationQuantiles checks the inverse-CDF rule on many draws:
// the share of durations below each percentile point is close to it.
func TestAzure2019DurationQuantiles(t *testing.T) {
	counts := map[int]int{}
	for m := range 1440 {
		counts[m] = 30
	}
	p := [7]float64{10, 20, 100, 200, 400, 2000, 4000}
	tr := trace2019{days: []int{1}, fns: []fn2019{{owner: "o", app: "a", fn: "f", counts: map[int]map[int]int{1: counts}, dur: p}}}
	dir := t.TempDir()
	tr.write(t, dir)
	got := readAll2019(t, dir, 1)
	for i, q := range []float64{0.01, 0.25, 0.50, 0.75, 0.99} {
		below := 0
		for _, in := range got {
			if in.DurationUS < int64(p[i+1]*1000) {
				below++
			}
		}
		if share := float64(below) / float64(len(got)); share < q-0.01 || share > q+0.01 {
			t.Errorf("%.0f%% of durations below the %vth percentile %v ms, want %.0f%%", 100*share, q*100, p[i+1], 100*q)
		}
	}
}

// TestAzure2019Duplicates checks that a function listed twice in a day's
// counts gets the sum of both rows, and that of two duration rows the one
// with the larger Count is used.
func TestAzure2019Duplicates(t *testing.T) {
	tr := trace2019{days: []int{1}, fns: []fn2019{{owner: "o", app: "a", fn: "f",
		counts: map[int]map[int]int{1: {5: 2, 9: 1}}, dur: [7]float64{1, 1, 1, 1, 1, 1, 1}}}}
	dup := fn2019{owner: "o", app: "a", fn: "f", counts: map[int]map[int]int{1: {5: 3, 7: 1}}}
	tr.extra = map[string][]string{
		"invocations_per_function_md.anon.d01.csv":    {invocationsLine(dup, 1)},
		"function_durations_percentiles.anon.d01.csv": {"o,a,f,9,999999,9,9,9,9,9,9,9,9,9"},
	}
	dir := t.TempDir()
	tr.write(t, dir)
	got := readAll2019(t, dir, 1)
	perMinute := map[int64]int{}
	for _, in := range got {
		perMinute[in.StartUS()/60_000_000]++
		if in.DurationUS != 9000 {
			t.Errorf("row %d lasts %d us, want 9000 (the row with the larger Count)", in.Row, in.DurationUS)
		}
	}
	if want := map[int64]int{5: 5, 7: 1, 9: 1}; !equalMaps(perMinute, want) {
		t.Errorf("invocations by minute %v, want %v", perMinute, want)
	}
}

func equalMaps(a, b map[int64]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestAzure2019Errors checks the errors: a directory that cannot be read
// as a trace fails at once naming the file; a malformed line is a
// *LineError naming its file, line and fault, and the other functions'
// invocations are all still read.
func TestAzure2019Errors(t *testing.T) {
	const inv1, dur1, mem1 = "invocations_per_function_md.anon.d01.csv", "function_durations_percentiles.anon.d01.csv", "app_memory_percentiles.anon.d01.csv"
	bad := fn2019{owner: "ob", app: "ab", fn: "fb", counts: map[int]map[int]int{1: {3: 2}}}
	badLine := invocationsLine(bad, 1)
	tests := []struct {
		name    string
		days    []int
		extra   map[string][]string
		skip    map[string]bool
		wantErr []string // substrings of the error from NewAzure2019Reader
		// or the line errors Next returns, as "file:line: reason substring"
		wantLines []string
	}{
		{name: "day missing inside the range", days: []int{1, 3},
			wantErr: []string{"invocations_per_function_md.anon.d02.csv", "day 02 is missing"}},
		{name: "durations file missing", days: []int{1}, skip: map[string]bool{dur1: true},
			wantErr: []string{dur1, "missing"}},
		{name: "no invocation file", days: []int{1}, skip: map[string]bool{inv1: true},
			wantErr: []string{"no invocations_per_function_md.anon.dNN.csv"}},
		{name: "count with no duration row", days: []int{1}, extra: map[string][]string{inv1: {badLine}},
			wantLines: []string{inv1 + ":6: function with 2 invocations has no row in " + dur1}},
		{name: "malformed count", days: []int{1},
			extra:     map[string][]string{inv1: {strings.Replace(badLine, ",2,", ",x,", 1)}},
			wantLines: []string{inv1 + `:6: minute 4 "x" is not a number`}},
		{name: "fractional count", days: []int{1},
			extra:     map[string][]string{inv1: {strings.Replace(badLine, ",2,", ",2.5,", 1)}},
			wantLines: []string{inv1 + `:6: minute 4 "2.5" is not a whole number`}},
		{name: "wrong column count", days: []int{1},
			extra:     map[string][]string{inv1: {strings.TrimSuffix(badLine, ",0")}},
			wantLines: []string{inv1 + ":6: got 1443 fields, the header has 1444"}},
		{name: "malformed duration row", days: []int{1},
			extra: map[string][]string{inv1: {badLine}, dur1: {"ob,ab,fb,1,2,1,1,1,1,NaN,1,1,1,1"}},
			wantLines: []string{dur1 + `:6: percentile_Average_25 "NaN" is not finite`,
				inv1 + ":6: function with 2 invocations has no usable row (line 6 there is malformed)"}},
		{name: "decreasing percentiles", days: []int{1},
			extra:     map[string][]string{dur1: {"ob,ab,fb,1,2,1,1,1,5,4,4,4,4,4"}},
			wantLines: []string{dur1 + ":6: percentile_Average_25 4 is below percentile_Average_1 5"}},
		{name: "malformed memory row", days: []int{1},
			extra:     map[string][]string{mem1: {"o1,a1,12,100,1,2,3,4,5,6,7,8", "o1,a9,-1,100,1,2,3,4,5,6,7,8"}},
			wantLines: []string{mem1 + `:3: SampleCount "-1" is negative`}},
		{name: "memory line of one field", days: []int{1},
			extra:     map[string][]string{mem1: {"x"}},
			wantLines: []string{mem1 + ":2: got 1 fields, the header has 12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := knownTrace()
			for i := range tr.fns {
				tr.fns[i].counts = map[int]map[int]int{}
				for _, d := range tt.days {
					tr.fns[i].counts[d] = map[int]int{10 * i: i + 1}
				}
			}
			tr.days, tr.extra, tr.skip = tt.days, tt.extra, tt.skip
			tr.memory = map[int][]string{1: {}}
			dir := t.TempDir()
			tr.write(t, dir)
			r, err := replay.NewAzure2019Reader(replay.Azure2019Config{Dir: dir, Seed: 1})
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("NewAzure2019Reader succeeded")
				}
				if !errors.Is(err, replay.ErrAzure2019) {
					t.Errorf("error %v does not wrap ErrAzure2019", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			n := 0
			for {
				_, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				var le *replay.LineError
				if errors.As(err, &le) {
					lines = append(lines, strings.ReplaceAll(le.Error(), dir+string(os.PathSeparator), ""))
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("line errors %q, want %d like %q", lines, len(tt.wantLines), tt.wantLines)
			}
			for i, w := range tt.wantLines {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line error %q, want %q", lines[i], w)
				}
			}
			// Every well-formed function's invocations are read.
			if want := 1 + 2 + 3 + 4; n != want*len(tt.days) {
				t.Errorf("read %d invocations, want %d", n, want*len(tt.days))
			}
		})
	}
}

// TestAzure2019Header checks that a header without a needed column fails
// at once, naming the file and the column.
func TestAzure2019Header(t *testing.T) {
	dir := t.TempDir()
	tr := knownTrace()
	tr.days = []int{3}
	tr.write(t, dir)
	path := filepath.Join(dir, "function_durations_percentiles.anon.d03.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "percentile_Average_99", "p99", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay.NewAzure2019Reader(replay.Azure2019Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), path+`:1: the header has no column "percentile_Average_99"`) {
		t.Errorf("error %v, want one naming %s and the column", err, path)
	}
}

// TestAzure2019Memory checks the memory files: rows exposed by day and
// app, a day without a memory file is fine, a duplicate keeps the row
// with more samples.
func TestAzure2019Memory(t *testing.T) {
	tr := knownTrace()
	tr.memory = map[int][]string{3: {
		"o1,a1,120,150.5,100,110,130,150,170,190,200,210",
		"o2,a2,10,50,40,41,42,43,44,45,46,47",
		"o2,a2,5,99,99,99,99,99,99,99,99,99",
	}}
	dir := t.TempDir()
	tr.write(t, dir)
	r, err := replay.NewAzure2019Reader(replay.Azure2019Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mem := r.Memory()
	if len(mem) != 2 {
		t.Fatalf("memory rows %+v, want 2", mem)
	}
	want := replay.AppMemory{Day: 3, Owner: "o1", App: "a1", SampleCount: 120, AverageMB: 150.5,
		PercentilesMB: [8]float64{100, 110, 130, 150, 170, 190, 200, 210}}
	if got, ok := r.AppMemory(3, "a1"); !ok || got != want {
		t.Errorf("AppMemory(3, a1) = %+v, %v; want %+v", got, ok, want)
	}
	if got, ok := r.AppMemory(3, "a2"); !ok || got.SampleCount != 10 {
		t.Errorf("AppMemory(3, a2) = %+v, %v; want the row of 10 samples", got, ok)
	}
	if _, ok := r.AppMemory(4, "a1"); ok {
		t.Error("AppMemory(4, a1) found a row; day 4 has no memory file")
	}
	if got := r.Days(); !slices.Equal(got, []int{3, 4}) {
		t.Errorf("Days() = %v, want [3 4]", got)
	}
	if got := r.LengthUS(); got != 2*86_400_000_000 {
		t.Errorf("LengthUS() = %d, want two days", got)
	}
}

package dataset_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/strata-rl/strata/experiments/dataset"
	"github.com/strata-rl/strata/replay"
)

const (
	secUS = int64(1_000_000)
	dayUS = 86_400 * secUS
)

// testTrace returns a hand-made trace of days days in the order of the
// Azure 2021 file (by end time, rows numbered in that order): a timer
// function every 60 s, a bursty function, a function whose invocations run
// for minutes and overlap, one with zero durations and tied starts, and
// one that first appears on day 2. About 7,000 invocations a day.
func testTrace(days int, seed uint64) []replay.Invocation {
	r := rand.New(rand.NewPCG(seed, 7))
	var out []replay.Invocation
	end := int64(days) * dayUS
	add := func(app, fn string, start, dur int64) {
		if start < end {
			out = append(out, replay.Invocation{App: app, Func: fn, EndUS: start + dur, DurationUS: dur})
		}
	}
	for t := int64(13 * secUS); t < end; t += 60 * secUS { // the timer
		add("app-timer", "tick", t+r.Int64N(secUS), 200_000+r.Int64N(2*secUS))
	}
	for t := int64(0); t < end; { // bursts of 5 to 40 a few ms apart
		t += int64(r.ExpFloat64() * 600 * float64(secUS))
		n := 5 + r.IntN(36)
		for i := range n {
			add("app-burst", "handler", t+int64(i)*int64(20_000+r.IntN(200_000)), int64(r.ExpFloat64()*300_000))
		}
	}
	for t := int64(0); t < end; { // long, overlapping
		t += int64(r.ExpFloat64() * 120 * float64(secUS))
		add("app-batch", "job", t, int64(30+r.IntN(500))*secUS)
	}
	for t := int64(0); t < end; { // zero durations, starts tied in pairs
		t += int64(r.ExpFloat64() * 90 * float64(secUS))
		t -= t % secUS
		add("app-batch", "ping", t, 0)
		add("app-batch", "ping", t, int64(r.IntN(3))*1000)
	}
	for t := dayUS + 3600*secUS; t < end; { // appears on day 2
		t += int64(r.ExpFloat64() * 300 * float64(secUS))
		add("app-late", "fn", t, int64(50+r.IntN(5000))*1000)
	}
	// The file's order: by end time; rows numbered in that order.
	slices.SortStableFunc(out, func(a, b replay.Invocation) int { return cmp.Compare(a.EndUS, b.EndUS) })
	for i := range out {
		out[i].Row = int64(i + 1)
	}
	return out
}

// byStart returns a copy of invs in (start, row) order.
func byStart(invs []replay.Invocation) []replay.Invocation {
	out := slices.Clone(invs)
	slices.SortFunc(out, func(a, b replay.Invocation) int {
		return cmp.Or(cmp.Compare(a.StartUS(), b.StartUS()), cmp.Compare(a.Row, b.Row))
	})
	return out
}

// sliceSource is a replay.Source over a slice.
type sliceSource struct {
	invs []replay.Invocation
	i    int
}

func (s *sliceSource) Next() (replay.Invocation, error) {
	if s.i >= len(s.invs) {
		return replay.Invocation{}, io.EOF
	}
	s.i++
	return s.invs[s.i-1], nil
}

// export runs Export on invs with splits into a new directory and returns
// it.
func export(t *testing.T, invs []replay.Invocation, splits string) (string, *dataset.Result) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	c := dataset.DefaultConfig()
	c.Out, c.Splits = dir, splits
	res, err := dataset.Export(context.Background(), c, dataset.Input{Src: &sliceSource{invs: invs}, Name: "test"}, nil)
	if err != nil {
		t.Fatalf("exporting: %v", err)
	}
	return dir, res
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitRows reads a split file's row, day and split columns.
func splitRows(t *testing.T, path string) (rows []int64, days []int32, splits []string) {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdr.Close() }()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	col := func(name string) int {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("%s: no column %s", path, name)
		}
		return idx[0]
	}
	for _, ch := range tbl.Column(col("row")).Data().Chunks() {
		rows = append(rows, ch.(*array.Int64).Int64Values()...)
	}
	for _, ch := range tbl.Column(col("day")).Data().Chunks() {
		days = append(days, ch.(*array.Int32).Int32Values()...)
	}
	for _, ch := range tbl.Column(col("split")).Data().Chunks() {
		s := ch.(*array.String)
		for i := range s.Len() {
			splits = append(splits, s.Value(i))
		}
	}
	return rows, days, splits
}

// TestFeatureTable checks the feature table against seed §2.3: 47
// features in five groups of 12, 8, 10, 9 and 8, unique names, every
// field filled in.
func TestFeatureTable(t *testing.T) {
	fs := dataset.Features()
	if len(fs) != 47 || dataset.NumFeatures != 47 {
		t.Fatalf("%d features (NumFeatures %d), want 47", len(fs), dataset.NumFeatures)
	}
	want := []dataset.GroupSize{{Group: dataset.Temporal, Features: 12}, {Group: dataset.Workload, Features: 8},
		{Group: dataset.Performance, Features: 10}, {Group: dataset.Cost, Features: 9}, {Group: dataset.Carbon, Features: 8}}
	if got := dataset.GroupSizes(); !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Name] || f.Name == "" || f.Unit == "" || f.Source == "" || f.Definition == "" || f.NoHistory == "" {
			t.Errorf("feature %+v: a repeated name or an empty field", f)
		}
		seen[f.Name] = true
		if f.Proxy != strings.Contains(f.Definition, "PROXY") {
			t.Errorf("%s: the proxy flag (%v) and the definition disagree", f.Name, f.Proxy)
		}
	}
}

// TestLaterSplitsDoNotReachTrain multiplies the duration of every
// validation and test invocation by 1000 — and feeds the trace in start
// order instead of end order — and expects train.parquet, scaler.json and
// profile.csv byte-identical, and valid.parquet and test.parquet changed:
// nothing of the training split depends on later data.
func TestLaterSplitsDoNotReachTrain(t *testing.T) {
	invs := testTrace(3, 1)
	perturbed := byStart(invs)
	changed := 0
	for i := range perturbed {
		if perturbed[i].StartUS() >= dayUS {
			s := perturbed[i].StartUS()
			perturbed[i].DurationUS *= 1000
			perturbed[i].EndUS = s + perturbed[i].DurationUS
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no validation or test invocation to perturb")
	}
	a, _ := export(t, invs, "1,2,3")
	b, _ := export(t, perturbed, "1,2,3")
	for _, tc := range []struct {
		file string
		same bool
	}{
		{"train.parquet", true}, {dataset.ScalerFile, true}, {dataset.ProfileFile, true},
		{"valid.parquet", false}, {"test.parquet", false},
	} {
		same := bytes.Equal(readFile(t, filepath.Join(a, tc.file)), readFile(t, filepath.Join(b, tc.file)))
		if same != tc.same {
			t.Errorf("%s: identical = %v, want %v", tc.file, same, tc.same)
		}
	}
}

// TestTruncationKeepsEarlierFeatures truncates the trace after time t
// (drops every invocation starting after t) and expects every feature of
// every invocation starting at or before t unchanged, bit for bit.
func TestTruncationKeepsEarlierFeatures(t *testing.T) {
	invs := byStart(testTrace(3, 2))
	features := func(invs []replay.Invocation) map[int64][dataset.NumFeatures]float64 {
		b, err := dataset.NewBuilder(nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64][dataset.NumFeatures]float64{}
		for _, in := range invs {
			var f [dataset.NumFeatures]float64
			if err := b.Add(in, &f); err != nil {
				t.Fatal(err)
			}
			out[in.Row] = f
		}
		return out
	}
	full := features(invs)
	names := dataset.Features()
	for _, tc := range []struct {
		name string
		t    int64
	}{
		{"first hour", 3600 * secUS},
		{"mid day 1", dayUS/2 + 17*secUS},
		{"end of day 1", dayUS - 1},
		{"day 2 plus 5 min", dayUS + 300*secUS},
		{"day 3", 2*dayUS + 7*3600*secUS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kept []replay.Invocation
			for _, in := range invs {
				if in.StartUS() <= tc.t {
					kept = append(kept, in)
				}
			}
			if len(kept) == 0 || len(kept) == len(invs) {
				t.Fatalf("truncation at %d keeps %d of %d invocations", tc.t, len(kept), len(invs))
			}
			got := features(kept)
			for _, in := range kept {
				g, w := got[in.Row], full[in.Row]
				for i := range g {
					if math.Float64bits(g[i]) != math.Float64bits(w[i]) {
						t.Fatalf("row %d: %s = %v truncated, %v in the full trace", in.Row, names[i].Name, g[i], w[i])
					}
				}
			}
		})
	}
}

// TestSplitsPartitionRows checks that every invocation lands in exactly
// one split by its day, or is counted as unassigned when its day is in
// none, and that the counts add up.
func TestSplitsPartitionRows(t *testing.T) {
	for _, tc := range []struct {
		name, splits string
		days         int
		first, last  [3]int32
		unassigned   bool
	}{
		{"contiguous", "1,2,3", 3, [3]int32{1, 2, 3}, [3]int32{1, 2, 3}, false},
		{"ranges", "1-2,3,4", 4, [3]int32{1, 3, 4}, [3]int32{2, 3, 4}, false},
		{"gap", "1,3,4", 4, [3]int32{1, 3, 4}, [3]int32{1, 3, 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			invs := testTrace(tc.days, 3)
			dir, res := export(t, invs, tc.splits)
			seen := map[int64]string{}
			var total int64
			for k, name := range []string{"train", "valid", "test"} {
				rows, days, splits := splitRows(t, filepath.Join(dir, name+".parquet"))
				if int64(len(rows)) != res.Rows[k] {
					t.Errorf("%s: %d rows, the result says %d", name, len(rows), res.Rows[k])
				}
				total += int64(len(rows))
				for i, r := range rows {
					if prev, ok := seen[r]; ok {
						t.Fatalf("row %d is in %s and %s", r, prev, name)
					}
					seen[r] = name
					if days[i] < tc.first[k] || days[i] > tc.last[k] || splits[i] != name {
						t.Fatalf("row %d of %s: day %d, split %q", r, name, days[i], splits[i])
					}
				}
			}
			var md dataset.Metadata
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, dataset.MetadataFile)), &md); err != nil {
				t.Fatal(err)
			}
			if md.Rows != total || md.Unassigned != res.Unassigned {
				t.Errorf("metadata: %d rows, %d unassigned; files hold %d, the result says %d unassigned", md.Rows, md.Unassigned, total, res.Unassigned)
			}
			if total+res.Unassigned+res.Late != int64(len(invs)) {
				t.Errorf("%d rows + %d unassigned + %d late ≠ %d invocations", total, res.Unassigned, res.Late, len(invs))
			}
			if res.Late != 0 {
				t.Errorf("%d late rows in a trace within the lateness", res.Late)
			}
			if (res.Unassigned > 0) != tc.unassigned {
				t.Errorf("%d unassigned rows, want some: %v", res.Unassigned, tc.unassigned)
			}
			for _, in := range invs {
				day := int(in.StartUS()/dayUS) + 1
				_, ok := seen[in.Row]
				if want := res.Splits.Of(day) >= 0; ok != want {
					t.Fatalf("row %d of day %d: in a split %v, want %v", in.Row, day, ok, want)
				}
			}
		})
	}
}

// TestDeterministic exports the same input twice, a hand-made trace and
// the synthetic generator's, and expects byte-identical files.
func TestDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func() dataset.Input
	}{
		{"hand-made", func() dataset.Input { return dataset.Input{Src: &sliceSource{invs: testTrace(3, 4)}, Name: "test"} }},
		{"synthetic", func() dataset.Input {
			cfg := replay.SynthConfig{Days: 3, Seed: 5, Apps: 2}
			s, err := replay.NewSynth(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return dataset.Input{Src: s, Name: "synthetic", LenUS: 3 * dayUS, Synthetic: &cfg}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dirs [2]string
			for i := range dirs {
				c := dataset.DefaultConfig()
				c.Out, c.Splits = filepath.Join(t.TempDir(), "out"), "1,2,3"
				if _, err := dataset.Export(context.Background(), c, tc.in(), nil); err != nil {
					t.Fatal(err)
				}
				dirs[i] = c.Out
			}
			for _, f := range []string{"train.parquet", "valid.parquet", "test.parquet", dataset.ScalerFile, dataset.ProfileFile, dataset.MetadataFile} {
				if !bytes.Equal(readFile(t, filepath.Join(dirs[0], f)), readFile(t, filepath.Join(dirs[1], f))) {
					t.Errorf("%s differs between two exports of the same input", f)
				}
			}
		})
	}
}

// TestFirstInvocation checks a function's first invocation: every
// feature finite, and the history features at their documented values.
func TestFirstInvocation(t *testing.T) {
	names := map[string]int{}
	for i, f := range dataset.Features() {
		names[f.Name] = i
	}
	for _, tc := range []struct {
		name string
		in   replay.Invocation
		// history are invocations of other functions added before.
		history []replay.Invocation
	}{
		{"trace start, zero duration", replay.Invocation{App: "a", Func: "f", EndUS: 0, DurationUS: 0, Row: 1}, nil},
		{"day 2, others busy", replay.Invocation{App: "a", Func: "new", EndUS: dayUS + 5*secUS, DurationUS: 5 * secUS, Row: 9},
			[]replay.Invocation{
				{App: "a", Func: "f", EndUS: 10 * secUS, DurationUS: 2 * secUS, Row: 1},
				{App: "a", Func: "f", EndUS: dayUS, DurationUS: secUS, Row: 2},
				{App: "b", Func: "g", EndUS: dayUS + 10*secUS, DurationUS: 100 * secUS, Row: 3},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := dataset.NewBuilder(nil)
			if err != nil {
				t.Fatal(err)
			}
			var f [dataset.NumFeatures]float64
			for _, h := range byStart(tc.history) {
				if err := b.Add(h, &f); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Add(tc.in, &f); err != nil {
				t.Fatal(err)
			}
			for i, v := range f {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s = %v", dataset.Features()[i].Name, v)
				}
			}
			want := map[string]float64{
				"func_age_h": 0, "hour_share": 0, "same_hour_yesterday": 0, "n_prev": 0,
				"iat_s": float64(tc.in.StartUS()) / 1e6, "rate_1m": 0, "rate_15m": 0, "rate_1h": 0, "iat_cv": 0, "burstiness": 0, "burst": 0,
				"dur_last_ms": 0, "dur_ewma_ms": 0, "dur_p50_ms": 0, "dur_p95_ms": 0, "inflight": 0,
				"cold_ref": 1, "cold_rate_ref": 1, "slo_ms": 1100, "queue_depth": 0, "hour_cost_min_usd": 0, "carbon_ref_g": 0,
			}
			for n, w := range want {
				if got := f[names[n]]; got != w {
					t.Errorf("%s = %v, want %v", n, got, w)
				}
			}
			for _, n := range []string{"cost_aws_usd", "cost_azure_usd", "cost_gcp_usd", "keepwarm_aws_usd_h", "ci_us_east", "renewable_user_pct"} {
				if f[names[n]] <= 0 {
					t.Errorf("%s = %v, want a positive price, intensity or share", n, f[names[n]])
				}
			}
		})
	}
}

// TestBadInput checks that bad splits, a bad epoch, a missing --out, a
// trace too short for the splits, a split without rows, a bad header and
// out-of-order invocations give clear errors and leave no file behind.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		splits string
		mod    func(*dataset.Config)
		in     func() dataset.Input
		want   error
		msg    string
	}{
		{name: "two splits", splits: "1-10,11-12", want: dataset.ErrConfig, msg: "three day ranges"},
		{name: "overlap", splits: "1-10,10-12,13-14", want: dataset.ErrConfig, msg: "do not come after"},
		{name: "out of order", splits: "11-12,1-10,13-14", want: dataset.ErrConfig, msg: "do not come after"},
		{name: "day 0", splits: "0-3,4,5", want: dataset.ErrConfig, msg: "1-based"},
		{name: "not a number", splits: "a,b,c", want: dataset.ErrConfig, msg: "FIRST-LAST"},
		{name: "reversed", splits: "3-1,4,5", want: dataset.ErrConfig, msg: "first ≤ last"},
		{name: "no out", splits: "1,2,3", mod: func(c *dataset.Config) { c.Out = "" }, want: dataset.ErrConfig, msg: "--out"},
		{name: "bad epoch", splits: "1,2,3", mod: func(c *dataset.Config) { c.Epoch = "monday" }, want: dataset.ErrConfig, msg: "RFC 3339"},
		{name: "short synthetic", splits: "1-10,11-12,13-14", in: func() dataset.Input {
			s, _ := replay.NewSynth(replay.SynthConfig{Days: 3, Seed: 1, Apps: 2})
			return dataset.Input{Src: s, Name: "synthetic", LenUS: 3 * dayUS}
		}, want: dataset.ErrShortTrace, msg: "has 3 days, --splits 1-10,11-12,13-14 needs 14"},
		{name: "short file", splits: "1,2,3", in: func() dataset.Input {
			return dataset.Input{Src: &sliceSource{invs: testTrace(2, 1)}, Name: "two-days"}
		}, want: dataset.ErrShortTrace, msg: "two-days ends on day 2, --splits 1-1,2-2,3-3 needs days up to 3"},
		{name: "empty split", splits: "1,2,3", in: func() dataset.Input {
			var invs []replay.Invocation
			for _, in := range testTrace(3, 1) {
				if d := in.StartUS() / dayUS; d != 1 {
					invs = append(invs, in)
				}
			}
			return dataset.Input{Src: &sliceSource{invs: invs}, Name: "no-day-2"}
		}, want: dataset.ErrShortTrace, msg: "no invocation in the valid split (days 2-2)"},
		{name: "bad header", splits: "1,2,3", in: func() dataset.Input {
			r, err := replay.NewCSVReader(strings.NewReader("a,b,c\n1,2,3\n"), "bad.csv")
			if err != nil {
				t.Fatal(err)
			}
			return dataset.Input{Src: r, Name: "bad.csv"}
		}, msg: "bad.csv:1: trace header is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dataset.DefaultConfig()
			c.Out, c.Splits = filepath.Join(t.TempDir(), "out"), tc.splits
			if tc.mod != nil {
				tc.mod(&c)
			}
			in := dataset.Input{Src: &sliceSource{invs: testTrace(3, 1)}, Name: "test"}
			if tc.in != nil {
				in = tc.in()
			}
			_, err := dataset.Export(context.Background(), c, in, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if ents, _ := os.ReadDir(c.Out); len(ents) != 0 {
				t.Errorf("%d files left in %s after the error", len(ents), c.Out)
			}
		})
	}
}

// TestBuilderOrder checks that the builder refuses invocations out of
// (start, row) order or before trace time 0.
func TestBuilderOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		invs []replay.Invocation
	}{
		{"earlier start", []replay.Invocation{{App: "a", Func: "f", EndUS: 10, Row: 1}, {App: "a", Func: "f", EndUS: 5, Row: 2}}},
		{"same start, lower row", []replay.Invocation{{App: "a", Func: "f", EndUS: 10, Row: 2}, {App: "b", Func: "f", EndUS: 10, Row: 1}}},
		{"repeated", []replay.Invocation{{App: "a", Func: "f", EndUS: 10, Row: 1}, {App: "a", Func: "f", EndUS: 10, Row: 1}}},
		{"before time 0", []replay.Invocation{{App: "a", Func: "f", EndUS: 5, DurationUS: 10, Row: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := dataset.NewBuilder(nil)
			if err != nil {
				t.Fatal(err)
			}
			var f [dataset.NumFeatures]float64
			var last error
			for _, in := range tc.invs {
				last = b.Add(in, &f)
			}
			if !errors.Is(last, dataset.ErrOrder) {
				t.Errorf("last Add: %v, want ErrOrder", last)
			}
		})
	}
}

// TestDocListsEveryFeature checks docs/dataset.md against the feature
// table and the profile's columns: a table row for every feature with its
// group, unit, definition and first-invocation value, and every profile
// column named.
func TestDocListsEveryFeature(t *testing.T) {
	doc := string(readFile(t, "../../docs/dataset.md"))
	for i, f := range dataset.Features() {
		row := fmt.Sprintf("| %d | `%s` | %s | %s | %s |", i+1, f.Name, f.Group, f.Unit, f.Definition)
		if !strings.Contains(doc, row) || !strings.Contains(doc, f.NoHistory) {
			t.Errorf("docs/dataset.md has no row %q ending with %q", row, f.NoHistory)
		}
	}
	_, profile, _ := strings.Cut(doc, "### `profile.csv`")
	for _, c := range dataset.ProfileColumns {
		if !strings.Contains(profile, "`"+c+"`") {
			t.Errorf("docs/dataset.md's profile.csv section does not name %s", c)
		}
	}
}

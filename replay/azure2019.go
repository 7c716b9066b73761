package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The Azure Functions 2019 trace ("Serverless in the Wild", Shahrad et al.,
// USENIX ATC 2020; AzurePublicDataset, AzureFunctionsDataset2019.md) comes
// as three CSV files a day NN: invocation counts per function and minute,
// execution time percentiles per function and allocated memory
// percentiles per application. docs/traces.md describes the files and the
// rule that turns counts into invocations.

// Azure 2019 file name prefixes; a day's file is PREFIX + "NN.csv", plain
// or with a .gz suffix.
const (
	// Azure2019Invocations prefixes the invocation count files.
	Azure2019Invocations = "invocations_per_function_md.anon.d"
	// Azure2019Durations prefixes the execution time percentile files.
	Azure2019Durations = "function_durations_percentiles.anon.d"
	// Azure2019Memory prefixes the allocated memory percentile files.
	Azure2019Memory = "app_memory_percentiles.anon.d"
)

// Azure2019DurationPercentiles are the percentiles of the durations file,
// in the order of its percentile_Average_P columns.
var Azure2019DurationPercentiles = [7]float64{0, 1, 25, 50, 75, 99, 100}

// Azure2019MemoryPercentiles are the percentiles of the memory file, in the
// order of its AverageAllocatedMb_pctP columns.
var Azure2019MemoryPercentiles = [8]float64{1, 5, 25, 50, 75, 95, 99, 100}

// ErrAzure2019 is wrapped by the errors that make a directory unreadable
// as an Azure 2019 trace: no invocation file, a missing day or durations
// file, a header that lacks a column.
var ErrAzure2019 = errors.New("not a readable Azure Functions 2019 trace")

const (
	minutesPerDay = 1440
	minuteUS2019  = 60_000_000
	dayUS2019     = 86_400_000_000
)

var azure2019File = regexp.MustCompile(`^(invocations_per_function_md|function_durations_percentiles|app_memory_percentiles)\.anon\.d(\d{2})\.csv(\.gz)?$`)

// AppMemory is one row of an Azure 2019 memory file: the allocated memory
// of one application over one day, in MB. The percentiles are of the
// per-minute averages, weighted, as the dataset describes them.
type AppMemory struct {
	// Day is the file's day number NN (1 for d01).
	Day int
	// Owner and App are the HashOwner and HashApp columns.
	Owner, App string
	// SampleCount is the number of samples averaged.
	SampleCount int64
	// AverageMB is AverageAllocatedMb.
	AverageMB float64
	// PercentilesMB are AverageAllocatedMb_pct1 … _pct100, at
	// Azure2019MemoryPercentiles.
	PercentilesMB [8]float64
}

// Azure2019Config configures an Azure2019Reader.
type Azure2019Config struct {
	// Dir is the directory holding the trace's files.
	Dir string
	// Seed keys the random draws that turn counts into invocations.
	Seed int64
}

// Azure2019Reader reads a directory of Azure Functions 2019 trace files as
// one trace and turns its per-minute counts into invocations by a seeded
// rule (docs/traces.md): day by day in day order, trace time 0 being the
// start of the first day present. The c invocations of function f in
// minute m of day d start at times drawn uniformly within the minute, with
// durations drawn by inverse-CDF interpolation between f's duration
// percentiles of day d, each from a generator keyed by (seed, f's owner,
// app and function hashes, d, m), so the output does not depend on the
// order of the files' rows. Invocations come out in non-decreasing start
// order (ties broken by function and draw), numbered from 1; App is
// HashApp and Func HashFunction (HashOwner keys the draws and the match
// with the durations rows, not the ids).
//
// It holds one day's counts (sparse: the non-zero minutes of each
// function, 6 bytes each), that day's duration percentiles and the
// invocations of one minute. A malformed line is reported by Next as a
// *LineError before the invocations of its day, and reading goes on: a
// count row with no usable duration row is reported that way too, naming
// both files.
type Azure2019Reader struct {
	cfg     Azure2019Config
	days    []dayFiles // in day order, contiguous
	memory  []AppMemory
	pending []error // line errors to return before anything else
	err     error   // a fatal error, returned again

	di     int   // index of the next day to load
	day    int   // day number NN of the loaded day
	base   int64 // trace time of the loaded day's start
	minute int   // next minute of the loaded day to expand
	loaded bool

	fns     []fn2019
	minutes []uint16 // non-zero cells, function by function
	counts  []uint32
	head    [minutesPerDay]int32 // function lists by next non-zero minute
	next    []int32

	draws []draw2019 // the current minute's invocations, sorted
	pos   int
	row   int64
	pcg   rand.PCG
	rng   *rand.Rand
}

// dayFiles are the paths of one day's count and durations files.
type dayFiles struct {
	day                    int
	invocations, durations string
}

// fn2019 is one function of the loaded day.
type fn2019 struct {
	owner, app, fn string
	key            uint64 // FNV-1a of owner, app and function
	line           int64  // its (first) line in the invocations file
	lo, hi, cur    int32  // its cells
	dur            [7]float64
}

// draw2019 is one invocation of the current minute.
type draw2019 struct {
	start, dur int64
	fn, j      int32
}

// NewAzure2019Reader finds the trace's files in cfg.Dir, checks that
// every day from the first to the last invocation file has its invocation
// and durations files and that every file's header has the columns the
// reader needs, and reads the memory files. It fails, wrapping
// ErrAzure2019, naming the file at fault. Malformed memory lines are
// returned first by Next.
func NewAzure2019Reader(cfg Azure2019Config) (*Azure2019Reader, error) {
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading Azure 2019 trace directory: %w", err)
	}
	files := map[string]map[int]string{}
	for _, e := range ents {
		m := azure2019File.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		day, _ := strconv.Atoi(m[2])
		if files[m[1]] == nil {
			files[m[1]] = map[int]string{}
		}
		if prev, ok := files[m[1]][day]; ok {
			return nil, fmt.Errorf("%s: both %s and %s hold day %02d: %w", cfg.Dir, prev, e.Name(), day, ErrAzure2019)
		}
		files[m[1]][day] = e.Name()
	}
	inv := files["invocations_per_function_md"]
	if len(inv) == 0 {
		return nil, fmt.Errorf("%s: no %sNN.csv file: %w", cfg.Dir, Azure2019Invocations, ErrAzure2019)
	}
	first, last := math.MaxInt, 0
	for d := range inv {
		first, last = min(first, d), max(last, d)
	}
	r := &Azure2019Reader{cfg: cfg}
	r.rng = rand.New(&r.pcg)
	for d := first; d <= last; d++ {
		name, ok := inv[d]
		if !ok {
			return nil, fmt.Errorf("%s: day %02d is missing inside days %02d-%02d: %w",
				filepath.Join(cfg.Dir, fmt.Sprintf("%s%02d.csv", Azure2019Invocations, d)), d, first, last, ErrAzure2019)
		}
		df := dayFiles{day: d, invocations: filepath.Join(cfg.Dir, name)}
		name, ok = files["function_durations_percentiles"][d]
		if !ok {
			return nil, fmt.Errorf("%s: missing, and day %02d has invocation counts: %w",
				filepath.Join(cfg.Dir, fmt.Sprintf("%s%02d.csv", Azure2019Durations, d)), d, ErrAzure2019)
		}
		df.durations = filepath.Join(cfg.Dir, name)
		if err := checkHeader(df.invocations, invocationColumns); err != nil {
			return nil, err
		}
		if err := checkHeader(df.durations, durationColumns); err != nil {
			return nil, err
		}
		r.days = append(r.days, df)
	}
	mem := files["app_memory_percentiles"]
	for _, d := range slices.Sorted(maps.Keys(mem)) {
		if err := r.readMemory(d, filepath.Join(cfg.Dir, mem[d])); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(r.memory, func(a, b AppMemory) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), strings.Compare(a.App, b.App), strings.Compare(a.Owner, b.Owner))
	})
	return r, nil
}

// Days returns the day numbers NN of the trace, in order.
func (r *Azure2019Reader) Days() []int {
	out := make([]int, len(r.days))
	for i, d := range r.days {
		out[i] = d.day
	}
	return out
}

// LengthUS returns the trace's length in microseconds: its days.
func (r *Azure2019Reader) LengthUS() int64 { return int64(len(r.days)) * dayUS2019 }

// Memory returns the rows of every memory file read, ordered by day, app
// and owner. The dataset has memory files for days 01-12 only; a day
// without one is not an error. The caller must not modify the slice.
func (r *Azure2019Reader) Memory() []AppMemory { return r.memory }

// AppMemory returns the memory row of app on day (the file's NN), and
// whether there is one. When one app hash appears under two owners, the
// first owner in sort order wins.
func (r *Azure2019Reader) AppMemory(day int, app string) (AppMemory, bool) {
	i, ok := slices.BinarySearchFunc(r.memory, AppMemory{Day: day, App: app}, func(a, b AppMemory) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), strings.Compare(a.App, b.App))
	})
	if !ok {
		return AppMemory{}, false
	}
	return r.memory[i], true
}

// Close releases the reader's memory; it holds no open file between calls.
func (r *Azure2019Reader) Close() error {
	r.fns, r.minutes, r.counts, r.next, r.draws = nil, nil, nil, nil, nil
	return nil
}

// Next returns the next invocation, io.EOF at the end of the trace, a
// *LineError for a malformed line (reading may continue), or another error
// if a file cannot be read, after which Next returns it again.
func (r *Azure2019Reader) Next() (Invocation, error) {
	for {
		if len(r.pending) > 0 {
			err := r.pending[0]
			r.pending = r.pending[1:]
			return Invocation{}, err
		}
		if r.pos < len(r.draws) {
			d := r.draws[r.pos]
			r.pos++
			r.row++
			f := &r.fns[d.fn]
			return Invocation{App: f.app, Func: f.fn, EndUS: d.start + d.dur, DurationUS: d.dur, Row: r.row}, nil
		}
		if r.err != nil {
			return Invocation{}, r.err
		}
		if r.loaded && r.minute < minutesPerDay {
			r.expandMinute()
			continue
		}
		if r.di == len(r.days) {
			r.err = io.EOF
			continue
		}
		if err := r.loadDay(); err != nil {
			r.err = err
		}
	}
}

// expandMinute draws the invocations of the next minute of the loaded day
// into r.draws, sorted by start, function and draw.
func (r *Azure2019Reader) expandMinute() {
	m := r.minute
	r.minute++
	r.draws, r.pos = r.draws[:0], 0
	start0 := r.base + int64(m)*minuteUS2019
	for f := r.head[m]; f >= 0; {
		nf := r.next[f]
		fn := &r.fns[f]
		c := r.counts[fn.cur]
		r.pcg.Seed(drawSeeds(r.cfg.Seed, fn.key, r.day, m))
		for j := range int32(c) {
			s := start0 + r.rng.Int64N(minuteUS2019)
			d := durationAt(&fn.dur, r.rng.Float64())
			r.draws = append(r.draws, draw2019{start: s, dur: d, fn: f, j: j})
		}
		if fn.cur++; fn.cur < fn.hi {
			mm := r.minutes[fn.cur]
			r.next[f], r.head[mm] = r.head[mm], f
		}
		f = nf
	}
	slices.SortFunc(r.draws, func(a, b draw2019) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		if a.fn != b.fn {
			return cmp.Compare(a.fn, b.fn)
		}
		return cmp.Compare(a.j, b.j)
	})
}

// drawSeeds returns the PCG seeds of the draws of function key in minute
// minute (0-based) of day day under seed: SplitMix64 mixes, as
// docs/traces.md gives them.
func drawSeeds(seed int64, key uint64, day, minute int) (uint64, uint64) {
	return mix64(uint64(seed) ^ mix64(key)), mix64(key ^ (uint64(day)<<11 | uint64(minute)))
}

// mix64 is one SplitMix64 step: the golden gamma added, then finalised.
func mix64(z uint64) uint64 {
	z += 0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// durationAt returns the duration, in microseconds rounded to the nearest,
// at quantile u of the piecewise-linear distribution through the duration
// percentiles p (milliseconds, non-decreasing) at
// Azure2019DurationPercentiles.
func durationAt(p *[7]float64, u float64) int64 {
	q := u * 100
	for i := 1; i < len(p); i++ {
		lo, hi := Azure2019DurationPercentiles[i-1], Azure2019DurationPercentiles[i]
		if q < hi || i == len(p)-1 {
			ms := p[i-1] + (q-lo)/(hi-lo)*(p[i]-p[i-1])
			ms = min(max(ms, p[0]), p[len(p)-1])
			return int64(math.Round(ms * 1000))
		}
	}
	return int64(math.Round(p[len(p)-1] * 1000))
}

// functionKey hashes a function's owner, app and function hashes with
// FNV-1a (64 bits), separated by zero bytes.
func functionKey(owner, app, fn string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(fn))
	return h.Sum64()
}

// Column names of the Azure 2019 files that the reader uses.
var (
	invocationColumns = func() []string {
		c := []string{"HashOwner", "HashApp", "HashFunction", "Trigger"}
		for m := 1; m <= minutesPerDay; m++ {
			c = append(c, strconv.Itoa(m))
		}
		return c
	}()
	durationColumns = []string{"HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum",
		"percentile_Average_0", "percentile_Average_1", "percentile_Average_25", "percentile_Average_50",
		"percentile_Average_75", "percentile_Average_99", "percentile_Average_100"}
	memoryColumns = []string{"HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb",
		"AverageAllocatedMb_pct1", "AverageAllocatedMb_pct5", "AverageAllocatedMb_pct25", "AverageAllocatedMb_pct50",
		"AverageAllocatedMb_pct75", "AverageAllocatedMb_pct95", "AverageAllocatedMb_pct99", "AverageAllocatedMb_pct100"}
)

// csvFile is one Azure 2019 file read line by line, its columns found by
// the header's names.
type csvFile struct {
	path    string
	f       *os.File
	br      *bufio.Reader
	line    int64
	idx     []int // column of each wanted name
	ncol    int
	fields  [][]byte
	scratch []byte
}

// openCSVFile opens path (plain or gzip) and finds the columns want in its
// header; a missing one is an error wrapping ErrAzure2019.
func openCSVFile(path string, want []string) (*csvFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening Azure 2019 file: %w", err)
	}
	c := &csvFile{path: path, f: f}
	if err := c.header(want); err != nil {
		_ = f.Close()
		return nil, err
	}
	return c, nil
}

func (c *csvFile) header(want []string) error {
	br, err := newTextReader(c.f, c.path)
	if err != nil {
		return err
	}
	c.br = br
	raw, tooLong, err := readLine(br, &c.scratch)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: empty file, want a header line: %w", c.path, ErrAzure2019)
	}
	if err != nil {
		return fmt.Errorf("reading the header of %s: %w", c.path, err)
	}
	c.line = 1
	if tooLong {
		return fmt.Errorf("%s:1: header longer than %d bytes: %w", c.path, maxLineBytes, ErrAzure2019)
	}
	fields, reason := splitCSV(bytes.TrimPrefix(bytes.TrimRight(raw, "\r\n"), []byte("\ufeff")), nil)
	if reason != "" {
		return fmt.Errorf("%s:1: header: %s: %w", c.path, reason, ErrAzure2019)
	}
	pos := make(map[string]int, len(fields))
	for i, f := range fields {
		if _, dup := pos[string(f)]; dup {
			return fmt.Errorf("%s:1: column %q appears twice in the header: %w", c.path, f, ErrAzure2019)
		}
		pos[string(f)] = i
	}
	c.idx = make([]int, len(want))
	for i, w := range want {
		j, ok := pos[w]
		if !ok {
			return fmt.Errorf("%s:1: the header has no column %q (it has %d columns, starting %s): %w",
				c.path, w, len(fields), clip(raw), ErrAzure2019)
		}
		c.idx[i] = j
	}
	c.ncol = len(fields)
	return nil
}

// checkHeader checks the header of path for the columns want.
func checkHeader(path string, want []string) error {
	c, err := openCSVFile(path, want)
	if err != nil {
		return err
	}
	return c.close()
}

func (c *csvFile) close() error {
	if err := c.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", c.path, err)
	}
	return nil
}

// next returns the fields of the next data line, in the file's order; a
// *LineError for a malformed one; io.EOF at the end; or a read error.
func (c *csvFile) next() ([][]byte, error) {
	for {
		raw, tooLong, err := readLine(c.br, &c.scratch)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("reading %s line %d: %w", c.path, c.line+1, err)
		}
		c.line++
		line := bytes.TrimRight(raw, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if tooLong {
			return nil, c.lineError(line, fmt.Sprintf("line longer than %d bytes", maxLineBytes))
		}
		var reason string
		c.fields, reason = splitCSV(line, c.fields[:0])
		if reason == "" && len(c.fields) != c.ncol {
			reason = fmt.Sprintf("got %d fields, the header has %d", len(c.fields), c.ncol)
		}
		if reason != "" {
			return nil, c.lineError(line, reason)
		}
		return c.fields, nil
	}
}

func (c *csvFile) lineError(line []byte, reason string) *LineError {
	return &LineError{File: c.path, Line: c.line, Text: clip(line), Reason: reason}
}

// field returns the wanted column i of fields.
func (c *csvFile) field(fields [][]byte, i int) []byte { return fields[c.idx[i]] }

// each calls fn with the fields of every data line of c and its line
// number; a malformed line, or a non-empty reason from fn, becomes a
// *LineError appended to r.pending. It returns a read error.
func (r *Azure2019Reader) each(c *csvFile, fn func(fields [][]byte) string) error {
	for {
		fields, err := c.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var le *LineError
		if errors.As(err, &le) {
			r.pending = append(r.pending, le)
			continue
		}
		if err != nil {
			return err
		}
		if reason := fn(fields); reason != "" {
			r.pending = append(r.pending, c.lineError(joinFields(fields), reason))
		}
	}
}

// joinFields renders fields as a line again, for a LineError's Text.
func joinFields(fields [][]byte) []byte {
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
		if len(b) > 200 {
			break
		}
	}
	return b
}

// fnID is a function's (owner, app, function) hashes.
type fnID struct{ owner, app, fn string }

// durRow is one usable row of a durations file.
type durRow struct {
	count float64
	p     [7]float64
	line  int64
}

// better reports whether a should win over b, a duplicate of the same
// function: the larger Count, then the larger percentiles in order, then
// the earlier line, so that the choice does not depend on row order.
func (a durRow) better(b durRow) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	for i := range a.p {
		if a.p[i] != b.p[i] {
			return a.p[i] > b.p[i]
		}
	}
	return false
}

// parseNumber parses a finite, non-negative number; a non-empty reason
// says what is wrong, prefixed by what unless what is "".
func parseNumber(b []byte, what string) (float64, string) {
	if what != "" {
		what += " "
	}
	if len(b) == 0 {
		return 0, what + "is empty"
	}
	v, err := strconv.ParseFloat(string(b), 64)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("%s%q is not a number", what, clip(b))
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Sprintf("%s%q is not finite", what, clip(b))
	case v < 0:
		return 0, fmt.Sprintf("%s%q is negative", what, clip(b))
	}
	return v, ""
}

// parseWhole parses a whole number in [0, limit], written as digits or
// as a float with no fraction; a non-empty reason says what is wrong,
// prefixed by what unless what is "".
func parseWhole(b []byte, what string, limit float64) (float64, string) {
	if len(b) == 1 && b[0] == '0' {
		return 0, ""
	}
	if len(b) > 0 && len(b) <= 9 {
		v := 0
		for _, ch := range b {
			if ch < '0' || ch > '9' {
				v = -1
				break
			}
			v = v*10 + int(ch-'0')
		}
		if v >= 0 && float64(v) <= limit {
			return float64(v), ""
		}
	}
	v, reason := parseNumber(b, what)
	if reason != "" {
		return 0, reason
	}
	if what != "" {
		what += " "
	}
	if v != math.Trunc(v) {
		return 0, fmt.Sprintf("%s%q is not a whole number", what, clip(b))
	}
	if v > limit {
		return 0, fmt.Sprintf("%s%q is out of range (at most %.0f)", what, clip(b), limit)
	}
	return v, ""
}

// readDurations reads a durations file into a map of usable rows, keeping
// for each function the better of duplicate rows; bad is the line of each
// function whose only rows are malformed.
func (r *Azure2019Reader) readDurations(path string) (rows map[fnID]durRow, bad map[fnID]int64, err error) {
	c, err := openCSVFile(path, durationColumns)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = c.close() }()
	rows, bad = map[fnID]durRow{}, map[fnID]int64{}
	err = r.each(c, func(fields [][]byte) string {
		id := fnID{string(c.field(fields, 0)), string(c.field(fields, 1)), string(c.field(fields, 2))}
		reason := checkIDs(id.owner, id.app, id.fn)
		if reason == "" {
			var row durRow
			row.line = c.line
			reason = parseDurRow(c, fields, &row)
			if reason == "" {
				if old, ok := rows[id]; !ok || row.better(old) {
					rows[id] = row
				}
				return ""
			}
		}
		if id.owner != "" && id.app != "" && id.fn != "" {
			if _, ok := bad[id]; !ok {
				bad[id] = c.line
			}
		}
		return reason
	})
	return rows, bad, err
}

// parseDurRow fills row from a durations line; a non-empty reason says
// what is wrong.
func parseDurRow(c *csvFile, fields [][]byte, row *durRow) string {
	if _, reason := parseNumber(c.field(fields, 3), "Average"); reason != "" {
		return reason
	}
	count, reason := parseWhole(c.field(fields, 4), "Count", math.MaxInt64)
	if reason != "" {
		return reason
	}
	row.count = count
	for i, name := range []string{"Minimum", "Maximum"} {
		// Not recorded for a few runtime versions (the dataset's note 6).
		if b := c.field(fields, 5+i); len(b) > 0 {
			if _, reason := parseNumber(b, name); reason != "" {
				return reason
			}
		}
	}
	for i := range row.p {
		v, reason := parseNumber(c.field(fields, 7+i), durationColumns[7+i])
		if reason != "" {
			return reason
		}
		if v > maxSeconds*1e3 {
			return fmt.Sprintf("%s %q is out of range", durationColumns[7+i], c.field(fields, 7+i))
		}
		if i > 0 && v < row.p[i-1] {
			return fmt.Sprintf("%s %v is below %s %v: percentiles must not decrease", durationColumns[7+i], v, durationColumns[6+i], row.p[i-1])
		}
		row.p[i] = v
	}
	return ""
}

// checkIDs says which of a row's hashes is empty, if one is.
func checkIDs(ids ...string) string {
	for i, id := range ids {
		if id == "" {
			return "empty " + durationColumns[i]
		}
	}
	return ""
}

// loadDay reads the next day's durations and counts, reporting their
// malformed lines through r.pending, and sets up its expansion.
func (r *Azure2019Reader) loadDay() error {
	df := r.days[r.di]
	r.di++
	r.day, r.base = df.day, int64(df.day-r.days[0].day)*dayUS2019
	r.minute, r.loaded = 0, true
	r.fns, r.minutes, r.counts = r.fns[:0], r.minutes[:0], r.counts[:0]
	durs, bad, err := r.readDurations(df.durations)
	if err != nil {
		return err
	}
	c, err := openCSVFile(df.invocations, invocationColumns)
	if err != nil {
		return err
	}
	defer func() { _ = c.close() }()
	err = r.each(c, func(fields [][]byte) string {
		id := fnID{string(c.field(fields, 0)), string(c.field(fields, 1)), string(c.field(fields, 2))}
		if reason := checkIDs(id.owner, id.app, id.fn); reason != "" {
			return reason
		}
		lo := int32(len(r.minutes))
		for m := range minutesPerDay {
			b := c.field(fields, 4+m)
			if len(b) == 1 && b[0] == '0' {
				continue
			}
			v, reason := parseWhole(b, "", math.MaxInt32)
			if reason != "" {
				reason = "minute " + invocationColumns[4+m] + " " + reason
				r.minutes, r.counts = r.minutes[:lo], r.counts[:lo]
				return reason
			}
			if v > 0 {
				r.minutes = append(r.minutes, uint16(m))
				r.counts = append(r.counts, uint32(v))
			}
		}
		if hi := int32(len(r.minutes)); hi > lo {
			r.fns = append(r.fns, fn2019{owner: id.owner, app: id.app, fn: id.fn, line: c.line, lo: lo, hi: hi})
		}
		return ""
	})
	if err != nil {
		return err
	}
	if len(r.minutes) > math.MaxInt32-minutesPerDay {
		return fmt.Errorf("%s: more than %d non-zero counts in one day", df.invocations, math.MaxInt32-minutesPerDay)
	}
	r.mergeDuplicates()
	// Attach the durations; a function without a usable row is reported
	// and left out.
	var missing []*LineError
	kept := r.fns[:0]
	for _, f := range r.fns {
		id := fnID{f.owner, f.app, f.fn}
		row, ok := durs[id]
		if !ok {
			var n uint64
			for k := f.lo; k < f.hi; k++ {
				n += uint64(r.counts[k])
			}
			why := "no row"
			if line, isBad := bad[id]; isBad {
				why = fmt.Sprintf("no usable row (line %d there is malformed)", line)
			}
			missing = append(missing, &LineError{File: df.invocations, Line: f.line, Text: clip([]byte(f.owner + "," + f.app + "," + f.fn)),
				Reason: fmt.Sprintf("function with %d invocations has %s in %s", n, why, df.durations)})
			continue
		}
		f.dur = row.p
		f.key = functionKey(f.owner, f.app, f.fn)
		f.cur = f.lo
		kept = append(kept, f)
	}
	r.fns = kept
	slices.SortFunc(missing, func(a, b *LineError) int { return cmp.Compare(a.Line, b.Line) })
	for _, le := range missing {
		r.pending = append(r.pending, le)
	}
	for m := range r.head {
		r.head[m] = -1
	}
	r.next = slices.Grow(r.next[:0], len(r.fns))[:len(r.fns)]
	for i := len(r.fns) - 1; i >= 0; i-- {
		m := r.minutes[r.fns[i].lo]
		r.next[i], r.head[m] = r.head[m], int32(i)
	}
	return nil
}

// mergeDuplicates sorts the loaded functions by their hashes and merges
// the rows of a function that appears more than once, adding their counts
// minute by minute (the merged cells go at the end of the cell arrays).
func (r *Azure2019Reader) mergeDuplicates() {
	slices.SortFunc(r.fns, func(a, b fn2019) int {
		return cmp.Or(strings.Compare(a.owner, b.owner), strings.Compare(a.app, b.app), strings.Compare(a.fn, b.fn),
			cmp.Compare(a.line, b.line))
	})
	out := r.fns[:0]
	for _, f := range r.fns {
		if n := len(out); n > 0 && out[n-1].owner == f.owner && out[n-1].app == f.app && out[n-1].fn == f.fn {
			p := &out[n-1]
			lo := int32(len(r.minutes))
			i, j := p.lo, f.lo
			for i < p.hi || j < f.hi {
				switch {
				case j == f.hi || (i < p.hi && r.minutes[i] < r.minutes[j]):
					r.minutes, r.counts = append(r.minutes, r.minutes[i]), append(r.counts, r.counts[i])
					i++
				case i == p.hi || r.minutes[j] < r.minutes[i]:
					r.minutes, r.counts = append(r.minutes, r.minutes[j]), append(r.counts, r.counts[j])
					j++
				default:
					r.minutes = append(r.minutes, r.minutes[i])
					r.counts = append(r.counts, uint32(min(uint64(r.counts[i])+uint64(r.counts[j]), math.MaxInt32)))
					i++
					j++
				}
			}
			p.lo, p.hi = lo, int32(len(r.minutes))
			continue
		}
		out = append(out, f)
	}
	r.fns = out
}

// readMemory reads the memory file of day into r.memory, keeping for an
// app that appears twice the row with the larger SampleCount (then the
// larger values), and reporting malformed lines through r.pending.
func (r *Azure2019Reader) readMemory(day int, path string) error {
	c, err := openCSVFile(path, memoryColumns)
	if err != nil {
		return err
	}
	defer func() { _ = c.close() }()
	rows := map[[2]string]AppMemory{}
	err = r.each(c, func(fields [][]byte) string {
		m := AppMemory{Day: day, Owner: string(c.field(fields, 0)), App: string(c.field(fields, 1))}
		if m.Owner == "" || m.App == "" {
			return checkIDs(m.Owner, m.App)
		}
		n, reason := parseWhole(c.field(fields, 2), "SampleCount", math.MaxInt64)
		if reason != "" {
			return reason
		}
		m.SampleCount = int64(n)
		if m.AverageMB, reason = parseNumber(c.field(fields, 3), "AverageAllocatedMb"); reason != "" {
			return reason
		}
		for i := range m.PercentilesMB {
			v, reason := parseNumber(c.field(fields, 4+i), memoryColumns[4+i])
			if reason != "" {
				return reason
			}
			if i > 0 && v < m.PercentilesMB[i-1] {
				return fmt.Sprintf("%s %v is below %s %v: percentiles must not decrease", memoryColumns[4+i], v, memoryColumns[3+i], m.PercentilesMB[i-1])
			}
			m.PercentilesMB[i] = v
		}
		k := [2]string{m.Owner, m.App}
		if old, ok := rows[k]; !ok || memBetter(m, old) {
			rows[k] = m
		}
		return ""
	})
	for _, m := range rows {
		r.memory = append(r.memory, m)
	}
	return err
}

// memBetter reports whether memory row a should win over its duplicate b.
func memBetter(a, b AppMemory) bool {
	if a.SampleCount != b.SampleCount {
		return a.SampleCount > b.SampleCount
	}
	if a.AverageMB != b.AverageMB {
		return a.AverageMB > b.AverageMB
	}
	for i := range a.PercentilesMB {
		if a.PercentilesMB[i] != b.PercentilesMB[i] {
			return a.PercentilesMB[i] > b.PercentilesMB[i]
		}
	}
	return false
}

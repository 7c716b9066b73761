// Package sequences is the operational sequences file, a format of its
// own with its writer and its reader side by side: `strata export
// sequences` collects samples from the operational state batches of a run
// (Collector, a pipeline.Config.OnBatch) and writes them as Parquet with
// what the file says of itself (Write, Meta); `strata train-lstm` and
// `strata eval --lstm-test` read them back (Read; File.Days and
// File.SplitDays read the days back) into the LSTM's dataset (Dataset).
// One row per sample: the operational row of a function at a tick and the
// newest step of its row at the next tick; the schema metadata keys below
// describe the file.
package sequences

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// The operational sequences file (`strata export sequences`, read by
// `strata train-lstm`): one row per sample, the schema metadata below.
const (
	Format     = "sequences/1"
	KeyFormat  = "strata.format"
	KeySeed    = "strata.seed"
	KeyDays    = "strata.days"
	KeySource  = "strata.source"
	KeySeen    = "strata.samples_seen"
	KeySampled = "strata.sampled"
	KeySkipped = "strata.skipped"
	InputDim   = schemas.OperationalDim // 12 steps × 5 features
	TargetDim  = 3                      // CPU util, memory util, request rate
	// window is how many ticks of rows the exporter keeps waiting for
	// their neighbour; batches arrive in tick order, shards of one tick
	// together.
	window = 64
)

// Sample is one exported sample: the operational row of a function at
// tick Tick and the newest step of its row at Tick+1.
type Sample struct {
	key       uint64
	Tick      int64
	App, Func string
	Input     [InputDim]float32
	Target    [TargetDim]float32
}

// less orders samples by key, ties by (tick, app, func).
func (s *Sample) less(o *Sample) bool {
	if s.key != o.key {
		return s.key < o.key
	}
	return s.ordLess(o)
}

func (s *Sample) ordLess(o *Sample) bool {
	if s.Tick != o.Tick {
		return s.Tick < o.Tick
	}
	if s.App != o.App {
		return s.App < o.App
	}
	return s.Func < o.Func
}

// sampleKey is the reservoir key of a sample: a hash of (seed, tick, app,
// func), so the kept set does not depend on arrival order.
func sampleKey(seed uint64, tick int64, app, fn string) uint64 {
	h := fnv.New64a()
	var b [16]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
		b[8+i] = byte(uint64(tick) >> (8 * i))
	}
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(app))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(fn))
	x := h.Sum64()
	// splitmix64 finaliser.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// sampleHeap is a max-heap by key: the root is the sample to evict.
type sampleHeap []*Sample

func (h sampleHeap) Len() int           { return len(h) }
func (h sampleHeap) Less(i, j int) bool { return h[j].less(h[i]) }
func (h sampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sampleHeap) Push(x any)        { *h = append(*h, x.(*Sample)) }
func (h *sampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// row is what the exporter keeps of one operational row.
type row struct {
	input  [InputDim]float32
	target [TargetDim]float32
	ok     bool // the target's values are all present
}

type fnTick struct {
	shard   int
	app, fn string
	tick    int64
}

// Collector turns operational state batches into samples and keeps a
// seeded sample of them.
type Collector struct {
	mu   sync.Mutex
	seed uint64
	n    int // 0: keep all
	rows map[fnTick]*row
	// maxTick is the newest tick read per shard: a function's batches come
	// from one shard, in tick order, while the shards run at their own
	// pace, so rows are pruned (and found late) per shard.
	maxTick map[int]int64
	// seq rebuilds the sequences from the batches' newest steps.
	seq  schemas.Sequences
	kept sampleHeap
	err  error
	// Seen counts samples built, Skipped those whose target had a missing
	// value, Late rows that arrived after their neighbours were dropped
	// (0 when each shard's batches arrive in tick order), Batches the operational
	// batches read.
	Seen, Skipped, Late, Batches int64
}

// NewCollector keeps a sample of n samples (0: all) seeded with seed.
func NewCollector(seed uint64, n int) *Collector {
	return &Collector{seed: seed, n: n, rows: map[fnTick]*row{}, maxTick: map[int]int64{}}
}

// OnBatch takes a published state batch: it is a pipeline.Config.OnBatch.
func (c *Collector) OnBatch(h schemas.BatchHeader, _ int, data []byte) {
	if h.Layer != schemas.Operational {
		return
	}
	b, err := schemas.DecodeState(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		return
	}
	c.Batches++
	c.seq.Fill(b)
	k, sh := b.Header.Tick, b.Header.Shard
	maxTick, ok := c.maxTick[sh]
	if !ok {
		maxTick = -1
	}
	if k < maxTick-window+2 {
		c.Late += int64(len(b.Operational))
		return
	}
	for i := range b.Operational {
		r := &b.Operational[i]
		sr := &row{}
		copy(sr.input[:], r.Vector())
		const last = schemas.SeqLen - 1
		sr.ok = r.CPUUtil[last].Valid && r.MemoryUtil[last].Valid
		sr.target = [TargetDim]float32{float32(r.CPUUtil[last].V), float32(r.MemoryUtil[last].V), float32(r.RequestRate[last])}
		c.rows[fnTick{sh, r.App, r.Func, k}] = sr
		if prev, ok := c.rows[fnTick{sh, r.App, r.Func, k - 1}]; ok {
			c.pair(k-1, r.App, r.Func, prev, sr)
		}
		if next, ok := c.rows[fnTick{sh, r.App, r.Func, k + 1}]; ok {
			c.pair(k, r.App, r.Func, sr, next)
		}
	}
	if k > maxTick {
		c.maxTick[sh] = k
		for key := range c.rows {
			if key.shard == sh && key.tick < k-window {
				delete(c.rows, key)
			}
		}
	}
}

// pair adds the sample of cur (tick k) and next (tick k+1).
func (c *Collector) pair(k int64, app, fn string, cur, next *row) {
	c.Seen++
	if !next.ok {
		c.Skipped++
		return
	}
	s := &Sample{key: sampleKey(c.seed, k, app, fn), Tick: k, App: app, Func: fn, Input: cur.input, Target: next.target}
	if c.n <= 0 || len(c.kept) < c.n {
		heap.Push(&c.kept, s)
		return
	}
	if s.less(c.kept[0]) {
		c.kept[0] = s
		heap.Fix(&c.kept, 0)
	}
}

// Samples returns the kept samples in (tick, app, func) order, or the
// first error of a batch that did not decode.
func (c *Collector) Samples() ([]*Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	return c.sorted(), nil
}

// sorted returns the kept samples in (tick, app, func) order.
func (c *Collector) sorted() []*Sample {
	out := slices.Clone([]*Sample(c.kept))
	slices.SortFunc(out, func(a, b *Sample) int {
		switch {
		case a.ordLess(b):
			return -1
		case b.ordLess(a):
			return 1
		}
		return 0
	})
	return out
}

// Meta is what a sequences file says of itself, in its schema metadata
// (the keys above; KeyFormat is always Format).
type Meta struct {
	// Seed seeded the sample (KeySeed).
	Seed uint64
	// FirstDay and LastDay are the trace days exported, 1-based inclusive
	// (KeyDays, "first-last").
	FirstDay, LastDay int
	// Source names the trace (KeySource).
	Source string
	// Seen counts the samples built, Skipped those whose target had a
	// missing value (KeySeen, KeySkipped); Write sets KeySampled to the
	// samples it writes.
	Seen, Skipped int64
}

// keys returns the schema metadata of m for a file of sampled samples.
func (m Meta) keys(sampled int) map[string]string {
	return map[string]string{
		KeyFormat: Format, KeySeed: strconv.FormatUint(m.Seed, 10), KeyDays: fmt.Sprintf("%d-%d", m.FirstDay, m.LastDay),
		KeySource: m.Source, KeySeen: strconv.FormatInt(m.Seen, 10), KeySampled: strconv.Itoa(sampled),
		KeySkipped: strconv.FormatInt(m.Skipped, 10),
	}
}

// arrowSchema is the sequences file's schema with meta attached.
func arrowSchema(meta map[string]string) *arrow.Schema {
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
	return arrow.NewSchema([]arrow.Field{
		{Name: "tick", Type: arrow.PrimitiveTypes.Int64},
		{Name: "app", Type: arrow.BinaryTypes.String},
		{Name: "func", Type: arrow.BinaryTypes.String},
		{Name: "input", Type: arrow.FixedSizeListOf(InputDim, arrow.PrimitiveTypes.Float32)},
		{Name: "target", Type: arrow.FixedSizeListOf(TargetDim, arrow.PrimitiveTypes.Float32)},
	}, &md)
}

// Write writes samples to path as Parquet (zstd, row groups of
// 64Ki rows) with meta in its schema metadata and returns the file size.
func Write(path string, samples []*Sample, meta Meta) (int64, error) {
	sc := arrowSchema(meta.keys(len(samples)))
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCreatedBy("strata"))
	fw, err := pqarrow.NewFileWriter(sc, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	mem := memory.NewGoAllocator()
	const group = 1 << 16
	for off := 0; off < len(samples) || off == 0; off += group {
		part := samples[off:min(off+group, len(samples))]
		rb := array.NewRecordBuilder(mem, sc)
		ticks := rb.Field(0).(*array.Int64Builder)
		apps := rb.Field(1).(*array.StringBuilder)
		fns := rb.Field(2).(*array.StringBuilder)
		in := rb.Field(3).(*array.FixedSizeListBuilder)
		inv := in.ValueBuilder().(*array.Float32Builder)
		tg := rb.Field(4).(*array.FixedSizeListBuilder)
		tgv := tg.ValueBuilder().(*array.Float32Builder)
		for _, s := range part {
			ticks.Append(s.Tick)
			apps.Append(s.App)
			fns.Append(s.Func)
			in.Append(true)
			inv.AppendValues(s.Input[:], nil)
			tg.Append(true)
			tgv.AppendValues(s.Target[:], nil)
		}
		rec := rb.NewRecordBatch()
		rb.Release()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			return 0, fmt.Errorf("writing %s: %w", path, err)
		}
		if len(samples) == 0 {
			break
		}
	}
	if err := fw.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// File is a sequences file read back: its samples with their ticks and
// its schema metadata.
type File struct {
	Ticks   []int64
	Apps    []string
	Funcs   []string
	Samples []lstm.Sample
	Meta    map[string]string
}

// float32Values returns the flat float32 values of a fixed-size list or
// list column chunk and checks that every row holds width of them.
func float32Values(a arrow.Array, width int) ([]float32, error) {
	var vals arrow.Array
	switch c := a.(type) {
	case *array.FixedSizeList:
		vals = array.NewSlice(c.ListValues(), int64(c.Offset()*width), int64((c.Offset()+c.Len())*width))
	case *array.List:
		off := c.Offsets()
		for i := 0; i < c.Len(); i++ {
			if int(off[i+1]-off[i]) != width {
				return nil, fmt.Errorf("row of %d values, want %d", off[i+1]-off[i], width)
			}
		}
		vals = array.NewSlice(c.ListValues(), int64(off[0]), int64(off[c.Len()]))
	default:
		return nil, fmt.Errorf("column of type %s, want a list of float32", a.DataType())
	}
	defer vals.Release()
	f, ok := vals.(*array.Float32)
	if !ok {
		return nil, fmt.Errorf("list values of type %s, want float32", vals.DataType())
	}
	if f.Len() != a.Len()*width {
		return nil, fmt.Errorf("%d values for %d rows of %d", f.Len(), a.Len(), width)
	}
	return append([]float32(nil), f.Float32Values()...), nil
}

// Read reads a sequences file written by `strata export
// sequences`.
func Read(ctx context.Context, path string) (*File, error) {
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer func() { _ = rdr.Close() }()
	out := &File{Meta: map[string]string{}}
	for _, kv := range rdr.MetaData().KeyValueMetadata() {
		if kv.Value != nil {
			out.Meta[kv.Key] = *kv.Value
		}
	}
	if out.Meta[KeyFormat] != Format {
		return nil, fmt.Errorf("reading %s: %s is %q, want %q", path, KeyFormat, out.Meta[KeyFormat], Format)
	}
	mem := memory.NewGoAllocator()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, mem)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer tbl.Release()
	col := func(name string) (*arrow.Chunked, error) {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("reading %s: no column %q", path, name)
		}
		return tbl.Column(idx[0]).Data(), nil
	}
	cols := map[string]*arrow.Chunked{}
	for _, n := range []string{"tick", "app", "func", "input", "target"} {
		c, err := col(n)
		if err != nil {
			return nil, err
		}
		cols[n] = c
	}
	n := int(tbl.NumRows())
	out.Ticks, out.Apps, out.Funcs = make([]int64, 0, n), make([]string, 0, n), make([]string, 0, n)
	out.Samples = make([]lstm.Sample, 0, n)
	for ci := range cols["tick"].Chunks() {
		t, ok1 := cols["tick"].Chunk(ci).(*array.Int64)
		a, ok2 := cols["app"].Chunk(ci).(*array.String)
		f, ok3 := cols["func"].Chunk(ci).(*array.String)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("reading %s: tick, app, func must be int64, string, string", path)
		}
		in, err := float32Values(cols["input"].Chunk(ci), InputDim)
		if err != nil {
			return nil, fmt.Errorf("reading %s: input: %w", path, err)
		}
		tg, err := float32Values(cols["target"].Chunk(ci), TargetDim)
		if err != nil {
			return nil, fmt.Errorf("reading %s: target: %w", path, err)
		}
		for i := 0; i < t.Len(); i++ {
			out.Ticks = append(out.Ticks, t.Value(i))
			out.Apps = append(out.Apps, a.Value(i))
			out.Funcs = append(out.Funcs, f.Value(i))
			var s lstm.Sample
			copy(s.Seq[:], in[i*InputDim:])
			copy(s.Target[:], tg[i*TargetDim:])
			out.Samples = append(out.Samples, s)
		}
	}
	if len(out.Samples) != n {
		return nil, fmt.Errorf("reading %s: %d rows read of %d (chunks of the columns differ)", path, len(out.Samples), n)
	}
	return out, nil
}

// Days returns the trace days the file holds (KeyDays), 1-based
// inclusive.
func (f *File) Days() (first, last int, err error) {
	v := f.Meta[KeyDays]
	a, b, ok := strings.Cut(v, "-")
	if ok {
		if first, err = strconv.Atoi(a); err == nil {
			last, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || first < 1 || last < first {
		return 0, 0, fmt.Errorf("%s %q: want FIRST-LAST, 1-based", KeyDays, v)
	}
	return first, last, nil
}

// SplitDays splits the file's samples by trace day: those of days first
// to last (1-based inclusive) and the others.
func (f *File) SplitDays(first, last int) (in, others []lstm.Sample, err error) {
	from, _, err := f.Days()
	if err != nil {
		return nil, nil, err
	}
	for i, s := range f.Samples {
		if d := from + int(f.Ticks[i]/grid.TicksPerDay); d >= first && d <= last {
			in = append(in, s)
		} else {
			others = append(others, s)
		}
	}
	return in, others, nil
}

// Dataset adds the samples to a Dataset (NaN/±Inf ones are rejected and
// counted).
func Dataset(samples []lstm.Sample) (*lstm.Dataset, error) {
	d := &lstm.Dataset{Samples: make([]lstm.Sample, 0, len(samples))}
	for i := range samples {
		if _, err := d.Add(samples[i].Seq[:], samples[i].Target[:]); err != nil {
			return nil, err
		}
	}
	return d, nil
}

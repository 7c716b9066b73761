package main

import (
	"container/heap"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// The operational sequences file (`strata export sequences`, read by
// `strata train-lstm`): one row per sample, the schema metadata below.
const (
	seqFormat     = "sequences/1"
	seqKeyFormat  = "strata.format"
	seqKeySeed    = "strata.seed"
	seqKeyDays    = "strata.days"
	seqKeySource  = "strata.source"
	seqKeySeen    = "strata.samples_seen"
	seqKeySampled = "strata.sampled"
	seqKeySkipped = "strata.skipped"
	seqInputDim   = schemas.OperationalDim // 12 steps × 5 features
	seqTargetDim  = 3                      // CPU util, memory util, request rate
	// seqWindow is how many ticks of rows the exporter keeps waiting for
	// their neighbour; batches arrive in tick order, shards of one tick
	// together.
	seqWindow = 64
)

// seqSample is one exported sample: the operational row of a function at
// tick Tick and the newest step of its row at Tick+1.
type seqSample struct {
	key       uint64
	Tick      int64
	App, Func string
	Input     [seqInputDim]float32
	Target    [seqTargetDim]float32
}

// less orders samples by key, ties by (tick, app, func).
func (s *seqSample) less(o *seqSample) bool {
	if s.key != o.key {
		return s.key < o.key
	}
	return s.ordLess(o)
}

func (s *seqSample) ordLess(o *seqSample) bool {
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
type sampleHeap []*seqSample

func (h sampleHeap) Len() int           { return len(h) }
func (h sampleHeap) Less(i, j int) bool { return h[j].less(h[i]) }
func (h sampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sampleHeap) Push(x any)        { *h = append(*h, x.(*seqSample)) }
func (h *sampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// seqRow is what the exporter keeps of one operational row.
type seqRow struct {
	input  [seqInputDim]float32
	target [seqTargetDim]float32
	ok     bool // the target's values are all present
}

type fnTick struct {
	shard   int
	app, fn string
	tick    int64
}

// seqCollector turns operational state batches into samples and keeps a
// seeded sample of them.
type seqCollector struct {
	mu   sync.Mutex
	seed uint64
	n    int // 0: keep all
	rows map[fnTick]*seqRow
	// maxTick is the newest tick read per shard: a function's batches come
	// from one shard, in tick order, while the shards run at their own
	// pace, so rows are pruned (and found late) per shard.
	maxTick map[int]int64
	kept    sampleHeap
	err     error
	// Seen counts samples built, Skipped those whose target had a missing
	// value, Late rows that arrived after their neighbours were dropped
	// (0 when each shard's batches arrive in tick order), Batches the operational
	// batches read.
	Seen, Skipped, Late, Batches int64
}

func newSeqCollector(seed uint64, n int) *seqCollector {
	return &seqCollector{seed: seed, n: n, rows: map[fnTick]*seqRow{}, maxTick: map[int]int64{}}
}

// onBatch is the pipeline's OnBatch hook.
func (c *seqCollector) onBatch(h schemas.BatchHeader, _ int, data []byte) {
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
	k, sh := b.Header.Tick, b.Header.Shard
	maxTick, ok := c.maxTick[sh]
	if !ok {
		maxTick = -1
	}
	if k < maxTick-seqWindow+2 {
		c.Late += int64(len(b.Operational))
		return
	}
	for i := range b.Operational {
		r := &b.Operational[i]
		sr := &seqRow{}
		copy(sr.input[:], r.Vector())
		const last = schemas.SeqLen - 1
		sr.ok = r.CPUUtil[last].Valid && r.MemoryUtil[last].Valid
		sr.target = [seqTargetDim]float32{float32(r.CPUUtil[last].V), float32(r.MemoryUtil[last].V), float32(r.RequestRate[last])}
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
			if key.shard == sh && key.tick < k-seqWindow {
				delete(c.rows, key)
			}
		}
	}
}

// pair adds the sample of cur (tick k) and next (tick k+1).
func (c *seqCollector) pair(k int64, app, fn string, cur, next *seqRow) {
	c.Seen++
	if !next.ok {
		c.Skipped++
		return
	}
	s := &seqSample{key: sampleKey(c.seed, k, app, fn), Tick: k, App: app, Func: fn, Input: cur.input, Target: next.target}
	if c.n <= 0 || len(c.kept) < c.n {
		heap.Push(&c.kept, s)
		return
	}
	if s.less(c.kept[0]) {
		c.kept[0] = s
		heap.Fix(&c.kept, 0)
	}
}

// samples returns the kept samples in (tick, app, func) order.
func (c *seqCollector) samples() []*seqSample {
	out := slices.Clone([]*seqSample(c.kept))
	slices.SortFunc(out, func(a, b *seqSample) int {
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

// seqArrowSchema is the sequences file's schema with meta attached.
func seqArrowSchema(meta map[string]string) *arrow.Schema {
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
		{Name: "input", Type: arrow.FixedSizeListOf(seqInputDim, arrow.PrimitiveTypes.Float32)},
		{Name: "target", Type: arrow.FixedSizeListOf(seqTargetDim, arrow.PrimitiveTypes.Float32)},
	}, &md)
}

// writeSequences writes samples to path as Parquet (zstd, row groups of
// 64Ki rows) and returns the file size.
func writeSequences(path string, samples []*seqSample, meta map[string]string) (int64, error) {
	sc := seqArrowSchema(meta)
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

// exportUsage lists the exports.
const exportUsage = "Usage: strata export sequences --out FILE.parquet [flags]\n"

// exportMain dispatches `strata export <what>`.
func exportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "export", args, stdout, stderr, exportUsage)
}

// exportSequencesMain runs `strata export sequences`: the closed loop over
// the given days (the operational layer moving-average, docs/agents.md), its
// operational state batches turned into LSTM samples, a seeded sample of
// them written as Parquet.
func exportSequencesMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return exportSequences(ctx, args, stdout, stderr, nil)
}

// exportSequences is exportSequencesMain with the cloud model of model
// (strata train's, for the LSTM's exports) unless args give a config file
// with the model's sections.
func exportSequences(ctx context.Context, args []string, stdout, stderr io.Writer, model *roleConfig) error {
	fs := flag.NewFlagSet("strata export sequences", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf        commonFlags
		sf        sourceFlags
		out       = fs.String("out", "", "write the samples to `FILE`.parquet (required)")
		daysF     = fs.String("days", "1-10", "days of the trace to replay, 1-based inclusive")
		sampleN   = fs.Int("sample", 200_000, "keep a seeded sample of this many samples (0: all)")
		seed      = fs.Uint64("seed", 1, "seed of the sample")
		strategic = fs.String("strategic", pipeline.DefaultStrategicPolicy, "strategic policy during the export: "+policyNames(schemas.Strategic))
		tactical  = fs.String("tactical", pipeline.DefaultTacticalPolicy, "tactical policy during the export: "+policyNames(schemas.Tactical))
		oper      = fs.String("operational", "moving-average", "operational policy during the export: "+policyNames(schemas.Operational))
		defPl     = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		polSeed   = fs.Int64("policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
		lateness  = fs.Duration("allowed-lateness", 600*time.Second, "how far out of start order the trace may be")
	)
	cf.registerBatch(fs)
	sf.registerWith(fs, "trace-seed", 0)
	fs.Lookup("synth-days").Usage = "generate `N` days of synthetic trace when no --trace is given (default: the last of --days)"
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("strata export sequences: --out is required")
	}
	if *sampleN < 0 {
		return errors.New("strata export sequences: --sample must not be negative")
	}
	first, last, err := parseDays(*daysF)
	if err != nil {
		return err
	}
	if sf.trace == "" && sf.synthDays == 0 {
		sf.synthDays = last
	}
	logger, epoch, pl, err := loopBasics(stderr, cf, *defPl)
	if err != nil {
		return err
	}
	fromUS := int64(first-1) * grid.StrategicTickUS
	toUS := int64(last) * grid.StrategicTickUS
	col := newSeqCollector(*seed, *sampleN)
	o := fullSpeedOpts(cf, epoch, lateness.Microseconds(), logger, fmt.Sprintf("export-sequences-%d", time.Now().UnixNano()))
	o.OnBatch = col.onBatch
	if !conf.hasCloud() && model != nil {
		conf = model
	}
	lf := loopFlags{strategic: *strategic, tactical: *tactical, operational: *oper, placement: pl, policySeed: *polSeed, sources: &sf, conf: conf}
	t0 := time.Now()
	_, name, _, err := runWindow(ctx, lf, o, fromUS, toUS, 0)
	if err != nil {
		return fmt.Errorf("exporting sequences: %w", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.err != nil {
		return fmt.Errorf("exporting sequences: %w", col.err)
	}
	samples := col.samples()
	meta := map[string]string{
		seqKeyFormat: seqFormat, seqKeySeed: strconv.FormatUint(*seed, 10), seqKeyDays: fmt.Sprintf("%d-%d", first, last),
		seqKeySource: name, seqKeySeen: strconv.FormatInt(col.Seen, 10), seqKeySampled: strconv.Itoa(len(samples)),
		seqKeySkipped: strconv.FormatInt(col.Skipped, 10),
	}
	size, err := writeSequences(*out, samples, meta)
	if err != nil {
		return err
	}
	late := ""
	if col.Late > 0 {
		late = fmt.Sprintf(", %d late rows dropped", col.Late)
	}
	fmt.Fprintf(stdout, "export sequences: days %d-%d of %s, %d operational batches: %d samples seen, %d sampled (seed %d), %d skipped (missing target)%s; %s, %d bytes, %.1f s wall\n",
		first, last, name, col.Batches, col.Seen, len(samples), *seed, col.Skipped, late, *out, size, time.Since(t0).Seconds())
	return nil
}

package features

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// ActiveWindowUS is how long a function stays active after its latest
// invocation: 4 hours (docs/tick-contract.md).
const ActiveWindowUS int64 = 4 * 3600 * 1_000_000

const (
	tickSeconds = float64(grid.OperationalTickUS) / 1e6
)

// Event is one observed invocation as the windows need it. The optional
// observation fields are valid only when their Has flag is set.
type Event struct {
	// ID is the invocation id; a non-empty id is added at most once while
	// its tick is open (ingest is at-least-once: a retried request re-sends
	// the same ids).
	ID         string
	App, Func  string
	StartUS    int64
	DurationUS int64

	HasLatency  bool
	LatencyMS   float64
	HasCPU      bool
	CPUBusyMS   float64
	HasQueue    bool
	QueueWaitMS float64
	HasMemory   bool
	MemoryUsed  float64 // MB
	MemoryMB    int32   // tier; 0 when unknown
	Instances   int32   // total instances of the pool; 0 when unknown
	HasCold     bool
	Cold        bool
	HasCost     bool
	CostUSD     float64
	HasCarbon   bool
	CarbonG     float64
	Provider    string
	Region      string
}

// ErrLate is wrapped by Partition.Add for an event whose tick has already
// been closed.
var ErrLate = errors.New("event is later than the closed watermark")

// ErrDuplicate is wrapped by Partition.Add for an event whose invocation id
// was already added to a tick that is still open.
var ErrDuplicate = errors.New("invocation id already added")

// stepAcc accumulates one function's invocations starting in one open tick.
type stepAcc struct {
	tick                  int64
	n                     int64
	maxStartUS            int64
	cpuMS, queueMS, memMB float64 // memMB: Σ memory_used_mb × seconds
	cpuN, queueN, memN    int64
	maxInst               int32
	tier                  int32
	idle                  []float64
}

// step is a closed tick of one function.
type step struct {
	tick          int64
	rate          float64
	mem, cpu, que schemas.Value
	concMean      float64
	concPeak      float64
	idle          []float64 // idle times (s) of the step's invocations
}

// span is one invocation's execution [start, end) in trace microseconds.
type span struct{ start, end int64 }

// periodAcc accumulates a function-hour or an app-day.
type periodAcc struct {
	period     int64
	n          int64
	durSumMS   float64
	dur, lat   logHist
	latSum     float64
	latN       int64
	cost       float64
	costN      int64
	carbon     float64
	carbonN    int64
	cold, cldN int64
	cpuS, memS float64 // Σ busy s, Σ MB·s
	cpuN, memN int64
	queueS     float64 // Σ queue-wait seconds
	queueN     int64
	maxInst    int32
	tier       int32
	peakTick   map[int64]int64 // hour: invocations per tick; day: per hour
	funcs      map[string]struct{}
	placement  map[string]int64
	memPeak    float64 // largest memory_used_mb
	// lastProv, lastReg and lastMem are the placement of the last event
	// counted, lastKey its key in placement: a function's events mostly
	// share one, and formatting the key for each was half of add.
	lastProv, lastReg, lastKey string
	lastMem                    int32
}

type funcState struct {
	app, fn  string
	app_     *appState
	closedUS int64 // start of the latest invocation in a closed tick
	closed   bool  // some invocation is in a closed tick
	hasCPU   bool
	hasMem   bool
	hasQueue bool
	open     []*stepAcc // open ticks, unordered, usually one
	// running holds the invocations that may still be in flight in a tick
	// that is not closed yet, for the concurrency sequences.
	running []span
	// maxEnd is the latest end of the function's invocations so far, for
	// idle times; hasEnd is false before the first one.
	maxEnd int64
	hasEnd bool
	ring   [schemas.SeqLen]step
	// sent says the function was in the operational batch of tick
	// sentTick with the telemetry flags sentFlags: its next row carries
	// its newest step only (state schema version 3).
	sent      bool
	sentTick  int64
	sentFlags uint8
	// readerValid and readerLast are NewestValid and LastStartUS of the
	// function's last row sent: what a reader rebuilds a left-out row from
	// (schemas.IdleNewest; state schema version 6).
	readerValid [3]bool
	readerLast  int64
	hours       []*periodAcc
	// prevN is the invocation count of the last emitted hour, for the trend.
	prevN periodCount
	// memPeak is the largest memory_used_mb of the closed hours so far.
	memPeak float64
}

// periodCount is the invocation count of one hour or day.
type periodCount struct{ Period, N int64 }

type appState struct {
	app      string
	closedUS int64
	closed   bool
	days     []*periodAcc
	prevN    periodCount
	// byHour counts the app's invocations of the closed hours so far by
	// UTC hour of day, for its busiest hour.
	byHour [24]int64
	// memPeak is the largest memory_used_mb of the closed days so far.
	memPeak float64
}

// peakHour returns the UTC hour of day with the most invocations (ties to
// the earlier hour), −1 when there were none.
func (a *appState) peakHour() int32 {
	best := int32(-1)
	for h, n := range a.byHour {
		if n > 0 && (best < 0 || n > a.byHour[best]) {
			best = int32(h)
		}
	}
	return best
}

// Partition holds the windows of one Kafka partition (one shard) for one run.
// It is not safe for concurrent use.
type Partition struct {
	runID   string
	shard   int
	nShards int
	epoch   time.Time
	// omitIdle leaves idle rows out of operational batches (state schema
	// version 6); always on but in the test that checks a reader rebuilds
	// them exactly.
	omitIdle bool

	started  bool
	nextTick int64 // every tick < nextTick is closed
	horizon  int64 // watermark seen so far
	final    bool
	// wms aligns the watermarks of several writers (AdvanceFrom).
	wms schemas.Watermarks

	funcs   map[string]*funcState
	order   []*funcState // sorted by (app, func)
	apps    map[string]*appState
	appList []*appState // sorted by app

	late, dup int64

	// ids holds the invocation ids added to the open ticks; closing a tick
	// forgets its ids.
	ids *dedup.Set

	// opRows is reused for the rows of each operational batch; a batch is
	// only valid during the Emit call.
	opRows []schemas.OperationalRow
}

// NewPartition returns empty windows for shard `shard` of nShards of run
// runID; epoch maps trace time 0 to the wall clock (for the hour of day).
func NewPartition(runID string, shard, nShards int, epoch time.Time) *Partition {
	return &Partition{runID: runID, shard: shard, nShards: nShards, epoch: epoch,
		funcs: map[string]*funcState{}, apps: map[string]*appState{},
		ids: dedup.New(), omitIdle: true}
}

// RunID returns the run the partition's windows belong to.
func (p *Partition) RunID() string { return p.runID }

// Late returns the number of events rejected by Add as late.
func (p *Partition) Late() int64 { return p.late }

// Duplicates returns the number of events rejected by Add as duplicates.
func (p *Partition) Duplicates() int64 { return p.dup }

// NextTick returns the first tick that is not closed yet.
func (p *Partition) NextTick() int64 { return p.nextTick }

// Final reports whether the final watermark of the run was seen.
func (p *Partition) Final() bool { return p.final }

// Add records one observed invocation. An event that starts in a tick that is
// already closed is rejected with an error wrapping ErrLate and counted. An
// event with a non-empty ID already added to a tick that is still open is
// rejected with an error wrapping ErrDuplicate and counted; the ids of a
// tick are forgotten when it closes (a duplicate of a closed tick is late).
func (p *Partition) Add(e *Event) error {
	tick := grid.TickOf(e.StartUS, grid.OperationalTickUS)
	if (p.started && tick < p.nextTick) || p.final {
		p.late++
		return fmt.Errorf("%w: %s/%s starts at %.3f s in tick %d, ticks before %d are closed",
			ErrLate, e.App, e.Func, float64(e.StartUS)/1e6, tick, p.nextTick)
	}
	if e.ID != "" {
		if t, added := p.ids.Add(e.ID, tick); !added {
			p.dup++
			return fmt.Errorf("%w: %s of %s/%s, added to tick %d", ErrDuplicate, e.ID, e.App, e.Func, t)
		}
	}
	f := p.function(e.App, e.Func)
	a := f.app_
	// CPU and memory utilisation divide the same busy time (heldSeconds),
	// so their ratio is the memory in use over the tier, the memory need
	// the greedy baselines read. Weighting memory by the trace's duration
	// instead understated it wherever a small tier's CPU share stretches
	// the execution, and left greedy-cost on a tier below the working set.
	heldS := heldSeconds(e)

	s := f.openStep(tick)
	end := e.StartUS + e.DurationUS
	if f.hasEnd {
		s.idle = append(s.idle, float64(max(0, e.StartUS-f.maxEnd))/1e6)
	}
	if !f.hasEnd || end > f.maxEnd {
		f.maxEnd, f.hasEnd = end, true
	}
	f.running = append(f.running, span{e.StartUS, end})
	s.n++
	if s.n == 1 || e.StartUS > s.maxStartUS {
		s.maxStartUS = e.StartUS
	}
	if e.Instances > s.maxInst {
		s.maxInst = e.Instances
	}
	if e.MemoryMB > 0 {
		s.tier = e.MemoryMB
	}
	if e.HasCPU {
		f.hasCPU = true
		s.cpuMS += e.CPUBusyMS
		s.cpuN++
	}
	if e.HasQueue {
		f.hasQueue = true
		s.queueMS += e.QueueWaitMS
		s.queueN++
	}
	if e.HasMemory {
		f.hasMem = true
		s.memMB += e.MemoryUsed * heldS
		s.memN++
	}

	h := f.hourAcc(tick / grid.TicksPerHour)
	h.add(e, tick)
	d := a.dayAcc(tick / grid.TicksPerDay)
	d.add(e, tick/grid.TicksPerHour)
	d.funcs[e.Func] = struct{}{}
	return nil
}

func (pa *periodAcc) add(e *Event, sub int64) {
	pa.n++
	dms := float64(e.DurationUS) / 1e3
	pa.durSumMS += dms
	pa.dur.add(dms)
	pa.peakTick[sub]++
	if e.HasLatency {
		pa.latSum += e.LatencyMS
		pa.latN++
		pa.lat.add(e.LatencyMS)
	}
	if e.HasCost {
		pa.cost += e.CostUSD
		pa.costN++
	}
	if e.HasCarbon {
		pa.carbon += e.CarbonG
		pa.carbonN++
	}
	if e.HasCold {
		pa.cldN++
		if e.Cold {
			pa.cold++
		}
	}
	if e.HasCPU {
		pa.cpuS += e.CPUBusyMS / 1e3
		pa.cpuN++
	}
	if e.HasQueue {
		pa.queueS += e.QueueWaitMS / 1e3
		pa.queueN++
	}
	if e.HasMemory {
		pa.memS += e.MemoryUsed * heldSeconds(e)
		pa.memN++
		pa.memPeak = max(pa.memPeak, e.MemoryUsed)
	}
	if e.Instances > pa.maxInst {
		pa.maxInst = e.Instances
	}
	if e.MemoryMB > 0 {
		pa.tier = e.MemoryMB
	}
	if e.Provider != "" || e.Region != "" || e.MemoryMB > 0 {
		if pa.lastKey == "" || e.Provider != pa.lastProv || e.Region != pa.lastReg || e.MemoryMB != pa.lastMem {
			pa.lastProv, pa.lastReg, pa.lastMem = e.Provider, e.Region, e.MemoryMB
			pa.lastKey = fmt.Sprintf("%s|%s|%d", e.Provider, e.Region, e.MemoryMB)
		}
		pa.placement[pa.lastKey]++
	}
}

// heldSeconds is how long e's invocation held its memory: its busy time on
// the placement (cpu_busy_ms) when the telemetry has it, else the trace's
// duration.
func heldSeconds(e *Event) float64 {
	if e.HasCPU {
		return e.CPUBusyMS / 1e3
	}
	return float64(e.DurationUS) / 1e6
}

func newPeriod(period int64) *periodAcc {
	return &periodAcc{period: period, peakTick: map[int64]int64{}, funcs: map[string]struct{}{}, placement: map[string]int64{}}
}

func (f *funcState) openStep(tick int64) *stepAcc {
	for _, s := range f.open {
		if s.tick == tick {
			return s
		}
	}
	s := &stepAcc{tick: tick}
	f.open = append(f.open, s)
	return s
}

func (f *funcState) hourAcc(hour int64) *periodAcc {
	for _, h := range f.hours {
		if h.period == hour {
			return h
		}
	}
	h := newPeriod(hour)
	f.hours = append(f.hours, h)
	return h
}

func (a *appState) dayAcc(day int64) *periodAcc {
	for _, d := range a.days {
		if d.period == day {
			return d
		}
	}
	d := newPeriod(day)
	a.days = append(a.days, d)
	return d
}

func (p *Partition) function(app, fn string) *funcState {
	k := app + "\x00" + fn
	if f, ok := p.funcs[k]; ok {
		return f
	}
	f := &funcState{app: app, fn: fn, app_: p.app(app)}
	for i := range f.ring {
		f.ring[i].tick = math.MinInt64
	}
	p.funcs[k] = f
	i := sort.Search(len(p.order), func(i int) bool {
		o := p.order[i]
		return o.app > app || (o.app == app && o.fn >= fn)
	})
	p.order = append(p.order, nil)
	copy(p.order[i+1:], p.order[i:])
	p.order[i] = f
	return f
}

func (p *Partition) app(app string) *appState {
	if a, ok := p.apps[app]; ok {
		return a
	}
	a := &appState{app: app}
	p.apps[app] = a
	i := sort.Search(len(p.appList), func(i int) bool { return p.appList[i].app >= app })
	p.appList = append(p.appList, nil)
	copy(p.appList[i+1:], p.appList[i:])
	p.appList[i] = a
	return a
}

// Emit receives each state batch as it is completed. The batch and its rows
// are only valid during the call.
type Emit func(*schemas.StateBatch) error

// Advance moves the partition's watermark to watermarkUS, closing every tick
// that ends at or before it and emitting the state batches that closing
// makes complete, in tick order: for each closed tick k the operational batch
// of tick k+1, then at an hour boundary the tactical batch of the next hour,
// then at a day boundary the strategic batch of the next day. The first call
// also emits the batches of the first tick, hour and day (empty: nothing has
// been observed before them). final marks the end of the run.
func (p *Partition) Advance(watermarkUS int64, final bool, emit Emit) error {
	if !p.started {
		p.started = true
		p.nextTick = grid.TickOf(watermarkUS, grid.OperationalTickUS)
		p.ids.ForgetBefore(p.nextTick) // added before the first watermark; never closed
		if err := p.emitAll(p.nextTick, true, true, emit); err != nil {
			return err
		}
	}
	if watermarkUS > p.horizon {
		p.horizon = watermarkUS
	}
	for (p.nextTick+1)*grid.OperationalTickUS <= watermarkUS {
		k := p.nextTick
		p.closeTick(k)
		p.nextTick = k + 1
		next := k + 1
		if err := p.emitAll(next, next%grid.TicksPerHour == 0, next%grid.TicksPerDay == 0, emit); err != nil {
			return err
		}
	}
	if final {
		p.final = true
	}
	return nil
}

// AdvanceFrom applies a watermark that writer wrote (kafka.Writer: ""
// for a replay's one writer) and advances the partition to the minimum
// over its live writers' (schemas.Watermarks): with several `strata
// ingest` instances a tick closes once each live one has passed it.
func (p *Partition) AdvanceFrom(writer string, watermarkUS int64, final bool, emit Emit) error {
	return p.Advance(p.wms.Advance(writer, watermarkUS), final, emit)
}

// SetWatermarkIdle sets how far, in µs of event time, a writer may fall
// behind the most advanced one before it leaves the set (0: never;
// schemas.Watermarks.IdleUS).
func (p *Partition) SetWatermarkIdle(us int64) { p.wms.IdleUS = us }

func (p *Partition) emitAll(tick int64, hour, day bool, emit Emit) error {
	if err := emit(p.operationalBatch(tick)); err != nil {
		return err
	}
	if hour {
		if err := emit(p.tacticalBatch(tick / grid.TicksPerHour)); err != nil {
			return err
		}
	}
	if day {
		if err := emit(p.strategicBatch(tick / grid.TicksPerDay)); err != nil {
			return err
		}
	}
	return nil
}

// closeTick turns every function's accumulator of tick k into a closed step
// and forgets the tick's invocation ids.
func (p *Partition) closeTick(k int64) {
	p.ids.Forget(k)
	for _, f := range p.order {
		var acc *stepAcc
		for i, s := range f.open {
			if s.tick == k {
				acc = s
				f.open[i] = f.open[len(f.open)-1]
				f.open = f.open[:len(f.open)-1]
				break
			}
		}
		if acc == nil && len(f.running) == 0 {
			continue
		}
		var st step
		if acc != nil {
			st = f.closeStep(acc)
			if !f.closed || acc.maxStartUS > f.closedUS {
				f.closedUS, f.closed = acc.maxStartUS, true
			}
			if a := f.app_; !a.closed || acc.maxStartUS > a.closedUS {
				a.closedUS, a.closed = acc.maxStartUS, true
			}
		} else {
			st = f.emptyStep(k)
		}
		st.concMean, st.concPeak = f.concurrency(k)
		f.ring[k%schemas.SeqLen] = st
	}
}

// concurrency returns the time-averaged and the peak number of the
// function's invocations in flight during tick k, and drops the spans that
// end within it. Every invocation that starts before the tick's end has
// been added when the tick closes (the watermark is exact), so both are
// exact. A zero-duration invocation is in flight at its start instant only.
func (f *funcState) concurrency(k int64) (mean, peak float64) {
	ks, ke := k*grid.OperationalTickUS, (k+1)*grid.OperationalTickUS
	type ev struct {
		t    int64
		kind int8 // 0 end of a span, 1 start, 2 end of a zero-length span
	}
	var evs []ev
	var busy int64
	initial := 0
	keep := f.running[:0]
	for _, sp := range f.running {
		if sp.start >= ke {
			keep = append(keep, sp) // starts in a later tick
			continue
		}
		lo, hi := max(sp.start, ks), min(sp.end, ke)
		if hi > lo {
			busy += hi - lo
		}
		switch {
		case sp.end == sp.start:
			if sp.start >= ks {
				evs = append(evs, ev{sp.start, 1}, ev{sp.start, 2})
			}
		case sp.start < ks:
			if sp.end > ks {
				initial++
				if sp.end < ke {
					evs = append(evs, ev{sp.end, 0})
				}
			}
		default:
			evs = append(evs, ev{sp.start, 1})
			if sp.end < ke {
				evs = append(evs, ev{sp.end, 0})
			}
		}
		if sp.end > ke {
			keep = append(keep, sp)
		}
	}
	clear(f.running[len(keep):])
	f.running = keep
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].kind < evs[j].kind
	})
	cur, top := initial, initial
	for _, e := range evs {
		if e.kind == 1 {
			cur++
			top = max(top, cur)
		} else {
			cur--
		}
	}
	return float64(busy) / float64(grid.OperationalTickUS), float64(top)
}

func (f *funcState) closeStep(s *stepAcc) step {
	st := step{tick: s.tick, rate: float64(s.n) / tickSeconds, idle: s.idle}
	if s.cpuN > 0 && s.maxInst > 0 {
		st.cpu = schemas.Some(s.cpuMS / 1e3 / (float64(s.maxInst) * tickSeconds))
	}
	if s.memN > 0 && s.maxInst > 0 && s.tier > 0 {
		st.mem = schemas.Some(s.memMB / (float64(s.maxInst) * float64(s.tier) * tickSeconds))
	}
	if s.queueN > 0 {
		st.que = schemas.Some(s.queueMS / 1e3 / tickSeconds)
	}
	return st
}

// stepAt returns the closed step of tick t, or the step of a tick with no
// invocations: rate 0 and utilisation 0 where the function's telemetry is
// known to carry the field, missing otherwise.
func (f *funcState) stepAt(t int64) step {
	if s := f.ring[((t%schemas.SeqLen)+schemas.SeqLen)%schemas.SeqLen]; s.tick == t {
		return s
	}
	return f.emptyStep(t)
}

// flags packs what the function's telemetry carries (emptyStep).
func (f *funcState) flags() uint8 {
	var b uint8
	if f.hasCPU {
		b |= 1
	}
	if f.hasMem {
		b |= 2
	}
	if f.hasQueue {
		b |= 4
	}
	return b
}

// emptyStep is the step of a tick in which the function started nothing.
func (f *funcState) emptyStep(t int64) step {
	st := step{tick: t}
	if f.hasCPU {
		st.cpu = schemas.Some(0)
	}
	if f.hasMem {
		st.mem = schemas.Some(0)
	}
	if f.hasQueue {
		st.que = schemas.Some(0)
	}
	return st
}

func (p *Partition) header(l schemas.Layer, tick, tickUS int64) schemas.BatchHeader {
	return schemas.BatchHeader{RunID: p.runID, Layer: l, Tick: tick, TickStartUS: tick * tickUS, Shard: p.shard, NShards: p.nShards}
}

// hourSin returns sin(2π·h/24) for the fractional hour of day at trace time t.
func (p *Partition) hourSin(t int64) float64 {
	w := p.epoch.Add(time.Duration(t) * time.Microsecond)
	h := float64(w.Hour()) + float64(w.Minute())/60 + float64(w.Second())/3600
	return math.Sin(2 * math.Pi * h / 24)
}

func (p *Partition) operationalBatch(tick int64) *schemas.StateBatch {
	b := &schemas.StateBatch{Header: p.header(schemas.Operational, tick, grid.OperationalTickUS)}
	start := tick * grid.OperationalTickUS
	var sins [schemas.SeqLen]float64
	for i := range schemas.SeqLen {
		sins[i] = p.hourSin((tick - schemas.SeqLen + int64(i)) * grid.OperationalTickUS)
	}
	// Version 6: rows a reader can rebuild (an idle newest step) are left
	// out, and functions that left the previous batch's active set come as
	// Left rows, except once every OmitFullEvery ticks.
	b.OmitsIdle, b.HourSin = p.omitIdle && tick%schemas.OmitFullEvery != 0, sins[schemas.SeqLen-1]
	rows := p.opRows[:0]
	for _, f := range p.order {
		inPrev := f.sent && f.sentTick == tick-1 // in this shard's previous batch
		if !f.activeAt(start) {
			if b.OmitsIdle && inPrev {
				rows = append(rows, schemas.OperationalRow{App: f.app, Func: f.fn, Left: true})
			}
			continue
		}
		// Readers keep the sequences (schemas.Sequences): a function that
		// was in this shard's previous batch, under the same telemetry
		// flags (they decide its empty steps), gets its newest step only —
		// or no row, when that step is idle as the reader rebuilds it
		// (checked before the row is built: most rows are).
		flags := f.flags()
		newestOnly := inPrev && f.sentFlags == flags
		if b.OmitsIdle && newestOnly && f.closedUS == f.readerLast {
			if s := f.stepAt(tick - 1); schemas.IdleNewest(s.rate, s.concMean, s.concPeak, len(s.idle), s.mem, s.cpu, s.que, f.readerValid) {
				f.sentTick = tick
				continue
			}
		}
		rows = append(rows, schemas.OperationalRow{App: f.app, Func: f.fn, LastStartUS: f.closedUS, HourSin: sins})
		r := &rows[len(rows)-1]
		if newestOnly {
			r.Steps = 1
		} else {
			f.sentFlags = flags
		}
		f.sent, f.sentTick = true, tick
		// Only the steps the row carries are filled: the encoder writes
		// no others, and a row of one step is the common case.
		first := schemas.SeqLen - 1
		if r.Steps != 1 {
			first = 0
		}
		for i := first; i < schemas.SeqLen; i++ {
			s := f.stepAt(tick - schemas.SeqLen + int64(i))
			r.RequestRate[i] = s.rate
			r.MemoryUtil[i] = s.mem
			r.CPUUtil[i] = s.cpu
			r.QueueDepth[i] = s.que
			r.ConcurrencyMean[i] = s.concMean
			r.ConcurrencyPeak[i] = s.concPeak
			if i == schemas.SeqLen-1 {
				r.Invocations = int64(math.Round(s.rate * tickSeconds))
				r.IdleTimesS = s.idle
			}
		}
		f.readerValid, f.readerLast = schemas.NewestValid(r), r.LastStartUS
	}
	p.opRows = rows
	b.Operational = rows
	return b
}

// activeAt reports whether the function was invoked within ActiveWindowUS
// before trace time t, counting only closed ticks (all ticks before t are
// closed when a batch for t is built).
func (f *funcState) activeAt(t int64) bool {
	return f.closed && f.closedUS >= t-ActiveWindowUS
}

func (a *appState) activeAt(t int64) bool {
	return a.closed && a.closedUS >= t-ActiveWindowUS
}

// takePeriod removes and returns the accumulator of period from accs (nil if
// there is none).
func takePeriod(accs *[]*periodAcc, period int64) *periodAcc {
	for i, pa := range *accs {
		if pa.period == period {
			(*accs)[i] = (*accs)[len(*accs)-1]
			*accs = (*accs)[:len(*accs)-1]
			return pa
		}
	}
	return nil
}

// trend returns ln(1+n) − ln(1+prev) where prev is the count of the period
// before, 0 if that period had none.
func trend(prev periodCount, period, n int64) float64 {
	var pn int64
	if prev.Period == period-1 {
		pn = prev.N
	}
	return math.Log1p(float64(n)) - math.Log1p(float64(pn))
}

// mode returns the most frequent placement key, ties broken by the key.
func mode(m map[string]int64) (provider, region string, tier int32) {
	best, bestN := "", int64(-1)
	for k, n := range m {
		if n > bestN || (n == bestN && k < best) {
			best, bestN = k, n
		}
	}
	if best == "" {
		return "", "", 0
	}
	parts := splitPlacement(best)
	t, _ := strconv.Atoi(parts[2]) // written by add as %d: always an integer
	return parts[0], parts[1], int32(t)
}

func splitPlacement(k string) [3]string {
	var out [3]string
	i := 0
	start := 0
	for j := 0; j < len(k) && i < 2; j++ {
		if k[j] == '|' {
			out[i] = k[start:j]
			i++
			start = j + 1
		}
	}
	out[i] = k[start:]
	return out
}

func ratio(num float64, n int64) schemas.Value {
	if n == 0 {
		return schemas.Value{}
	}
	return schemas.Some(num / float64(n))
}

func sum(v float64, n int64) schemas.Value {
	if n == 0 {
		return schemas.Value{}
	}
	return schemas.Some(v)
}

// utilisation returns Σ resource-seconds ÷ (instances × period seconds ×
// scale), missing when nothing was observed or the instance count is unknown.
func utilisation(num float64, n int64, inst int32, scale float64, seconds float64) schemas.Value {
	if n == 0 || inst <= 0 || scale <= 0 {
		return schemas.Value{}
	}
	return schemas.Some(num / (float64(inst) * scale * seconds))
}

func maxCount(m map[int64]int64) int64 {
	var best int64
	for _, n := range m {
		if n > best {
			best = n
		}
	}
	return best
}

// hourOfDay returns the UTC hour of day at trace time t, as the cloud
// model counts it for the user metro.
func (p *Partition) hourOfDay(t int64) int32 { return int32(cloud.HourOfDayUTC(p.epoch, t)) }

func (p *Partition) tacticalBatch(hour int64) *schemas.StateBatch {
	b := &schemas.StateBatch{Header: p.header(schemas.Tactical, hour, grid.TacticalTickUS)}
	start := hour * grid.TacticalTickUS
	// First the closed hour's history, so that every row sees all of its
	// app's traffic of that hour.
	prev := p.hourOfDay((hour - 1) * grid.TacticalTickUS)
	periods := make([]*periodAcc, len(p.order))
	for i, f := range p.order {
		pa := takePeriod(&f.hours, hour-1)
		periods[i] = pa
		if pa != nil {
			f.memPeak = max(f.memPeak, pa.memPeak)
			f.app_.byHour[prev] += pa.n
		}
	}
	now := p.hourOfDay(start)
	for i, f := range p.order {
		pa := periods[i]
		if !f.activeAt(start) {
			if pa != nil {
				f.prevN = periodCount{hour - 1, pa.n}
			}
			continue
		}
		if pa == nil {
			pa = newPeriod(hour - 1)
		}
		r := schemas.TacticalRow{
			App: f.app, Func: f.fn, Invocations: pa.n,
			RequestRate:   float64(pa.n) / 3600,
			PeakRate:      float64(maxCount(pa.peakTick)) / tickSeconds,
			LatencyMeanMS: ratio(pa.latSum, pa.latN),
			CostUSD:       sum(pa.cost, pa.costN),
			CarbonG:       sum(pa.carbon, pa.carbonN),
			MemoryUtil:    utilisation(pa.memS, pa.memN, pa.maxInst, float64(pa.tier), 3600),
			CPUUtil:       utilisation(pa.cpuS, pa.cpuN, pa.maxInst, 1, 3600),
			ColdStartRate: ratio(float64(pa.cold), pa.cldN),
			Trend:         trend(f.prevN, hour-1, pa.n),
			MemoryPeakMB:  f.memPeak,
			AppPeakHour:   f.app_.peakHour(),
			Hour:          now,
		}
		if pa.n > 0 {
			r.DurationMeanMS = pa.durSumMS / float64(pa.n)
			r.DurationP95MS = pa.dur.quantile(0.95)
		}
		if pa.latN > 0 {
			r.LatencyP95MS = schemas.Some(pa.lat.quantile(0.95))
		}
		if pa.queueN > 0 {
			r.QueueDepth = schemas.Some(pa.queueS / 3600)
		}
		r.Provider, r.Region, r.MemoryMB = mode(pa.placement)
		f.prevN = periodCount{hour - 1, pa.n}
		b.Tactical = append(b.Tactical, r)
	}
	return b
}

func (p *Partition) strategicBatch(day int64) *schemas.StateBatch {
	b := &schemas.StateBatch{Header: p.header(schemas.Strategic, day, grid.StrategicTickUS)}
	start := day * grid.StrategicTickUS
	for _, a := range p.appList {
		pa := takePeriod(&a.days, day-1)
		if pa != nil {
			a.memPeak = max(a.memPeak, pa.memPeak)
		}
		if !a.activeAt(start) {
			if pa != nil {
				a.prevN = periodCount{day - 1, pa.n}
			}
			continue
		}
		if pa == nil {
			pa = newPeriod(day - 1)
		}
		r := schemas.StrategicRow{
			App: a.app, Functions: int32(len(pa.funcs)), Invocations: pa.n,
			RequestRate:   float64(pa.n) / 86400,
			PeakHourRate:  float64(maxCount(pa.peakTick)) / 3600,
			ActiveHours:   int32(len(pa.peakTick)),
			LatencyMeanMS: ratio(pa.latSum, pa.latN),
			CostUSD:       sum(pa.cost, pa.costN),
			CarbonG:       sum(pa.carbon, pa.carbonN),
			ColdStartRate: ratio(float64(pa.cold), pa.cldN),
			CPUUtil:       utilisation(pa.cpuS, pa.cpuN, pa.maxInst, 1, 86400),
			MemoryUtil:    utilisation(pa.memS, pa.memN, pa.maxInst, float64(pa.tier), 86400),
			Trend:         trend(a.prevN, day-1, pa.n),
		}
		if pa.n > 0 {
			r.DurationMeanMS = pa.durSumMS / float64(pa.n)
			r.DurationP95MS = pa.dur.quantile(0.95)
		}
		if pa.latN > 0 {
			r.LatencyP95MS = schemas.Some(pa.lat.quantile(0.95))
		}
		r.Provider, r.Region, r.MemoryMB = mode(pa.placement)
		r.MemoryPeakMB, r.AppPeakHour = a.memPeak, a.peakHour()
		a.prevN = periodCount{day - 1, pa.n}
		b.Strategic = append(b.Strategic, r)
	}
	return b
}

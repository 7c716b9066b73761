package dataset

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

// Constants of the feature definitions (docs/dataset.md).
const (
	// durEWMAAlpha is the weight of the newest duration in dur_ewma_ms.
	durEWMAAlpha = 0.2
	// burstRatio and burstMinRate define the burst flag: rate_1m at least
	// burstRatio times rate_1h and at least burstMinRate per second.
	burstRatio   = 3.0
	burstMinRate = 3.0 / 60
	// histBase is the ratio of consecutive duration-histogram bin edges
	// (2 % bins); histBins their number (edges up to 1.02^1023 ms, far
	// above the trace's longest duration).
	histBase = 1.02
	histBins = 1024
	hourUS   = grid.TacticalTickUS
	dayUS    = grid.StrategicTickUS
)

// rateTau are the time constants of rate_1m, rate_15m and rate_1h in
// seconds.
var rateTau = [3]float64{60, 900, 3600}

// ErrOrder is wrapped by Builder.Add for an invocation out of (start, row)
// order or starting before trace time 0.
var ErrOrder = errors.New("invocation out of order")

// Builder computes the features of a stream of invocations given in
// (start, row) order. Its memory is bounded by the number of functions
// and apps and by the functions' concurrency (their running invocations
// and warm instances), whatever the length of the trace. It is not safe
// for concurrent use.
type Builder struct {
	m      *cloud.Model
	cfg    cloud.Config
	epoch  time.Time
	ren    *renewableSeries
	renOff int64 // epoch − renewable series start, µs
	keepUS int64 // the reference provider's free keep-alive, µs
	fns    map[fnKey]*fnState
	apps   map[string]*appState
	// last is the (start, row) of the invocation added last.
	lastStart, lastRow int64
	added              bool
}

type fnKey struct{ app, fn string }

// appState is what an app's features need of its history: its
// invocations by UTC hour of day, for the user metro.
type appState struct {
	hours [24]float64
}

// fnState is one function's history.
type fnState struct {
	app         *appState
	first       int64 // first start, µs
	n           int64 // invocations so far
	prevStart   int64
	gaps        int64 // inter-arrival times seen, Welford below (seconds)
	gapMean     float64
	gapM2       float64
	rateAt      int64      // start the decayed counts were last updated at
	rateN       [3]float64 // decayed counts at rateAt
	hourOfDay   [24]int64
	hourRing    [25]hourCount
	running     runHeap // started, not yet known to have ended
	ended       int64
	lastDurMS   float64
	ewmaMS      float64
	hist        durHist
	freeAt      []int64 // reference pool: each instance's end of its last execution
	colds       int64
	profile     cloud.Profile
	coldStartMS float64
}

type hourCount struct{ hour, n int64 }

// run is a started invocation of a function: its end, row and duration.
type run struct {
	end, row, dur int64
}

// runHeap is a min-heap of runs by (end, row).
type runHeap []run

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].end != h[j].end {
		return h[i].end < h[j].end
	}
	return h[i].row < h[j].row
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(run)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// NewBuilder returns a Builder over the cloud model m (its catalog,
// configuration and epoch); nil is the default model at grid.DefaultEpoch.
func NewBuilder(m *cloud.Model) (*Builder, error) {
	if m == nil {
		cat, err := cloud.DefaultCatalog()
		if err != nil {
			return nil, fmt.Errorf("creating dataset builder: %w", err)
		}
		if m, err = cloud.NewModel(cat, cloud.DefaultConfig()); err != nil {
			return nil, fmt.Errorf("creating dataset builder: %w", err)
		}
	}
	ren, err := loadRenewable()
	if err != nil {
		return nil, fmt.Errorf("creating dataset builder: %w", err)
	}
	cfg := m.Config()
	return &Builder{
		m: m, cfg: cfg, epoch: cfg.Epoch.UTC(), ren: ren, renOff: cfg.Epoch.Sub(ren.start).Microseconds(),
		keepUS: int64(math.Round(cfg.KeepAliveMin[cfg.ReferenceProvider] * 60e6)),
		fns:    map[fnKey]*fnState{}, apps: map[string]*appState{},
	}, nil
}

// Functions returns the number of functions seen so far.
func (b *Builder) Functions() int { return len(b.fns) }

// Apps returns the number of apps seen so far.
func (b *Builder) Apps() int { return len(b.apps) }

// Add computes the features of in into out and then adds in to the
// history. in must start at or after trace time 0 and come after every
// invocation added before in (start, row) order; otherwise Add returns an
// error wrapping ErrOrder and changes nothing. Every value it writes is
// finite.
func (b *Builder) Add(in replay.Invocation, out *[NumFeatures]float64) error {
	s := in.StartUS()
	if s < 0 {
		return fmt.Errorf("adding row %d: %w: starts at %s s, before trace time 0", in.Row, ErrOrder, replay.FormatSeconds(s))
	}
	if b.added && (s < b.lastStart || s == b.lastStart && in.Row <= b.lastRow) {
		return fmt.Errorf("adding row %d: %w: (start %s s, row %d) is not after (start %s s, row %d)", in.Row, ErrOrder,
			replay.FormatSeconds(s), in.Row, replay.FormatSeconds(b.lastStart), b.lastRow)
	}
	b.lastStart, b.lastRow, b.added = s, in.Row, true
	f := b.state(in.App, in.Func, s)
	b.complete(f, s)
	b.temporal(f, s, out)
	b.workload(f, s, out)
	b.performance(f, s, out)
	b.costCarbon(f, s, out)
	b.record(f, in, s, out[fColdRef] == 1)
	return nil
}

// state returns the function's state, creating it at its first start.
func (b *Builder) state(app, fn string, s int64) *fnState {
	k := fnKey{app, fn}
	if f, ok := b.fns[k]; ok {
		return f
	}
	a, ok := b.apps[app]
	if !ok {
		a = &appState{}
		b.apps[app] = a
	}
	prof := b.m.Profile(app, fn)
	f := &fnState{app: a, first: s, profile: prof, coldStartMS: b.m.ColdStartMS(b.cfg.ReferenceProvider, prof.Runtime)}
	b.fns[k] = f
	return f
}

// complete takes the function's invocations that ended by s out of the
// running set, in (end, row) order, into its duration statistics.
func (b *Builder) complete(f *fnState, s int64) {
	for len(f.running) > 0 && f.running[0].end <= s {
		r := heap.Pop(&f.running).(run)
		d := float64(r.dur) / 1000
		f.lastDurMS = d
		if f.ended == 0 {
			f.ewmaMS = d
		} else {
			f.ewmaMS += durEWMAAlpha * (d - f.ewmaMS)
		}
		f.ended++
		f.hist.add(d)
	}
}

func (b *Builder) temporal(f *fnState, s int64, out *[NumFeatures]float64) {
	wall := b.epoch.Add(time.Duration(s) * time.Microsecond)
	h, mi, sec := wall.Clock()
	sod := float64(h*3600+mi*60+sec) + float64(wall.Nanosecond())/1e9
	dow := int(wall.Weekday())
	out[fHour] = float64(h)
	out[fMinute] = float64(mi)
	out[fDow] = float64(dow)
	out[fWeekend] = 0
	if dow == 0 || dow == 6 {
		out[fWeekend] = 1
	}
	out[fHourSin] = math.Sin(2 * math.Pi * sod / 86400)
	out[fHourCos] = math.Cos(2 * math.Pi * sod / 86400)
	w := 2 * math.Pi * (float64(dow)*86400 + sod) / 604800
	out[fWeekSin] = math.Sin(w)
	out[fWeekCos] = math.Cos(w)
	out[fTickOffset] = float64(s%grid.OperationalTickUS) / 1e6
	out[fFuncAge] = float64(s-f.first) / float64(hourUS)
	out[fHourShare] = 0
	if f.n > 0 {
		out[fHourShare] = float64(f.hourOfDay[h]) / float64(f.n)
	}
	out[fSameHourYesterday] = 0
	if y := s/hourUS - 24; y >= 0 {
		if c := f.hourRing[y%25]; c.hour == y {
			out[fSameHourYesterday] = float64(c.n)
		}
	}
}

func (b *Builder) workload(f *fnState, s int64, out *[NumFeatures]float64) {
	out[fNPrev] = float64(f.n)
	if f.n == 0 {
		out[fIAT] = float64(s) / 1e6
	} else {
		gap := float64(s-f.prevStart) / 1e6
		out[fIAT] = gap
		// Welford over the gaps, this one included.
		f.gaps++
		d := gap - f.gapMean
		f.gapMean += d / float64(f.gaps)
		f.gapM2 += d * (gap - f.gapMean)
	}
	dt := float64(s-f.rateAt) / 1e6
	for i, tau := range rateTau {
		out[fRate1m+i] = f.rateN[i] * math.Exp(-dt/tau) / tau
	}
	out[fIATCV], out[fBurstiness] = 0, 0
	if f.gaps >= 2 {
		mu, sigma := f.gapMean, math.Sqrt(max(f.gapM2, 0)/float64(f.gaps))
		if mu > 0 {
			out[fIATCV] = sigma / mu
		}
		if sigma+mu > 0 {
			out[fBurstiness] = (sigma - mu) / (sigma + mu)
		}
	}
	out[fBurst] = 0
	if r1, rh := out[fRate1m], out[fRate1h]; r1 >= burstRatio*rh && r1 >= burstMinRate {
		out[fBurst] = 1
	}
}

func (b *Builder) performance(f *fnState, s int64, out *[NumFeatures]float64) {
	out[fDurLast], out[fDurEWMA], out[fDurP50], out[fDurP95] = 0, 0, 0, 0
	if f.ended > 0 {
		out[fDurLast] = f.lastDurMS
		out[fDurEWMA] = f.ewmaMS
		out[fDurP50] = f.hist.quantile(0.5)
		out[fDurP95] = f.hist.quantile(0.95)
	}
	inflight := len(f.running)
	out[fInflight] = float64(inflight)
	// The reference pool: drop the instances whose keep-alive ran out,
	// then look for the most recently freed idle one.
	live := f.freeAt[:0]
	for _, t := range f.freeAt {
		if t+b.keepUS > s { // busy, or idle within its keep-alive
			live = append(live, t)
		}
	}
	f.freeAt = live
	out[fColdRef] = 1
	for _, t := range f.freeAt {
		if t <= s {
			out[fColdRef] = 0
			break
		}
	}
	out[fColdRateRef] = 1
	if f.n > 0 {
		out[fColdRateRef] = float64(f.colds) / float64(f.n)
	}
	out[fColdStartRef] = f.coldStartMS
	out[fSLO] = max(b.cfg.SLOFloorMS, b.cfg.SLOMultiplier*out[fDurP95]) + b.cfg.SLONetworkAllowanceMS
	out[fQueueDepth] = float64(max(0, inflight-b.cfg.MaxInstances))
}

// tier1024, tier128 and tier3008 are the memory tiers the cost features
// name.
const (
	tier128  cloud.Tier = 0
	tier1024 cloud.Tier = 3
	tier3008 cloud.Tier = 5
)

func (b *Builder) costCarbon(f *fnState, s int64, out *[NumFeatures]float64) {
	m := b.m
	user := m.UserMetro(f.app.hours)
	refUS := int64(math.Round(out[fDurEWMA] * 1000))
	cost := func(p cloud.Provider, t cloud.Tier) float64 {
		pl := cloud.Placement{Provider: p, Metro: user, Tier: t}
		return m.InvocationCostUSD(pl, m.ExecUS(pl, f.profile, refUS), false)
	}
	minCost := math.Inf(1)
	c128, c3008 := math.Inf(1), math.Inf(1)
	for p := range cloud.Provider(cloud.NumProviders) {
		c := cost(p, tier1024)
		out[fCostAWS+int(p)] = c
		minCost = min(minCost, c)
		c128 = min(c128, cost(p, tier128))
		c3008 = min(c3008, cost(p, tier3008))
		out[fKeepWarmAWS+int(p)] = m.KeepWarmUSDPerHour(cloud.Placement{Provider: p, Metro: user, Tier: tier1024})
	}
	out[fCost128], out[fCost3008] = c128, c3008
	out[fHourCost] = out[fRate1h] * 3600 * minCost

	ciMin := math.Inf(1)
	for p := range cloud.Provider(cloud.NumProviders) {
		for mt := range cloud.Metro(cloud.NumMetros) {
			ci := m.IntensityGPerKWh(p, mt, s)
			ciMin = min(ciMin, ci)
			if p == cloud.Azure {
				out[fCIUSEast+int(mt)] = ci
			}
		}
	}
	out[fCIMin] = ciMin
	ref := cloud.Placement{Provider: b.cfg.ReferenceProvider, Metro: user, Tier: b.cfg.ReferenceTier}
	util := b.cfg.CarbonUtilisation
	if b.cfg.CarbonUtilisationFromProfile {
		util = f.profile.CPUBoundFraction
	}
	out[fCarbonRef] = m.CarbonG(ref, float64(m.ExecUS(ref, f.profile, refUS))/1e6, util, s)
	row := &b.ren.pct[b.ren.hour(b.renOff+s)]
	out[fRenewableUser] = row[metroZone[user]]
	out[fRenewableMax] = 0
	for _, v := range row {
		out[fRenewableMax] = max(out[fRenewableMax], v)
	}
}

// record adds in to the function's and app's history after its features
// were computed.
func (b *Builder) record(f *fnState, in replay.Invocation, s int64, cold bool) {
	dt := float64(s-f.rateAt) / 1e6
	for i, tau := range rateTau {
		f.rateN[i] = f.rateN[i]*math.Exp(-dt/tau) + 1
	}
	f.rateAt = s
	h := b.epoch.Add(time.Duration(s) * time.Microsecond).Hour()
	f.hourOfDay[h]++
	f.app.hours[h]++
	hr := s / hourUS
	if c := &f.hourRing[hr%25]; c.hour != hr {
		*c = hourCount{hour: hr}
	}
	f.hourRing[hr%25].n++
	f.n++
	f.prevStart = s
	end := s + max(in.DurationUS, 0)
	heap.Push(&f.running, run{end: end, row: in.Row, dur: max(in.DurationUS, 0)})
	if cold {
		f.colds++
		f.freeAt = append(f.freeAt, end)
		return
	}
	// Warm: the most recently freed idle instance runs it.
	best := -1
	for i, t := range f.freeAt {
		if t <= s && (best < 0 || t > f.freeAt[best]) {
			best = i
		}
	}
	f.freeAt[best] = end
}

// durHist is a log-binned histogram of durations in ms with a Fenwick
// tree over its bins, so a quantile costs O(log bins). Bin 0 holds
// durations under 1 ms; bin k ≥ 1 holds [histBase^(k−1), histBase^k) ms.
type durHist struct {
	tree []int32 // Fenwick tree, 1-based, histBins long; nil until the first add
	n    int64
}

var logHistBase = math.Log(histBase)

func histBin(ms float64) int {
	if ms < 1 {
		return 0
	}
	return min(int(math.Log(ms)/logHistBase)+1, histBins-1)
}

func (h *durHist) add(ms float64) {
	if h.tree == nil {
		h.tree = make([]int32, histBins+1)
	}
	for i := histBin(ms) + 1; i <= histBins; i += i & -i {
		h.tree[i]++
	}
	h.n++
}

// quantile returns the nearest-rank q-quantile: the geometric centre of
// the bin holding the ⌈q·n⌉-th smallest duration (0 for bin 0).
func (h *durHist) quantile(q float64) float64 {
	r := int32(max(math.Ceil(q*float64(h.n)), 1))
	pos := 0
	for step := histBins; step > 0; step >>= 1 {
		if next := pos + step; next <= histBins && h.tree[next] < r {
			pos = next
			r -= h.tree[next]
		}
	}
	// pos is the number of bins before the one holding the rank.
	if pos == 0 {
		return 0
	}
	return math.Pow(histBase, float64(pos)-0.5)
}

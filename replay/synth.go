package replay

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
)

// Population constants of the synthetic trace, taken from the published
// statistics of the full Azure Functions 2021 trace (testdata/azure2021/STATS.md).
const (
	// SynthPopulationApps is the number of applications in the full synthetic
	// population, as in the real trace.
	SynthPopulationApps = 119
	// SynthPopulationFunctions is the number of (app, function) pairs in the
	// full synthetic population, as in the real trace.
	SynthPopulationFunctions = 424
	// SynthReferenceInvocations is the expected number of invocations of the
	// full population over SynthReferenceDays days, the row count of the
	// real trace.
	SynthReferenceInvocations = 1_980_951
	// SynthReferenceDays is the length of the real trace in days.
	SynthReferenceDays = 14
	// SynthMaxDurationUS is the longest duration the generator emits: the
	// real trace's maximum, 578.62 s.
	SynthMaxDurationUS = 578_620_000
)

// maxSynthDays bounds SynthConfig.Days (ten years) so trace time stays far
// from overflowing.
const maxSynthDays = 3650

// ErrSynthConfig is returned (wrapped) by NewSynth for an invalid SynthConfig.
var ErrSynthConfig = errors.New("invalid synthetic trace config")

// SynthConfig configures the synthetic trace generator.
type SynthConfig struct {
	// Days is the length of the trace in days (at least 1). Day 0 is a
	// Sunday, like the first day of the Azure 2021 trace.
	Days int
	// Seed selects the realisation; the same (Days, Seed, Apps) always gives
	// the same trace.
	Seed int64
	// Apps keeps a deterministic subset of that many applications of the
	// 119-application population; 0 keeps all of them. The subset always
	// holds the busiest application and, from 2 on, the timer-driven one.
	Apps int
	// Scale repeats the population: each application kept is generated
	// Scale times, copy c > 0 under ids of its own and with a random
	// stream of its own (0 and 1: once). A trace of Scale× the apps,
	// functions and invocations with the same mix, for capacity
	// measurements (docs/capacity.md); copy 0 is the trace without Scale.
	Scale int
}

// maxSynthScale bounds SynthConfig.Scale.
const maxSynthScale = 1000

// Synth is a seeded, deterministic synthetic trace calibrated to the
// published statistics of the Azure Functions 2021 trace. It implements
// [Source]: invocations come out in non-decreasing start time, numbered
// from 1, and Next returns io.EOF after the last one. Each application is
// generated lazily one hour at a time and the applications are merged by
// start time, so memory stays bounded whatever the length of the trace.
// The model is described in docs/synthetic.md.
type Synth struct {
	apps appHeap
	row  int64
}

// NewSynth returns a generator for cfg.
func NewSynth(cfg SynthConfig) (*Synth, error) {
	if cfg.Days < 1 || cfg.Days > maxSynthDays {
		return nil, fmt.Errorf("checking days %d (want 1..%d): %w", cfg.Days, maxSynthDays, ErrSynthConfig)
	}
	if cfg.Apps < 0 || cfg.Apps > SynthPopulationApps {
		return nil, fmt.Errorf("checking apps %d (want 0..%d): %w", cfg.Apps, SynthPopulationApps, ErrSynthConfig)
	}
	if cfg.Scale < 0 || cfg.Scale > maxSynthScale {
		return nil, fmt.Errorf("checking scale %d (want 0..%d): %w", cfg.Scale, maxSynthScale, ErrSynthConfig)
	}
	pop := buildPopulation(cfg.Seed)
	keep := selectApps(cfg.Apps)
	s := &Synth{}
	for c := range max(cfg.Scale, 1) {
		for _, idx := range keep {
			spec := pop[idx]
			if c > 0 {
				spec = spec.copyOf(cfg.Seed, c)
			}
			stream := uint64(c*SynthPopulationApps+idx+1) * 0x9E3779B97F4A7C15
			g := &appGen{
				spec: spec,
				days: cfg.Days,
				rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), stream)),
				hour: 24,
				day:  -1,
			}
			g.initChain()
			if g.fill() {
				s.apps = append(s.apps, g)
			}
		}
	}
	heap.Init(&s.apps)
	return s, nil
}

// Next returns the next invocation in start-time order, or io.EOF at the end
// of the trace.
func (s *Synth) Next() (Invocation, error) {
	if len(s.apps) == 0 {
		return Invocation{}, io.EOF
	}
	g := s.apps[0]
	ev := g.buf[g.pos]
	g.pos++
	if g.pos < len(g.buf) || g.fill() {
		heap.Fix(&s.apps, 0)
	} else {
		heap.Pop(&s.apps)
	}
	s.row++
	return Invocation{
		App:        g.spec.id,
		Func:       g.spec.funcs[ev.fn],
		EndUS:      ev.start + ev.dur,
		DurationUS: ev.dur,
		Row:        s.row,
	}, nil
}

// ---------------------------------------------------------------------------
// Population: per-application volume, functions, arrival and duration models.

// appSpec is the fixed model of one application.
type appSpec struct {
	index   int // rank by expected volume, 0 = busiest
	id      string
	funcs   []string
	funcCum []float64 // cumulative function weights (non-timer functions)
	count   float64   // expected invocations over SynthReferenceDays, timer included
	timer   bool      // function 0 fires every 60 s
	mask    []bool    // active days of the reference fortnight; nil = all
	onMean  float64   // mean ON period, seconds
	offMean float64   // mean OFF period, seconds
	batch   float64   // mean batch size (geometric)
	gap     float64   // mean gap inside a batch, seconds
	hourK   float64   // gamma shape of the hour-to-hour volume noise
	durCum  [nDurSeg]float64
}

// topRates are the published per-second rates of the ten busiest apps,
// used as relative weights within the top-5 and top-6..10 groups.
var topRates = [10]float64{0.44, 0.27, 0.25, 0.12, 0.10, 0.06, 0.05, 0.03, 0.03, 0.03}

// tailAnchors give the shape (rank → relative volume, log-linear in
// between) of ranks 11..119; each group is then scaled to its published
// share. ASSUMED shape, anchored on: 12 apps above 1/min, median app 415
// invocations, 42 apps under 100.
var tailAnchors = [][2]float64{
	{10, 28000}, {11, 22000}, {12, 19000}, {19, 11000}, {29, 5200},
	{49, 1100}, {59, 415}, {76, 100}, {118, 5},
}

// groupShares are the published cumulative shares (top 1/5/10/20/50/119).
var groupShares = []struct {
	end   int
	share float64
}{{1, 0.270}, {5, 0.723}, {10, 0.839}, {20, 0.925}, {50, 0.994}, {119, 1.0}}

// timerApp is the rank of the timer-driven application.
const timerApp = 10

// idleMasks give four of the top-10 apps activity on only some days of the
// fortnight (STATS.md: 4 of the top 10 have no invocation on 7-10 days).
// ASSUMED: which apps and which days.
var idleMasks = map[int][]int{
	3: {1, 2, 3, 4, 8, 9},      // idle 8 days
	5: {2, 3, 4, 10, 11},       // idle 9 days
	7: {1, 3, 5, 8, 9, 11, 12}, // idle 7 days
	8: {3, 4, 10, 12},          // idle 10 days
}

// dayWeights is the relative volume of each day of the reference fortnight
// (day 0 = Sunday). ASSUMED shape fitted so that the aggregate first
// Wednesday is ~6.2x the first Saturday and the second week is flatter.
var dayWeights = [SynthReferenceDays]float64{
	0.55, 1.25, 1.45, 1.75, 1.40, 1.10, 0.38,
	0.65, 1.00, 1.05, 1.05, 1.00, 0.95, 0.72,
}

// hourWeights is the relative volume by hour of day. ASSUMED shape: low
// in the early morning, rising through the afternoon, peaking in the
// evening, with a max/min ratio of ~3.2 as published.
var hourWeights = [24]float64{
	0.70, 0.60, 0.55, 0.53, 0.54, 0.58, 0.65, 0.75,
	0.85, 0.95, 1.02, 1.08, 1.12, 1.16, 1.20, 1.25,
	1.32, 1.42, 1.55, 1.66, 1.70, 1.55, 1.20, 0.90,
}

// funcCounts is the number of functions of each app, before shuffling:
// 55 single-function apps, median 2, three apps above 15, max 29, 424 in all.
var funcCounts = func() []int {
	var c []int
	add := func(n, k int) {
		for range n {
			c = append(c, k)
		}
	}
	add(55, 1)
	add(14, 2)
	add(12, 3)
	add(10, 4)
	add(8, 5)
	add(6, 7)
	add(5, 8)
	add(3, 13)
	add(3, 12)
	c = append(c, 17, 22, 29)
	return c
}()

// expectedCounts returns the expected 14-day volume of every rank.
func expectedCounts() []float64 {
	w := make([]float64, SynthPopulationApps)
	copy(w, topRates[:])
	for r := 10; r < SynthPopulationApps; r++ {
		for i := 1; i < len(tailAnchors); i++ {
			a, b := tailAnchors[i-1], tailAnchors[i]
			if float64(r) <= b[0] {
				f := (float64(r) - a[0]) / (b[0] - a[0])
				w[r] = math.Exp(math.Log(a[1]) + f*(math.Log(b[1])-math.Log(a[1])))
				break
			}
		}
	}
	counts := make([]float64, SynthPopulationApps)
	start, prev := 0, 0.0
	for _, g := range groupShares {
		sum := 0.0
		for r := start; r < g.end; r++ {
			sum += w[r]
		}
		for r := start; r < g.end; r++ {
			counts[r] = w[r] / sum * (g.share - prev) * SynthReferenceInvocations
		}
		start, prev = g.end, g.share
	}
	return counts
}

// Duration model: a global quantile function durQ, piecewise log-linear
// through durAnchors, maps u in [0,1) to seconds. Each app draws u from its
// own mixture over the segments of durSegs (uniform within a segment). The
// mixtures are balanced so that their volume-weighted average is uniform,
// which makes the pooled distribution exactly durQ while apps differ.
const nDurSeg = 7

// durSegs are the segment boundaries in u: zero, 1 ms floor, fast (<100 ms),
// sub-second, seconds (to p95), slow (to p99), long.
var durSegs = [nDurSeg + 1]float64{0, 0.086, 0.333, 0.621, 0.874, 0.95, 0.99, 1}

// durAnchors are (u, seconds) points of the quantile function above the
// floor segment. From STATS.md (all rows, zeros included): 8.6% zero, 27%
// of non-zero at 1 ms, 33.5%/58.5% of non-zero under 10/100 ms, p50 31 ms,
// 13.8% of non-zero over 1 s, p95 14.416 s, 1.5% of non-zero over 60 s,
// p99 72.2 s, max 578.62 s. The p99.9 anchor (200 s) is ASSUMED, chosen to
// bring the mean to 3.35 s.
var durAnchors = [][2]float64{
	{0.333, 0.0015}, {0.392, 0.010}, {0.50, 0.031}, {0.621, 0.100},
	{0.874, 1.0}, {0.95, 14.416}, {0.9863, 60}, {0.99, 72.2},
	{0.999, 200}, {1, 578.62},
}

// durArchetypes are ASSUMED per-app duration profiles (weights per segment).
var durArchetypes = [][nDurSeg]float64{
	{0.10, 0.45, 0.30, 0.12, 0.02, 0.005, 0.001},   // trivial handlers near the floor
	{0.08, 0.20, 0.35, 0.28, 0.07, 0.015, 0.003},   // web/API
	{0.05, 0.05, 0.12, 0.30, 0.30, 0.130, 0.030},   // batch
	{0.02, 0.02, 0.04, 0.12, 0.30, 0.300, 0.200},   // long jobs
	{0.30, 0.60, 0.08, 0.015, 0.004, 0.001, 0.001}, // near-empty
}

// busiestDurations is the fixed mixture of the two busiest apps, which
// balanceDurations leaves alone: mean ~2.7 s, so that they hold ~35% of the
// busy time (sum of durations) with 44% of the invocations, as published.
var busiestDurations = [nDurSeg]float64{0.086, 0.26, 0.30, 0.246, 0.07, 0.03, 0.008}

// durQ is the global duration quantile function, in seconds.
func durQ(u float64) float64 {
	switch {
	case u < durSegs[1]:
		return 0
	case u < durSegs[2]:
		return 0.001
	}
	for i := 1; i < len(durAnchors); i++ {
		a, b := durAnchors[i-1], durAnchors[i]
		if u <= b[0] {
			f := (u - a[0]) / (b[0] - a[0])
			return math.Exp(math.Log(a[1]) + f*(math.Log(b[1])-math.Log(a[1])))
		}
	}
	return durAnchors[len(durAnchors)-1][1]
}

func hexID(parts ...any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(sum[:])
}

// copyOf returns copy c of the app model sp: the same model under app and
// function ids of its own.
func (sp *appSpec) copyOf(seed int64, c int) *appSpec {
	cp := *sp
	cp.id = hexID("strata-synth/app/", seed, "/", sp.index, "/copy/", c)
	cp.funcs = make([]string, len(sp.funcs))
	for j := range cp.funcs {
		cp.funcs[j] = hexID("strata-synth/func/", seed, "/", sp.index, "/", j, "/copy/", c)
	}
	return &cp
}

// buildPopulation returns the 119 app models for seed.
func buildPopulation(seed int64) []*appSpec {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xD1B54A32D192ED03))
	counts := expectedCounts()
	// Busier apps tend to have more functions: rank apps by log volume plus
	// noise (ASSUMED log-sd 2) and hand out the function counts in that
	// order, largest first.
	order := make([]int, SynthPopulationApps)
	key := make([]float64, SynthPopulationApps)
	for i := range order {
		order[i] = i
		key[i] = math.Log(counts[i]) + 2*rng.NormFloat64()
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(key[b], key[a]) })
	sorted := slices.Clone(funcCounts)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	fc := make([]int, SynthPopulationApps)
	for k, i := range order {
		fc[i] = sorted[k]
	}
	if fc[timerApp] < 3 {
		j := slices.IndexFunc(fc, func(n int) bool { return n >= 3 })
		fc[timerApp], fc[j] = fc[j], fc[timerApp]
	}
	pop := make([]*appSpec, SynthPopulationApps)
	durW := make([][nDurSeg]float64, SynthPopulationApps)
	for i := range pop {
		sp := &appSpec{
			index: i,
			id:    hexID("strata-synth/app/", seed, "/", i),
			count: counts[i],
			timer: i == timerApp,
		}
		for j := range fc[i] {
			sp.funcs = append(sp.funcs, hexID("strata-synth/func/", seed, "/", i, "/", j))
		}
		first := 0
		if sp.timer {
			first = 1
		}
		cum := 0.0
		for j := first; j < len(sp.funcs); j++ {
			cum += 1 / math.Pow(float64(j-first+1), 1.5)
			sp.funcCum = append(sp.funcCum, cum)
		}
		if days, ok := idleMasks[i]; ok {
			sp.mask = make([]bool, SynthReferenceDays)
			for _, d := range days {
				sp.mask[d] = true
			}
		}
		rate := counts[i] / (SynthReferenceDays * 86400)
		if i < 10 {
			// Busiest apps: ON/OFF cycles of ~15 min, ON a fraction onFrac
			// of the time, large batches.
			onFrac := []float64{0.42, 0.40, 0.40, 0.40, 0.35, 0.30, 0.30, 0.22, 0.20, 0.16}[i]
			sp.onMean = 900 * (0.7 + 0.6*rng.Float64())
			sp.offMean = sp.onMean * (1 - onFrac) / onFrac
			sp.batch = 3 + rng.Float64()
			sp.gap = 0.08 + 0.12*rng.Float64()
			sp.hourK = 4
		} else {
			// Other apps: 10-min ON periods at ~5x their mean rate, mean
			// OFF period at most a day so that rare apps still show up.
			sp.onMean = 600 * (0.5 + rng.Float64())
			onRate := math.Min(math.Max(5*rate, 0.02), 1)
			onFrac := math.Min(math.Max(rate/onRate, 1e-4), 0.5)
			sp.offMean = math.Min(sp.onMean*(1-onFrac)/onFrac, 86400)
			sp.batch = 1.5 + rng.Float64()
			sp.gap = 0.05 + 0.25*rng.Float64()
			sp.hourK = 1 + rng.Float64()
		}
		switch {
		case i < 2:
			durW[i] = busiestDurations
		case i == timerApp:
			durW[i] = durArchetypes[0]
		default:
			arch := []int{0, 1, 1, 2, 2, 3, 4}[rng.IntN(7)]
			for s := range nDurSeg {
				durW[i][s] = durArchetypes[arch][s] * math.Exp(0.5*rng.NormFloat64())
			}
		}
		pop[i] = sp
	}
	balanceDurations(pop, durW)
	return pop
}

// balanceDurations rescales the segment weights of all apps but the two
// busiest (iterative proportional fitting over segments) so that the
// volume-weighted average of all mixtures equals the segment widths, and
// stores them as cumulative weights.
func balanceDurations(pop []*appSpec, durW [][nDurSeg]float64) {
	var c [nDurSeg]float64
	for s := range c {
		c[s] = 1
	}
	total := 0.0
	for _, sp := range pop {
		total += sp.count
	}
	fixed := func(i int) bool { return i < 2 }
	var fixedMass [nDurSeg]float64
	for i, sp := range pop {
		if fixed(i) {
			for s := range fixedMass {
				fixedMass[s] += durW[i][s] * sp.count / total
			}
		}
	}
	norm := func(i int) (w [nDurSeg]float64) {
		sum := 0.0
		for s := range w {
			w[s] = durW[i][s]
			if !fixed(i) {
				w[s] *= c[s]
			}
			sum += w[s]
		}
		for s := range w {
			w[s] /= sum
		}
		return w
	}
	for range 200 {
		var pooled [nDurSeg]float64
		for i, sp := range pop {
			if fixed(i) {
				continue
			}
			w := norm(i)
			for s := range w {
				pooled[s] += w[s] * sp.count / total
			}
		}
		for s := range c {
			c[s] *= (durSegs[s+1] - durSegs[s] - fixedMass[s]) / pooled[s]
		}
	}
	for i, sp := range pop {
		w := norm(i)
		cum := 0.0
		for s := range w {
			cum += w[s]
			sp.durCum[s] = cum
		}
		sp.durCum[nDurSeg-1] = 1
	}
}

// selectApps returns the population ranks kept for k apps (0 = all): the
// busiest, the timer app, then ranks spread evenly over the rest.
func selectApps(k int) []int {
	if k == 0 || k == SynthPopulationApps {
		all := make([]int, SynthPopulationApps)
		for i := range all {
			all[i] = i
		}
		return all
	}
	keep := []int{0}
	if k >= 2 {
		keep = append(keep, timerApp)
	}
	var rest []int
	for i := 1; i < SynthPopulationApps; i++ {
		if i != timerApp {
			rest = append(rest, i)
		}
	}
	m := k - len(keep)
	for i := range m {
		keep = append(keep, rest[int((float64(i)+0.5)*float64(len(rest))/float64(m))])
	}
	slices.Sort(keep)
	return keep
}

// ---------------------------------------------------------------------------
// Per-application lazy generation.

// event is one generated invocation of an app, before merging.
type event struct {
	start, dur int64 // microseconds
	fn         int32
}

// appGen generates one application's invocations an hour at a time.
type appGen struct {
	spec *appSpec
	days int
	rng  *rand.Rand

	day        int       // current day
	hour       int       // next hour of day to generate (24 = plan a new day)
	hourCounts [24]int   // planned invocations per hour of the current day
	onIv       []float64 // ON intervals of the current day, flattened [s,e) pairs, seconds
	carry      float64   // volume of days without ON time, moved to the next
	on         bool      // ON/OFF chain state
	switchAt   float64   // absolute time of the next chain switch, seconds
	timerPhase float64
	fresh      int // functions handed out by pickFunc's first-use rule

	buf []event
	pos int
}

// lognormal returns a lognormal variate with the given mean and log-sd.
func lognormal(r *rand.Rand, mean, sigma float64) float64 {
	return mean * math.Exp(sigma*r.NormFloat64()-sigma*sigma/2)
}

// gammaVar returns a Gamma(k, 1/k) variate (mean 1), Marsaglia-Tsang.
func gammaVar(r *rand.Rand, k float64) float64 {
	k0, boost := k, 1.0
	if k < 1 {
		boost = math.Pow(r.Float64(), 1/k)
		k++
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return boost * d * v / k0
		}
	}
}

// chainSigma is the log-sd of ON and OFF period lengths. ASSUMED.
const chainSigma = 1.0

// maxOffSeconds caps one ON or OFF period at three days, so that even the
// rarest app wakes up several times a fortnight. ASSUMED.
const maxOffSeconds = 3 * 86400

// minForcedWake is the expected daily volume from which a day without any
// ON time gets one forced ON period instead of carrying its volume over.
const minForcedWake = 20

func (g *appGen) initChain() {
	sp := g.spec
	frac := sp.onMean / (sp.onMean + sp.offMean)
	g.on = g.rng.Float64() < frac
	if g.on {
		g.switchAt = g.rng.Float64() * lognormal(g.rng, sp.onMean, chainSigma)
	} else {
		g.switchAt = g.rng.Float64() * min(lognormal(g.rng, sp.offMean, chainSigma), maxOffSeconds)
	}
	g.timerPhase = g.rng.Float64() * 60
}

// dayWeight returns the relative volume and activity of the app on day d.
func (g *appGen) dayWeight(d int) float64 {
	ref := d
	if ref >= SynthReferenceDays {
		ref = 7 + d%7 // beyond the fortnight, repeat the flatter second week
	}
	if g.spec.mask != nil && !g.spec.mask[ref] {
		return 0
	}
	return dayWeights[ref]
}

// baseDaily returns the app's expected non-timer volume per unit day weight.
func (g *appGen) baseDaily() float64 {
	sum := 0.0
	for d := range SynthReferenceDays {
		sum += g.dayWeight(d)
	}
	n := g.spec.count
	if g.spec.timer {
		n -= SynthReferenceDays * 1440
	}
	return n / sum
}

// planDay advances the ON/OFF chain through day d and splits the day's
// volume over its hours.
func (g *appGen) planDay(d int) {
	sp := g.spec
	d0 := float64(d) * 86400
	d1 := d0 + 86400
	g.onIv = g.onIv[:0]
	t := d0
	for t < d1 {
		end := math.Min(g.switchAt, d1)
		if g.on && end > t {
			g.onIv = append(g.onIv, t, end)
		}
		t = end
		if g.switchAt <= d1 {
			g.on = !g.on
			mean := sp.offMean
			if g.on {
				mean = sp.onMean
			}
			g.switchAt += min(lognormal(g.rng, mean, chainSigma), maxOffSeconds)
		}
	}
	expect := g.baseDaily() * g.dayWeight(d) * lognormal(g.rng, 1, 0.15)
	if len(g.onIv) == 0 && expect+g.carry >= minForcedWake {
		// A long OFF period would swallow a busy day: wake the app once.
		s := d0 + g.rng.Float64()*86400
		g.onIv = append(g.onIv, s, math.Min(s+lognormal(g.rng, sp.onMean, chainSigma), d1))
	}
	var w [24]float64
	sumW := 0.0
	for i := 0; i < len(g.onIv); i += 2 {
		s, e := g.onIv[i], g.onIv[i+1]
		for h := int((s - d0) / 3600); h < 24 && d0+float64(h)*3600 < e; h++ {
			hs := d0 + float64(h)*3600
			w[h] += math.Min(e, hs+3600) - math.Max(s, hs)
		}
	}
	for h := range w {
		if w[h] > 0 {
			w[h] *= hourWeights[h] * gammaVar(g.rng, sp.hourK)
			sumW += w[h]
		}
	}
	g.hourCounts = [24]int{}
	if g.dayWeight(d) == 0 {
		return
	}
	if sumW == 0 {
		g.carry += expect
		return
	}
	// Systematic rounding from a random offset; what rounding leaves over
	// (less than one invocation either way) carries to the next day, so the
	// realised volume follows the expected one closely.
	total := expect + g.carry
	u0 := g.rng.Float64()
	cum := 0.0
	prev := math.Floor(u0)
	for h := range w {
		cum += w[h] / sumW * total
		next := math.Floor(cum + u0)
		g.hourCounts[h] = max(int(next-prev), 0)
		prev = next
	}
	g.carry = total - (prev - math.Floor(u0))
}

// fill generates the app's next non-empty hour into buf; it reports false
// at the end of the trace.
func (g *appGen) fill() bool {
	g.buf, g.pos = g.buf[:0], 0
	for len(g.buf) == 0 {
		if g.hour >= 24 {
			if g.day+1 >= g.days {
				return false
			}
			g.day++
			g.hour = 0
			g.planDay(g.day)
		}
		g.genHour(g.day, g.hour)
		g.hour++
	}
	slices.SortStableFunc(g.buf, func(a, b event) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	return true
}

// genHour generates hour h of day d into buf.
func (g *appGen) genHour(d, h int) {
	sp := g.spec
	hs := float64(d)*86400 + float64(h)*3600
	he := hs + 3600
	last := he - 1e-6
	if sp.timer {
		for m := range 60 {
			t := hs + float64(m)*60 + g.timerPhase + 0.2*g.rng.NormFloat64()
			t = math.Min(math.Max(t, hs), last)
			g.emit(t, 0)
		}
	}
	n := g.hourCounts[h]
	if n == 0 {
		return
	}
	// ON time within the hour.
	var iv []float64
	onT := 0.0
	for i := 0; i < len(g.onIv); i += 2 {
		s, e := math.Max(g.onIv[i], hs), math.Min(g.onIv[i+1], he)
		if e > s {
			iv = append(iv, s, e)
			onT += e - s
		}
	}
	if onT == 0 { // cannot happen: counts go to hours with ON time
		iv, onT = []float64{hs, he}, 3600
	}
	p := 1 / sp.batch
	var offs []float64
	for n > 0 {
		size := 1 + int(math.Floor(math.Log(1-g.rng.Float64())/math.Log(1-p)))
		size = min(size, n)
		n -= size
		x := g.rng.Float64() * onT
		t0 := iv[len(iv)-1]
		for i := 0; i < len(iv); i += 2 {
			if x < iv[i+1]-iv[i] {
				t0 = iv[i] + x
				break
			}
			x -= iv[i+1] - iv[i]
		}
		offs = append(offs[:0], 0)
		for k := 1; k < size; k++ {
			offs = append(offs, offs[k-1]+g.rng.ExpFloat64()*sp.gap)
		}
		span := offs[len(offs)-1]
		if t0+span > last {
			t0 = math.Max(last-span, hs)
		}
		for _, o := range offs {
			g.emit(math.Min(t0+o, last), g.pickFunc())
		}
	}
}

// pickFunc draws the function of a non-timer invocation. The app's first
// invocations go to each of its functions in turn, so that every function
// of an app that runs at all appears in the trace.
func (g *appGen) pickFunc() int32 {
	sp := g.spec
	var j int
	if g.fresh < len(sp.funcCum) {
		j = g.fresh
		g.fresh++
	} else {
		x := g.rng.Float64() * sp.funcCum[len(sp.funcCum)-1]
		j, _ = slices.BinarySearch(sp.funcCum, x)
		j = min(j, len(sp.funcCum)-1)
	}
	if sp.timer {
		j++
	}
	return int32(j)
}

// emit appends an invocation starting at t seconds with a drawn duration.
func (g *appGen) emit(t float64, fn int32) {
	sp := g.spec
	x := g.rng.Float64()
	seg := 0
	for seg < nDurSeg-1 && x >= sp.durCum[seg] {
		seg++
	}
	u := durSegs[seg] + g.rng.Float64()*(durSegs[seg+1]-durSegs[seg])
	dur := int64(math.Round(durQ(u)*1000)) * 1000
	dur = min(dur, SynthMaxDurationUS)
	g.buf = append(g.buf, event{start: int64(math.Floor(t * 1e6)), dur: dur, fn: fn})
}

// appHeap orders app generators by their next start time, then by rank.
type appHeap []*appGen

func (h appHeap) Len() int { return len(h) }
func (h appHeap) Less(i, j int) bool {
	a, b := h[i].buf[h[i].pos].start, h[j].buf[h[j].pos].start
	if a != b {
		return a < b
	}
	return h[i].spec.index < h[j].spec.index
}
func (h appHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *appHeap) Push(x any)   { *h = append(*h, x.(*appGen)) }
func (h *appHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

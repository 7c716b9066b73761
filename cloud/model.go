package cloud

import (
	"fmt"
	"math"
	"slices"
)

// Model evaluates invocations under placements: execution time, pools, cold
// starts, latency, cost, carbon and SLA. It is immutable and safe for
// concurrent use; the mutable state lives in Pools.
type Model struct {
	cat *Catalog
	cfg Config

	refVCPU   float64
	keepUS    [NumProviders]int64
	carbonCol [NumProviders][NumMetros]int
	rttMS     [NumMetros][NumMetros]float64 // user metro → region metro, access included
	// seriesOffsetUS is the epoch's offset from the carbon series' first
	// hour, in microseconds: trace time t falls in series hour
	// ⌊(seriesOffsetUS + t) / 1 h⌋ (IntensityGPerKWh, without time.Time).
	seriesOffsetUS int64
}

// NewModel validates cfg and returns a Model over cat.
func NewModel(cat *Catalog, cfg Config) (*Model, error) {
	if cat == nil {
		return nil, fmt.Errorf("creating cloud model: %w: nil catalog", ErrInvalidInput)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating cloud model: %w", err)
	}
	m := &Model{cat: cat, cfg: cfg}
	m.refVCPU = min(cat.Tiers[cfg.ReferenceTier].VCPU[cfg.ReferenceProvider].Value, cfg.MaxUsableVCPU)
	for p, k := range cfg.KeepAliveMin {
		m.keepUS[p] = int64(math.Round(k * 60e6))
	}
	for p := range Provider(NumProviders) {
		for mt := range Metro(NumMetros) {
			m.carbonCol[p][mt] = -1
			if cfg.CarbonMode == CarbonStatic {
				continue
			}
			i, err := cat.Series.Column(cfg.CarbonColumns[p][mt])
			if err != nil {
				return nil, fmt.Errorf("creating cloud model: %w", err)
			}
			m.carbonCol[p][mt] = i
		}
	}
	for u := range Metro(NumMetros) {
		for r := range Metro(NumMetros) {
			m.rttMS[u][r] = cat.UserAccessRTTMS.Value + cat.MetroRTTMS[u][r].Value
		}
	}
	if cat.Series != nil {
		m.seriesOffsetUS = cfg.Epoch.Sub(cat.Series.Start).Microseconds()
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Catalog returns the model's catalog.
func (m *Model) Catalog() *Catalog { return m.cat }

// VCPU returns the CPU share (vCPUs) of an instance at placement pl.
func (m *Model) VCPU(pl Placement) float64 { return m.cat.Tiers[pl.Tier].VCPU[pl.Provider].Value }

// ExecUS returns the execution time in microseconds, under placement pl, of
// an invocation that took refUS at the reference configuration:
//
//	exec = ref × ((1 − f) + f × min(vCPU_ref, cap) / min(vCPU_pl, cap))
//
// with f the CPU-bound fraction and cap Config.MaxUsableVCPU.
func (m *Model) ExecUS(pl Placement, prof Profile, refUS int64) int64 {
	f := min(max(prof.CPUBoundFraction, 0), 1)
	cpu := min(m.VCPU(pl), m.cfg.MaxUsableVCPU)
	if cpu <= 0 {
		cpu = 1e-3
	}
	factor := (1 - f) + f*m.refVCPU/cpu
	return int64(math.Round(float64(max(refUS, 0)) * factor))
}

// RTTMS returns the network round trip from users in metro user to the
// region in metro region: the catalog's access RTT plus the metro RTT.
func (m *Model) RTTMS(user, region Metro) float64 { return m.rttMS[user][region] }

// ColdStartMS returns the cold-start latency at provider p for runtime r.
func (m *Model) ColdStartMS(p Provider, r Runtime) float64 {
	return m.cat.ColdStartS[p][r].Value * 1000
}

// ceilTo rounds us up to a multiple of step (both in microseconds).
func ceilTo(us, step int64) int64 {
	if step <= 1 {
		return us
	}
	return (us + step - 1) / step * step
}

// BilledUS returns the billed duration in microseconds of an execution of
// execUS under placement pl: rounded up to the provider's granularity and
// raised to its per-execution minimum (AWS 1 ms, no minimum; Azure
// Consumption 1 ms with a 100 ms minimum; Azure Flex 100 ms with a 1000 ms
// minimum; GCP 100 ms).
func (m *Model) BilledUS(pl Placement, execUS int64) int64 {
	r := &m.cat.Regions[pl.Provider][pl.Metro]
	gran, minMS := r.GranularityMS.Value, r.MinBilledMS.Value
	if pl.Provider == Azure && !m.cat.Tiers[pl.Tier].AzureConsumption {
		gran, minMS = r.FlexGranularityMS.Value, r.FlexMinBilledMS.Value
	}
	g := int64(math.Round(gran * 1000))
	return max(ceilTo(max(execUS, 0), g), ceilTo(int64(math.Round(minMS*1000)), g))
}

// InvocationCostUSD returns the price of one execution of execUS under
// placement pl: the request price plus the billed duration at the
// provider's compute prices. onPC marks an AWS execution served by
// provisioned concurrency, billed at the PC duration price when
// Config.AWSPCDurationPrice is set.
//
//   - AWS: request + billed s × MB/1024 × $/GB-s.
//   - Azure Consumption (≤ 1024 MB): request + billed s × (MB rounded up to
//     128 MB, capped at 1536) / 1024 × $/GB-s. Tiers the Consumption plan
//     lacks (2048, 3008 MB) use Flex Consumption: its request price and
//     $/GB-s on the Flex instance size (2048, 4096 MB).
//   - GCP 1st gen: request + billed s × (GB × $/GB-s + GHz × $/GHz-s) with
//     the region's (Tier 1 or Tier 2) prices; 3008 MB bills as 4096 MB.
//     2nd gen: request + billed s × (vCPU × $/vCPU-s + GiB × $/GiB-s).
func (m *Model) InvocationCostUSD(pl Placement, execUS int64, onPC bool) float64 {
	r := &m.cat.Regions[pl.Provider][pl.Metro]
	tf := &m.cat.Tiers[pl.Tier]
	billedS := float64(m.BilledUS(pl, execUS)) / 1e6
	mb := float64(pl.Tier.MB())
	switch pl.Provider {
	case AWS:
		price := r.GBSecondUSD.Value
		if onPC && m.cfg.AWSPCDurationPrice {
			price = r.PCDurationGBSecondUSD.Value
		}
		return r.RequestUSD.Value + billedS*(mb/1024)*price
	case Azure:
		if !tf.AzureConsumption {
			return r.FlexRequestUSD.Value + billedS*(tf.AzureFlexMB.Value/1024)*r.FlexGBSecondUSD.Value
		}
		round := r.MemoryRoundingMB.Value
		billedMB := math.Ceil(mb/round) * round
		billedMB = min(max(billedMB, round), r.MaxBilledMemoryMB.Value)
		return r.RequestUSD.Value + billedS*(billedMB/1024)*r.GBSecondUSD.Value
	default: // GCP
		if m.cfg.GCPGen2 {
			return r.RequestUSD.Value + billedS*(tf.VCPU[GCP].Value*r.Gen2VCPUSecondUSD.Value+(mb/1024)*r.Gen2GiBSecondUSD.Value)
		}
		return r.RequestUSD.Value + billedS*((tf.GCPBilledMB.Value/1024)*r.GBSecondUSD.Value+tf.GCPGHz.Value*r.GHzSecondUSD.Value)
	}
}

// KeepWarmUSDPerHour returns the price of keeping one idle instance warm for
// an hour at placement pl: AWS provisioned concurrency, Azure Flex
// always-ready baseline, GCP minimum instances (1st or 2nd gen per Config).
func (m *Model) KeepWarmUSDPerHour(pl Placement) float64 {
	r := &m.cat.Regions[pl.Provider][pl.Metro]
	if pl.Provider == GCP && m.cfg.GCPGen2 {
		return r.Gen2KeepWarmUSDPerHour[pl.Tier].Value
	}
	return r.KeepWarmUSDPerHour[pl.Tier].Value
}

// IntensityGPerKWh returns the grid carbon intensity (gCO2e/kWh) of
// provider p's region in metro mt during the hour containing trace time
// traceUS (under Config.Epoch), or the static factor in CarbonStatic mode.
func (m *Model) IntensityGPerKWh(p Provider, mt Metro, traceUS int64) float64 {
	col := m.carbonCol[p][mt]
	if col < 0 {
		return m.cat.Regions[p][mt].StaticGCO2PerKWh.Value
	}
	s := m.cat.Series
	return s.At(col, s.hourOf(m.seriesOffsetUS+traceUS))
}

// EnergyKWh returns the energy, by the Cloud Carbon Footprint method, of
// running one instance at placement pl for seconds s at CPU utilisation u:
//
//	kWh = vCPU × (Wmin + u·(Wmax − Wmin)) × h / 1000 + GB × 0.000392 × h
//
// with h = s/3600 and GB = tier MB/1024. PUE and grid intensity are applied
// by the caller.
func (m *Model) EnergyKWh(pl Placement, s, u float64) float64 {
	cc := &m.cat.Carbon[pl.Provider]
	h := s / 3600
	w := cc.MinWattsPerVCPU.Value + u*(cc.MaxWattsPerVCPU.Value-cc.MinWattsPerVCPU.Value)
	return m.VCPU(pl)*w*h/1000 + float64(pl.Tier.MB())/1024*cc.MemoryKWhPerGBHour.Value*h
}

// CarbonG returns the operational emissions in gCO2e of running one instance
// at placement pl for s seconds at utilisation u, starting at trace time
// traceUS: EnergyKWh × PUE × grid intensity in that hour.
func (m *Model) CarbonG(pl Placement, s, u float64, traceUS int64) float64 {
	return m.EnergyKWh(pl, s, u) * m.cat.Regions[pl.Provider][pl.Metro].PUE.Value *
		m.IntensityGPerKWh(pl.Provider, pl.Metro, traceUS)
}

// Request is one invocation to evaluate: its start in trace time and its
// duration at the reference configuration, both in microseconds.
type Request struct {
	// StartUS is the start time (end − duration in the trace).
	StartUS int64
	// DurationUS is the trace's duration, ASSUMED measured at the reference
	// configuration (Config.ReferenceProvider and ReferenceTier).
	DurationUS int64
}

// Interval is the span of trace time [StartUS, EndUS) an evaluation covers.
// Its operational ticks start at StartUS.
type Interval struct {
	// StartUS and EndUS bound the interval in microseconds.
	StartUS, EndUS int64
}

// Outcome is what happened to one invocation.
type Outcome struct {
	// StartUS is the arrival time.
	StartUS int64
	// LatencyMS is what the user saw: RTT + cold start + queue wait +
	// execution (+ warm-start overhead when configured).
	LatencyMS float64
	// ColdStartMS, QueueWaitMS and ExecMS are parts of LatencyMS.
	ColdStartMS, QueueWaitMS, ExecMS float64
	// CostUSD is the request and duration price (pre-warm cost is in
	// Aggregate).
	CostUSD float64
	// CarbonG is the operational emissions of the execution (and its
	// cold start).
	CarbonG float64
	// CPUBusyS is the instance's busy time for the execution in seconds.
	CPUBusyS float64
	// MemoryMB is the memory in use: the working set, capped at the tier.
	MemoryMB float64
	// Cold reports a cold start; Queued a wait for a busy instance.
	Cold, Queued bool
	// OnPrewarm reports that the invocation ran within the pre-warmed
	// (provisioned) concurrency of its tick.
	OnPrewarm bool
	// Failed reports an out-of-memory failure (tier below working set).
	Failed bool
	// Violated reports an SLA violation: latency above the SLO, or Failed.
	Violated bool
}

// TickStats is the telemetry of one operational tick of the interval.
type TickStats struct {
	// StartUS is the tick's start.
	StartUS int64
	// Seconds is the tick's length (the last tick may be short).
	Seconds float64
	// Invocations, ColdStarts and Failures count arrivals in the tick.
	Invocations, ColdStarts, Failures int
	// Prewarm is the pre-warm count in force.
	Prewarm int
	// Instances is the most instances (busy or warm) held during the tick.
	Instances int
	// BusySeconds is execution time overlapping the tick, over all instances.
	BusySeconds float64
	// CPUUtil is BusySeconds ÷ (Instances × Seconds), 0 without instances.
	CPUUtil float64
	// MemoryUtil is the in-flight working set (BusySeconds ÷ Seconds ×
	// working set) ÷ (Instances × tier MB, at least 1 MB).
	MemoryUtil float64
	// QueueDepth is the most invocations seen waiting for an instance.
	QueueDepth int
	// PrewarmCostUSD and PrewarmCarbonG are the tick's keep-warm cost and
	// the emissions of pre-warmed instances' idle time.
	PrewarmCostUSD, PrewarmCarbonG float64
}

// Aggregate summarises an evaluation; it is the input of Rewards.
type Aggregate struct {
	// Invocations, ColdStarts, Queued, Failures and Violations count
	// invocations.
	Invocations, ColdStarts, Queued, Failures, Violations int
	// CostUSD is the total cost: invocations plus pre-warm.
	CostUSD float64
	// PrewarmCostUSD is the pre-warm part of CostUSD.
	PrewarmCostUSD float64
	// CarbonG is the total emissions: executions plus pre-warmed idle time.
	CarbonG float64
	// PrewarmCarbonG is the pre-warm part of CarbonG.
	PrewarmCarbonG float64
	// MeanLatencyMS, P95LatencyMS and MaxLatencyMS summarise latency (0
	// without invocations; P95 by nearest rank).
	MeanLatencyMS, P95LatencyMS, MaxLatencyMS float64
	// BusySeconds is the total execution time.
	BusySeconds float64
}

// Result is the outcome of Evaluate.
type Result struct {
	// Outcomes holds one entry per request, in request order.
	Outcomes []Outcome
	// Ticks holds the telemetry of each operational tick of the interval.
	Ticks []TickStats
	// Aggregate summarises the interval.
	Aggregate Aggregate
	// lat is EvaluateInto's scratch for the latencies it sorts.
	lat []float64
}

// Evaluate runs one interval of one function's invocations on pool (which
// it advances to iv.EndUS) under the pool's placement and a pre-warm
// schedule, and returns per-invocation outcomes, per-tick telemetry and
// aggregates. It is deterministic: the same function, pool state, interval,
// schedule and requests give the same Result. To evaluate alternatives
// (counterfactuals, the oracle) pass each one a Clone of the starting pool.
//
// reqs must be ordered by StartUS and lie in [iv.StartUS, iv.EndUS); the
// interval must not start before pool.Now(). prewarm[k] is the pre-warm
// count of the k-th tick (Config.TickUS long, from iv.StartUS); ticks past
// the end of prewarm have none.
//
// Pool rules: an invocation takes the most recently used idle instance
// (warm); with none idle it starts a new instance (cold: the catalog's
// cold start for the provider and runtime) unless the pool holds
// Config.MaxInstances, when it waits for the instance that frees first. An
// idle instance expires KeepAliveMin after its last execution ends. At each
// tick start the pool is topped up to the tick's pre-warm count with ready
// instances, and that many are held (never expire) through the tick; they
// are billed at the keep-warm price (AWS: provisioned concurrency per unit
// in 5-minute blocks; others per second).
func (m *Model) Evaluate(fn *Function, pool *Pool, iv Interval, prewarm []int, reqs []Request) (Result, error) {
	var res Result
	err := m.EvaluateInto(&res, fn, pool, iv, prewarm, reqs)
	return res, err
}

// EvaluateInto is Evaluate writing its result into res, whose Outcomes
// and Ticks slices it reuses (overwrites) when their capacity suffices: a
// caller evaluating many alternatives in a row allocates them once. The
// result is the same as Evaluate's.
func (m *Model) EvaluateInto(res *Result, fn *Function, pool *Pool, iv Interval, prewarm []int, reqs []Request) error {
	if err := m.checkEval(fn, pool, iv, prewarm, reqs); err != nil {
		return fmt.Errorf("evaluating %s/%s: %w", fn.App, fn.Func, err)
	}
	pl := pool.placement
	prof := fn.Profile
	tick := m.cfg.TickUS
	nt := int((iv.EndUS - iv.StartUS + tick - 1) / tick)
	res.Ticks = resize(res.Ticks, nt)
	res.Outcomes = resize(res.Outcomes, len(reqs))
	res.Aggregate = Aggregate{}
	keep := m.keepUS[pl.Provider]
	tierMB := float64(pl.Tier.MB())
	rtt := m.rttMS[fn.UserMetro][pl.Metro]
	if m.cfg.WarmStartOverhead {
		rtt += m.cat.WarmStartMS[pl.Provider].Value
	}
	coldUS := int64(math.Round(m.ColdStartMS(pl.Provider, prof.Runtime) * 1000))
	oom := tierMB < prof.WorkingSetMB
	memUsed := min(prof.WorkingSetMB, tierMB)
	u := m.cfg.CarbonUtilisation
	if m.cfg.CarbonUtilisationFromProfile {
		u = min(max(prof.CPUBoundFraction, 0), 1)
	}
	pue := m.cat.Regions[pl.Provider][pl.Metro].PUE.Value
	kwhPerS := m.EnergyKWh(pl, 1, u)
	idleKWhPerS := m.EnergyKWh(pl, 1, 0)
	warmPerHour := m.KeepWarmUSDPerHour(pl)

	for k := range res.Ticks {
		t := &res.Ticks[k]
		t.StartUS = iv.StartUS + int64(k)*tick
		t.Seconds = float64(min(t.StartUS+tick, iv.EndUS)-t.StartUS) / 1e6
	}
	// Executions already running when the interval starts.
	for _, in := range pool.inst {
		if in.freeAt > iv.StartUS {
			addBusy(res.Ticks, iv, tick, max(in.busyFrom, iv.StartUS), in.freeAt)
		}
	}

	var queued []int64 // start times of invocations waiting for an instance
	hold := 0
	ti := -1 // current tick
	enterTick := func(k int) {
		t := &res.Ticks[k]
		pool.expire(t.StartUS, keep, hold)
		hold = 0
		if k < len(prewarm) {
			hold = min(max(prewarm[k], 0), m.cfg.MaxInstances)
		}
		t.Prewarm = hold
		pool.insertN(instance{freeAt: t.StartUS, busyFrom: t.StartUS}, hold-pool.Len())
		t.Instances = pool.Len()
		if hold > 0 {
			t.PrewarmCostUSD = m.prewarmCost(pool, pl, hold, t.StartUS, min(t.StartUS+tick, iv.EndUS), warmPerHour)
		}
	}
	lat := res.lat[:0]
	agg := &res.Aggregate
	for i, rq := range reqs {
		for k := TickIndex(iv.StartUS, rq.StartUS, tick); ti < k; {
			ti++
			enterTick(ti)
		}
		s := rq.StartUS
		t := &res.Ticks[ti]
		pool.expire(s, keep, hold)
		for len(queued) > 0 && queued[0] <= s {
			queued = queued[1:]
		}
		o := &res.Outcomes[i]
		o.StartUS = s
		idle := pool.idleAt(s)
		busy := pool.Len() - idle
		o.OnPrewarm = hold > 0 && busy+1 <= hold
		begin := s
		var slot int
		switch {
		case idle > 0:
			slot = idle - 1 // most recently used idle instance
		case pool.Len() < m.cfg.MaxInstances:
			o.Cold = true
			begin = s + coldUS
			slot = -1
		default:
			o.Queued = true
			slot = 0 // frees first
			begin = pool.inst[0].freeAt
			queued = append(queued, begin)
			if j := len(queued) - 1; j > 0 && queued[j] < queued[j-1] {
				slices.Sort(queued)
			}
		}
		execUS := m.ExecUS(pl, prof, rq.DurationUS)
		end := begin + execUS
		if slot >= 0 {
			pool.inst = slices.Delete(pool.inst, slot, slot+1)
		}
		pool.insert(instance{freeAt: end, busyFrom: begin})
		t.Instances = max(t.Instances, pool.Len())
		t.QueueDepth = max(t.QueueDepth, len(queued))
		addBusy(res.Ticks, iv, tick, max(begin, iv.StartUS), end)

		o.ExecMS = float64(execUS) / 1000
		o.QueueWaitMS = float64(max(begin-s, 0)) / 1000
		if o.Cold {
			o.ColdStartMS = float64(coldUS) / 1000
			o.QueueWaitMS = 0
		}
		o.LatencyMS = rtt + o.ColdStartMS + o.QueueWaitMS + o.ExecMS
		billedUS := execUS
		if o.Cold && m.cfg.BillColdStart {
			billedUS += coldUS
		}
		o.CostUSD = m.InvocationCostUSD(pl, billedUS, o.OnPrewarm && pl.Provider == AWS)
		runS := float64(execUS) / 1e6
		o.CPUBusyS = runS
		if o.Cold {
			runS += float64(coldUS) / 1e6
		}
		o.CarbonG = kwhPerS * runS * pue * m.IntensityGPerKWh(pl.Provider, pl.Metro, s)
		o.MemoryMB = memUsed
		o.Failed = oom
		o.Violated = oom || o.LatencyMS > fn.SLOMS

		t.Invocations++
		agg.Invocations++
		if o.Cold {
			t.ColdStarts++
			agg.ColdStarts++
		}
		if o.Queued {
			agg.Queued++
		}
		if o.Failed {
			t.Failures++
			agg.Failures++
		}
		if o.Violated {
			agg.Violations++
		}
		agg.CostUSD += o.CostUSD
		agg.CarbonG += o.CarbonG
		agg.BusySeconds += o.CPUBusyS
		lat = append(lat, o.LatencyMS)
	}
	for ti < nt-1 {
		ti++
		enterTick(ti)
	}
	pool.expire(iv.EndUS, keep, 0)
	pool.now = iv.EndUS

	for k := range res.Ticks {
		t := &res.Ticks[k]
		if t.Instances > 0 && t.Seconds > 0 {
			t.CPUUtil = t.BusySeconds / (float64(t.Instances) * t.Seconds)
			t.MemoryUtil = t.BusySeconds / t.Seconds * prof.WorkingSetMB / max(float64(t.Instances)*tierMB, 1)
		}
		if t.Prewarm > 0 && m.cfg.CarbonPrewarm {
			idleS := max(float64(t.Prewarm)*t.Seconds-t.BusySeconds, 0)
			t.PrewarmCarbonG = idleKWhPerS * idleS * pue * m.IntensityGPerKWh(pl.Provider, pl.Metro, t.StartUS)
		}
		agg.PrewarmCostUSD += t.PrewarmCostUSD
		agg.PrewarmCarbonG += t.PrewarmCarbonG
	}
	agg.CostUSD += agg.PrewarmCostUSD
	agg.CarbonG += agg.PrewarmCarbonG
	if n := len(lat); n > 0 {
		sum := 0.0
		for _, l := range lat {
			sum += l
		}
		agg.MeanLatencyMS = sum / float64(n)
		slices.Sort(lat)
		agg.P95LatencyMS = lat[min(max(int(math.Ceil(0.95*float64(n)))-1, 0), n-1)]
		agg.MaxLatencyMS = lat[n-1]
	}
	res.lat = lat
	return nil
}

// resize returns s with length n and every element zero, reusing its
// array when the capacity suffices.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// prewarmCost bills hold pre-warmed instances over [from, to). AWS bills
// each provisioned-concurrency unit in blocks (300 s): a unit whose paid
// time does not cover the tick buys further blocks. The other providers
// bill per second.
func (m *Model) prewarmCost(pool *Pool, pl Placement, hold int, from, to int64, perHour float64) float64 {
	if pl.Provider != AWS {
		return float64(hold) * float64(to-from) / 3.6e9 * perHour
	}
	blockUS := int64(math.Round(m.cat.Regions[pl.Provider][pl.Metro].PCBlockSeconds.Value * 1e6))
	blockUSD := perHour * float64(blockUS) / 3.6e9
	for len(pool.pcPaid) < hold {
		pool.pcPaid = append(pool.pcPaid, math.MinInt64)
	}
	cost := 0.0
	for u := range hold {
		if pool.pcPaid[u] < from {
			pool.pcPaid[u] = from
		}
		for pool.pcPaid[u] < to {
			pool.pcPaid[u] += blockUS
			cost += blockUSD
		}
	}
	return cost
}

// addBusy adds the overlap of [from, to) with each tick to its BusySeconds.
func addBusy(ticks []TickStats, iv Interval, tick, from, to int64) {
	to = min(to, iv.EndUS)
	for from < to {
		k := TickIndex(iv.StartUS, from, tick)
		tEnd := min(iv.StartUS+int64(k+1)*tick, iv.EndUS)
		seg := min(to, tEnd) - from
		ticks[k].BusySeconds += float64(seg) / 1e6
		from += seg
	}
}

// TickIndex returns the index of the tick of length tickUS, counted from
// startUS, that contains t (t ≥ startUS).
func TickIndex(startUS, t, tickUS int64) int { return int((t - startUS) / tickUS) }

func (m *Model) checkEval(fn *Function, pool *Pool, iv Interval, prewarm []int, reqs []Request) error {
	switch {
	case fn == nil:
		return fmt.Errorf("%w: nil function", ErrInvalidInput)
	case pool == nil:
		return fmt.Errorf("%w: nil pool", ErrInvalidInput)
	case !pool.placement.Valid():
		return fmt.Errorf("%w: pool placement %v is unknown", ErrInvalidInput, pool.placement)
	case int(fn.UserMetro) >= NumMetros:
		return fmt.Errorf("%w: user metro %d is unknown", ErrInvalidInput, fn.UserMetro)
	case int(fn.Profile.Runtime) >= NumRuntimes:
		return fmt.Errorf("%w: runtime %d is unknown", ErrInvalidInput, fn.Profile.Runtime)
	case !finite(fn.Profile.WorkingSetMB) || !finite(fn.Profile.CPUBoundFraction) || math.IsNaN(fn.SLOMS):
		return fmt.Errorf("%w: profile or SLO is not finite", ErrInvalidInput)
	case iv.EndUS <= iv.StartUS:
		return fmt.Errorf("%w: interval [%d, %d) is empty", ErrInvalidInput, iv.StartUS, iv.EndUS)
	case iv.StartUS < pool.now:
		return fmt.Errorf("%w: interval starts at %d, before the pool's time %d", ErrInvalidInput, iv.StartUS, pool.now)
	}
	for k, n := range prewarm {
		if n < 0 {
			return fmt.Errorf("%w: pre-warm count %d of tick %d is negative", ErrInvalidInput, n, k)
		}
	}
	prev := iv.StartUS
	for i, r := range reqs {
		switch {
		case r.StartUS < prev:
			return fmt.Errorf("%w: request %d starts at %d, before %d (unordered or before the interval)", ErrInvalidInput, i, r.StartUS, prev)
		case r.StartUS >= iv.EndUS:
			return fmt.Errorf("%w: request %d starts at %d, after the interval's end %d", ErrInvalidInput, i, r.StartUS, iv.EndUS)
		case r.DurationUS < 0:
			return fmt.Errorf("%w: request %d has negative duration %d", ErrInvalidInput, i, r.DurationUS)
		}
		prev = r.StartUS
	}
	return nil
}

package cloud

import (
	"fmt"
	"math"
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

// DefaultModel returns the model of the default catalog (DefaultCatalog)
// under the default configuration (DefaultConfig).
func DefaultModel() (*Model, error) {
	cat, err := DefaultCatalog()
	if err != nil {
		return nil, err
	}
	return NewModel(cat, DefaultConfig())
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
	return scaleUS(refUS, m.execFactor(pl, prof))
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
	c := m.costParams(pl)
	return c.billedUS(execUS)
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
	c := m.costParams(pl)
	return c.usd(execUS, onPC)
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
	return m.intensity(m.carbonCol[p][mt], m.cat.Regions[p][mt].StaticGCO2PerKWh.Value, traceUS)
}

// intensity is IntensityGPerKWh for a region whose series column (−1: the
// static factor) and static factor are looked up.
func (m *Model) intensity(col int, static float64, traceUS int64) float64 {
	if col < 0 {
		return static
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
	if pool == nil {
		return fmt.Errorf("evaluating: %w: nil pool", ErrInvalidInput)
	}
	ev, err := m.Evaluator(fn, pool.placement)
	if err != nil {
		return err
	}
	return ev.EvaluateInto(res, pool, iv, prewarm, reqs)
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
func TickIndex(startUS, t, tickUS int64) int {
	if d := t - startUS; d >= 0 && d < tickUS {
		return 0 // the first tick, as most are: no division
	}
	return int((t - startUS) / tickUS)
}

package cloud

import (
	"fmt"
	"math"
	"slices"
)

// Evaluator evaluates intervals of one function under one placement. It
// looks up once what every evaluation of that pair needs from the catalog
// and the configuration (cold start, energy per second, PUE, billing
// granularity and prices, keep-alive, round trip), so that a caller
// evaluating the same pair many times — the twin replays every active tick
// of a function-hour under each of 24 placements, and every tick under 5
// pre-warm counts — pays for the lookups once. Its results are those of
// Model.EvaluateInto, bit for bit: the same expressions over the same
// values, only computed earlier.
//
// An Evaluator is a value; it reads the Function it was made for on every
// call, so that Function must not change while the Evaluator is in use.
// It holds no mutable state and is safe for concurrent use.
type Evaluator struct {
	m  *Model
	fn *Function
	pl Placement

	tickUS         int64
	tickSeconds    float64 // a whole tick in seconds, as EvaluateInto computes it
	keepUS, coldUS int64
	tierMB, rtt    float64
	memUsed        float64
	oom            bool
	pue            float64
	kwhPerS        float64 // energy of one executing instance per second
	idleKWhPerS    float64 // energy of one idle instance per second
	warmPerHour    float64 // keep-warm price of one instance per hour
	execFactor     float64 // ExecUS's factor for the function's profile
	cost           costParams
	blockUS        int64   // AWS provisioned-concurrency billing block
	blockUSD       float64 // the price of one block
	carbonCol      int     // column of the carbon series, -1: static factor
	staticGPerKWh  float64
	// The hour of the carbon series intensity last looked up: trace
	// instants in [hourFrom, hourTo) have intensity hourG. Empty (0, 0) in
	// a new Evaluator.
	hourFrom, hourTo int64
	hourG            float64
}

// costParams are one placement's per-invocation prices in the form
// InvocationCostUSD uses: request + billed s × perS × price, with price
// the provisioned-concurrency duration price for an execution on AWS
// provisioned concurrency (the same as price elsewhere). Where the
// provider's formula has no separate price factor it is 1, and a product
// with 1 is exact.
type costParams struct {
	granUS, minBilledUS int64
	requestUSD, perS    float64
	price, pcPrice      float64
}

// costParams returns placement pl's billing and prices.
func (m *Model) costParams(pl Placement) costParams {
	r := &m.cat.Regions[pl.Provider][pl.Metro]
	tf := &m.cat.Tiers[pl.Tier]
	gran, minMS := r.GranularityMS.Value, r.MinBilledMS.Value
	if pl.Provider == Azure && !tf.AzureConsumption {
		gran, minMS = r.FlexGranularityMS.Value, r.FlexMinBilledMS.Value
	}
	g := int64(math.Round(gran * 1000))
	c := costParams{granUS: g, minBilledUS: ceilTo(int64(math.Round(minMS*1000)), g), requestUSD: r.RequestUSD.Value, price: 1}
	mb := float64(pl.Tier.MB())
	switch pl.Provider {
	case AWS:
		c.perS, c.price = mb/1024, r.GBSecondUSD.Value
	case Azure:
		if !tf.AzureConsumption {
			c.requestUSD, c.perS, c.price = r.FlexRequestUSD.Value, tf.AzureFlexMB.Value/1024, r.FlexGBSecondUSD.Value
			break
		}
		round := r.MemoryRoundingMB.Value
		billedMB := math.Ceil(mb/round) * round
		billedMB = min(max(billedMB, round), r.MaxBilledMemoryMB.Value)
		c.perS, c.price = billedMB/1024, r.GBSecondUSD.Value
	default: // GCP
		if m.cfg.GCPGen2 {
			c.perS = tf.VCPU[GCP].Value*r.Gen2VCPUSecondUSD.Value + (mb/1024)*r.Gen2GiBSecondUSD.Value
		} else {
			c.perS = (tf.GCPBilledMB.Value/1024)*r.GBSecondUSD.Value + tf.GCPGHz.Value*r.GHzSecondUSD.Value
		}
	}
	c.pcPrice = c.price
	if pl.Provider == AWS && m.cfg.AWSPCDurationPrice {
		c.pcPrice = r.PCDurationGBSecondUSD.Value
	}
	return c
}

// billedUS is BilledUS under these prices.
func (c *costParams) billedUS(execUS int64) int64 {
	return max(ceilTo(max(execUS, 0), c.granUS), c.minBilledUS)
}

// usd is InvocationCostUSD under these prices.
func (c *costParams) usd(execUS int64, onPC bool) float64 {
	price := c.price
	if onPC {
		price = c.pcPrice
	}
	return c.requestUSD + float64(c.billedUS(execUS))/1e6*c.perS*price
}

// execFactor returns ExecUS's scaling of reference durations under
// placement pl for profile prof.
func (m *Model) execFactor(pl Placement, prof Profile) float64 {
	f := min(max(prof.CPUBoundFraction, 0), 1)
	cpu := min(m.VCPU(pl), m.cfg.MaxUsableVCPU)
	if cpu <= 0 {
		cpu = 1e-3
	}
	return (1 - f) + f*m.refVCPU/cpu
}

// scaleUS is ExecUS with its factor computed.
func scaleUS(refUS int64, factor float64) int64 {
	return int64(math.Round(float64(max(refUS, 0)) * factor))
}

// Evaluator returns an Evaluator of function fn under placement pl, after
// checking that both are known and fn's profile and SLO are numbers.
func (m *Model) Evaluator(fn *Function, pl Placement) (Evaluator, error) {
	if fn == nil {
		return Evaluator{}, fmt.Errorf("evaluating: %w: nil function", ErrInvalidInput)
	}
	if err := checkFunction(fn, pl); err != nil {
		return Evaluator{}, fmt.Errorf("evaluating %s/%s: %w", fn.App, fn.Func, err)
	}
	prof := fn.Profile
	ev := Evaluator{m: m, fn: fn, pl: pl,
		tickUS: m.cfg.TickUS,
		// The expression EvaluateInto gives a whole tick's Seconds.
		tickSeconds: float64(m.cfg.TickUS) / 1e6,
		keepUS:      m.keepUS[pl.Provider],
		tierMB:      float64(pl.Tier.MB()),
		rtt:         m.rttMS[fn.UserMetro][pl.Metro],
	}
	if m.cfg.WarmStartOverhead {
		ev.rtt += m.cat.WarmStartMS[pl.Provider].Value
	}
	ev.coldUS = int64(math.Round(m.ColdStartMS(pl.Provider, prof.Runtime) * 1000))
	ev.oom = ev.tierMB < prof.WorkingSetMB
	ev.memUsed = min(prof.WorkingSetMB, ev.tierMB)
	u := m.cfg.CarbonUtilisation
	if m.cfg.CarbonUtilisationFromProfile {
		u = min(max(prof.CPUBoundFraction, 0), 1)
	}
	ev.pue = m.cat.Regions[pl.Provider][pl.Metro].PUE.Value
	ev.kwhPerS = m.EnergyKWh(pl, 1, u)
	ev.idleKWhPerS = m.EnergyKWh(pl, 1, 0)
	ev.warmPerHour = m.KeepWarmUSDPerHour(pl)
	ev.execFactor = m.execFactor(pl, prof)
	ev.cost = m.costParams(pl)
	if pl.Provider == AWS {
		ev.blockUS = int64(math.Round(m.cat.Regions[pl.Provider][pl.Metro].PCBlockSeconds.Value * 1e6))
		ev.blockUSD = ev.warmPerHour * float64(ev.blockUS) / 3.6e9
	}
	ev.carbonCol = m.carbonCol[pl.Provider][pl.Metro]
	ev.staticGPerKWh = m.cat.Regions[pl.Provider][pl.Metro].StaticGCO2PerKWh.Value
	return ev, nil
}

// Placement returns the placement the Evaluator evaluates under.
func (ev *Evaluator) Placement() Placement { return ev.pl }

// intensity is Model.IntensityGPerKWh at the evaluator's placement.
// The scorer asks for the same hour thousands of times in a row, so the
// last hour's value is kept.
func (ev *Evaluator) intensity(traceUS int64) float64 {
	if ev.carbonCol < 0 {
		return ev.staticGPerKWh
	}
	if traceUS >= ev.hourFrom && traceUS < ev.hourTo {
		return ev.hourG
	}
	ev.hourFrom = floorHour(ev.m.seriesOffsetUS+traceUS)*hourUS - ev.m.seriesOffsetUS
	ev.hourTo = ev.hourFrom + hourUS
	ev.hourG = ev.m.intensity(ev.carbonCol, ev.staticGPerKWh, traceUS)
	return ev.hourG
}

// prewarmCost bills hold pre-warmed instances over [from, to). AWS bills
// each provisioned-concurrency unit in blocks (300 s): a unit whose paid
// time does not cover the tick buys further blocks. The other providers
// bill per second.
func (ev *Evaluator) prewarmCost(pool *Pool, hold int, from, to int64) float64 {
	if ev.pl.Provider != AWS {
		return float64(hold) * float64(to-from) / 3.6e9 * ev.warmPerHour
	}
	for len(pool.pcPaid) < hold {
		pool.pcPaid = append(pool.pcPaid, math.MinInt64)
	}
	cost := 0.0
	for u := range hold {
		if pool.pcPaid[u] < from {
			pool.pcPaid[u] = from
		}
		for pool.pcPaid[u] < to {
			pool.pcPaid[u] += ev.blockUS
			cost += ev.blockUSD
		}
	}
	return cost
}

// EvaluateInto is Model.EvaluateInto for the Evaluator's function, on a
// pool of its placement.
func (ev *Evaluator) EvaluateInto(res *Result, pool *Pool, iv Interval, prewarm []int, reqs []Request) error {
	if err := ev.checkInterval(pool, iv, prewarm, reqs); err != nil {
		return fmt.Errorf("evaluating %s/%s: %w", ev.fn.App, ev.fn.Func, err)
	}
	if len(reqs) == 0 && iv.EndUS-iv.StartUS == ev.tickUS {
		ev.idleTick(res, pool, iv, prewarm)
	} else {
		ev.evaluate(res, pool, iv, prewarm, reqs)
	}
	return nil
}

// evaluate is EvaluateInto's general path, after its checks.
func (ev *Evaluator) evaluate(res *Result, pool *Pool, iv Interval, prewarm []int, reqs []Request) {
	m, fn := ev.m, ev.fn
	tick := ev.tickUS
	nt := 1 // a one-tick interval, as most are, needs no division
	if d := iv.EndUS - iv.StartUS; d > tick {
		nt = int((d + tick - 1) / tick)
	}
	res.Ticks = resize(res.Ticks, nt)
	res.Outcomes = resize(res.Outcomes, len(reqs))
	res.Aggregate = Aggregate{}
	keep, coldUS := ev.keepUS, ev.coldUS

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
	lat := res.lat[:0]
	agg := &res.Aggregate
	for i, rq := range reqs {
		for k := TickIndex(iv.StartUS, rq.StartUS, tick); ti < k; {
			ti++
			hold = ev.enterTick(res, pool, iv, prewarm, ti, hold)
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
		execUS := scaleUS(rq.DurationUS, ev.execFactor)
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
		o.LatencyMS = ev.rtt + o.ColdStartMS + o.QueueWaitMS + o.ExecMS
		billedUS := execUS
		if o.Cold && m.cfg.BillColdStart {
			billedUS += coldUS
		}
		o.CostUSD = ev.cost.usd(billedUS, o.OnPrewarm && ev.pl.Provider == AWS)
		runS := float64(execUS) / 1e6
		o.CPUBusyS = runS
		if o.Cold {
			runS += float64(coldUS) / 1e6
		}
		o.CarbonG = ev.kwhPerS * runS * ev.pue * ev.intensity(s)
		o.MemoryMB = ev.memUsed
		o.Failed = ev.oom
		o.Violated = ev.oom || o.LatencyMS > fn.SLOMS

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
		hold = ev.enterTick(res, pool, iv, prewarm, ti, hold)
	}
	pool.closeAt(iv.EndUS, keep)

	ws := fn.Profile.WorkingSetMB
	for k := range res.Ticks {
		t := &res.Ticks[k]
		if t.Instances > 0 && t.Seconds > 0 {
			t.CPUUtil = t.BusySeconds / (float64(t.Instances) * t.Seconds)
			t.MemoryUtil = t.BusySeconds / t.Seconds * ws / max(float64(t.Instances)*ev.tierMB, 1)
		}
		if t.Prewarm > 0 && m.cfg.CarbonPrewarm {
			idleS := max(float64(t.Prewarm)*t.Seconds-t.BusySeconds, 0)
			t.PrewarmCarbonG = ev.idleKWhPerS * idleS * ev.pue * ev.intensity(t.StartUS)
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
}

// idleTick is EvaluateInto for one whole tick without requests, the
// evaluation the twin makes most (a function held warm between its
// invocations, under each alternative it scores: 96 % of its calls on the
// synthetic trace). It runs the general path's steps for that case — the
// running executions' busy time, enterTick, the closing expiry and the
// tick's figures — with the same expressions in the same order, so its
// results and the pool it leaves are those of the general path bit for
// bit (TestIdleTickEqualsGeneralPath); it only skips the general path's
// loops, its scratch and the divisions whose dividend is zero.
func (ev *Evaluator) idleTick(res *Result, pool *Pool, iv Interval, prewarm []int) {
	if cap(res.Ticks) == 0 {
		res.Ticks = make([]TickStats, 1)
	}
	res.Ticks = res.Ticks[:1]
	res.Outcomes = res.Outcomes[:0]
	res.lat = res.lat[:0]
	t := &res.Ticks[0]
	*t = TickStats{StartUS: iv.StartUS, Seconds: ev.tickSeconds, BusySeconds: busyIn(pool.inst, iv.StartUS, iv.EndUS)}
	ev.enterTick(res, pool, iv, prewarm, 0, 0)
	pool.closeAt(iv.EndUS, ev.keepUS)

	if t.Instances > 0 && t.Seconds > 0 {
		if t.BusySeconds != 0 {
			t.CPUUtil = t.BusySeconds / (float64(t.Instances) * t.Seconds)
			t.MemoryUtil = t.BusySeconds / t.Seconds * ev.fn.Profile.WorkingSetMB / max(float64(t.Instances)*ev.tierMB, 1)
		} else {
			// 0 over a positive number is +0; the working set keeps its
			// sign through the product, as in the general expression.
			t.MemoryUtil = 0 * ev.fn.Profile.WorkingSetMB
		}
	}
	t.PrewarmCarbonG = ev.idleCarbon(t.Prewarm, t.BusySeconds, t.StartUS)
	res.Aggregate = idleAggregate(t.PrewarmCostUSD, t.PrewarmCarbonG)
}

// busyIn is the busy time, in seconds, of the executions running into the
// whole tick [ks, ke): what addBusy adds to the tick, instance by
// instance in pool order.
func busyIn(inst []instance, ks, ke int64) float64 {
	busy := 0.0
	for _, in := range inst {
		if from, to := max(in.busyFrom, ks), min(in.freeAt, ke); in.freeAt > ks && from < to {
			busy += float64(to-from) / 1e6
		}
	}
	return busy
}

// idleCarbon is the general path's PrewarmCarbonG of a whole tick from ks
// with hold instances pre-warmed and busy seconds of execution.
func (ev *Evaluator) idleCarbon(hold int, busy float64, ks int64) float64 {
	if hold <= 0 || !ev.m.cfg.CarbonPrewarm {
		return 0
	}
	idleS := max(float64(hold)*ev.tickSeconds-busy, 0)
	return ev.idleKWhPerS * idleS * ev.pue * ev.intensity(ks)
}

// idleAggregate is the Aggregate of a tick without requests whose
// pre-warmed instances cost cost and emitted carbon, summed as the general
// path sums it.
func idleAggregate(cost, carbon float64) Aggregate {
	var a Aggregate
	a.PrewarmCostUSD += cost
	a.PrewarmCarbonG += carbon
	a.CostUSD += a.PrewarmCostUSD
	a.CarbonG += a.PrewarmCarbonG
	return a
}

// enterTick starts tick k of an evaluation: the idle instances past their
// keep-alive expire (the previous tick's hold kept), the pool is topped up
// to the tick's pre-warm count, and that count is billed. It returns the
// tick's hold.
func (ev *Evaluator) enterTick(res *Result, pool *Pool, iv Interval, prewarm []int, k, hold int) int {
	t := &res.Ticks[k]
	n := 0
	if k < len(prewarm) {
		n = prewarm[k]
	}
	hold = ev.holdWarm(pool, t.StartUS, hold, n)
	t.Prewarm = hold
	t.Instances = pool.Len()
	if hold > 0 {
		t.PrewarmCostUSD = ev.prewarmCost(pool, hold, t.StartUS, min(t.StartUS+ev.tickUS, iv.EndUS))
	}
	return hold
}

// holdWarm is enterTick's step on the instances of a tick starting at ks:
// the idle ones past their keep-alive expire (kept of them kept: the
// previous tick's hold), and the pool is topped up to n pre-warmed
// instances, n clamped to [0, MaxInstances]. It returns the clamped count,
// the tick's hold.
func (ev *Evaluator) holdWarm(pool *Pool, ks int64, kept, n int) int {
	pool.expire(ks, ev.keepUS, kept)
	hold := min(max(n, 0), ev.m.cfg.MaxInstances)
	pool.insertN(instance{freeAt: ks, busyFrom: ks}, hold-pool.Len())
	return hold
}

// checkFunction checks what an evaluation needs of a function and a
// placement.
func checkFunction(fn *Function, pl Placement) error {
	switch {
	case !pl.Valid():
		return fmt.Errorf("%w: pool placement %v is unknown", ErrInvalidInput, pl)
	case int(fn.UserMetro) >= NumMetros:
		return fmt.Errorf("%w: user metro %d is unknown", ErrInvalidInput, fn.UserMetro)
	case int(fn.Profile.Runtime) >= NumRuntimes:
		return fmt.Errorf("%w: runtime %d is unknown", ErrInvalidInput, fn.Profile.Runtime)
	case !finite(fn.Profile.WorkingSetMB) || !finite(fn.Profile.CPUBoundFraction) || math.IsNaN(fn.SLOMS):
		return fmt.Errorf("%w: profile or SLO is not finite", ErrInvalidInput)
	}
	return nil
}

// checkInterval checks what an evaluation needs of a pool, an interval,
// a pre-warm schedule and requests.
func (ev *Evaluator) checkInterval(pool *Pool, iv Interval, prewarm []int, reqs []Request) error {
	switch {
	case pool == nil:
		return fmt.Errorf("%w: nil pool", ErrInvalidInput)
	case pool.placement != ev.pl:
		return fmt.Errorf("%w: pool placement %v is not the evaluator's %v", ErrInvalidInput, pool.placement, ev.pl)
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

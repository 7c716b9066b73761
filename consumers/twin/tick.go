package twin

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// takeDecisions moves the pending batches that take effect at tick k into
// force, slowest layer first, with the decisions of the internal policies
// whose interval starts at k, and emits them joined with the placement they
// resolve to — an operational decision only when it changes the function's
// decision in force (the decisions table holds changes; docs/tables.md).
func (e *Engine) takeDecisions(k int64, ahead func(int64) []Arrival, out *Output) error {
	type taken struct {
		layer schemas.Layer
		b     *schemas.DecisionBatch
		// same marks the operational rows equal to the decision they
		// replace: they are applied but not written again.
		same []bool
	}
	var ts []taken
	for _, l := range schemas.Layers {
		per := l.OperationalTicks()
		var b *schemas.DecisionBatch
		if p, ok := e.cfg.Internal[l]; ok {
			if p == PolicyStaticBest && e.staticDone[l] || p == PolicyOracle && k%per != 0 {
				continue
			}
			rows, err := e.internalRows(l, p, k, ahead)
			if err != nil {
				return err
			}
			for i := range rows {
				rows[i].Policy, rows[i].PolicyVersion = string(p), "1"
			}
			b = &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: e.cfg.RunID, Layer: l, Tick: k / per,
				TickStartUS: k / per * per * grid.OperationalTickUS, NShards: 1}, Rows: rows}
		} else {
			b = e.pending[l]
			if b == nil || b.Header.Tick*per != k {
				continue
			}
			delete(e.pending, l)
		}
		rows := slices.Clone(b.Rows)
		slices.SortStableFunc(rows, func(a, b schemas.DecisionRow) int {
			if c := cmpString(a.App, b.App); c != 0 {
				return c
			}
			return cmpString(a.Func, b.Func)
		})
		var same []bool
		if l == schemas.Operational {
			same = make([]bool, len(rows))
		}
		for i, r := range rows {
			switch l {
			case schemas.Strategic:
				if _, err := cloud.ParseProvider(r.Provider); err != nil {
					return fmt.Errorf("applying strategic decision for app %s at day %d: %w", r.App, b.Header.Tick, err)
				}
				a := e.app(r.App)
				a.strategic, a.hasDecision, a.strategicTick = r, true, b.Header.Tick
				e.placements++
			case schemas.Tactical:
				if _, err := cloud.ParseMetro(r.Region); err != nil {
					return fmt.Errorf("applying tactical decision for %s/%s at hour %d: %w", r.App, r.Func, b.Header.Tick, err)
				}
				if _, err := cloud.TierOf(int(r.MemoryMB)); err != nil {
					return fmt.Errorf("applying tactical decision for %s/%s at hour %d: %w", r.App, r.Func, b.Header.Tick, err)
				}
				f := e.function(r.App, r.Func)
				f.tactical, f.hasTactical, f.tacticalTick = r, true, b.Header.Tick
				e.placements++
			case schemas.Operational:
				if r.Prewarm < 0 || r.KeepWarmMS < 0 {
					return fmt.Errorf("applying operational decision for %s/%s at tick %d: negative pre-warm or keep-warm", r.App, r.Func, b.Header.Tick)
				}
				f := e.function(r.App, r.Func)
				same[i] = f.hasOperational && sameOperational(f.operational, r)
				f.operational, f.hasOperational, f.operationalTick, f.opRef = r, true, b.Header.Tick, nil
			}
		}
		ts = append(ts, taken{l, &schemas.DecisionBatch{Header: b.Header, Rows: rows}, same})
	}
	for _, t := range ts {
		tickMS := t.b.Header.TickStartUS / 1000
		for i, r := range t.b.Rows {
			if t.same != nil && t.same[i] {
				continue
			}
			d := &stratapb.Decision{RunId: e.cfg.RunID, Layer: string(t.layer), Tick: t.b.Header.Tick, TickMs: tickMS,
				App: r.App, Func: r.Func, Policy: r.Policy, PolicyVersion: r.PolicyVersion, Action: r.Action,
				KeepWarmMs: r.KeepWarmMS}
			if r.LogProb.Valid {
				d.LogProb = proto.Float64(r.LogProb.V)
			}
			if r.Value.Valid {
				d.Value = proto.Float64(r.Value.V)
			}
			var pl cloud.Placement
			if t.layer == schemas.Strategic {
				pl = e.cfg.DefaultPlacement
				pl.Provider, _ = cloud.ParseProvider(r.Provider)
			} else {
				f := e.function(r.App, r.Func)
				pl = e.placement(f)
				if t.layer == schemas.Operational {
					d.Prewarm = r.Prewarm
				}
			}
			d.Provider = pl.Provider.String()
			if t.layer != schemas.Strategic {
				d.Region, d.MemoryMb = pl.Metro.String(), int32(pl.Tier.MB())
			}
			out.Decisions = append(out.Decisions, d)
		}
	}
	return nil
}

// sameOperational reports whether operational decision b repeats a: equal
// in every field the decisions table records (the prediction is not one).
func sameOperational(a, b schemas.DecisionRow) bool {
	a.Predicted, b.Predicted = schemas.Value{}, schemas.Value{}
	return a == b
}

// tickFunction evaluates one function's tick k, records it for the hour's
// and the day's counterfactuals, and emits its operational reward.
func (e *Engine) tickFunction(f *fnState, k int64, arr []Arrival, out *Output) ([]obsAt, error) {
	ks, ke := k*grid.OperationalTickUS, (k+1)*grid.OperationalTickUS
	pw := f.prewarm(ks)
	if len(arr) == 0 && pw == 0 {
		return nil, nil
	}
	pl := e.placement(f)
	if h := k / grid.TicksPerHour; f.hour != h {
		f.hour, f.hourPools, f.hourSegs, f.hourProvider = h, clonePools(f.pools), make([]segment, 0, f.hourSegsCap), pl.Provider
	}
	if d := k / grid.TicksPerDay; f.day != d {
		f.day, f.dayPools, f.dayHours = d, clonePools(f.pools), nil
	}
	reqs := make([]cloud.Request, len(arr))
	for i, a := range arr {
		reqs[i] = cloud.Request{StartUS: a.StartUS, DurationUS: a.DurationUS}
	}
	seg := segment{tick: k, metro: pl.Metro, tier: pl.Tier, prewarm: pw, reqs: reqs}
	f.hourSegs = append(f.hourSegs, seg) // the day's too, once the hour is over (detachHour)

	if !f.hasEv || f.ev.Placement() != pl {
		ev, err := e.m.Evaluator(&f.fn, pl)
		if err != nil {
			return nil, fmt.Errorf("evaluating tick %d: %w", k, err)
		}
		f.ev, f.hasEv, f.pool = ev, true, poolFrom(f.pools, pl, ks)
	}
	pool := f.pool
	start := e.starts.Clone(pool)
	iv := cloud.Interval{StartUS: ks, EndUS: ke}
	res := &e.tick
	if err := f.ev.EvaluateInto(res, pool, iv, []int{pw}, reqs); err != nil {
		return nil, fmt.Errorf("evaluating tick %d: %w", k, err)
	}
	ts := res.Ticks[0]
	obs := make([]obsAt, len(arr))
	for i, a := range arr {
		o := res.Outcomes[i]
		obs[i] = obsAt{a.StartUS, &stratapb.Observation{
			Arrival: &stratapb.Arrival{InvocationId: a.ID, App: a.App, Func: a.Func, StartUs: a.StartUS,
				EndUs: a.StartUS + a.DurationUS, DurationUs: a.DurationUS, Row: a.Row, RunId: e.cfg.RunID},
			Provider: proto.String(pl.Provider.String()), Region: proto.String(pl.Metro.String()),
			MemoryMb: proto.Int32(int32(pl.Tier.MB())), LatencyMs: proto.Float64(o.LatencyMS),
			CpuBusyMs: proto.Float64(o.CPUBusyS * 1e3), QueueWaitMs: proto.Float64(o.QueueWaitMS),
			MemoryUsedMb: proto.Float64(o.MemoryMB), ColdStart: proto.Bool(o.Cold),
			WarmInstances: proto.Int32(int32(max(ts.Instances-ts.ColdStarts, 0))), TotalInstances: proto.Int32(int32(ts.Instances)),
			CostUsd: proto.Float64(o.CostUSD), CarbonG: proto.Float64(o.CarbonG), Failed: proto.Bool(o.Failed),
			Source: "twin",
		}}
		end := a.StartUS + int64((o.ColdStartMS+o.QueueWaitMS+o.ExecMS)*1e3)
		f.lastEndUS = max(f.lastEndUS, end)
		if e.cfg.Outcomes {
			out.Outcomes = append(out.Outcomes, &stratapb.Outcome{RunId: e.cfg.RunID, InvocationId: a.ID, App: a.App, Func: a.Func,
				StartUs: a.StartUS, Provider: pl.Provider.String(), Region: pl.Metro.String(), MemoryMb: int32(pl.Tier.MB()),
				LatencyMs: o.LatencyMS, ExecMs: o.ExecMS, QueueWaitMs: o.QueueWaitMS, ColdStart: o.Cold, Failed: o.Failed,
				SlaViolation: o.Violated, CostUsd: o.CostUSD, CarbonG: o.CarbonG})
		}
	}
	if res.Aggregate.Invocations == 0 && res.Aggregate.CostUSD == 0 {
		return obs, nil
	}
	// The operational reward is scored later (Score): it needs the
	// alternatives' counterfactuals, which the telemetry does not.
	if f.hasOperational && f.opRef == nil {
		d := f.operational
		f.opRef = &d
	}
	out.ops = append(out.ops, opScore{f: f, k: k, pw: pw, n: len(arr), start: start, reqs: reqs, agg: res.Aggregate,
		lat0: latencies(res.Outcomes), dec: f.opRef, own: f.hasOperational && f.operationalTick == k})
	return obs, nil
}

// opScore is what scoreOperational needs of one function's tick k, taken
// when it was simulated: the decided pre-warm count pw, the tick's
// starting pool start (the alternatives are evaluated from it), its
// requests, agg and lat0 what pw gave, n the tick's arrivals, dec the
// decision in force (nil without one; never changed once taken) and own
// whether it was decided for this tick.
type opScore struct {
	f     *fnState
	k     int64
	pw, n int
	start *cloud.Pool
	reqs  []cloud.Request
	agg   cloud.Aggregate
	lat0  []float64
	dec   *schemas.DecisionRow
	own   bool
}

// scoreOperational emits the operational reward of o's tick: the decided
// pre-warm count against the alternatives, each from the tick's starting
// pool.
func (e *Engine) scoreOperational(o *opScore, out *Output) error {
	f, k, pw, start := o.f, o.k, o.pw, o.start
	ks := k * grid.OperationalTickUS
	iv := cloud.Interval{StartUS: ks, EndUS: ks + grid.OperationalTickUS}
	sc := &e.score
	alts := append(sc.alts[:0], e.cfg.PrewarmAlternatives...)
	if !slices.Contains(alts, pw) {
		alts = append(alts, pw)
	}
	slices.Sort(alts)
	// Every alternative's aggregate is set below; of the latencies only the
	// chosen count's.
	aggs := slices.Grow(sc.aggs[:0], len(alts))[:len(alts)]
	lat := slices.Grow(sc.lat[:0], len(alts))[:len(alts)]
	clear(lat)
	sc.alts, sc.aggs, sc.lat = alts, aggs, lat
	chosen := slices.Index(alts, pw)
	ev, err := e.m.Evaluator(&f.fn, start.Placement())
	if err != nil {
		return fmt.Errorf("evaluating tick %d: %w", k, err)
	}
	for i, a := range alts {
		if a == pw {
			aggs[i], lat[i] = o.agg, o.lat0
			continue
		}
		// Only the chosen count's latencies enter the reward.
		sc.prewarm[0] = a
		start.CopyTo(&sc.pool)
		if err := ev.EvaluateInto(&sc.eval, &sc.pool, iv, sc.prewarm[:], o.reqs); err != nil {
			return fmt.Errorf("evaluating tick %d with pre-warm %d: %w", k, a, err)
		}
		aggs[i] = sc.eval.Aggregate
	}
	rw := e.reward(schemas.Operational, k, ks, f.key.app, f.key.fn, aggs, lat, chosen)
	if o.dec != nil && o.dec.Predicted.Valid {
		rw.PredError = math.Abs(o.dec.Predicted.V - float64(o.n))
	}
	if o.agg.ColdStarts > 0 {
		rw.Underprovisioned = 1
	}
	out.Rewards = append(out.Rewards, rw)
	if o.own {
		e.transition(rw, o.dec, out, nil)
	}
	return nil
}

// transition adds the transition of reward rw under decision d, when its
// layer's transitions are on; actionRewards, when not nil, are the rewards
// every action would have earned (Transition.action_rewards).
func (e *Engine) transition(rw *stratapb.Reward, d *schemas.DecisionRow, out *Output, actionRewards []float32) {
	if !e.cfg.Transitions[schemas.Layer(rw.Layer)] {
		return
	}
	tr := &stratapb.Transition{RunId: rw.RunId, Layer: rw.Layer, Tick: rw.Tick, App: rw.App, Func: rw.Func,
		Action: d.Action, Reward: rw.Reward, PolicyVersion: d.PolicyVersion, Policy: d.Policy, ActionRewards: actionRewards}
	if d.LogProb.Valid {
		tr.LogProb = proto.Float64(d.LogProb.V)
	}
	if d.Value.Valid {
		tr.Value = proto.Float64(d.Value.V)
	}
	out.Transitions = append(out.Transitions, tr)
}

// actionRewards returns the alternatives' rewards as a transition carries
// them.
func actionRewards(rs []cloud.Reward) []float32 {
	ar := make([]float32, len(rs))
	for i, r := range rs {
		ar[i] = float32(r.R)
	}
	return ar
}

func latencies(os []cloud.Outcome) []float64 {
	out := make([]float64, len(os))
	for i, o := range os {
		out[i] = o.LatencyMS
	}
	return out
}

// percentile returns the nearest-rank q-quantile of xs (sorted in place).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// reward scores the alternatives of one operational tick and builds the
// reward row of the chosen one, with Score's scratch: nothing of the
// alternatives outlives the call (no transition carries them).
func (e *Engine) reward(l schemas.Layer, tick, startUS int64, app, fn string, aggs []cloud.Aggregate, lat [][]float64, chosen int) *stratapb.Reward {
	sc := &e.score
	rs, best := cloud.RewardsInto(sc.rewards, aggs, e.cfg.Reward)
	sc.rewards = rs
	sc.ls = append(sc.ls[:0], lat[chosen]...)
	return e.rewardRow(l, tick, startUS, app, fn, aggs[chosen], rs[chosen], rs[best].R, sc.ls)
}

// rewards scores the alternatives of one interval and returns the reward
// row of the chosen one and every alternative's reward.
func (e *Engine) rewards(l schemas.Layer, tick, startUS int64, app, fn string, aggs []cloud.Aggregate, lat [][]float64, chosen int) (*stratapb.Reward, []cloud.Reward) {
	rs, best := cloud.Rewards(aggs, e.cfg.Reward)
	if e.cfg.Learn != nil && l != schemas.Operational {
		e.cfg.Learn.Add(Counterfactual{Layer: l, Tick: tick, App: app, Func: fn, Invocations: int64(aggs[chosen].Invocations), Rewards: rs})
	}
	return e.rewardRow(l, tick, startUS, app, fn, aggs[chosen], rs[chosen], rs[best].R, slices.Clone(lat[chosen])), rs
}

// rewardRow is the reward row of an interval's chosen alternative: a its
// aggregate, r its reward, oracle the best alternative's and ls its
// latencies (sorted here).
func (e *Engine) rewardRow(l schemas.Layer, tick, startUS int64, app, fn string, a cloud.Aggregate, r cloud.Reward, oracle float64, ls []float64) *stratapb.Reward {
	return &stratapb.Reward{RunId: e.cfg.RunID, Layer: string(l), Tick: tick, TickMs: startUS / 1000, App: app, Func: fn,
		Reward: r.R, RCost: r.RCost, RPerf: r.RPerf, RCarbon: r.RCarbon, SlaPenalty: e.cfg.Reward.SLAPenalty * r.SLARate,
		Invocations: int64(a.Invocations), ColdStarts: int64(a.ColdStarts), SlaViolations: int64(a.Violations),
		CostUsd: a.CostUSD, PrewarmCostUsd: a.PrewarmCostUSD, CarbonG: a.CarbonG,
		LatencyP50Ms: percentile(ls, 0.5), LatencyP95Ms: percentile(ls, 0.95),
		OracleReward: oracle, Regret: oracle - r.R}
}

// addAggregate folds b into a: counts and totals add, the mean latency is
// weighted by invocations and the maximum kept; P95 is left to the caller,
// which keeps the latencies.
func addAggregate(a *cloud.Aggregate, b cloud.Aggregate) {
	n := a.Invocations + b.Invocations
	if n > 0 {
		a.MeanLatencyMS = (a.MeanLatencyMS*float64(a.Invocations) + b.MeanLatencyMS*float64(b.Invocations)) / float64(n)
	}
	a.Invocations = n
	a.ColdStarts += b.ColdStarts
	a.Queued += b.Queued
	a.Failures += b.Failures
	a.Violations += b.Violations
	a.CostUSD += b.CostUSD
	a.PrewarmCostUSD += b.PrewarmCostUSD
	a.CarbonG += b.CarbonG
	a.PrewarmCarbonG += b.PrewarmCarbonG
	a.MaxLatencyMS = max(a.MaxLatencyMS, b.MaxLatencyMS)
	a.BusySeconds += b.BusySeconds
}

// replaySegments runs segments of function fn — chunks of them, in order —
// on pools from start (cloned lazily per placement), with place giving each
// segment's placement, and folds the results into agg and, if lat is not
// nil, the latencies into lat; sc is the calling goroutine's scratch.
func (e *Engine) replaySegments(sc *replayScratch, fn *cloud.Function, start map[cloud.Placement]*cloud.Pool, chunks [][]segment, place func(segment) cloud.Placement, agg *cloud.Aggregate, lat *[]float64) error {
	// The placements of one replay are few (one for an hour's alternative,
	// one per tactical choice of the day): a list beats a map.
	pools := sc.placed[:0]
	for _, segs := range chunks {
		for _, s := range segs {
			pl := place(s)
			var pp *placedPool
			for i := range pools {
				if pools[i].pl == pl {
					pp = &pools[i]
					break
				}
			}
			if pp == nil {
				var p *cloud.Pool
				if sp, ok := start[pl]; ok {
					p = sp.Clone()
				} else {
					p = cloud.NewPool(pl, s.tick*grid.OperationalTickUS)
				}
				ev, err := e.m.Evaluator(fn, pl)
				if err != nil {
					return err
				}
				pools = append(pools, placedPool{pl, p, ev})
				pp = &pools[len(pools)-1]
			}
			ks := s.tick * grid.OperationalTickUS
			sc.prewarm[0] = s.prewarm
			if err := pp.ev.EvaluateInto(&sc.eval, pp.pool, cloud.Interval{StartUS: ks, EndUS: ks + grid.OperationalTickUS}, sc.prewarm[:], s.reqs); err != nil {
				return err
			}
			addAggregate(agg, sc.eval.Aggregate)
			if lat != nil {
				for _, o := range sc.eval.Outcomes {
					*lat = append(*lat, o.LatencyMS)
				}
			}
		}
	}
	clear(pools)
	sc.placed = pools[:0]
	return nil
}

// placedPool is a pool of one placement in a replay (replaySegments).
type placedPool struct {
	pl   cloud.Placement
	pool *cloud.Pool
	ev   cloud.Evaluator
}

// hourJob is one function's hour for closeHour, detached from the
// function when the hour ends (detachHour).
type hourJob struct {
	key      fnKey
	fn       *cloud.Function
	pools    map[cloud.Placement]*cloud.Pool
	segs     []segment
	provider cloud.Provider
	// dec is the tactical decision in force, own whether it was made for
	// this hour.
	dec schemas.DecisionRow
	own bool
}

// detachHour takes, in app and function order, the record of hour h of
// every function active in it, and releases it from the function.
func (e *Engine) detachHour(h int64) []hourJob {
	var jobs []hourJob
	for _, a := range e.appList {
		for _, f := range a.funcs {
			if f.hour != h || len(f.hourSegs) == 0 {
				continue
			}
			jobs = append(jobs, hourJob{key: f.key, fn: &f.fn, pools: f.hourPools, segs: f.hourSegs, provider: f.hourProvider,
				dec: f.tactical, own: f.hasTactical && f.tacticalTick == h})
			// The hour's segments are the day's as well: closeHour and
			// closeDay only read them.
			f.dayHours = append(f.dayHours, f.hourSegs)
			f.hourSegsCap = len(f.hourSegs)
			f.hourSegs, f.hourPools = nil, nil
		}
	}
	return jobs
}

// closeHour emits the tactical rewards of hour h: for every function active
// in it (jobs), the hour replayed under the 24 region × tier placements of
// the hour's provider.
func (e *Engine) closeHour(h int64, jobs []hourJob, out *Output) error {
	for _, j := range jobs {
		yield()
		n := cloud.NumMetros * cloud.NumTiers
		aggs := make([]cloud.Aggregate, n)
		lat := make([][]float64, n)
		s0 := j.segs[0]
		chosen := int(s0.metro)*cloud.NumTiers + int(s0.tier)
		for t := range cloud.NumTiers {
			// The metros where the function holds no instance start
			// alike: one replay of their instances, priced per metro.
			var fresh []int
			for m := range cloud.NumMetros {
				i := m*cloud.NumTiers + t
				pl := cloud.Placement{Provider: j.provider, Metro: cloud.Metro(m), Tier: cloud.Tier(t)}
				if p, ok := j.pools[pl]; !ok || p.Len() == 0 {
					fresh = append(fresh, i)
					continue
				}
				var li *[]float64 // the reward's percentiles are the chosen one's
				if i == chosen {
					li = &lat[i]
				}
				if err := e.replaySegments(&e.score, j.fn, j.pools, [][]segment{j.segs}, func(segment) cloud.Placement { return pl }, &aggs[i], li); err != nil {
					return fmt.Errorf("scoring hour %d of %s/%s: %w", h, j.key.app, j.key.fn, err)
				}
			}
			if len(fresh) > 0 {
				if err := e.replayShared(j, fresh, aggs, lat, chosen); err != nil {
					return fmt.Errorf("scoring hour %d of %s/%s: %w", h, j.key.app, j.key.fn, err)
				}
			}
		}
		if aggs[chosen].Invocations == 0 && aggs[chosen].CostUSD == 0 {
			continue
		}
		rw, rs := e.rewards(schemas.Tactical, h, h*grid.TacticalTickUS, j.key.app, j.key.fn, aggs, lat, chosen)
		out.Rewards = append(out.Rewards, rw)
		if j.own {
			// The alternatives are the actions: metro × tier, in the
			// order of the tactical action index.
			e.transition(rw, &j.dec, out, actionRewards(rs))
		}
	}
	return nil
}

// replayShared replays job j's hour under the placements of the action
// indices idx (metro × tier, all of j's provider and one tier) in one
// cloud.SharedReplay — none holds an instance in j.pools, so all start
// alike — folding each one's figures into aggs and the chosen one's
// latencies into lat: what replaySegments gives each alone, bit for bit
// (cloud.TestSharedReplayEqualsSeparate; the runs' reward digests agree).
func (e *Engine) replayShared(j hourJob, idx []int, aggs []cloud.Aggregate, lat [][]float64, chosen int) error {
	pls := make([]cloud.Placement, len(idx))
	starts := make([]*cloud.Pool, len(idx))
	for k, i := range idx {
		pls[k] = cloud.Placement{Provider: j.provider, Metro: cloud.Metro(i / cloud.NumTiers), Tier: cloud.Tier(i % cloud.NumTiers)}
		starts[k] = j.pools[pls[k]] // nil where the function has none
	}
	sr, err := e.m.NewSharedReplay(j.fn, pls, starts, j.segs[0].tick*grid.OperationalTickUS)
	if err != nil {
		return err
	}
	fold := func(k int, r *cloud.Result) {
		i := idx[k]
		addAggregate(&aggs[i], r.Aggregate)
		if i == chosen {
			for _, o := range r.Outcomes {
				lat[i] = append(lat[i], o.LatencyMS)
			}
		}
	}
	for _, s := range j.segs {
		ks := s.tick * grid.OperationalTickUS
		if len(s.reqs) > 0 {
			if err := sr.Tick(ks, s.prewarm, s.reqs, fold); err != nil {
				return err
			}
			continue
		}
		ta, err := sr.IdleTick(ks, s.prewarm)
		if err != nil {
			return err
		}
		for k, a := range ta {
			addAggregate(&aggs[idx[k]], a)
		}
	}
	return nil
}

// dayJob is one app's day for closeDay, detached from its functions when
// the day ends (detachDay).
type dayJob struct {
	app string
	// chosen is the provider in force; dec the strategic decision in
	// force, own whether it was made for this day.
	chosen int
	dec    schemas.DecisionRow
	own    bool
	fns    []dayFunc
}

// daySoFar returns f's segments of the day so far: its past hours' and the
// current hour's.
func (f *fnState) daySoFar() []segment {
	return slices.Concat(append(slices.Clip(f.dayHours), f.hourSegs)...)
}

// dayFunc is one function's day in a dayJob.
type dayFunc struct {
	fn    *cloud.Function
	key   fnKey
	pools map[cloud.Placement]*cloud.Pool
	// hours holds the day's segments: the segments of each hour the
	// function was active in, in order.
	hours [][]segment
}

// detachDay takes, in app order, the record of day d of every app active
// in it, and releases it from the functions.
func (e *Engine) detachDay(d int64) []dayJob {
	var jobs []dayJob
	for _, a := range e.appList {
		j := dayJob{app: a.app, chosen: int(e.cfg.DefaultPlacement.Provider), dec: a.strategic, own: a.hasDecision && a.strategicTick == d}
		if a.hasDecision {
			if p, err := cloud.ParseProvider(a.strategic.Provider); err == nil {
				j.chosen = int(p)
			}
		}
		for _, f := range a.funcs {
			if f.day != d || len(f.dayHours) == 0 {
				continue
			}
			j.fns = append(j.fns, dayFunc{fn: &f.fn, key: f.key, pools: f.dayPools, hours: f.dayHours})
			f.dayHours, f.dayPools = nil, nil
		}
		if len(j.fns) > 0 {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// closeDay emits the strategic rewards of day d: for every app active in it
// (jobs), the day of all its functions replayed on each provider with each
// hour's metro and tier.
func (e *Engine) closeDay(d int64, jobs []dayJob, out *Output) error {
	for _, j := range jobs {
		yield()
		aggs := make([]cloud.Aggregate, cloud.NumProviders)
		lat := make([][]float64, cloud.NumProviders)
		for _, f := range j.fns {
			for p := range cloud.NumProviders {
				place := func(s segment) cloud.Placement {
					return cloud.Placement{Provider: cloud.Provider(p), Metro: s.metro, Tier: s.tier}
				}
				var lp *[]float64 // the reward's percentiles are the chosen one's
				if p == j.chosen {
					lp = &lat[p]
				}
				if err := e.replaySegments(&e.score, f.fn, f.pools, f.hours, place, &aggs[p], lp); err != nil {
					return fmt.Errorf("scoring day %d of %s/%s: %w", d, f.key.app, f.key.fn, err)
				}
			}
		}
		if aggs[j.chosen].Invocations == 0 && aggs[j.chosen].CostUSD == 0 {
			continue
		}
		rw, rs := e.rewards(schemas.Strategic, d, d*grid.StrategicTickUS, j.app, "", aggs, lat, j.chosen)
		out.Rewards = append(out.Rewards, rw)
		if j.own {
			// The alternatives are the actions: the providers, in the
			// order of the strategic action index.
			e.transition(rw, &j.dec, out, actionRewards(rs))
		}
	}
	return nil
}

package baselines

import (
	"context"
	"math"
	"slices"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// powerTuning is an AWS Lambda Power Tuning style memory sweep
// (docs/baselines.md#power-tuning), a tactical baseline, per function.
//
// Sampling: every tactical row with invocations offers one item, the hour's
// mean duration converted to the reference configuration (as greedy does),
// weighted by the hour's invocation count. A weighted reservoir of num
// items (default 10, Power Tuning's num) keeps them: item key ln(u)/w
// (Efraimidis–Spirakis A-Res), u drawn from hash(seed, tick, app, func).
// The rows carry no individual durations, so a "sampled invocation" is an
// hour's mean: the spread of durations within an hour is not seen.
//
// Sweep: at a function's first tactical tick of each trace day (day =
// ⌊TickStartUS ÷ 24 h⌋), after adding that tick's row (the previous day's
// last hour), if the reservoir holds items; the reservoir is then emptied.
// For each tier of the twin — 128, 256, 512, 1024, 2048, 3008 MB (the
// twin's 2048 replaces Power Tuning's default 1536) — at or above the
// memory need (greedy's rule: tiers below it would fail, and are excluded
// as P discards configurations without a duration), each sampled duration
// is run through Model.ExecUS (prior profile) and Model.InvocationCostUSD
// on the row's provider and region (default_provider / default_region when
// the row does not say). Durations and costs are trimmed means dropping
// ⌊n × discard_top_bottom⌋ (0.2) items at each end. The cost is the twin's
// per-invocation price (request fee and billing rules included, where P
// takes ⌈billed ms⌉ × base price × MB/128). Cold starts are not included in
// the duration: the twin's cold start does not depend on the tier, so it
// would add the same amount to every tier.
//
// Choice (strategy, default balanced): cost → lowest price, ties to the
// lower duration; speed → lowest duration, ties to the lower price;
// balanced → lowest w·price/max price + (1 − w)·duration/max duration over
// the tested tiers (balanced_weight w = 0.5), ties to the smaller tier.
//
// Between sweeps the tier is held; every row of a swept function gets a
// decision with the held tier on the row's current provider and region.
// Functions never swept are left out (the twin's default placement).
type powerTuning struct {
	base
	seed     int64
	ev       *evaluator
	num      int
	discard  float64
	strategy string
	weight   float64
	defPrv   cloud.Provider
	defMetro cloud.Metro
	funcs    map[entity]*ptState
	durs     []float64
	costs    []float64
}

// ptState is one function's reservoir and held tier.
type ptState struct {
	wl    workload
	res   []ptItem
	day   int64
	tier  cloud.Tier
	tuned bool
}

// ptItem is one reservoir item: its A-Res key and reference duration.
type ptItem struct {
	key   float64
	refMS float64
}

func newPowerTuning(b base, ps *params, seed int64, ev *evaluator) *powerTuning {
	metro, _ := cloud.ParseMetro(ps.choice("default_region", "us-east", "us-east", "us-west", "eu-west", "ap-southeast"))
	return &powerTuning{
		base:     b,
		seed:     seed,
		ev:       ev,
		num:      int(ps.int("num", 10, 1, 10_000)),
		discard:  ps.float("discard_top_bottom", 0.2, 0, 0.4),
		strategy: ps.choice("strategy", "balanced", "cost", "speed", "balanced"),
		weight:   ps.float("balanced_weight", 0.5, 0, 1),
		defPrv:   provider(ps),
		defMetro: metro,
		funcs:    map[entity]*ptState{},
	}
}

// Decide implements the policy for every row of the batch.
func (p *powerTuning) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	start := state.Header.TickStartUS
	day := grid.TickOf(start, grid.StrategicTickUS)
	for i := range state.Tactical {
		r := &state.Tactical[i]
		k := key(r.App, r.Func)
		st := p.funcs[k]
		if st == nil {
			st = &ptState{day: math.MinInt64}
			p.funcs[k] = st
		}
		st.wl.known = false
		observeTactical(p.ev, &st.wl, r)
		if st.wl.known && r.Invocations > 0 {
			u := uniform(entityHash(p.seed, state.Header.Tick, r.App, r.Func))
			p.offer(st, ptItem{key: math.Log(u) / float64(r.Invocations), refMS: st.wl.refMS})
		}
		pv := rowProvider(r, p.defPrv)
		mt, err := cloud.ParseMetro(r.Region)
		if err != nil {
			mt = p.defMetro
		}
		if day > st.day {
			st.day = day
			if len(st.res) > 0 {
				st.tier, st.tuned = p.sweep(st, pv, mt), true
				st.res = st.res[:0]
			}
		}
		if !st.tuned {
			continue
		}
		out.Rows = append(out.Rows, tacticalRow(&p.base, r, cloud.Placement{Provider: pv, Metro: mt, Tier: st.tier}))
	}
	return nil
}

// offer adds it to the reservoir, which keeps the num largest keys.
func (p *powerTuning) offer(st *ptState, it ptItem) {
	if len(st.res) < p.num {
		st.res = append(st.res, it)
		return
	}
	j := 0
	for i := range st.res {
		if st.res[i].key < st.res[j].key {
			j = i
		}
	}
	if it.key > st.res[j].key {
		st.res[j] = it
	}
}

// sweep evaluates every admissible tier on provider pv in metro mt and
// returns the one the strategy chooses.
func (p *powerTuning) sweep(st *ptState, pv cloud.Provider, mt cloud.Metro) cloud.Tier {
	minT := p.ev.minTier(&st.wl)
	var price, dur [cloud.NumTiers]float64
	maxPrice, maxDur := 0.0, 0.0
	for t := minT; t < cloud.NumTiers; t++ {
		pl := cloud.Placement{Provider: pv, Metro: mt, Tier: t}
		p.durs, p.costs = p.durs[:0], p.costs[:0]
		for _, it := range st.res {
			execUS := p.ev.m.ExecUS(pl, p.ev.prior, int64(math.Round(it.refMS*1000)))
			p.durs = append(p.durs, float64(execUS)/1000)
			p.costs = append(p.costs, p.ev.m.InvocationCostUSD(pl, execUS, false))
		}
		dur[t], price[t] = p.trimmedMean(p.durs), p.trimmedMean(p.costs)
		maxPrice, maxDur = max(maxPrice, price[t]), max(maxDur, dur[t])
	}
	best := minT
	for t := minT + 1; t < cloud.NumTiers; t++ {
		var better bool
		switch p.strategy {
		case "cost":
			better = price[t] < price[best] || (price[t] == price[best] && dur[t] < dur[best])
		case "speed":
			better = dur[t] < dur[best] || (dur[t] == dur[best] && price[t] < price[best])
		default:
			better = p.balanced(price[t], dur[t], maxPrice, maxDur) < p.balanced(price[best], dur[best], maxPrice, maxDur)
		}
		if better {
			best = t
		}
	}
	return best
}

func (p *powerTuning) balanced(price, dur, maxPrice, maxDur float64) float64 {
	s := 0.0
	if maxPrice > 0 {
		s += p.weight * price / maxPrice
	}
	if maxDur > 0 {
		s += (1 - p.weight) * dur / maxDur
	}
	return s
}

// trimmedMean sorts xs and averages it without ⌊n × discard⌋ values at
// each end.
func (p *powerTuning) trimmedMean(xs []float64) float64 {
	slices.Sort(xs)
	k := int(math.Floor(float64(len(xs)) * p.discard))
	xs = xs[k : len(xs)-k]
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

package cloud_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/strata-rl/strata/cloud"
)

func TestRewards(t *testing.T) {
	cfg := cloud.DefaultRewardConfig()
	tests := []struct {
		name string
		alts []cloud.Aggregate
		want []cloud.Reward
		best int
	}{
		{
			name: "components and penalty",
			alts: []cloud.Aggregate{
				{Invocations: 10, CostUSD: 2, MeanLatencyMS: 100, CarbonG: 4},
				{Invocations: 10, CostUSD: 1, MeanLatencyMS: 200, CarbonG: 1, Violations: 1},
			},
			want: []cloud.Reward{
				{R: 0.4*0 + 0.4*0.5 + 0.2*0, RCost: 0, RPerf: 0.5, RCarbon: 0, Cost: 2, Latency: 100, Carbon: 4},
				{R: 0.4*0.5 + 0.4*0 + 0.2*0.75 - 10*0.1, RCost: 0.5, RPerf: 0, RCarbon: 0.75, SLARate: 0.1, Cost: 1, Latency: 200, Carbon: 1},
			},
			best: 0,
		},
		{
			name: "max ≈ 0 scores 1; no invocations, no penalty",
			alts: []cloud.Aggregate{{}, {}},
			want: []cloud.Reward{{R: 1, RCost: 1, RPerf: 1, RCarbon: 1}, {R: 1, RCost: 1, RPerf: 1, RCarbon: 1}},
			best: 0,
		},
		{
			name: "clipping of cost, latency, carbon and reward",
			alts: []cloud.Aggregate{
				{Invocations: 1, Violations: 5, CostUSD: 50, MeanLatencyMS: 9000, CarbonG: 800},
				{Invocations: 4, CostUSD: 5, MeanLatencyMS: 2500, CarbonG: 250},
			},
			want: []cloud.Reward{
				{R: -10, SLARate: 1, Cost: 10, Latency: 5000, Carbon: 500},
				{R: 0.4*0.5 + 0.4*0.5 + 0.2*0.5, RCost: 0.5, RPerf: 0.5, RCarbon: 0.5, Cost: 5, Latency: 2500, Carbon: 250},
			},
			best: 1,
		},
		{
			name: "NaN and Inf inputs never leak",
			alts: []cloud.Aggregate{
				{Invocations: 1, CostUSD: math.NaN(), MeanLatencyMS: math.Inf(1), CarbonG: -3},
				{Invocations: 1, CostUSD: 1, MeanLatencyMS: 10, CarbonG: 1},
			},
			want: []cloud.Reward{
				{R: 0.4*1 + 0.4*0 + 0.2*1, RCost: 1, RPerf: 0, RCarbon: 1, Latency: 5000},
				{R: 0.4*0 + 0.4*(1-10.0/5000) + 0.2*0, RCost: 0, RPerf: 1 - 10.0/5000, RCarbon: 0, Cost: 1, Latency: 10, Carbon: 1},
			},
			best: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, best := cloud.Rewards(tt.alts, cfg)
			if best != tt.best {
				t.Errorf("best %d, want %d", best, tt.best)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				for _, pair := range [][2]float64{{g.R, w.R}, {g.RCost, w.RCost}, {g.RPerf, w.RPerf}, {g.RCarbon, w.RCarbon},
					{g.SLARate, w.SLARate}, {g.Cost, w.Cost}, {g.Latency, w.Latency}, {g.Carbon, w.Carbon}} {
					if math.IsNaN(pair[0]) || math.Abs(pair[0]-pair[1]) > 1e-12 {
						t.Errorf("alternative %d: got %+v, want %+v", i, g, w)
						break
					}
				}
			}
		})
	}
	if r, best := cloud.Rewards(nil, cfg); r != nil || best != -1 {
		t.Errorf("no alternatives: %v %d", r, best)
	}
	w := cfg
	w.WCost, w.WPerf, w.WCarbon, w.SLAPenalty = 1, 0, 0, 2
	r, _ := cloud.Rewards([]cloud.Aggregate{{Invocations: 2, Violations: 1, CostUSD: 1}, {Invocations: 2, CostUSD: 4}}, w)
	if r[0].R != 0.75-1 || r[1].R != 0 {
		t.Errorf("custom weights: %v, %v; want -0.25, 0", r[0].R, r[1].R)
	}
}

// TestOracleNeverBeaten evaluates random small workloads under every
// alternative (strategic: provider; tactical: metro × tier; operational:
// pre-warm) from copies of one starting state, and checks that the oracle's
// reward is never beaten, that re-evaluating the oracle from the same
// starting state reproduces it, and that the starting state is untouched.
func TestOracleNeverBeaten(t *testing.T) {
	m := newModel(t, nil)
	rng := rand.New(rand.NewPCG(7, 11))
	bests := map[int]int{} // trials won by each alternative index
	for trial := range 40 {
		fn := m.NewFunction("app", string(rune('a'+trial)), cloud.Metro(rng.IntN(cloud.NumMetros)), nil)
		if trial%3 == 0 {
			fn.SLOMS = 150 + rng.Float64()*400 // tight: violations happen
		}
		cur := cloud.Placement{Provider: cloud.Provider(rng.IntN(3)), Metro: cloud.Metro(rng.IntN(4)), Tier: cloud.Tier(rng.IntN(6))}
		set := cloud.NewPoolSet()
		key := func(pl cloud.Placement) cloud.PoolKey {
			return cloud.PoolKey{App: fn.App, Func: fn.Func, Placement: pl}
		}
		// Warm the current placement's pool with a first interval.
		warm := randomRequests(rng, 0, min1)
		evaluate(t, m, &fn, set.Get(key(cur), 0), cloud.Interval{StartUS: 0, EndUS: min1}, nil, warm)

		iv := cloud.Interval{StartUS: min1, EndUS: 3 * min1}
		reqs := randomRequests(rng, iv.StartUS, iv.EndUS)
		type alt struct {
			pl      cloud.Placement
			prewarm []int
		}
		var alts []alt
		for p := range cloud.Provider(cloud.NumProviders) {
			alts = append(alts, alt{pl: cloud.Placement{Provider: p, Metro: cur.Metro, Tier: cur.Tier}})
		}
		for i := range 4 {
			alts = append(alts, alt{pl: cloud.Placement{Provider: cur.Provider, Metro: cloud.Metro(i), Tier: cloud.Tier(rng.IntN(6))}})
		}
		for _, n := range []int{1, 3} {
			alts = append(alts, alt{pl: cur, prewarm: repeat(n, 8)})
		}
		run := func(a alt) cloud.Aggregate {
			s := set.Clone()
			return evaluate(t, m, &fn, s.Get(key(a.pl), iv.StartUS), iv, a.prewarm, reqs).Aggregate
		}
		aggs := make([]cloud.Aggregate, len(alts))
		for i, a := range alts {
			aggs[i] = run(a)
		}
		rewards, best := cloud.Rewards(aggs, m.Config().Reward)
		// The oracle, recomputed here: each alternative's reward from the
		// formula of docs/reward.md (referenceRewards), and their argmax.
		want := referenceRewards(aggs, m.Config().Reward)
		wantBest := 0
		for i, r := range want {
			if r > want[wantBest] {
				wantBest = i
			}
		}
		for i, r := range rewards {
			if math.IsNaN(r.R) || math.IsInf(r.R, 0) || r.R < -10 || r.R > 10 {
				t.Fatalf("trial %d: reward %v out of range", trial, r.R)
			}
			if math.Abs(r.R-want[i]) > 1e-12 {
				t.Errorf("trial %d: alternative %d (%v) scored %v, the formula gives %v", trial, i, alts[i].pl, r.R, want[i])
			}
		}
		// best must be the argmax (the lowest index among exact ties; a
		// tie within rounding of the two computations is accepted).
		if len(rewards) != len(alts) || best < 0 || best >= len(alts) ||
			best != wantBest && math.Abs(want[best]-want[wantBest]) > 1e-12 {
			t.Errorf("trial %d: oracle is alternative %d, want %d (rewards %v)", trial, best, wantBest, want)
		}
		bests[wantBest]++
		if again := run(alts[best]); !reflect.DeepEqual(again, aggs[best]) {
			t.Errorf("trial %d: re-evaluating the oracle gave %+v, first %+v", trial, again, aggs[best])
		}
		if p := set.Get(key(cur), 0); p.Now() != min1 {
			t.Errorf("trial %d: the starting pool moved to %d", trial, p.Now())
		}
	}
	// The check can tell an argmax from "always the first" or "always the
	// last": the oracle must move between alternatives across trials.
	if len(bests) < 3 {
		t.Errorf("the oracle was one of only %d alternative indices over 40 trials (%v): the trials cannot tell a wrong argmax", len(bests), bests)
	}
	t.Logf("trials won per alternative index: %v", bests)
}

// referenceRewards computes each alternative's reward from the formula of
// docs/reward.md (cloud.Rewards' doc comment), independently of Rewards:
//
//	R = WCost·(1 − c/max c) + WPerf·(1 − l/max l) + WCarbon·(1 − g/max g) − SLAPenalty·violations/invocations
//
// with cost c, mean latency l and carbon g clipped to [0, Max…] first (NaN
// as 0), a component scoring 1 when its maximum is at most Epsilon, and R
// clipped to ±MaxReward.
func referenceRewards(alts []cloud.Aggregate, cfg cloud.RewardConfig) []float64 {
	clip := func(v, hi float64) float64 {
		if !(v > 0) { // NaN, negative, zero
			return 0
		}
		return math.Min(v, hi)
	}
	c, l, g := make([]float64, len(alts)), make([]float64, len(alts)), make([]float64, len(alts))
	var maxC, maxL, maxG float64
	for i, a := range alts {
		c[i], l[i], g[i] = clip(a.CostUSD, cfg.MaxCostUSD), clip(a.MeanLatencyMS, cfg.MaxLatencyMS), clip(a.CarbonG, cfg.MaxCarbonG)
		maxC, maxL, maxG = math.Max(maxC, c[i]), math.Max(maxL, l[i]), math.Max(maxG, g[i])
	}
	score := func(x, mx float64) float64 {
		if mx <= cfg.Epsilon {
			return 1
		}
		return 1 - x/mx
	}
	out := make([]float64, len(alts))
	for i, a := range alts {
		sla := 0.0
		if a.Invocations > 0 {
			sla = math.Min(float64(a.Violations)/float64(a.Invocations), 1)
		}
		r := cfg.WCost*score(c[i], maxC) + cfg.WPerf*score(l[i], maxL) + cfg.WCarbon*score(g[i], maxG) - cfg.SLAPenalty*sla
		out[i] = math.Max(-cfg.MaxReward, math.Min(cfg.MaxReward, r))
	}
	return out
}

// randomRequests returns 0–40 requests in [from, to), sorted, with bursts.
func randomRequests(rng *rand.Rand, from, to int64) []cloud.Request {
	n := rng.IntN(41)
	out := make([]cloud.Request, 0, n)
	t := from
	for range n {
		t += rng.Int64N((to - from) / int64(n+1))
		if rng.IntN(4) == 0 {
			t = min(t, to-1) // burst: same start
		}
		if t >= to {
			break
		}
		out = append(out, cloud.Request{StartUS: t, DurationUS: rng.Int64N(3 * sec)})
	}
	return out
}

// BenchmarkEvaluate measures Evaluate on one hour of a busy function (about
// 3,600 invocations with bursts and 240 pre-warm ticks) from a clone of a
// warm pool, the way counterfactual evaluation calls it.
func BenchmarkEvaluate(b *testing.B) {
	m := newModel(b, nil)
	fn := m.NewFunction("bench", "fn", cloud.USEast, nil)
	fn.Profile.WorkingSetMB = 100
	rng := rand.New(rand.NewPCG(1, 2))
	iv := cloud.Interval{StartUS: 0, EndUS: hour}
	var reqs []cloud.Request
	for t := int64(0); t < hour; t += rng.Int64N(2 * sec) {
		for range 1 + rng.IntN(2) {
			reqs = append(reqs, cloud.Request{StartUS: t, DurationUS: 50_000 + rng.Int64N(2*sec)})
		}
	}
	prewarm := repeat(2, 240)
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}
	start := cloud.NewPool(pl, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Evaluate(&fn, start.Clone(), iv, prewarm, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(reqs))*float64(b.N)/b.Elapsed().Seconds(), "invocations/s")
}

package cloud

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// RewardConfig holds the reward's weights, SLA penalty and clipping bounds
// (docs/reward.md, seed §2.2).
type RewardConfig struct {
	// WCost, WPerf and WCarbon weight the normalised components. Defaults
	// 0.4, 0.4, 0.2.
	WCost, WPerf, WCarbon float64
	// SLAPenalty multiplies the interval's SLA-violation rate. Default 10.
	SLAPenalty float64
	// MaxReward clips the reward to [−MaxReward, MaxReward]. Default 10.
	MaxReward float64
	// MaxCostUSD, MaxLatencyMS and MaxCarbonG clip an alternative's cost,
	// mean latency and carbon per interval before normalisation. Defaults
	// 10 USD, 5000 ms, 500 g.
	MaxCostUSD, MaxLatencyMS, MaxCarbonG float64
	// Epsilon is the "≈ 0" threshold: a component whose maximum over the
	// alternatives is at most Epsilon scores 1. Default 1e-12.
	Epsilon float64
}

// DefaultRewardConfig returns the reward defaults of docs/reward.md.
func DefaultRewardConfig() RewardConfig {
	return RewardConfig{
		WCost: 0.4, WPerf: 0.4, WCarbon: 0.2, SLAPenalty: 10, MaxReward: 10,
		MaxCostUSD: 10, MaxLatencyMS: 5000, MaxCarbonG: 500, Epsilon: 1e-12,
	}
}

// Validate reports invalid fields; each error wraps ErrInvalidConfig.
func (c *RewardConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
		pos  bool
	}{
		{"WCost", c.WCost, false}, {"WPerf", c.WPerf, false}, {"WCarbon", c.WCarbon, false},
		{"SLAPenalty", c.SLAPenalty, false}, {"MaxReward", c.MaxReward, true},
		{"MaxCostUSD", c.MaxCostUSD, true}, {"MaxLatencyMS", c.MaxLatencyMS, true},
		{"MaxCarbonG", c.MaxCarbonG, true}, {"Epsilon", c.Epsilon, false},
	} {
		if !finite(f.v) || f.v < 0 || (f.pos && f.v == 0) {
			errs = append(errs, fmt.Errorf("%w: Reward.%s %v must be finite and %s", ErrInvalidConfig, f.name, f.v,
				map[bool]string{true: "positive", false: "non-negative"}[f.pos]))
		}
	}
	return errors.Join(errs...)
}

// Reward is one alternative's reward and its parts.
type Reward struct {
	// R is the clipped total reward.
	R float64
	// RCost, RPerf and RCarbon are the normalised components in [0, 1].
	RCost, RPerf, RCarbon float64
	// SLARate is SLA violations ÷ invocations (0 without invocations).
	SLARate float64
	// Cost, Latency and Carbon are the clipped figures the components were
	// computed from (USD, mean ms, g).
	Cost, Latency, Carbon float64
}

// sanitize maps NaN to 0 and clips v to [0, hi].
func sanitize(v, hi float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return min(v, hi)
}

// Rewards scores the alternatives of one decision interval, all evaluated
// from the same starting state:
//
//	R = WCost·R_cost + WPerf·R_perf + WCarbon·R_carbon − SLAPenalty·(violations/invocations)
//	R_x = 1 − x/max_x over the alternatives (1 when max_x ≤ Epsilon)
//
// with x_cost the interval's cost, x_perf its mean latency and x_carbon its
// carbon, each clipped first, and R clipped to [−MaxReward, MaxReward]. It
// returns each alternative's Reward and the index of the best one (the
// per-interval hindsight oracle; the lowest index wins ties), or −1 when
// alts is empty. No NaN or Inf is ever returned.
func Rewards(alts []Aggregate, cfg RewardConfig) ([]Reward, int) {
	return RewardsInto(nil, alts, cfg)
}

// RewardsInto is Rewards writing into dst's array when it has room (a
// caller scoring interval after interval reuses one slice); it returns
// the slice it wrote, nil when alts is empty.
func RewardsInto(dst []Reward, alts []Aggregate, cfg RewardConfig) ([]Reward, int) {
	if len(alts) == 0 {
		return nil, -1
	}
	out := slices.Grow(dst[:0], len(alts))[:len(alts)]
	var maxC, maxL, maxG float64
	for i, a := range alts {
		r := &out[i]
		*r = Reward{}
		r.Cost = sanitize(a.CostUSD, cfg.MaxCostUSD)
		r.Latency = sanitize(a.MeanLatencyMS, cfg.MaxLatencyMS)
		r.Carbon = sanitize(a.CarbonG, cfg.MaxCarbonG)
		if a.Invocations > 0 {
			r.SLARate = sanitize(float64(a.Violations)/float64(a.Invocations), 1)
		}
		maxC, maxL, maxG = max(maxC, r.Cost), max(maxL, r.Latency), max(maxG, r.Carbon)
	}
	norm := func(x, mx float64) float64 {
		if mx <= cfg.Epsilon {
			return 1
		}
		return min(max(1-x/mx, 0), 1)
	}
	best := 0
	for i := range out {
		r := &out[i]
		r.RCost, r.RPerf, r.RCarbon = norm(r.Cost, maxC), norm(r.Latency, maxL), norm(r.Carbon, maxG)
		v := cfg.WCost*r.RCost + cfg.WPerf*r.RPerf + cfg.WCarbon*r.RCarbon - cfg.SLAPenalty*r.SLARate
		if !finite(v) {
			v = -cfg.MaxReward
		}
		r.R = min(max(v, -cfg.MaxReward), cfg.MaxReward)
		if r.R > out[best].R {
			best = i
		}
	}
	return out, best
}

package twin

import (
	"maps"
	"slices"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// Stats counts what a twin service did.
type Stats struct {
	Ticks     int64 `json:"ticks"`
	Arrivals  int64 `json:"arrivals"`
	Decisions int64 `json:"decisions"`
	Rewards   int64 `json:"rewards"`
	Telemetry int64 `json:"telemetry"`
	Outcomes  int64 `json:"outcomes"`
	// Transitions counts the transitions written; TransitionsDropped those
	// left out because the decision's state row was missing or a vector
	// was not finite (and, in a Shadow, those of late decisions or whose
	// next state did not come in time).
	Transitions        int64 `json:"transitions"`
	TransitionsDropped int64 `json:"transitions_dropped"`
	// TransitionIntervals counts, per layer, the intervals closed with an
	// end-of-interval marker.
	TransitionIntervals map[string]int64 `json:"transition_intervals,omitempty"`
	HorizonTick         int64            `json:"horizon_tick"`
	// ScoredInvocations counts the invocations of the scored ticks
	// (ServiceConfig.ScoreFromTick on): the denominator of per-invocation
	// figures.
	ScoredInvocations int64 `json:"scored_invocations"`
	// Published counts the decisions, rewards and outcomes written to
	// Kafka, where a sink reads them: those of Decisions, Rewards and
	// Outcomes that ServiceConfig's filters and TelemetryOnly let through.
	Published Published `json:"published"`
	// Held counts the ticks the gate held (ServiceConfig.Gate) and
	// HeldSeconds the time it held them.
	Held        int64   `json:"held,omitempty"`
	HeldSeconds float64 `json:"held_seconds,omitempty"`
	// LatencyByDay is the scored invocations' latency histogram per day of
	// the run (0 is its first day).
	LatencyByDay map[int64]*schemas.LatencyHistogram `json:"-"`
	// RewardsSHA256 and DecisionsSHA256 digest the serialised rewards and
	// joined decisions in the order the twin wrote them: equal digests mean
	// byte-identical tables, whatever the replay speed.
	RewardsSHA256   string `json:"rewards_sha256"`
	DecisionsSHA256 string `json:"decisions_sha256"`
	// Layers holds per-layer decision counts and mean rewards.
	Layers map[string]LayerStats `json:"layers"`
	// Totals over every evaluated function-tick of the run: execution and
	// pre-warm cost (USD) and carbon (g), cold starts and SLA violations.
	CostUSD float64 `json:"cost_usd"`
	// PrewarmCostUSD is the pre-warm (keep-warm) part of CostUSD.
	PrewarmCostUSD float64 `json:"prewarm_cost_usd"`
	CarbonG        float64 `json:"carbon_g"`
	ColdStarts     int64   `json:"cold_starts"`
	Violations     int64   `json:"sla_violations"`
	// Latency percentiles over every invocation, milliseconds (a Shadow
	// keeps none).
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP95MS float64 `json:"latency_p95_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	// LateArrivals counts the arrivals dropped because their tick was
	// already evaluated (in a Shadow also those before the first
	// watermark's tick); DuplicateArrivals those dropped because their
	// invocation id was already read for a tick not yet evaluated (a
	// Shadow); InvalidArrivals the live observations that could not be
	// simulated (no app or func, negative duration).
	LateArrivals      int64 `json:"late_arrivals,omitempty"`
	DuplicateArrivals int64 `json:"duplicate_arrivals,omitempty"`
	InvalidArrivals   int64 `json:"invalid_arrivals,omitempty"`
	// DecisionBatches counts the decision batches completed (every shard
	// in); LateDecisionBatches, in a Shadow, those that completed after
	// their interval's first tick was evaluated and took effect later.
	DecisionBatches     int64 `json:"decision_batches,omitempty"`
	LateDecisionBatches int64 `json:"late_decision_batches,omitempty"`
}

// Published counts the records a twin wrote to Kafka, per table.
type Published struct {
	Decisions int64 `json:"decisions"`
	Rewards   int64 `json:"rewards"`
	Outcomes  int64 `json:"outcomes"`
}

// LayerStats summarises one layer's decisions and rewards.
type LayerStats struct {
	Decisions  int64   `json:"decisions"`
	Rewards    int64   `json:"rewards"`
	MeanReward float64 `json:"mean_reward"`
	MeanRegret float64 `json:"mean_regret"`
	// InvokedRewards counts the reward rows whose decided alternative had
	// invocations; MeanRewardInvoked and MeanRegretInvoked are the means
	// over them. The rest are intervals with only pre-warm cost, whose
	// alternatives differ in cost and carbon alone (every one has R_perf 1
	// and no SLA penalty), so their share moves MeanReward with the
	// operational policy (docs/baselines.md, "Why these rows look odd").
	InvokedRewards    int64   `json:"invoked_rewards"`
	MeanRewardInvoked float64 `json:"mean_reward_invoked"`
	MeanRegretInvoked float64 `json:"mean_regret_invoked"`
}

// snapshot returns a copy of the counters with the digests, the layers'
// means and the latency percentiles filled in.
func (c *core) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.RewardsSHA256 = c.digests.Rewards()
	st.DecisionsSHA256 = c.digests.Decisions()
	st.TransitionIntervals = maps.Clone(c.stats.TransitionIntervals)
	st.Layers = map[string]LayerStats{}
	for l, ls := range c.stats.Layers {
		if ls.Rewards > 0 {
			ls.MeanReward, ls.MeanRegret = c.rewardSum[l]/float64(ls.Rewards), c.regretSum[l]/float64(ls.Rewards)
		}
		if ls.InvokedRewards > 0 {
			ls.MeanRewardInvoked = c.invokedRewardSum[l] / float64(ls.InvokedRewards)
			ls.MeanRegretInvoked = c.invokedRegretSum[l] / float64(ls.InvokedRewards)
		}
		st.Layers[l] = ls
	}
	if len(c.latencyDays) > 0 {
		st.LatencyByDay = make(map[int64]*schemas.LatencyHistogram, len(c.latencyDays))
		for d, h := range c.latencyDays {
			hc := *h
			st.LatencyByDay[d] = &hc
		}
	}
	lat := slices.Clone(c.latencies)
	st.LatencyP50MS, st.LatencyP95MS, st.LatencyP99MS = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
	return st
}

// count applies f to the counters under the lock.
func (c *core) count(f func(st *Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

// tally adds a scored tick's output to the run's figures, with c.mu held.
// Intervals are aligned, so every reward a scored tick emits is of a
// scored interval.
func (c *core) tally(k int64, out *Output) {
	c.stats.ScoredInvocations += int64(len(out.Telemetry))
	if c.keepLatencies && len(out.Telemetry) > 0 {
		day := grid.TickOf(k, grid.TicksPerDay)
		h := c.latencyDays[day]
		if h == nil {
			if c.latencyDays == nil {
				c.latencyDays = map[int64]*schemas.LatencyHistogram{}
			}
			h = &schemas.LatencyHistogram{}
			c.latencyDays[day] = h
		}
		for _, o := range out.Telemetry {
			ms := o.GetLatencyMs()
			c.latencies = append(c.latencies, ms)
			h.Add(ms)
		}
	}
	for _, d := range out.Decisions {
		ls := c.stats.Layers[d.Layer]
		ls.Decisions++
		c.stats.Layers[d.Layer] = ls
	}
	for _, r := range out.Rewards {
		ls := c.stats.Layers[r.Layer]
		ls.Rewards++
		c.stats.Layers[r.Layer] = ls
		c.rewardSum[r.Layer] += r.Reward
		c.regretSum[r.Layer] += r.Regret
		if r.Invocations > 0 {
			ls.InvokedRewards++
			c.stats.Layers[r.Layer] = ls
			c.invokedRewardSum[r.Layer] += r.Reward
			c.invokedRegretSum[r.Layer] += r.Regret
		}
		if r.Layer == string(schemas.Operational) {
			// The engine scores every function-tick it evaluated (whatever
			// layers are enabled): their sums are the run's totals,
			// pre-warm cost and carbon included.
			c.stats.CostUSD += r.CostUsd
			c.stats.PrewarmCostUSD += r.PrewarmCostUsd
			c.stats.CarbonG += r.CarbonG
			c.stats.ColdStarts += r.ColdStarts
			c.stats.Violations += r.SlaViolations
		}
	}
}

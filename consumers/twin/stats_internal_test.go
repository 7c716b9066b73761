package twin

import (
	"math"
	"testing"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// TestLayerStatsInvoked checks the per-layer means over all reward rows and
// over the rows with invocations: a pre-warm-only interval (no invocations)
// counts in the first and not in the second.
func TestLayerStatsInvoked(t *testing.T) {
	tests := []struct {
		name                       string
		rows                       []*stratapb.Reward
		rewards, invoked           int64
		mean, regret               float64
		meanInvoked, regretInvoked float64
	}{
		{"no rows", nil, 0, 0, 0, 0, 0, 0},
		{"only invoked", []*stratapb.Reward{
			{Layer: "tactical", Invocations: 3, Reward: 0.2, Regret: 0.4},
			{Layer: "tactical", Invocations: 1, Reward: 0.4, Regret: 0.2},
		}, 2, 2, 0.3, 0.3, 0.3, 0.3},
		{"pre-warm-only hours raise the mean", []*stratapb.Reward{
			{Layer: "tactical", Invocations: 5, Reward: 0.1, Regret: 0.5},
			{Layer: "tactical", Invocations: 0, Reward: 0.9, Regret: 0.1, CostUsd: 0.01},
			{Layer: "tactical", Invocations: 0, Reward: 0.8, Regret: 0, CostUsd: 0.01},
			{Layer: "strategic", Invocations: 9, Reward: -1, Regret: 2},
		}, 3, 1, 0.6, 0.2, 0.1, 0.5},
		{"none invoked", []*stratapb.Reward{
			{Layer: "tactical", Invocations: 0, Reward: 0.9, Regret: 0.1, CostUsd: 0.01},
		}, 1, 0, 0.9, 0.1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &core{digests: NewDigests(), rewardSum: map[string]float64{}, regretSum: map[string]float64{},
				invokedRewardSum: map[string]float64{}, invokedRegretSum: map[string]float64{}}
			c.stats.Layers = map[string]LayerStats{}
			c.tally(0, &Output{Rewards: tt.rows})
			ls := c.snapshot().Layers["tactical"]
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
			if ls.Rewards != tt.rewards || ls.InvokedRewards != tt.invoked {
				t.Errorf("rewards %d, invoked %d; want %d, %d", ls.Rewards, ls.InvokedRewards, tt.rewards, tt.invoked)
			}
			if !near(ls.MeanReward, tt.mean) || !near(ls.MeanRegret, tt.regret) ||
				!near(ls.MeanRewardInvoked, tt.meanInvoked) || !near(ls.MeanRegretInvoked, tt.regretInvoked) {
				t.Errorf("means %+v; want reward %g regret %g, invoked %g %g", ls, tt.mean, tt.regret, tt.meanInvoked, tt.regretInvoked)
			}
		})
	}
}

package bench

import (
	"strings"
	"testing"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/pipeline"
)

// TestLoopSound checks what the closed-loop benchmark refuses to time: a
// loop whose feature service missed observations, and a round whose
// summary differs from the first round's in more than its run id, digests
// and timings.
func TestLoopSound(t *testing.T) {
	ref := pipeline.LoopSummary{Summary: pipeline.Summary{RunID: "run-1", Invocations: 7, WallSeconds: 2},
		TwinTicks: 10, CostPerMillionUSD: 1.5, DecisionsSHA256: "d1", RewardsSHA256: "r1",
		Layers: map[string]twin.LayerStats{"operational": {Decisions: 3, Rewards: 9, MeanReward: 0.5}}}
	rerun := ref
	rerun.RunID, rerun.WallSeconds, rerun.InvocationsPerSecond, rerun.DecisionsSHA256, rerun.RewardsSHA256 = "run-2", 3, 2.3, "d2", "r2"
	other := rerun
	other.Layers = map[string]twin.LayerStats{"operational": {Decisions: 3, Rewards: 9, MeanReward: 0.25}}
	tests := []struct {
		name    string
		f       features.Stats
		sum     pipeline.LoopSummary
		wantErr string
	}{
		{"first round, every observation windowed", features.Stats{}, ref, ""},
		{"first round, observations after their tick closed", features.Stats{Late: 4}, ref, "4 observations after their tick closed"},
		{"malformed telemetry", features.Stats{Malformed: 1}, rerun, "1 malformed"},
		{"a later round with the first round's figures", features.Stats{}, rerun, ""},
		{"a later round with another mean reward", features.Stats{}, other, "another summary than run 1's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := loopSound(tc.f, tc.sum, ref)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("loopSound: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("loopSound: %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
}

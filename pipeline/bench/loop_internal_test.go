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
// figures differ from the first round's.
func TestLoopSound(t *testing.T) {
	ref := twin.Stats{Ticks: 10, Arrivals: 7, Decisions: 3, Rewards: 9, Telemetry: 7, CostUSD: 1.5,
		Layers: map[string]twin.LayerStats{"operational": {Decisions: 3, Rewards: 9, MeanReward: 0.5}}}
	other := ref
	other.Layers = map[string]twin.LayerStats{"operational": {Decisions: 3, Rewards: 9, MeanReward: 0.25}}
	tests := []struct {
		name    string
		res     pipeline.LoopResult
		round   int
		wantErr string
	}{
		{"first round, every observation windowed", pipeline.LoopResult{Twin: ref}, 0, ""},
		{"first round, observations after their tick closed", pipeline.LoopResult{Twin: ref, Features: features.Stats{Late: 4}}, 0, "4 observations after their tick closed"},
		{"malformed telemetry", pipeline.LoopResult{Twin: ref, Features: features.Stats{Malformed: 1}}, 2, "1 malformed"},
		{"a later round with the first round's figures", pipeline.LoopResult{Twin: ref}, 1, ""},
		{"a later round with another mean reward", pipeline.LoopResult{Twin: other}, 1, "other figures than run 1's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := loopSound(tc.res, ref, tc.round)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("loopSound: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("loopSound: %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
}

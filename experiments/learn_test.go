package experiments_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// learnLoop runs one training episode over the first day of a small
// synthetic trace at speed, with a fresh learner whose PPO updates every
// 32 transitions: its checkpoints switch the tactical model many times.
func learnLoop(t *testing.T, speed replay.Speed) (pipeline.LoopResult, learner.Stats) {
	t.Helper()
	cfg := learner.DefaultConfig(3, schemas.Strategic, schemas.Tactical)
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 32, 32, 2
	res, lrn := learnDay(t, cfg, "switch", speed, 2)
	return res, lrn.Stats()
}

// learnDay runs one training episode of a learner of cfg over the first
// day of a small synthetic trace, as run runID at speed on partitions
// partitions, and returns the run and the learner (closed at cleanup).
func learnDay(t *testing.T, cfg learner.Config, runID string, speed replay.Speed, partitions int) (pipeline.LoopResult, *learner.Learner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	lrn, err := learner.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lrn.Close)
	sf := &pipeline.Source{SynthDays: 1, Apps: 6, Seed: 1}
	lo := pipeline.LoopOptions{Strategic: "greedy-cost", Tactical: "greedy-cost", Operational: "none", Placement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3},
		PolicySeed: 5, Source: sf, Learn: &pipeline.Learn{Learner: lrn}}
	o := pipelinetest.Config(runID, speed, partitions, &pipelinetest.BatchLog{})
	res, _, _, err := experiments.RunWindow(ctx, lo, o, 0, grid.StrategicTickUS, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res, lrn
}

// TestLearnInLoopPlacementFeatures trains PPO in the loop on the placement
// feature set: the twin writes the tactical transitions' states in the set
// the learner's network reads (the learner would fail on another), and the
// checkpoints it publishes record the set.
func TestLearnInLoopPlacementFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("a closed-loop training day")
	}
	t.Parallel()
	cfg := learner.DefaultConfig(3, schemas.Tactical)
	cfg.PPO = cfg.PPO.WithFeatures(schemas.TacticalPlacement)
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 32, 32, 2
	res, lrn := learnDay(t, cfg, "placement", 0, 1)
	st := lrn.Stats()
	if st.PPO.Updates < 2 || res.Twin.Transitions == 0 || st.Rejected["invalid"] != 0 {
		t.Fatalf("%d PPO updates on %d transitions (%v rejected): want training on the placement set", st.PPO.Updates, res.Twin.Transitions, st.Rejected)
	}
	data, version, err := lrn.Snapshot(schemas.Tactical)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ppo.LoadModel(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config().FeatureSet != schemas.TacticalPlacement || m.Config().Net.Inputs != schemas.TacticalPlacementDim {
		t.Fatalf("checkpoint %s: feature set %q, %d inputs; want %s, %d", version, m.Config().FeatureSet, m.Config().Net.Inputs,
			schemas.TacticalPlacement, schemas.TacticalPlacementDim)
	}
}

// TestModelSwitchSameAtTwoSpeeds trains in the loop with the tactical
// model switching at the hours the learner's checkpoints name: the
// decisions, rewards and checkpoints are identical at full speed and at
// 20000× (the workers wait for the learner, never the other way).
func TestModelSwitchSameAtTwoSpeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("two closed-loop training days")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	a, sa := learnLoop(t, 0)
	if sa.Checkpoints[schemas.Tactical] < 4 || sa.PPO.Updates < 3 {
		t.Fatalf("only %d tactical checkpoints, %d updates: the test needs model switches", sa.Checkpoints[schemas.Tactical], sa.PPO.Updates)
	}
	if a.Twin.Transitions == 0 || a.Twin.TransitionIntervals["tactical"] != 24 {
		t.Fatalf("twin wrote %d transitions over %v intervals, want 24 tactical intervals", a.Twin.Transitions, a.Twin.TransitionIntervals)
	}
	b, sb := learnLoop(t, 20000)
	if a.Twin.DecisionsSHA256 != b.Twin.DecisionsSHA256 || a.Twin.RewardsSHA256 != b.Twin.RewardsSHA256 {
		t.Fatalf("speed max and 20000 differ: decisions %s vs %s, rewards %s vs %s", a.Twin.DecisionsSHA256, b.Twin.DecisionsSHA256,
			a.Twin.RewardsSHA256, b.Twin.RewardsSHA256)
	}
	if sa.PPO.Updates != sb.PPO.Updates || sa.PPO.Accepted != sb.PPO.Accepted {
		t.Fatalf("learners differ: %d/%d updates, %d/%d accepted", sa.PPO.Updates, sb.PPO.Updates, sa.PPO.Accepted, sb.PPO.Accepted)
	}
}

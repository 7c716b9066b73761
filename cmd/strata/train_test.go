package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/cloud"
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
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := learner.DefaultConfig(3, schemas.Strategic, schemas.Tactical)
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 32, 32, 2
	lrn, err := learner.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lrn.Close()
	sf := &sourceFlags{synthDays: 1, apps: 6, seed: 1}
	lf := loopFlags{strategic: "greedy-cost", tactical: "greedy-cost", operational: "none", placement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3},
		policySeed: 5, sources: sf, learn: &pipeline.Learn{Learner: lrn}}
	o := pipelinetest.Config("switch", speed, 2, &pipelinetest.BatchLog{})
	res, _, _, err := runWindow(ctx, lf, o, 0, grid.StrategicTickUS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res, lrn.Stats()
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

// TestTrainCommand runs `strata train` for two short episodes and checks
// what it writes.
func TestTrainCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("four closed-loop runs")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	dir, errb := trainForTest(t, 2)
	for _, f := range []string{"dqn.ckpt", "ppo.ckpt", "curves.csv", "curves.png", "updates.csv", "train.json", "episodes/2/ppo.ckpt"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s missing or empty (%v)\n%s", f, err, errb)
		}
	}
	f, err := os.Open(filepath.Join(dir, "curves.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Header + 2 episodes × (train, validation) × 2 layers.
	if len(recs) != 9 || !strings.Contains(errb.String(), "episode 2/2") {
		t.Fatalf("curves.csv has %d lines, want 9:\n%v\n%s", len(recs), recs, errb)
	}
}

// TestServeAndEvalTrainedModels trains one short episode with `strata
// train`, serves the kept checkpoints with `strata run` and evaluates them
// with `strata eval --models` (beside TestTrainCommand: the closed loop
// waits on round trips more than it computes).
func TestServeAndEvalTrainedModels(t *testing.T) {
	if testing.Short() {
		t.Skip("three closed-loop runs and an evaluation")
	}
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	dir, _ := trainForTest(t, 1)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"run", "--synth-days", "1", "--apps", "8", "--models", dir, "--strategic", "dqn", "--tactical", "ppo",
		"--operational", "none", "--store", "", "--progress=false"}, &out, &errb)
	if err != nil || !strings.Contains(out.String(), "tactical    ppo") {
		t.Fatalf("serving the trained checkpoints: %v\n%s\n%s", err, &out, &errb)
	}
	// strata eval --models: PPO next to a tactical baseline, and an ablation.
	out.Reset()
	errb.Reset()
	// No warm-up day: the rows are what this test checks, not their figures.
	err = run(context.Background(), []string{"eval", "--models", dir, "--synth-days", "2", "--apps", "6", "--eval-days", "2-2",
		"--warmup-days", "0", "--rows", "greedy-cost,ppo,DQN+PPO"}, &out, &errb)
	if err != nil {
		t.Fatalf("eval --models: %v\n%s", err, &errb)
	}
	for _, want := range []string{"| tactical | greedy-cost / ppo / none | 1 |", "| tactical | greedy-cost / greedy-cost / none | 1 |", "| ablation | DQN+PPO: dqn / ppo / reactive | 1 |"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("eval --models output lacks %q:\n%s", want, &out)
		}
	}
}

// trainForTest runs `strata train` for the strategic and tactical layers
// over a 2-day, 6-app synthetic trace (train on day 1, validate on day 2)
// and returns the output directory and the command's stderr.
func trainForTest(t *testing.T, episodes int) (string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"train", "--layers", "strategic,tactical", "--episodes", strconv.Itoa(episodes), "--synth-days", "2", "--apps", "6",
		"--train-days", "1-1", "--valid-days", "2-2", "--rollout", "64", "--out", dir}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	return dir, &errb
}

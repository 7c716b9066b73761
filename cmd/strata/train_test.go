package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/infra/store"
)

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
		"--warmup-days", "0", "--rows", "greedy-cost,ppo,strategic static-best,dqn,DQN+PPO", "--store", ""}, &out, &errb)
	if err != nil {
		t.Fatalf("eval --models: %v\n%s", err, &errb)
	}
	for _, want := range []string{"| tactical | greedy-cost / ppo / none | 1 |", "| tactical | greedy-cost / greedy-cost / none | 1 |", "| ablation | DQN+PPO: dqn / ppo / reactive | 1 |",
		"| strategic | static-best / greedy-cost / none | 1 |", "| strategic | dqn / greedy-cost / none | 1 |"} {
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
		"--train-days", "1-1", "--valid-days", "2-2", "--rollout", "64", "--out", dir, "--store", filepath.Join(dir, "runs.duckdb")}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	// Each episode records its training run (the row) and its validation
	// run (the row, and the validation day's rewards).
	st, err := store.OpenDuckDB(t.Context(), filepath.Join(dir, "runs.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, rows, err := st.Query(t.Context(), "SELECT kind, count(DISTINCT run_id), count(DISTINCT episode), min(scored_first_day), max(scored_last_day), min(wall_ms) > 0 FROM runs GROUP BY kind ORDER BY kind")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("[[train %d %d 1 1 true] [validation %d %d 2 2 true]]", episodes, episodes, episodes, episodes); fmt.Sprint(rows) != want {
		t.Fatalf("runs recorded %v, want %s", rows, want)
	}
	_, rows, err = st.Query(t.Context(), "SELECT count() FROM rewards INNER JOIN runs USING (run_id) WHERE kind = 'validation' AND tick_ms >= 86400000")
	if err != nil || rows[0][0].(int64) == 0 {
		t.Fatalf("validation rewards of day 2 recorded: %v, %v", rows, err)
	}
	return dir, &errb
}

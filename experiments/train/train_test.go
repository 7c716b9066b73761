package train_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/train"
)

// TestTrainCommand trains for two short episodes and checks
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

// trainForTest trains the strategic and tactical layers over a 2-day,
// 6-app synthetic trace (train on day 1, validate on day 2), as `strata
// train` with these flags does, and returns the output directory and
// stderr.
func trainForTest(t *testing.T, episodes int) (string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	c := train.DefaultConfig()
	fs := flag.NewFlagSet("strata train", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs, "")
	if err := fs.Parse([]string{"--layers", "strategic,tactical", "--episodes", strconv.Itoa(episodes), "--synth-days", "2", "--apps", "6",
		"--train-days", "1-1", "--valid-days", "2-2", "--rollout", "64", "--out", dir}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := train.Train(context.Background(), c, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	return dir, &errb
}

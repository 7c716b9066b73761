package train_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/internal/flagtest"
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

// TestTrainResume stops a training after its first episode and resumes
// it for a second: the checkpoints (the best ones and the second
// episode's) are byte-identical to an uninterrupted two-episode
// training's, and so are the curves but for their wall times. A resume
// with another flag is refused, naming it.
func TestTrainResume(t *testing.T) {
	if testing.Short() {
		t.Skip("six closed-loop runs")
	}
	t.Parallel()
	whole, _ := trainForTest(t, 2)
	part, _ := trainForTest(t, 1)
	if _, err := os.Stat(filepath.Join(part, train.ResumeDir, "progress.json")); err != nil {
		t.Fatalf("no progress after the first episode: %v", err)
	}
	if err := trainIn(t, "--resume", part, "--episodes", "2", "--dqn-updates", "4"); err == nil || !strings.Contains(err.Error(), "--dqn-updates") {
		t.Fatalf("resume with another --dqn-updates: %v, want a refusal naming it", err)
	}
	if err := trainIn(t, "--resume", part, "--episodes", "2"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dqn.ckpt", "ppo.ckpt", "episodes/1/ppo.ckpt", "episodes/2/ppo.ckpt", "episodes/2/dqn.ckpt", "updates.csv"} {
		a, err := os.ReadFile(filepath.Join(whole, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(part, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed training", f)
		}
	}
	curves := func(dir string) [][]string {
		f, err := os.Open(filepath.Join(dir, "curves.csv"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			r[len(r)-1] = "" // seconds
		}
		return recs
	}
	a, b := curves(whole), curves(part)
	if len(a) != len(b) || len(a) != 9 {
		t.Fatalf("curves of %d and %d lines, want 9", len(a), len(b))
	}
	for i := range a {
		if strings.Join(a[i], ",") != strings.Join(b[i], ",") {
			t.Errorf("curves line %d: %v uninterrupted, %v resumed", i, a[i], b[i])
		}
	}
}

// trainForTest trains the strategic and tactical layers over a 2-day,
// 6-app synthetic trace (train on day 1, validate on day 2), as `strata
// train` with these flags does, and returns the output directory and
// stderr.
func trainForTest(t *testing.T, episodes int) (string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	var errb bytes.Buffer
	if err := trainWith(t, &errb, "--episodes", strconv.Itoa(episodes), "--out", dir); err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	return dir, &errb
}

// trainIn runs trainForTest's training with more flags (later ones
// override) and returns its error.
func trainIn(t *testing.T, more ...string) error {
	t.Helper()
	var errb bytes.Buffer
	return trainWith(t, &errb, more...)
}

// trainWith trains as trainForTest does, with more flags.
func trainWith(t *testing.T, errb *bytes.Buffer, more ...string) error {
	t.Helper()
	c := train.DefaultConfig()
	flagtest.Parse(t, &c, append([]string{"--store", "", "--layers", "strategic,tactical", "--synth-days", "2", "--apps", "6",
		"--train-days", "1-1", "--valid-days", "2-2", "--rollout", "64"}, more...)...)
	var out bytes.Buffer
	return train.Train(context.Background(), c, &out, errb)
}

// TestTrainPatience trains with --patience 1: the training ends after the
// first episode whose validation reward is not a new best, or runs every
// episode when each one improves, and train.json says where it stopped.
func TestTrainPatience(t *testing.T) {
	if testing.Short() {
		t.Skip("up to eight closed-loop runs")
	}
	t.Parallel()
	dir := t.TempDir()
	var errb bytes.Buffer
	if err := trainWith(t, &errb, "--layers", "tactical", "--episodes", "4", "--patience", "1", "--out", dir); err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	data, err := os.ReadFile(filepath.Join(dir, "train.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Stopped int `json:"stopped_after_episode"`
		Curves  []struct {
			Episode int    `json:"episode"`
			Phase   string `json:"phase"`
			Best    bool   `json:"best"`
		} `json:"curves"`
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	var ran int
	var bests []bool
	for _, c := range sum.Curves {
		if c.Phase == "validation" {
			ran = c.Episode
			bests = append(bests, c.Best)
		}
	}
	// Every episode but the last ran after a new best; the last is either
	// the fourth or one that did not improve.
	for i, b := range bests[:len(bests)-1] {
		if !b {
			t.Fatalf("episode %d was no new best, yet the training went on (bests %v)", i+1, bests)
		}
	}
	switch {
	case ran == 4 && sum.Stopped == 0:
	case ran < 4 && !bests[ran-1] && sum.Stopped == ran && strings.Contains(errb.String(), "stopping after episode"):
	default:
		t.Fatalf("ran %d episodes, stopped after %d, bests %v\n%s", ran, sum.Stopped, bests, &errb)
	}
}

// TestTrainFrozenLayer trains the DQN above a PPO trained before and
// served frozen (--tactical ppo --models DIR): the PPO's checkpoint is
// copied unchanged beside the DQN's and into the episode's directory,
// train.json names it, the strategic layer's training reward differs from
// a training above greedy-cost (the frozen layer decided), and a resume
// with another checkpoint in --models is refused.
func TestTrainFrozenLayer(t *testing.T) {
	if testing.Short() {
		t.Skip("eight closed-loop runs")
	}
	t.Parallel()
	ppoDir, other, dqnDir, plainDir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	var errb bytes.Buffer
	for _, tr := range []struct {
		dir  string
		more []string
	}{
		{ppoDir, []string{"--layers", "tactical"}},
		{other, []string{"--layers", "tactical", "--seed", "2"}},
		{dqnDir, []string{"--layers", "strategic", "--tactical", "ppo", "--models", ppoDir}},
		{plainDir, []string{"--layers", "strategic"}},
	} {
		if err := trainWith(t, &errb, append([]string{"--episodes", "1", "--out", tr.dir}, tr.more...)...); err != nil {
			t.Fatalf("%v: %v\n%s", tr.more, err, &errb)
		}
	}
	want, err := os.ReadFile(filepath.Join(ppoDir, "ppo.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ppo.ckpt", "episodes/1/ppo.ckpt"} {
		got, err := os.ReadFile(filepath.Join(dqnDir, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s in the DQN's directory: %v, not the frozen PPO's checkpoint", f, err)
		}
	}
	type summary struct {
		Frozen map[string]struct {
			Policy, From, SHA256 string
		} `json:"frozen"`
		Curves []struct {
			Phase      string  `json:"phase"`
			Layer      string  `json:"layer"`
			MeanReward float64 `json:"mean_reward"`
		} `json:"curves"`
	}
	read := func(dir string) summary {
		data, err := os.ReadFile(filepath.Join(dir, "train.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s summary
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, plain := read(dqnDir), read(plainDir)
	fz, ok := s.Frozen["tactical"]
	if !ok || fz.Policy != "ppo" || fz.From != filepath.Join(ppoDir, "ppo.ckpt") || fz.SHA256 != fmt.Sprintf("%x", sha256.Sum256(want)) || len(s.Frozen) != 1 {
		t.Fatalf("train.json frozen = %+v, want the tactical PPO of %s", s.Frozen, ppoDir)
	}
	if len(plain.Frozen) != 0 {
		t.Fatalf("a training with no frozen layer records %+v", plain.Frozen)
	}
	if len(s.Curves) != 2 || len(plain.Curves) != 2 || s.Curves[0].Phase != "train" || s.Curves[0].MeanReward == plain.Curves[0].MeanReward {
		t.Fatalf("curves above the frozen PPO %+v, above greedy-cost %+v: want two each, the training rewards differing", s.Curves, plain.Curves)
	}
	err = trainIn(t, "--layers", "strategic", "--tactical", "ppo", "--models", other, "--resume", dqnDir, "--episodes", "2")
	if err == nil || !strings.Contains(err.Error(), "models") {
		t.Fatalf("resume with another frozen checkpoint: %v, want a refusal naming --models", err)
	}
}

// TestTrainFrozenFlags checks the flags of frozen layers: a learned
// policy of a layer not trained needs --models with its checkpoint, and
// --models needs such a layer.
func TestTrainFrozenFlags(t *testing.T) {
	empty, withPPO := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(withPPO, "ppo.ckpt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"frozen PPO", []string{"--layers", "strategic", "--tactical", "ppo", "--models", withPPO}, ""},
		{"frozen PPO without --models", []string{"--layers", "strategic", "--tactical", "ppo"}, "--models DIR"},
		{"checkpoint missing", []string{"--layers", "strategic", "--tactical", "ppo", "--models", empty}, "frozen tactical layer's checkpoint"},
		{"--models and nothing frozen", []string{"--layers", "strategic", "--models", withPPO}, "no layer that is not trained"},
		{"trained layer's policy name ignored", []string{"--layers", "strategic,tactical", "--tactical", "ppo"}, ""},
		{"frozen LSTM during the episodes", []string{"--layers", "tactical", "--operational", "lstm", "--models", withPPO}, "frozen operational layer's checkpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := train.DefaultConfig()
			flagtest.Parse(t, &c, append([]string{"--out", t.TempDir()}, tt.args...)...)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

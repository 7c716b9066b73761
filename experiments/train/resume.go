package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/replay"
)

// ResumeDir is the folder of a training's output directory that holds what
// `strata train --resume` continues from: progress.json and the learner's
// training state after the last finished episode (learner-eN.state).
const ResumeDir = "resume"

// progressFormat is progress.json's format.
const progressFormat = "strata-train-progress/1"

// progress is resume/progress.json: the training's state after its last
// finished episode, besides the learner's.
type progress struct {
	Format string `json:"format"`
	// Fingerprint is the configuration that decides what the episodes
	// compute (fingerprint); a resumed run must have the same.
	Fingerprint map[string]string `json:"fingerprint"`
	// Episodes is the number of finished episodes; State the learner's
	// training state file after the last of them.
	Episodes int    `json:"episodes"`
	State    string `json:"state"`
	// Summary, Updates and Best are what the finished episodes wrote to
	// train.json, updates.csv and the best checkpoints' choice.
	Summary summary            `json:"summary"`
	Updates []update           `json:"updates"`
	Best    map[string]float64 `json:"best"`
	// Seconds is the training's wall time so far.
	Seconds float64 `json:"seconds"`
}

// fingerprintBefore holds, for each fingerprint flag added after resume
// states were first written, the value a state written before it ran with.
var fingerprintBefore = map[string]string{"dqn-loss": nn.LossHuber, "dqn-mask": dqn.MaskNone, "ppo-mask": ppo.MaskNone, "models": ""}

// fingerprint is what the episodes' computation depends on, flag by flag:
// the same on a resumed run or the checkpoints would not be the ones an
// uninterrupted run writes.
func (c *Config) fingerprint() map[string]string {
	// Format and Columns are left out at their defaults, so that the
	// fingerprints of trainings from before they existed still match.
	format := c.Source.Format
	if format == string(replay.FormatAuto) {
		format = ""
	}
	src, _ := json.Marshal(struct {
		Trace     string
		SynthDays int
		Seed      int64
		Apps      int
		Format    string `json:",omitempty"`
		Columns   string `json:",omitempty"`
	}{c.Source.Trace, c.Source.SynthDays, c.Source.Seed, c.Source.Apps, format, c.Source.Columns})
	return map[string]string{
		"trace": string(src), "layers": c.Layers, "seed": strconv.FormatInt(c.Seed, 10),
		"train-days": c.TrainDays, "valid-days": c.ValidDays,
		"strategic": c.Strategic, "tactical": c.Tactical, "operational": c.Operational,
		"rollout": strconv.Itoa(c.Rollout), "dqn-warmup": strconv.Itoa(c.DQNWarmUp),
		"dqn-updates": strconv.FormatFloat(c.DQNUpdates, 'g', -1, 64), "dqn-gamma": strconv.FormatFloat(c.DQNGamma, 'g', -1, 64), "dqn-reward-clip": strconv.FormatFloat(c.DQNRewardClip, 'g', -1, 64), "dqn-loss": c.DQNLoss, "dqn-mask": c.DQNMask, "ppo-mask": c.PPOMask, "default-placement": c.Placement,
		"allowed-lateness": c.Lateness.String(), "tactical-features": c.TacticalFeatures, "strategic-features": c.StrategicFeatures,
		"switch-penalty":     strconv.FormatFloat(c.SwitchPenalty, 'g', -1, 64),
		"counterfactual":     strconv.FormatFloat(c.Counterfactual, 'g', -1, 64),
		"ablate":             c.Ablate,
		"dqn-ablate":         c.DQNAblate,
		"dqn-counterfactual": strconv.FormatBool(c.DQNCounterfactual),
		"dqn-switch-penalty": strconv.FormatFloat(c.DQNSwitchPenalty, 'g', -1, 64),
		"trace-epoch":        c.Epoch,
		"models":             c.frozenDigest(),
	}
}

// frozenDigest identifies the frozen layers' checkpoints (Config.Models)
// by content, not by path: "" when there are none or they cannot be read
// (Validate reports that first).
func (c *Config) frozenDigest() string {
	fr := c.frozen()
	if c.Models == "" || len(fr) == 0 {
		return ""
	}
	d, err := agents.ModelsDigest(c.Models, fr)
	if err != nil {
		return ""
	}
	return d
}

// saveProgress records, after episode episodes finished, the learner's
// training state and the training's progress in out/resume: the state
// file first, then progress.json (written to a temporary file and renamed),
// so a crash at any point leaves the last complete record; the older state
// files go last.
func saveProgress(out string, p progress, lrn *learner.Learner) error {
	dir := filepath.Join(out, ResumeDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	var st bytes.Buffer
	if err := lrn.SaveState(&st); err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	p.Format, p.State = progressFormat, fmt.Sprintf("learner-e%d.state", p.Episodes)
	if err := writeFileAtomic(filepath.Join(dir, p.State), st.Bytes()); err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	pj, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "progress.json"), pj); err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("saving training progress: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "learner-e") && e.Name() != p.State {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// loadProgress reads out/resume for a run of configuration c and restores
// the learner's state: the progress, or an error that says what is missing
// or which flag differs from the interrupted run's.
func loadProgress(c *Config, lrn *learner.Learner) (progress, error) {
	dir := filepath.Join(c.Out, ResumeDir)
	var p progress
	pj, err := os.ReadFile(filepath.Join(dir, "progress.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return p, fmt.Errorf("strata train --resume %s: no %s: the directory holds no training that finished an episode", c.Out, filepath.Join(dir, "progress.json"))
	}
	if err != nil {
		return p, fmt.Errorf("strata train --resume: %w", err)
	}
	if err := json.Unmarshal(pj, &p); err != nil {
		return p, fmt.Errorf("strata train --resume: reading %s: %w", filepath.Join(dir, "progress.json"), err)
	}
	if p.Format != progressFormat {
		return p, fmt.Errorf("strata train --resume: %s is of format %q, want %q", filepath.Join(dir, "progress.json"), p.Format, progressFormat)
	}
	want := c.fingerprint()
	for k, v := range want {
		was, ok := p.Fingerprint[k]
		if !ok {
			// A flag added after the interrupted run was written: it ran
			// with what was then the only behaviour.
			was = fingerprintBefore[k]
		}
		if was != v && k == "models" {
			return p, fmt.Errorf("strata train --resume %s: the frozen layers' checkpoints in --models (SHA-256 digest %q) are not those the interrupted training served (%q); resume with the same checkpoints", c.Out, v, was)
		}
		if was != v {
			return p, fmt.Errorf("strata train --resume %s: --%s is %q here but was %q in the interrupted training; resume with the same flags (only --episodes may grow)", c.Out, k, v, was)
		}
	}
	f, err := os.Open(filepath.Join(dir, p.State))
	if err != nil {
		return p, fmt.Errorf("strata train --resume: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := lrn.Restore(f); err != nil {
		return p, fmt.Errorf("strata train --resume %s: %w", c.Out, err)
	}
	return p, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

package models

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/schemas"
)

// ErrNotCheckpoint is returned (wrapped) for data that is neither a DQN,
// PPO nor LSTM checkpoint of a format this build reads.
var ErrNotCheckpoint = errors.New("not a strata checkpoint")

// maxEntryBytes bounds one archive entry read for inspection.
const maxEntryBytes = 64 << 20

// Info describes one checkpoint: what it is, what it was trained on and how
// it validated. Fields that do not apply to the checkpoint's layer are
// zero and omitted from JSON.
type Info struct {
	// Source is the file path or the registry object name.
	Source string `json:"source"`
	// Layer is the decision layer the checkpoint serves.
	Layer schemas.Layer `json:"layer"`
	// Kind is the network kind (nn.KindQ, nn.KindPPO, nn.KindLSTM) and
	// Format the checkpoint format version.
	Kind   string `json:"kind"`
	Format string `json:"format"`
	// Version is the policy version written in its decisions.
	Version string `json:"version"`
	// Bytes and SHA256 identify the file.
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Seed is the network's initialisation seed.
	Seed uint64 `json:"seed"`
	// Inputs is the state vector's length (for the LSTM: steps ×
	// features) and Outputs the number of actions or predicted targets.
	Inputs  int `json:"inputs"`
	Outputs int `json:"outputs"`
	// Network is the network configuration as the checkpoint stores it.
	Network json.RawMessage `json:"network"`
	// FeatureSet is the state's feature set (schemas.FeatureSet): the
	// one a PPO checkpoint's configuration names (the seed's when it names
	// none, as before sets were named); the DQN and the LSTM have one set
	// each, the seed's.
	FeatureSet schemas.FeatureSet `json:"feature_set"`
	// Ablated lists the feature groups the network never sees (PPO and
	// DQN: their Config.Ablate), empty for none.
	Ablated []string `json:"ablated,omitempty"`
	// Mask is the action mask the policy acts under (DQN and PPO: their
	// Config.Mask; dqn.MaskSLORisk, ppo.MaskMemory), empty for none.
	Mask string `json:"mask,omitempty"`
	// Scaler is the input scaler's kind and dimension; Fitted is false
	// for a network that never saw a state.
	Scaler *Scaler `json:"scaler,omitempty"`
	// Episode is the training episode the checkpoint comes from: the
	// DQN's own count, or the episodes/N directory of `strata train`.
	Episode int `json:"episode,omitempty"`
	// Steps counts gradient steps (DQN) and Transitions the transitions
	// added to the replay buffer; Epsilon is the DQN's ε.
	Steps       uint64  `json:"steps,omitempty"`
	Transitions uint64  `json:"transitions,omitempty"`
	Epsilon     float64 `json:"epsilon,omitempty"`
	// Updates is the PPO policy's update count (its version number).
	Updates uint64 `json:"updates,omitempty"`
	// Loss, Epochs, BestEpoch and BestValLoss describe an LSTM's
	// training: its loss, the epochs run, the epoch kept and its
	// validation loss; Head and Select its head and checkpoint selection
	// (lstm.Config), and BestScore the kept epoch's score against the
	// moving average under lstm.SelectRateVsMA.
	Loss        string  `json:"loss,omitempty"`
	Epochs      int     `json:"epochs,omitempty"`
	BestEpoch   int     `json:"best_epoch,omitempty"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	Head        string  `json:"head,omitempty"`
	Select      string  `json:"select,omitempty"`
	BestScore   float64 `json:"best_score,omitempty"`
	// ValidationReward is the mean reward on the validation days of the
	// training episode the checkpoint comes from (DQN and PPO trained by
	// `strata train`).
	ValidationReward *float64 `json:"validation_reward,omitempty"`
	// Run and InForce locate a registry checkpoint: the run whose
	// learner published it and the first interval it decides.
	Run     string `json:"run,omitempty"`
	InForce *int64 `json:"in_force,omitempty"`
	// Training is the `strata train` summary of the checkpoint's
	// directory, when it has one.
	Training *Training `json:"training,omitempty"`
}

// Scaler summarises an input scaler.
type Scaler struct {
	Kind   string `json:"kind"`
	Dim    int    `json:"dim"`
	Fitted bool   `json:"fitted"`
}

// Training is what `strata train` recorded in train.json about the run
// that wrote a directory's checkpoints, for the checkpoint's layer.
type Training struct {
	Seed        int64    `json:"seed"`
	Episodes    int      `json:"episodes"`
	Layers      []string `json:"layers"`
	TrainDays   string   `json:"train_days"`
	ValidDays   string   `json:"valid_days"`
	Operational string   `json:"operational_during_episodes"`
	WallSeconds float64  `json:"wall_seconds"`
	// BestEpisode and BestValidationReward are the layer's best
	// validation episode and its mean reward (DQN and PPO).
	BestEpisode          int     `json:"best_episode,omitempty"`
	BestValidationReward float64 `json:"best_validation_reward,omitempty"`
}

// Inspect describes the checkpoint data read from source.
func Inspect(source string, data []byte) (Info, error) {
	sum := sha256.Sum256(data)
	info := Info{Source: source, Bytes: len(data), SHA256: hex.EncodeToString(sum[:])}
	var err error
	if isTar(data) {
		err = inspectArchive(&info, data)
	} else {
		err = inspectPPO(&info, data)
	}
	if err != nil {
		return Info{}, fmt.Errorf("inspecting %s: %w", source, err)
	}
	return info, nil
}

// isTar reports whether data starts like a POSIX tar archive (the DQN and
// LSTM checkpoints); PPO's is a bare safetensors file.
func isTar(data []byte) bool {
	return len(data) >= 262 && string(data[257:262]) == "ustar"
}

// inspectArchive reads a DQN or LSTM checkpoint archive.
func inspectArchive(info *Info, data []byte) error {
	entries, err := nn.ReadArchive(bytes.NewReader(data),
		[]string{dqn.EntryManifest, dqn.EntryOnline, dqn.EntryTarget, lstm.EntryManifest, lstm.EntryNet}, maxEntryBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotCheckpoint, err)
	}
	switch {
	case entries[dqn.EntryManifest] != nil:
		var m dqn.Manifest
		if err := json.Unmarshal(entries[dqn.EntryManifest], &m); err != nil {
			return fmt.Errorf("%w: DQN manifest: %w", ErrNotCheckpoint, err)
		}
		info.Layer, info.Format, info.Version = schemas.Strategic, m.Format, m.Version
		info.Episode, info.Steps, info.Transitions, info.Epsilon = m.Episode, m.Steps, m.Added, m.Epsilon
		if err := inspectNet(info, entries[dqn.EntryOnline], nn.KindQ); err != nil {
			return err
		}
		info.FeatureSet, info.Ablated, info.Mask = m.Config.Features(), m.Config.Ablate, maskName(m.Config.Mask)
		return nil
	case entries[lstm.EntryManifest] != nil:
		var m lstm.Manifest
		if err := json.Unmarshal(entries[lstm.EntryManifest], &m); err != nil {
			return fmt.Errorf("%w: LSTM manifest: %w", ErrNotCheckpoint, err)
		}
		info.Layer, info.Format, info.Version = schemas.Operational, m.Format, m.Version
		info.Loss, info.Epochs, info.BestEpoch, info.BestValLoss = m.Config.Loss, len(m.Curve), m.BestEpoch, m.BestValLoss
		info.Head, info.Select = cmp.Or(m.Config.Head, lstm.HeadDirect), cmp.Or(m.Config.Select, lstm.SelectLoss)
		if i := m.BestEpoch - 1; i >= 0 && i < len(m.Curve) {
			info.BestScore = m.Curve[i].Score
		}
		if err := inspectNet(info, entries[lstm.EntryNet], nn.KindLSTM); err != nil {
			return err
		}
		if in := m.Scalers.Input; in != nil {
			// The manifest's scalers are the ones served with.
			info.Scaler = &Scaler{Kind: in.Kind, Dim: in.Dim, Fitted: true}
		}
		return nil
	default:
		return fmt.Errorf("%w: an archive without a DQN or LSTM manifest", ErrNotCheckpoint)
	}
}

// inspectPPO reads a PPO checkpoint: a safetensors file whose metadata
// carry the policy's format and version.
func inspectPPO(info *Info, data []byte) error {
	if err := inspectNet(info, data, nn.KindPPO); err != nil {
		return err
	}
	c, err := nn.ReadCheckpoint(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotCheckpoint, err)
	}
	info.Layer, info.Format, info.Version = schemas.Tactical, c.Metadata["ppo.format"], c.Metadata["ppo.version"]
	if info.Format != ppo.CheckpointFormat {
		return fmt.Errorf("%w: PPO format %q, want %q", ErrNotCheckpoint, info.Format, ppo.CheckpointFormat)
	}
	if info.Updates, err = ppo.ParseVersion(info.Version); err != nil {
		return fmt.Errorf("%w: %w", ErrNotCheckpoint, err)
	}
	var cfg ppo.Config
	if err := json.Unmarshal([]byte(c.Metadata["ppo.config"]), &cfg); err != nil {
		return fmt.Errorf("%w: PPO configuration: %w", ErrNotCheckpoint, err)
	}
	info.FeatureSet, info.Ablated, info.Mask = cfg.Features(), cfg.Ablate, maskName(cfg.Mask)
	return nil
}

// inspectNet reads the network entry of a checkpoint, which must be of
// kind: its configuration, seed, scaler and feature-set version.
func inspectNet(info *Info, data []byte, kind string) error {
	if data == nil {
		return fmt.Errorf("%w: no %s network", ErrNotCheckpoint, kind)
	}
	c, err := nn.ReadCheckpoint(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotCheckpoint, err)
	}
	if c.Kind() != kind {
		return fmt.Errorf("%w: network of kind %q, want %q", ErrNotCheckpoint, c.Kind(), kind)
	}
	info.Kind = kind
	info.Network = json.RawMessage(c.Metadata["config"])
	// The operational layer has one feature set, the seed's; the DQN's
	// manifest and PPO's configuration name their own (inspectArchive,
	// inspectPPO).
	info.FeatureSet = schemas.DefaultFeatureSet(schemas.Layer(strings.SplitN(kind, "-", 2)[0]))
	if info.Seed, err = strconv.ParseUint(c.Metadata["seed"], 10, 64); err != nil {
		return fmt.Errorf("%w: seed %q", ErrNotCheckpoint, c.Metadata["seed"])
	}
	switch kind {
	case nn.KindQ:
		var cfg nn.QConfig
		err = json.Unmarshal(info.Network, &cfg)
		info.Inputs, info.Outputs = cfg.StrategicInputs+cfg.AppInputs, cfg.Actions
	case nn.KindPPO:
		var cfg nn.PPOConfig
		err = json.Unmarshal(info.Network, &cfg)
		info.Inputs, info.Outputs = cfg.Inputs, cfg.Actions
	case nn.KindLSTM:
		var cfg nn.LSTMConfig
		err = json.Unmarshal(info.Network, &cfg)
		info.Inputs, info.Outputs = cfg.Steps*cfg.Features, cfg.Outputs
	}
	if err != nil {
		return fmt.Errorf("%w: network configuration: %w", ErrNotCheckpoint, err)
	}
	info.Scaler = &Scaler{}
	if s, ok := c.Metadata["scaler"]; ok {
		var sc nn.Scaler
		if err := json.Unmarshal([]byte(s), &sc); err != nil {
			return fmt.Errorf("%w: scaler: %w", ErrNotCheckpoint, err)
		}
		info.Scaler = &Scaler{Kind: sc.Kind, Dim: sc.Dim, Fitted: true}
	}
	return nil
}

// checkpointFiles are the names `strata train` gives its checkpoints.
var checkpointFiles = []string{"dqn.ckpt", "ppo.ckpt", "lstm.ckpt"}

// ReadPath describes the checkpoint file path, or every checkpoint a
// `strata train` directory holds: its best checkpoints and those of each
// episode (episodes/N/), in that order. A directory's train.json, if any,
// fills each checkpoint's Training.
func ReadPath(path string) ([]Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	if !st.IsDir() {
		info, err := readFile(path)
		if err != nil {
			return nil, err
		}
		return []Info{info}, nil
	}
	var files []string
	for _, f := range checkpointFiles {
		if _, err := os.Stat(filepath.Join(path, f)); err == nil {
			files = append(files, filepath.Join(path, f))
		}
	}
	eps, err := episodeDirs(path)
	if err != nil {
		return nil, err
	}
	for _, ep := range eps {
		for _, f := range checkpointFiles {
			if p := filepath.Join(path, "episodes", strconv.Itoa(ep), f); fileExists(p) {
				files = append(files, p)
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("reading checkpoints: %s holds none of %s, at its top or in episodes/N/", path, strings.Join(checkpointFiles, ", "))
	}
	sum, err := readSummary(filepath.Join(path, "train.json"))
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(files))
	inEpisode := make([]bool, len(files))
	copies := map[string]int{} // file name and SHA-256 → the first episode holding it
	for i, f := range files {
		info, err := readFile(f)
		if err != nil {
			return nil, err
		}
		if rel, _ := filepath.Rel(path, f); strings.HasPrefix(rel, "episodes"+string(filepath.Separator)) {
			info.Episode, _ = strconv.Atoi(filepath.Base(filepath.Dir(f)))
			inEpisode[i] = true
			if k := filepath.Base(f) + "\x00" + info.SHA256; copies[k] == 0 {
				copies[k] = info.Episode
			}
		}
		out[i] = info
	}
	for i := range out {
		info := &out[i]
		if ep := copies[filepath.Base(info.Source)+"\x00"+info.SHA256]; !inEpisode[i] && ep > 0 {
			// Without train.json, the directory's own checkpoint is
			// numbered by the episode it is a byte-identical copy of
			// (`strata train` copies the best episode's there; a DQN's
			// own count is one below its numbering).
			info.Episode = ep
		}
		if sum != nil {
			l := string(info.Layer)
			t := sum.Training
			t.BestEpisode, t.BestValidationReward = sum.Best[l], sum.BestReward[l]
			info.Training = &t
			if _, ok := sum.Best[l]; ok && !inEpisode[i] {
				// The directory's own checkpoint is the best episode's.
				info.Episode = sum.Best[l]
			}
			if info.Episode > 0 {
				info.ValidationReward = sum.validation(info.Episode, l)
			}
		}
	}
	return out, nil
}

func readFile(path string) (Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Info{}, fmt.Errorf("reading checkpoint: %w", err)
	}
	return Inspect(path, data)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// episodeDirs returns the episode numbers of dir/episodes/N, ascending.
func episodeDirs(dir string) ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "episodes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	var eps []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			eps = append(eps, n)
		}
	}
	slices.Sort(eps)
	return eps, nil
}

// summary is the part of train.json that describes checkpoints.
type summary struct {
	Training
	Best       map[string]int     `json:"best_episode"`
	BestReward map[string]float64 `json:"best_validation_reward"`
	Curves     []struct {
		Episode    int     `json:"episode"`
		Phase      string  `json:"phase"`
		Layer      string  `json:"layer"`
		MeanReward float64 `json:"mean_reward"`
	} `json:"curves"`
}

// validation returns the layer's mean validation reward in episode ep,
// nil when the summary has none.
func (s *summary) validation(ep int, layer string) *float64 {
	for _, c := range s.Curves {
		if c.Episode == ep && c.Layer == layer && c.Phase == "validation" {
			r := c.MeanReward
			return &r
		}
	}
	return nil
}

// readSummary reads a train.json; nil when there is none.
func readSummary(path string) (*summary, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the training summary: %w", err)
	}
	var s summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("reading the training summary %s: %w", path, err)
	}
	return &s, nil
}

// maskName is a checkpoint's mask as Info reports it: empty for none.
func maskName(m string) string {
	if m == "none" {
		return ""
	}
	return m
}

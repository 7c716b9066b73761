package dqn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/cloud"
)

// FormatVersion is the checkpoint format this package writes and reads,
// stored under "format" in the manifest.
const FormatVersion = "strata-dqn/1"

// Names of the checkpoint's entries, in the order Save writes them.
const (
	EntryManifest = "dqn.json"
	EntryOnline   = "online.safetensors"
	EntryTarget   = "target.safetensors"
)

// ErrCheckpoint is returned (wrapped) for a checkpoint that is not a
// well-formed DQN checkpoint of this format version.
var ErrCheckpoint = errors.New("malformed DQN checkpoint")

// maxEntryBytes bounds one checkpoint entry, so that a corrupt archive
// cannot allocate without bound (a Q-network is about 75 kB).
const maxEntryBytes = 64 << 20

// Manifest is the checkpoint's JSON entry: what the safetensors entries
// do not carry.
type Manifest struct {
	// Format is FormatVersion.
	Format string `json:"format"`
	// Version is the policy version ("e<episode>-s<steps>").
	Version string `json:"version"`
	// Episode is the learner's episode and Epsilon its ε.
	Episode int     `json:"episode"`
	Epsilon float64 `json:"epsilon"`
	// Steps and Added are the accepted gradient steps and transitions.
	Steps uint64 `json:"steps"`
	Added uint64 `json:"added"`
	// Config is the learner's configuration (its Net field repeats the
	// online network's, which the safetensors metadata also holds).
	Config Config `json:"config"`
}

// Checkpoint is a parsed DQN checkpoint.
type Checkpoint struct {
	Manifest Manifest
	// Online is the online network, its scaler attached.
	Online *nn.QNet
	// Target is the target network, nil when the checkpoint has none.
	Target *nn.QNet
}

// Close releases the networks' compiled graphs.
func (c *Checkpoint) Close() {
	c.Online.Close()
	if c.Target != nil {
		c.Target.Close()
	}
}

// Save writes the learner as a DQN checkpoint: an uncompressed POSIX tar
// archive of three entries, the manifest (dqn.json) and the online and
// target networks as nn safetensors checkpoints, whose metadata carry
// the network configuration, seed and input scaler. Entry times are the
// Unix epoch, so equal learners give equal bytes. The replay buffer, the
// Adam moments and the sampling generator's state are not saved.
func (l *Learner) Save(w io.Writer) error {
	m := Manifest{
		Format: FormatVersion, Version: l.Version(), Episode: l.episode, Epsilon: l.Epsilon(),
		Steps: l.stats.Steps, Added: l.stats.Added, Config: l.cfg,
	}
	m.Config.Net = l.online.Config()
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("saving DQN checkpoint: encoding manifest: %w", err)
	}
	var online, target bytes.Buffer
	if err := l.online.Save(&online); err != nil {
		return fmt.Errorf("saving DQN checkpoint: %w", err)
	}
	if err := l.target.Save(&target); err != nil {
		return fmt.Errorf("saving DQN checkpoint: %w", err)
	}
	entries := []nn.ArchiveEntry{{Name: EntryManifest, Data: mj}, {Name: EntryOnline, Data: online.Bytes()}, {Name: EntryTarget, Data: target.Bytes()}}
	if err := nn.WriteArchive(w, entries); err != nil {
		return fmt.Errorf("saving DQN checkpoint: %w", err)
	}
	return nil
}

// ReadCheckpoint parses a DQN checkpoint. The manifest and the online
// network are required and the target network optional; unknown entries
// are an error, as are a format version other than FormatVersion and
// networks whose configuration differs from the manifest's.
func ReadCheckpoint(r io.Reader) (*Checkpoint, error) {
	raw, err := nn.ReadArchive(r, []string{EntryManifest, EntryOnline, EntryTarget}, maxEntryBytes)
	if err != nil {
		return nil, fmt.Errorf("reading DQN checkpoint: %w: %w", ErrCheckpoint, err)
	}
	mj, ok := raw[EntryManifest]
	if !ok {
		return nil, fmt.Errorf("reading DQN checkpoint: %w: no %s", ErrCheckpoint, EntryManifest)
	}
	var c Checkpoint
	if err := json.Unmarshal(mj, &c.Manifest); err != nil {
		return nil, fmt.Errorf("reading DQN checkpoint manifest: %w: %w", ErrCheckpoint, err)
	}
	if c.Manifest.Format != FormatVersion {
		return nil, fmt.Errorf("reading DQN checkpoint: %w: format %q, want %q", nn.ErrVersion, c.Manifest.Format, FormatVersion)
	}
	if _, ok := raw[EntryOnline]; !ok {
		return nil, fmt.Errorf("reading DQN checkpoint: %w: no %s", ErrCheckpoint, EntryOnline)
	}
	if c.Online, err = nn.LoadQNet(bytes.NewReader(raw[EntryOnline])); err != nil {
		return nil, fmt.Errorf("reading DQN checkpoint online network: %w", err)
	}
	if data, ok := raw[EntryTarget]; ok {
		if c.Target, err = nn.LoadQNet(bytes.NewReader(data)); err != nil {
			c.Online.Close()
			return nil, fmt.Errorf("reading DQN checkpoint target network: %w", err)
		}
	}
	if err := c.check(); err != nil {
		c.Close()
		return nil, fmt.Errorf("reading DQN checkpoint: %w", err)
	}
	return &c, nil
}

// check compares the networks' architectures with the manifest's
// configuration (the optimiser settings may differ: a learning-rate
// schedule changes the online network's).
func (c *Checkpoint) check() error {
	want := c.Manifest.Config.Net
	for _, n := range []*nn.QNet{c.Online, c.Target} {
		if n == nil {
			continue
		}
		got := n.Config()
		got.Optimizer = want.Optimizer
		if got != want {
			return fmt.Errorf("%w: network configuration %+v differs from the manifest's %+v", nn.ErrArchitecture, got, want)
		}
	}
	return nil
}

// LoadLearner resumes a learner from a checkpoint: networks, scaler,
// episode and step count. The replay buffer starts empty, so training
// waits for WarmUp new transitions; the Adam moments start afresh. A
// checkpoint without a target network starts the target as a copy of the
// online network.
func LoadLearner(r io.Reader) (*Learner, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading DQN learner: %w", err)
	}
	cfg := c.Manifest.Config
	if err := cfg.Validate(); err != nil {
		c.Close()
		return nil, fmt.Errorf("loading DQN learner: %w", err)
	}
	if c.Target == nil {
		if c.Target, err = nn.NewQNet(c.Online.Config(), c.Online.Seed()); err == nil {
			err = c.Target.CopyFrom(c.Online)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("loading DQN learner: %w", err)
		}
	}
	l, err := newLearner(cfg, c.Online, c.Target)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("loading DQN learner: %w", err)
	}
	l.episode = c.Manifest.Episode
	l.stats.Steps, l.stats.Added = c.Manifest.Steps, c.Manifest.Added
	return l, nil
}

// LoadOptions configures LoadPolicy.
type LoadOptions struct {
	// Seed keys the exploration draws.
	Seed int64
	// Explore serves ε-greedily at the checkpoint's ε (training); unset,
	// greedily (evaluation).
	Explore bool
	// Model is the cloud model an action mask reads (required when the
	// mask in force is MaskSLORisk).
	Model *cloud.Model
	// Mask overrides the checkpoint's Config.Mask when not empty
	// (MaskNone serves a masked checkpoint unmasked; MaskSLORisk masks a
	// checkpoint trained without).
	Mask string
}

// LoadPolicy reads a checkpoint (Save's format) and returns a policy
// serving its online network with its scaler and the action mask it was
// trained with (or o.Mask): greedy unless o.Explore, which explores at
// the checkpoint's ε.
func LoadPolicy(r io.Reader, o LoadOptions) (*Policy, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading DQN policy: %w", err)
	}
	defer c.Close()
	eps := 0.0
	if o.Explore {
		eps = c.Manifest.Epsilon
	}
	mode := c.Manifest.Config.Mask
	if o.Mask != "" {
		mode = o.Mask
	}
	if mode, err = ParseMask(mode); err != nil {
		return nil, fmt.Errorf("loading DQN policy: %w", err)
	}
	var mask *SLORisk
	if mode == MaskSLORisk {
		if mask, err = NewSLORisk(o.Model); err != nil {
			return nil, fmt.Errorf("loading DQN policy: %w", err)
		}
	}
	p, err := NewPolicy(c.Online.Export(), PolicyConfig{Seed: o.Seed, Epsilon: eps, Version: c.Manifest.Version,
		Features: c.Manifest.Config.Features(), Ablated: c.Manifest.Config.Ablated(), Mask: mask})
	if err != nil {
		return nil, fmt.Errorf("loading DQN policy: %w", err)
	}
	return p, nil
}

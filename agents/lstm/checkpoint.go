package lstm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/strata-rl/strata/agents/nn"
)

// FormatVersion is the checkpoint format this package writes and reads,
// stored under "format" in the manifest.
const FormatVersion = "strata-lstm/1"

// Names of the checkpoint's entries, in the order Save writes them.
const (
	EntryManifest = "lstm.json"
	EntryNet      = "net.safetensors"
)

// ErrCheckpoint is returned (wrapped) for a checkpoint that is not a
// well-formed LSTM checkpoint of this format version.
var ErrCheckpoint = errors.New("malformed LSTM checkpoint")

// maxEntryBytes bounds one checkpoint entry so that a corrupt archive
// cannot allocate without bound (the default network is about 0.5 MB).
const maxEntryBytes = 64 << 20

// Manifest is the checkpoint's JSON entry: what the safetensors entry does
// not carry.
type Manifest struct {
	// Format is FormatVersion.
	Format string `json:"format"`
	// Version is the policy version reported in decisions.
	Version string `json:"version"`
	// Config is the training configuration.
	Config Config `json:"config"`
	// Scalers are the input and target scalers (the input scaler is also
	// in the safetensors metadata).
	Scalers Scalers `json:"scalers"`
	// Rule is the pre-warm rule to serve with.
	Rule PrewarmRule `json:"rule"`
	// BestEpoch, BestValLoss and Curve describe the training run.
	BestEpoch   int     `json:"best_epoch"`
	BestValLoss float64 `json:"best_val_loss"`
	Curve       []Epoch `json:"curve,omitempty"`
}

// Save writes a checkpoint of the result: an uncompressed POSIX tar
// archive of the manifest (lstm.json) and the best network as an nn
// safetensors checkpoint (net.safetensors, whose metadata carry the
// network configuration, seed and input scaler). Entry times are the Unix
// epoch, so equal results give equal bytes.
func (r *Result) Save(w io.Writer, cfg Config, version string, rule PrewarmRule) error {
	m := Manifest{
		Format: FormatVersion, Version: version, Config: cfg, Scalers: r.Scalers, Rule: rule,
		BestEpoch: r.BestEpoch, BestValLoss: r.BestValLoss, Curve: r.Curve,
	}
	return Save(w, r.Net, m)
}

// Save writes net and the manifest m (whose Format is set here) as a
// checkpoint; see Result.Save.
func Save(w io.Writer, net *nn.LSTMNet, m Manifest) error {
	if net == nil {
		return fmt.Errorf("saving LSTM checkpoint: %w: nil network", ErrConfig)
	}
	if err := m.Scalers.validate(); err != nil {
		return fmt.Errorf("saving LSTM checkpoint: %w", err)
	}
	m.Format = FormatVersion
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("saving LSTM checkpoint: encoding manifest: %w", err)
	}
	var nb bytes.Buffer
	if err := net.Save(&nb); err != nil {
		return fmt.Errorf("saving LSTM checkpoint: %w", err)
	}
	if err := nn.WriteArchive(w, []nn.ArchiveEntry{{Name: EntryManifest, Data: mj}, {Name: EntryNet, Data: nb.Bytes()}}); err != nil {
		return fmt.Errorf("saving LSTM checkpoint: %w", err)
	}
	return nil
}

// Checkpoint is a parsed LSTM checkpoint.
type Checkpoint struct {
	Manifest Manifest
	// Net is the network, its input scaler attached. The caller closes it.
	Net *nn.LSTMNet
}

// Model returns the serving model of the checkpoint.
func (c *Checkpoint) Model() *Model {
	return &Model{Weights: c.Net.Export(), Scalers: c.Manifest.Scalers, Config: c.Manifest.Config}
}

// ReadCheckpoint parses a checkpoint written by Save. Anything else fails
// with an error wrapping ErrCheckpoint (or nn's ErrVersion and ErrKind for
// the network entry).
func ReadCheckpoint(r io.Reader) (*Checkpoint, error) {
	entries, err := nn.ReadArchive(r, []string{EntryManifest, EntryNet}, maxEntryBytes)
	if err != nil {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: %w", ErrCheckpoint, err)
	}
	mj, ok := entries[EntryManifest]
	nb, ok2 := entries[EntryNet]
	if !ok || !ok2 {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: need entries %s and %s", ErrCheckpoint, EntryManifest, EntryNet)
	}
	var m Manifest
	if err := json.Unmarshal(mj, &m); err != nil {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: manifest: %w", ErrCheckpoint, err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: format %q, want %q", ErrCheckpoint, m.Format, FormatVersion)
	}
	if err := m.Scalers.validate(); err != nil {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: %w", ErrCheckpoint, err)
	}
	net, err := nn.LoadLSTMNet(bytes.NewReader(nb))
	if err != nil {
		return nil, fmt.Errorf("reading LSTM checkpoint: %w", err)
	}
	c := &Checkpoint{Manifest: m, Net: net}
	if err := c.Model().validate(); err != nil {
		net.Close()
		return nil, fmt.Errorf("reading LSTM checkpoint: %w: %w", ErrCheckpoint, err)
	}
	return c, nil
}

// LoadPolicy reads a checkpoint and returns a policy serving it with the
// checkpoint's version and pre-warm rule.
func LoadPolicy(r io.Reader) (*Policy, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading LSTM policy: %w", err)
	}
	defer c.Net.Close()
	p, err := NewPolicy(c.Model(), PolicyConfig{Version: c.Manifest.Version, Rule: c.Manifest.Rule})
	if err != nil {
		return nil, fmt.Errorf("loading LSTM policy: %w", err)
	}
	return p, nil
}

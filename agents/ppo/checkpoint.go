package ppo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/strata-rl/strata/agents/nn"
)

// CheckpointFormat is the PPO checkpoint format, stored under
// "ppo.format" in the safetensors metadata beside nn's own keys.
const CheckpointFormat = "strata-ppo/1"

// Metadata keys this package adds to nn's checkpoint.
const (
	metaFormat  = "ppo.format"
	metaVersion = "ppo.version"
	metaConfig  = "ppo.config"
)

// Save writes the learner's current version as a checkpoint: nn's
// safetensors checkpoint of the actor-critic (weights, network
// configuration, seed, scaler; docs/nn.md) with three more metadata keys:
// "ppo.format" (CheckpointFormat), "ppo.version" (the version string) and
// "ppo.config" (the Config as JSON). The buffer and Adam's moments are not
// saved; a checkpoint is taken after an update, when the buffer is empty.
func (l *Learner) Save(w io.Writer) error {
	var buf bytes.Buffer
	if err := l.net.Save(&buf); err != nil {
		return fmt.Errorf("saving PPO %s: %w", l.Version(), err)
	}
	cj, err := json.Marshal(l.cfg)
	if err != nil {
		return fmt.Errorf("saving PPO %s: encoding configuration: %w", l.Version(), err)
	}
	data, err := addMetadata(buf.Bytes(), map[string]string{
		metaFormat: CheckpointFormat, metaVersion: l.Version(), metaConfig: string(cj),
	})
	if err != nil {
		return fmt.Errorf("saving PPO %s: %w", l.Version(), err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("saving PPO %s: %w", l.Version(), err)
	}
	return nil
}

// LoadLearner reads a checkpoint written by Save and returns a learner at
// its version with an empty buffer, fresh Stats and fresh Adam moments.
func LoadLearner(r io.Reader) (*Learner, error) {
	cfg, version, net, err := readCheckpoint(r)
	if err != nil {
		return nil, err
	}
	if err := net.SetBackend(cfg.Backend); err != nil {
		net.Close()
		return nil, fmt.Errorf("loading PPO checkpoint: %w", err)
	}
	return newLearner(cfg, net, version), nil
}

// LoadModel reads a checkpoint written by Save and returns its model for
// serving.
func LoadModel(r io.Reader) (*Model, error) {
	cfg, version, net, err := readCheckpoint(r)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	return newModel(version, cfg, net.Export()), nil
}

func readCheckpoint(r io.Reader) (Config, uint64, *nn.PPONet, error) {
	fail := func(err error) (Config, uint64, *nn.PPONet, error) {
		return Config{}, 0, nil, fmt.Errorf("loading PPO checkpoint: %w", err)
	}
	c, err := nn.ReadCheckpoint(r)
	if err != nil {
		return fail(err)
	}
	if f := c.Metadata[metaFormat]; f != CheckpointFormat {
		return fail(fmt.Errorf("%w: format %q, want %q", ErrCheckpoint, f, CheckpointFormat))
	}
	version, err := ParseVersion(c.Metadata[metaVersion])
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrCheckpoint, err))
	}
	var cfg Config
	if err := json.Unmarshal([]byte(c.Metadata[metaConfig]), &cfg); err != nil {
		return fail(fmt.Errorf("%w: configuration: %w", ErrCheckpoint, err))
	}
	net, err := c.PPONet()
	if err != nil {
		return fail(err)
	}
	cfg.Net = net.Config() // nn's copy is the one the weights were built from
	if err := cfg.Validate(); err != nil {
		net.Close()
		return fail(fmt.Errorf("%w: %w", ErrCheckpoint, err))
	}
	return cfg, version, net, nil
}

// addMetadata returns the safetensors file data with extra entries in its
// "__metadata__" map. The tensor data is unchanged: safetensors offsets
// are relative to the end of the header, so only the header is rewritten
// (and padded with spaces to a multiple of 8 bytes, as nn writes it).
func addMetadata(data []byte, extra map[string]string) ([]byte, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("adding checkpoint metadata: %w: %d bytes", ErrCheckpoint, len(data))
	}
	size := binary.LittleEndian.Uint64(data)
	if size > uint64(len(data)-8) {
		return nil, fmt.Errorf("adding checkpoint metadata: %w: header of %d bytes in %d", ErrCheckpoint, size, len(data))
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+size], &hdr); err != nil {
		return nil, fmt.Errorf("adding checkpoint metadata: %w: %w", ErrCheckpoint, err)
	}
	meta := map[string]string{}
	if m, ok := hdr["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("adding checkpoint metadata: %w: %w", ErrCheckpoint, err)
		}
	}
	for k, v := range extra {
		meta[k] = v
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("adding checkpoint metadata: %w", err)
	}
	hdr["__metadata__"] = mj
	hj, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("adding checkpoint metadata: %w", err)
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	rest := data[8+size:]
	out := make([]byte, 8, 8+len(hj)+len(rest))
	binary.LittleEndian.PutUint64(out, uint64(len(hj)))
	out = append(out, hj...)
	return append(out, rest...), nil
}

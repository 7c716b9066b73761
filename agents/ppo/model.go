package ppo

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/agents/nn"
)

// Model is one policy version for serving: the actor-critic's exported
// weights (with the scaler), its version and the configuration it was
// trained with. A Model is read-only and may be shared; Forward and Policy
// use their own scratch buffers.
type Model struct {
	version uint64
	cfg     Config
	w       *nn.PPOWeights
	// ablated are the inputs cfg.Ablate leaves out.
	ablated []int
}

// newModel returns the model of version with cfg and weights w.
func newModel(version uint64, cfg Config, w *nn.PPOWeights) *Model {
	return &Model{version: version, cfg: cfg, w: w, ablated: cfg.ablated()}
}

// FormatVersion returns the version string of policy version n: "v" and
// the decimal number ("v0" is the untrained policy).
func FormatVersion(n uint64) string { return "v" + strconv.FormatUint(n, 10) }

// ParseVersion parses a version string written by FormatVersion.
func ParseVersion(s string) (uint64, error) {
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return 0, fmt.Errorf("parsing PPO policy version %q: no leading v", s)
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing PPO policy version %q: %w", s, err)
	}
	return n, nil
}

// Version returns the model's version string (FormatVersion).
func (m *Model) Version() string { return FormatVersion(m.version) }

// VersionNumber returns the model's version number.
func (m *Model) VersionNumber() uint64 { return m.version }

// Config returns the configuration the model was trained with.
func (m *Model) Config() Config { return m.cfg }

// Fitted reports whether the model has its feature scaler. A model without
// one (version 0 before a scaler is set) serves the uniform policy over the
// allowed actions: the network cannot be run on unscaled inputs.
func (m *Model) Fitted() bool { return m.w.Scaler != nil }

// Scaler returns the model's feature scaler, nil before it is fitted. It
// must not be modified.
func (m *Model) Scaler() *nn.Scaler { return m.w.Scaler }

// Scale writes the network input of raw states (rows of Net.Inputs raw
// values) into dst, which may alias raw, and returns it: the scaler's
// transform, then the StateClip bound. It fails on a model without a
// scaler.
func (m *Model) Scale(dst, raw []float32) ([]float32, error) {
	if m.w.Scaler == nil {
		return nil, fmt.Errorf("scaling PPO states: model %s has no scaler", m.Version())
	}
	return scaleStates(m.w.Scaler, m.cfg.StateClip, m.ablated, dst, raw)
}

// Forward returns the policy (log-probabilities and probabilities,
// B×Actions) and values of B raw states; masks is nil or B×Actions flags,
// true where allowed. It scales the states first and fails on a model
// without a scaler. It allocates; Policy.Decide is the serving path.
func (m *Model) Forward(raw []float32, masks []bool) (nn.PPOOutput, error) {
	x, err := m.Scale(nil, raw)
	if err != nil {
		return nn.PPOOutput{}, err
	}
	out, err := m.w.Clone().Forward(nn.PPOOutput{}, x, masks)
	if err != nil {
		return nn.PPOOutput{}, fmt.Errorf("running PPO model %s: %w", m.Version(), err)
	}
	return out, nil
}

// scaleStates applies sc to raw (into dst, allocated when nil), bounds
// the result to ±clip (no bound when clip is 0) and sets the ablated
// inputs of every row to 0.
func scaleStates(sc *nn.Scaler, clip float64, ablated []int, dst, raw []float32) ([]float32, error) {
	dst, err := sc.Transform(dst, raw)
	if err != nil {
		return nil, fmt.Errorf("scaling PPO states: %w", err)
	}
	if clip > 0 {
		c := float32(clip)
		for i, v := range dst {
			dst[i] = min(max(v, -c), c)
		}
	}
	if len(ablated) > 0 {
		for r := 0; r < len(dst); r += sc.Dim {
			for _, j := range ablated {
				dst[r+j] = 0
			}
		}
	}
	return dst, nil
}

// finite reports whether every value is finite.
func finite(vs ...[]float32) bool {
	for _, v := range vs {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return false
			}
		}
	}
	return true
}

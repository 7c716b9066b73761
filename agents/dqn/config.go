package dqn

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// Errors callers branch on.
var (
	// ErrConfig is returned (wrapped) by a configuration that fails
	// validation.
	ErrConfig = errors.New("invalid DQN configuration")
	// ErrNonFinite is returned (wrapped) for a transition holding NaN or
	// ±Inf, which is rejected before it reaches the replay buffer and
	// counted in Stats. It is the nn package's sentinel, so one errors.Is
	// covers rejected transitions and rejected training steps.
	ErrNonFinite = nn.ErrNonFinite
	// ErrTransition is returned (wrapped) for a transition whose state
	// widths or action index do not match the network.
	ErrTransition = errors.New("invalid transition")
	// ErrNotReady is returned (wrapped) by TrainStep while the buffer holds
	// fewer than WarmUp transitions or the scaler is not fitted yet.
	ErrNotReady = errors.New("learner not ready to train")
)

// Config holds the DQN hyperparameters (docs/dqn.md, seed §2.4). The zero
// value is not usable; start from DefaultConfig.
type Config struct {
	// Net is the Q-network and its optimiser: the seed's dual encoder,
	// Adam 1e-4, global-norm gradient clip 1.0, Huber loss (δ = 1).
	Net nn.QConfig `json:"net"`
	// Seed fixes the networks' initial weights and dropout masks and the
	// replay buffer's sampling.
	Seed uint64 `json:"seed"`
	// BufferSize is the replay buffer's capacity in transitions (100,000);
	// past it the oldest transition is overwritten.
	BufferSize int `json:"buffer_size"`
	// BatchSize is the minibatch size (64), sampled uniformly with
	// replacement.
	BatchSize int `json:"batch_size"`
	// Gamma is the discount factor (0.99).
	Gamma float64 `json:"gamma"`
	// Tau is the soft target-update rate applied after every accepted
	// gradient step: θ_target ← τ·θ + (1−τ)·θ_target (0.005).
	Tau float64 `json:"tau"`
	// QMin and QMax are the value bounds (−100, 100): the target
	// network's Q-values are clipped to them before the max, and so is
	// every target.
	QMin float64 `json:"q_min"`
	QMax float64 `json:"q_max"`
	// RewardClip bounds rewards to [−RewardClip, RewardClip] when a
	// transition is added (100, the value bound; 0 disables). Clipped
	// rewards are counted in Stats.
	RewardClip float64 `json:"reward_clip"`
	// UpdatesPerTransition is the number of gradient steps Add runs per
	// accepted transition once training has started (1). Fractions
	// accumulate: 0.25 is one step every 4 transitions; 0 leaves training
	// to explicit TrainStep calls.
	UpdatesPerTransition float64 `json:"updates_per_transition"`
	// WarmUp is the number of transitions the buffer must hold before the
	// first gradient step (1,000).
	WarmUp int `json:"warm_up"`
	// EpsilonStart, EpsilonEnd and EpsilonEpisodes define the per-episode
	// exploration schedule (1.0 → 0.05 over 40 episodes); see Epsilon.
	EpsilonStart    float64 `json:"epsilon_start"`
	EpsilonEnd      float64 `json:"epsilon_end"`
	EpsilonEpisodes int     `json:"epsilon_episodes"`
	// ScalerKind is the scaler fitted on the first ScalerFit accepted
	// transitions' states (nn.ScalerRobust); ScalerLog1p marks the
	// features passed through log1p first (nil: none).
	ScalerKind  string `json:"scaler_kind"`
	ScalerFit   int    `json:"scaler_fit"`
	ScalerLog1p []bool `json:"scaler_log1p,omitempty"`
	// Backend computes the networks' passes: nn.BackendCPU (the default,
	// also ""), nn.BackendGorgonia, the reference, or nn.BackendCUDA (a
	// binary built with -tags strata_cuda, on a GPU). It does not change
	// the checkpoint.
	Backend nn.Backend `json:"backend,omitempty"`
	// FeatureSet is the strategic state the network reads
	// (schemas.StrategicSeed when empty: checkpoints written before sets
	// were named); set it with WithFeatures, which sizes the network.
	FeatureSet schemas.FeatureSet `json:"feature_set,omitempty"`
	// Ablate names groups of the feature set (schemas.FeatureGroups:
	// metrics, app-id, context, placement) the network never sees: their
	// scaled inputs are 0 in training and in serving, and the checkpoint
	// records them. It is for ablation studies; empty, the default, uses
	// every feature.
	Ablate []string `json:"ablate,omitempty"`
	// Mask is the action mask the policy applies whenever it acts, in
	// training (its ε-greedy choice) and in serving: MaskNone (or empty,
	// the seed's DQN) or MaskSLORisk. The checkpoint records it; serving
	// may override it (LoadOptions.Mask).
	Mask string `json:"mask,omitempty"`
}

// Ablated returns the input indices Ablate leaves out (nil for none); c
// must be valid.
func (c Config) Ablated() []int {
	idx, _ := schemas.AblatedIndices(c.Features(), c.Ablate)
	return idx
}

// WithFeatures returns c reading feature set f: the values past the
// seed's 10 strategic metrics feed the app encoder, and the scaler
// log1p-transforms the set's heavy-tailed features.
func (c Config) WithFeatures(f schemas.FeatureSet) Config {
	c.FeatureSet = f
	c.Net.AppInputs = f.Dim() - c.Net.StrategicInputs
	c.ScalerLog1p = schemas.StrategicLog1p(f)
	return c
}

// Features returns the feature set the network reads: FeatureSet, or
// schemas.StrategicSeed for a configuration that names none.
func (c Config) Features() schemas.FeatureSet {
	if c.FeatureSet == "" {
		return schemas.StrategicSeed
	}
	return c.FeatureSet
}

// DefaultConfig returns the seed's strategic DQN (docs/agents.md).
func DefaultConfig() Config {
	return Config{
		Net:                  nn.DefaultQConfig(),
		Seed:                 1,
		BufferSize:           100_000,
		BatchSize:            64,
		Gamma:                0.99,
		Tau:                  0.005,
		QMin:                 -100,
		QMax:                 100,
		RewardClip:           100,
		UpdatesPerTransition: 1,
		WarmUp:               1_000,
		EpsilonStart:         1.0,
		EpsilonEnd:           0.05,
		EpsilonEpisodes:      40,
		ScalerKind:           nn.ScalerRobust,
		ScalerFit:            1_000,
		ScalerLog1p:          schemas.StrategicLog1p(schemas.StrategicSeed),
	}
}

// Validate reports an invalid configuration.
func (c Config) Validate() error {
	if err := c.Net.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if f := c.Features(); f.Validate(schemas.Strategic) != nil || f.Dim() != c.Net.Inputs() {
		return fmt.Errorf("%w: feature set %q of %d values for a network of %d inputs (want a strategic set: %s)", ErrConfig, f, f.Dim(), c.Net.Inputs(), strings.Join(schemas.FeatureSets(schemas.Strategic), ", "))
	}
	if _, err := nn.ParseBackend(string(c.Backend)); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case c.BufferSize < 1 || c.BatchSize < 1 || c.WarmUp < 1:
		return fmt.Errorf("%w: buffer size %d, batch size %d, warm-up %d must be positive", ErrConfig, c.BufferSize, c.BatchSize, c.WarmUp)
	case !(c.Gamma >= 0 && c.Gamma <= 1):
		return fmt.Errorf("%w: gamma %v outside [0, 1]", ErrConfig, c.Gamma)
	case !(c.Tau > 0 && c.Tau <= 1):
		return fmt.Errorf("%w: tau %v outside (0, 1]", ErrConfig, c.Tau)
	case !(c.QMin < c.QMax) || math.IsInf(c.QMin, 0) || math.IsInf(c.QMax, 0):
		return fmt.Errorf("%w: value bounds [%v, %v]", ErrConfig, c.QMin, c.QMax)
	case !(c.RewardClip >= 0) || math.IsInf(c.RewardClip, 0):
		return fmt.Errorf("%w: reward clip %v", ErrConfig, c.RewardClip)
	case !(c.UpdatesPerTransition >= 0) || math.IsInf(c.UpdatesPerTransition, 0):
		return fmt.Errorf("%w: updates per transition %v", ErrConfig, c.UpdatesPerTransition)
	case !(c.EpsilonEnd > 0 && c.EpsilonEnd <= c.EpsilonStart && c.EpsilonStart <= 1):
		return fmt.Errorf("%w: epsilon %v → %v, want 0 < end ≤ start ≤ 1", ErrConfig, c.EpsilonStart, c.EpsilonEnd)
	case c.EpsilonEpisodes < 1:
		return fmt.Errorf("%w: epsilon decay over %d episodes", ErrConfig, c.EpsilonEpisodes)
	case c.ScalerKind != nn.ScalerRobust && c.ScalerKind != nn.ScalerMinMax:
		return fmt.Errorf("%w: scaler kind %q (want %q or %q)", ErrConfig, c.ScalerKind, nn.ScalerRobust, nn.ScalerMinMax)
	case c.ScalerFit < 1:
		return fmt.Errorf("%w: scaler fitted on %d transitions", ErrConfig, c.ScalerFit)
	case c.ScalerLog1p != nil && len(c.ScalerLog1p) != c.Net.Inputs():
		return fmt.Errorf("%w: %d log1p flags for %d inputs", ErrConfig, len(c.ScalerLog1p), c.Net.Inputs())
	}
	if _, err := schemas.AblatedIndices(c.Features(), c.Ablate); err != nil {
		return fmt.Errorf("%w: ablation: %w", ErrConfig, err)
	}
	if _, err := ParseMask(c.Mask); err != nil {
		return err
	}
	return nil
}

// Epsilon returns the exploration rate of episode e (counted from 0):
//
//	ε_e = max(EpsilonEnd, EpsilonStart · (EpsilonEnd/EpsilonStart)^(e/EpsilonEpisodes))
//
// an exponential decay that reaches EpsilonEnd at episode EpsilonEpisodes
// and stays there. With the defaults ε_0 = 1, ε_20 = √0.05 ≈ 0.2236 and
// ε_e = 0.05 for e ≥ 40. A negative episode counts as 0.
func (c Config) Epsilon(e int) float64 {
	e = max(e, 0)
	frac := float64(e) / float64(c.EpsilonEpisodes)
	return max(c.EpsilonEnd, c.EpsilonStart*math.Pow(c.EpsilonEnd/c.EpsilonStart, frac))
}

// Targets writes the bootstrapped targets of a batch into dst (reused when
// long enough) and returns it with the number of targets that hit a value
// bound. For row i with reward r, done flag d and target-network
// Q-values q'(a') of the next state (nextQ holds B×Actions values,
// row-major):
//
//	y_i = clip(r + γ·(1−d)·max_a' clip(q'(a'), QMin, QMax), QMin, QMax)
//
// computed in float64. A terminal row ignores nextQ, so a non-finite value
// there does no harm; otherwise a non-finite input is an ErrNonFinite
// error.
func (c Config) Targets(dst, rewards []float32, dones []bool, nextQ []float32) ([]float32, int, error) {
	b, a := len(rewards), c.Net.Actions
	if len(dones) != b || len(nextQ) != b*a {
		return nil, 0, fmt.Errorf("computing targets: %w: %d rewards, %d done flags, %d next Q-values for %d actions", ErrTransition, b, len(dones), len(nextQ), a)
	}
	if cap(dst) < b {
		dst = make([]float32, b)
	}
	dst = dst[:b]
	clipped := 0
	for i, r := range rewards {
		y := float64(r)
		if !dones[i] {
			best := math.Inf(-1)
			for _, q := range nextQ[i*a : (i+1)*a] {
				best = max(best, clamp(float64(q), c.QMin, c.QMax))
			}
			y += c.Gamma * best
		}
		if math.IsNaN(y) || math.IsInf(y, 0) {
			return nil, 0, fmt.Errorf("computing target of row %d: %w: reward %v", i, ErrNonFinite, r)
		}
		if y < c.QMin || y > c.QMax {
			clipped++
			y = clamp(y, c.QMin, c.QMax)
		}
		dst[i] = float32(y)
	}
	return dst, clipped, nil
}

// clamp bounds x to [lo, hi]; NaN stays NaN.
func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

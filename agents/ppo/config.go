package ppo

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Actions is the size of the tactical action space: 4 metros × 6 memory
// tiers, metro-major (action = metro·6 + tier), as in agents/baselines.
const Actions = cloud.NumMetros * cloud.NumTiers

// Errors callers branch on. Each is returned wrapped, with what was being
// done.
var (
	// ErrConfig reports an invalid configuration.
	ErrConfig = errors.New("invalid PPO configuration")
	// ErrStaleVersion reports a transition collected by another policy
	// version than the learner's current one. PPO is on-policy: such a
	// transition is dropped and counted in Stats.RejectedVersion.
	ErrStaleVersion = errors.New("transition of another policy version")
	// ErrNonFinite reports a transition holding NaN or ±Inf (state, next
	// state, reward, log-probability or value). It is dropped before it
	// reaches the buffer and counted in Stats.RejectedNonFinite.
	ErrNonFinite = errors.New("non-finite transition")
	// ErrInvalidTransition reports a malformed transition: a state of the
	// wrong width, an action out of range or masked, a mask of the wrong
	// width or allowing nothing, a positive log-probability, or a
	// transition that is not done but has no next state. Counted in
	// Stats.RejectedInvalid.
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrDuplicate reports a second transition for the same run, entity and
	// tick (a redelivered message). Counted in Stats.RejectedDuplicate.
	ErrDuplicate = errors.New("duplicate transition")
	// ErrBufferFull reports a transition offered while the rollout is full
	// and waiting for Update. Counted in Stats.RejectedFull.
	ErrBufferFull = errors.New("rollout buffer full")
	// ErrNotReady reports an Update called before the rollout is full.
	ErrNotReady = errors.New("rollout not full")
	// ErrCheckpoint reports a checkpoint without valid PPO metadata.
	ErrCheckpoint = errors.New("malformed PPO checkpoint")
)

// Config holds the PPO algorithm's settings (docs/ppo.md, seed §2.5) and the
// actor-critic's. The zero value is not usable; start from DefaultConfig.
type Config struct {
	// Net is the actor-critic and its loss: clip 0.2, value coefficient
	// 0.5, entropy coefficient 0.01, ratio bounds [0.01, 100], Adam 3e-4,
	// global-norm clip 0.5. DefaultConfig sets Net.Dropout to 0, not the
	// seed's 0.1 (docs/ppo.md, "Dropout"); set it back to 0.1 to follow
	// the seed.
	Net nn.PPOConfig `json:"net"`
	// Rollout is the number of transitions of one policy version an update
	// consumes (2048).
	Rollout int `json:"rollout"`
	// Minibatch is the minibatch size (64).
	Minibatch int `json:"minibatch"`
	// Epochs is the number of passes over the rollout per update (10).
	Epochs int `json:"epochs"`
	// Gamma is the discount factor (0.99).
	Gamma float64 `json:"gamma"`
	// Lambda is GAE's λ (0.95).
	Lambda float64 `json:"lambda"`
	// RewardClip bounds rewards to [−RewardClip, RewardClip] as they enter
	// the buffer (10, the seed's reward clipping); 0 disables it.
	RewardClip float64 `json:"reward_clip"`
	// StateClip bounds every scaled state feature to [−StateClip,
	// StateClip] before the network (10); 0 disables it. Robust scaling
	// divides by an interquartile range that can be tiny for sparse
	// features (hourly cost), so a rare value could otherwise reach the
	// network as 10⁴.
	StateClip float64 `json:"state_clip"`
	// TargetKL, when positive, ends an update's epochs early once the
	// approximate KL divergence of the updated policy from the rollout's,
	// mean((r − 1) − log r) over the rollout after an epoch, exceeds
	// 1.5 × TargetKL (as Stable-Baselines3's target_kl). 0, the default,
	// runs every epoch, as the seed does.
	TargetKL float64 `json:"target_kl,omitempty"`
	// ScalerKind is nn.ScalerRobust (the seed's robust scaler) or
	// nn.ScalerMinMax.
	ScalerKind string `json:"scaler_kind"`
	// ScalerLog1p flags the state features passed through log1p before
	// scaling (Net.Inputs flags, or nil for none). The default flags the
	// heavy-tailed ones: latency, cost, request rate and queue depth.
	ScalerLog1p []bool `json:"scaler_log1p,omitempty"`
	// FeatureSet is the tactical state's layout the network reads
	// (schemas.TacticalSeed, the default, schemas.TacticalPlacement or
	// schemas.TacticalPlacementV2);
	// Net.Inputs is its size. Empty in checkpoints written before feature
	// sets were named: those are TacticalSeed (Features resolves it).
	FeatureSet schemas.FeatureSet `json:"feature_set,omitempty"`
	// Ablate names groups of the feature set (schemas.FeatureGroups) the
	// network never sees: their scaled inputs are 0 in training and in
	// serving. It is for ablation studies (leave one group out); empty,
	// the default, uses every feature.
	Ablate []string `json:"ablate,omitempty"`
	// Mask is the state-dependent action mask applied beside the
	// providers' Availability whenever the policy acts, in training and
	// in serving: MaskNone (or empty, the seed's PPO) or MaskMemory, which
	// needs a feature set holding the memory peak (placement-v2). The
	// checkpoint records it; serving may override it.
	Mask string `json:"mask,omitempty"`
	// Backend computes the network's passes: nn.BackendCPU (the default,
	// also ""), nn.BackendGorgonia, the reference, or nn.BackendCUDA (a
	// binary built with -tags strata_cuda, on a GPU). It does not change
	// the checkpoint.
	Backend nn.Backend `json:"backend,omitempty"`
}

// DefaultConfig returns the seed's tactical PPO (docs/agents.md) with dropout 0,
// on the seed's feature set.
func DefaultConfig() Config {
	net := nn.DefaultPPOConfig()
	net.Dropout = 0
	return Config{
		Net:     net,
		Rollout: 2048, Minibatch: 64, Epochs: 10,
		Gamma: 0.99, Lambda: 0.95,
		RewardClip: 10, StateClip: 10,
		ScalerKind: nn.ScalerRobust,
	}.WithFeatures(schemas.TacticalSeed)
}

// WithFeatures returns c reading the feature set f: Net.Inputs is f's size
// and ScalerLog1p flags its heavy-tailed features (schemas.TacticalLog1p:
// latency, cost, request rate and queue depth; for TacticalPlacement also
// the durations, peak rate and carbon).
func (c Config) WithFeatures(f schemas.FeatureSet) Config {
	c.FeatureSet = f
	c.Net.Inputs = f.Dim()
	c.ScalerLog1p = schemas.TacticalLog1p(f)
	return c
}

// Features returns the feature set the network reads: FeatureSet, or
// schemas.TacticalSeed for a configuration that names none (checkpoints
// written before feature sets were named).
func (c Config) Features() schemas.FeatureSet {
	if c.FeatureSet == "" {
		return schemas.TacticalSeed
	}
	return c.FeatureSet
}

// Validate reports an invalid configuration.
func (c Config) Validate() error {
	if err := c.Net.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := nn.ParseBackend(string(c.Backend)); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Rollout <= 0 || c.Minibatch <= 0 || c.Minibatch > c.Rollout || c.Epochs <= 0 {
		return fmt.Errorf("%w: rollout %d, minibatch %d, epochs %d", ErrConfig, c.Rollout, c.Minibatch, c.Epochs)
	}
	if !(c.Gamma > 0 && c.Gamma <= 1) || !(c.Lambda >= 0 && c.Lambda <= 1) {
		return fmt.Errorf("%w: gamma %v, lambda %v", ErrConfig, c.Gamma, c.Lambda)
	}
	if !(c.RewardClip >= 0) || !(c.StateClip >= 0) || math.IsInf(c.RewardClip, 0) || math.IsInf(c.StateClip, 0) {
		return fmt.Errorf("%w: reward clip %v, state clip %v", ErrConfig, c.RewardClip, c.StateClip)
	}
	if !(c.TargetKL >= 0) || math.IsInf(c.TargetKL, 0) {
		return fmt.Errorf("%w: target KL %v", ErrConfig, c.TargetKL)
	}
	if c.ScalerKind != nn.ScalerRobust && c.ScalerKind != nn.ScalerMinMax {
		return fmt.Errorf("%w: scaler kind %q", ErrConfig, c.ScalerKind)
	}
	if f := c.Features(); f.Validate(schemas.Tactical) != nil || f.Dim() != c.Net.Inputs {
		return fmt.Errorf("%w: feature set %q of %d values for a network of %d inputs (tactical sets: %v)",
			ErrConfig, f, f.Dim(), c.Net.Inputs, schemas.FeatureSets(schemas.Tactical))
	}
	if c.ScalerLog1p != nil && len(c.ScalerLog1p) != c.Net.Inputs {
		return fmt.Errorf("%w: %d log1p flags for %d inputs", ErrConfig, len(c.ScalerLog1p), c.Net.Inputs)
	}
	if _, err := schemas.AblatedIndices(c.Features(), c.Ablate); err != nil {
		return fmt.Errorf("%w: ablation: %w", ErrConfig, err)
	}
	return CheckMask(c.Mask, c.Features())
}

// ablated returns the input indices Ablate leaves out (nil for none); c
// must be valid.
func (c Config) ablated() []int {
	idx, _ := schemas.AblatedIndices(c.Features(), c.Ablate)
	return idx
}

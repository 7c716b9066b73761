package agents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-rl/strata/agents/baselines"
	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/agents/prewarm"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Policy decides one layer's decisions for one tick from that tick's state.
// Implementations may keep state across ticks (histograms, moving windows);
// given the same sequence of state batches they must return the same
// decisions (deterministic: seeded randomness only). Not safe for concurrent use.
type Policy interface {
	Name() string
	Version() string
	Layer() schemas.Layer
	// Decide appends one DecisionRow per entity it decides for to out.Rows.
	// An entity left out keeps its previous decision in the twin.
	Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error
}

// ErrUnknownPolicy is wrapped by New when no policy of the layer has the
// requested name; the message lists the valid names.
var ErrUnknownPolicy = baselines.ErrUnknownPolicy

// ErrInvalidParam is wrapped by New for an unknown, malformed or
// out-of-range parameter override; the message lists the valid keys.
var ErrInvalidParam = baselines.ErrInvalidParam

// Options configures a policy built by New.
type Options struct {
	// Seed seeds every random choice of the policy.
	Seed int64
	// Model is the cloud model policies evaluate placements with; the
	// strategic and tactical greedy and power-tuning baselines require it.
	Model *cloud.Model
	// Epoch is the wall-clock instant of trace time 0 (hour of day for the
	// user-metro rule). Zero means Model.Config().Epoch.
	Epoch time.Time
	// Params overrides named parameters of the policy, as strings (e.g.
	// {"window": "3"}); docs/baselines.md lists each policy's keys and
	// defaults. An unknown key is an error.
	Params map[string]string
	// Models is the directory the learned policies load their checkpoints
	// from (CheckpointFile names them); required for LearnedName(layer).
	Models string
}

// LearnedName returns the name of layer's learned policy: dqn (strategic),
// ppo (tactical), lstm (operational).
func LearnedName(layer schemas.Layer) string {
	switch layer {
	case schemas.Strategic:
		return dqn.Name
	case schemas.Tactical:
		return ppo.Name
	case schemas.Operational:
		return lstm.Name
	}
	return ""
}

// IsLearned reports whether name, without its parameter overrides
// (NAME:key=value), is layer's learned policy.
func IsLearned(name string, layer schemas.Layer) bool {
	base, _, _ := strings.Cut(name, ":")
	return base == LearnedName(layer)
}

// CheckpointFile returns the file, inside a models directory, that layer's
// learned policy loads: dqn.ckpt, ppo.ckpt or lstm.ckpt.
func CheckpointFile(layer schemas.Layer) string { return LearnedName(layer) + ".ckpt" }

// newLearned loads layer's learned policy from opts.Models, for serving:
// greedy (no exploration, no sampling).
func newLearned(layer schemas.Layer, opts Options) (Policy, error) {
	name := LearnedName(layer)
	if opts.Models == "" {
		return nil, fmt.Errorf("creating %s policy %q: a models directory is required (--models DIR)", layer, name)
	}
	path := filepath.Join(opts.Models, CheckpointFile(layer))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("creating %s policy %q: %w", layer, name, err)
	}
	p, err := LoadCheckpoint(layer, data, opts, false)
	if err != nil {
		return nil, fmt.Errorf("creating %s policy %q from %s: %w", layer, name, path, err)
	}
	return p, nil
}

// LoadCheckpoint returns layer's learned policy serving the checkpoint
// data (the format of CheckpointFile(layer)), with opts.Params as its
// overrides (the DQN's mask=none|slo-risk, dqn.LoadOptions.Mask; PPO's
// mask=none|memory, ppo.PolicyOptions.Mask; the LSTM takes none). With explore unset it
// serves greedily (evaluation); with explore set it acts as in training:
// the DQN ε-greedy at the checkpoint's ε, PPO sampling from its policy.
// The LSTM has no exploration.
func LoadCheckpoint(layer schemas.Layer, data []byte, opts Options, explore bool) (Policy, error) {
	r := bytes.NewReader(data)
	switch layer {
	case schemas.Strategic:
		mask, err := maskParam(layer, opts.Params, dqn.Masks())
		if err != nil {
			return nil, err
		}
		return dqn.LoadPolicy(r, dqn.LoadOptions{Seed: opts.Seed, Explore: explore, Model: opts.Model, Mask: mask})
	case schemas.Tactical:
		mask, err := maskParam(layer, opts.Params, []string{ppo.MaskNone, ppo.MaskMemory})
		if err != nil {
			return nil, err
		}
		po := ppo.PolicyOptions{Seed: opts.Seed, Greedy: !explore, Mask: mask}
		m, err := ppo.LoadModel(r)
		if err != nil {
			return nil, err
		}
		if opts.Model != nil {
			po.Availability = ppo.CatalogAvailability(opts.Model.Catalog())
		}
		return ppo.NewPolicy(m, po)
	case schemas.Operational:
		if len(opts.Params) > 0 {
			return nil, fmt.Errorf("loading the %s checkpoint: %w: the LSTM takes no parameters", layer, ErrInvalidParam)
		}
		return lstm.LoadPolicy(r)
	}
	return nil, fmt.Errorf("loading a checkpoint: unknown layer %q", layer)
}

// maskParam returns the mask override among a learned policy's
// parameters ("" when none is given): mask is the only key the DQN and
// PPO take; masks lists its values for the error.
func maskParam(layer schemas.Layer, params map[string]string, masks []string) (string, error) {
	for k := range params {
		if k != "mask" {
			return "", fmt.Errorf("loading the %s checkpoint: %w: %q (%s takes mask=%s)", layer, ErrInvalidParam, k, LearnedName(layer), strings.Join(masks, "|"))
		}
	}
	return params["mask"], nil
}

// New returns a fresh policy called name for layer. A name may carry
// parameter overrides after a colon, "hybrid-histogram:cv_threshold=1" or
// "hazard-prewarm:threshold=0.05,bandwidth_s=60" (docs/baselines.md and
// docs/agents.md list each policy's keys); they are merged over
// opts.Params, and a key given twice is an error.
func New(name string, layer schemas.Layer, opts Options) (Policy, error) {
	if _, err := schemas.ParseLayer(string(layer)); err != nil {
		return nil, fmt.Errorf("creating policy %q: %w", name, err)
	}
	if base, spec, ok := strings.Cut(name, ":"); ok {
		ps, err := parseParams(spec, opts.Params)
		if err != nil {
			return nil, fmt.Errorf("creating %s policy %q: %w", layer, name, err)
		}
		name, opts.Params = base, ps
	}
	if name == LearnedName(layer) {
		return newLearned(layer, opts)
	}
	if layer == schemas.Operational && name == prewarm.Name {
		return prewarm.New(opts.Params)
	}
	p, err := baselines.New(name, layer, baselines.Config{
		Seed: opts.Seed, Model: opts.Model, Epoch: opts.Epoch, Params: opts.Params,
	})
	if err != nil {
		if errors.Is(err, baselines.ErrUnknownPolicy) {
			return nil, fmt.Errorf("creating %s policy %q: %w: valid names are %s, and %s with --models", layer, name, ErrUnknownPolicy, strings.Join(append(Names(layer), Own(layer)...), ", "), LearnedName(layer))
		}
		return nil, err
	}
	return p, nil
}

// Names returns the baselines New accepts for layer, in a fixed order; nil
// for an unknown layer. (`strata eval --baselines` runs each of them.)
func Names(layer schemas.Layer) []string { return baselines.Names(layer) }

// Own returns the names of strata's own policies of layer that are
// neither baselines nor checkpoints: hazard-prewarm for the operational
// layer (package prewarm), none for the others.
func Own(layer schemas.Layer) []string {
	if layer == schemas.Operational {
		return []string{prewarm.Name}
	}
	return nil
}

// parseParams returns the overrides of a policy name's "k=v,k=v" suffix
// merged over given (which it does not modify).
func parseParams(spec string, given map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(given))
	for k, v := range given {
		out[k] = v
	}
	for kv := range strings.SplitSeq(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%w: %q: want key=value pairs separated by commas", ErrInvalidParam, kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: %s given twice", ErrInvalidParam, k)
		}
		out[k] = v
	}
	return out, nil
}

package dqn

import (
	"context"
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/internal/draw"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Name is the policy's registry name.
const Name = "dqn"

// PolicyConfig configures a serving policy.
type PolicyConfig struct {
	// Seed keys the exploration draws (with the tick and the app).
	Seed int64
	// Epsilon is the probability of a uniformly random provider instead of
	// the greedy one: the episode's ε in closed-loop training, 0 in
	// evaluation.
	Epsilon float64
	// Version is reported in every decision row (the learner's or the
	// checkpoint's version).
	Version string
	// Features is the strategic feature set the network reads (its
	// checkpoint's; schemas.StrategicSeed when empty).
	Features schemas.FeatureSet
	// Ablated are the input indices the network never sees (Config.Ablated
	// of its training): they are 0 after scaling.
	Ablated []int
	// Mask, when set, rules providers out per row before the greedy and
	// the random choice (the checkpoint's Config.Mask, or an override);
	// nil masks nothing.
	Mask *SLORisk
}

// PolicyStats counts what a policy did.
type PolicyStats struct {
	// Decisions counts decision rows written.
	Decisions uint64
	// Explored counts decisions drawn at random (the ε branch).
	Explored uint64
	// NonFiniteInputs counts state values that were NaN or ±Inf and were
	// replaced by 0, the missing-value convention of schemas.
	NonFiniteInputs uint64
	// NonFiniteQ counts rows whose Q-values were not all finite; their
	// decision takes the best finite Q-value (aws when none is) and has no
	// Value.
	NonFiniteQ uint64
	// Masked counts decisions whose row had a provider masked (Mask);
	// MaskChanged those whose unmasked greedy provider was masked.
	Masked, MaskChanged uint64
}

// Policy is the strategic DQN serving policy: one network shared by every
// app. For each strategic state row it builds the 14-value vector
// (schemas.StrategicRow.Vector), scales it with the checkpoint's scaler,
// runs the exported forward pass and chooses the provider ε-greedily.
// The random draw is a hash of (seed, tick, app), so decisions depend
// neither on the order of the rows nor on earlier ticks. It implements
// agents.Policy and is not safe for concurrent use.
type Policy struct {
	w     *nn.QWeights
	cfg   PolicyConfig
	x, q  []float32
	Stats PolicyStats
}

// NewPolicy returns a policy serving w (which it clones, so w may be
// reused). w.Scaler, when set, scales the inputs; the network must take
// schemas.StrategicDim inputs and give one Q-value per provider.
func NewPolicy(w *nn.QWeights, cfg PolicyConfig) (*Policy, error) {
	if w == nil {
		return nil, fmt.Errorf("creating DQN policy: %w: nil weights", ErrConfig)
	}
	if cfg.Features == "" {
		cfg.Features = schemas.StrategicSeed
	}
	if err := cfg.Features.Validate(schemas.Strategic); err != nil {
		return nil, fmt.Errorf("creating DQN policy: %w: %w", ErrConfig, err)
	}
	d := cfg.Features.Dim()
	if w.Inputs() != d || w.Out.Out != cloud.NumProviders {
		return nil, fmt.Errorf("creating DQN policy: %w: network of %d inputs and %d outputs, want %d (%s) and %d", ErrConfig, w.Inputs(), w.Out.Out, d, cfg.Features, cloud.NumProviders)
	}
	if w.Scaler != nil && w.Scaler.Dim != d {
		return nil, fmt.Errorf("creating DQN policy: %w: scaler of %d features", ErrConfig, w.Scaler.Dim)
	}
	for _, j := range cfg.Ablated {
		if j < 0 || j >= d {
			return nil, fmt.Errorf("creating DQN policy: %w: ablated input %d of %d", ErrConfig, j, d)
		}
	}
	if !(cfg.Epsilon >= 0 && cfg.Epsilon <= 1) {
		return nil, fmt.Errorf("creating DQN policy: %w: epsilon %v outside [0, 1]", ErrConfig, cfg.Epsilon)
	}
	return &Policy{w: w.Clone(), cfg: cfg}, nil
}

// Name returns "dqn".
func (p *Policy) Name() string { return Name }

// Version returns the version of the weights served.
func (p *Policy) Version() string { return p.cfg.Version }

// Layer returns schemas.Strategic.
func (p *Policy) Layer() schemas.Layer { return schemas.Strategic }

// Epsilon returns the exploration rate.
func (p *Policy) Epsilon() float64 { return p.cfg.Epsilon }

// Decide appends one decision per strategic row to out.Rows: Action and
// Provider (0 aws, 1 azure, 2 gcp) and Value, the row's largest Q-value
// (whichever action was taken).
func (p *Policy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dqn deciding: %w", err)
	}
	if state == nil || out == nil {
		return fmt.Errorf("dqn deciding: nil state or output batch")
	}
	if state.Header.Layer != schemas.Strategic {
		return fmt.Errorf("dqn deciding tick %d: got a %s state batch, want %s", state.Header.Tick, state.Header.Layer, schemas.Strategic)
	}
	n := len(state.Strategic)
	if n == 0 {
		return nil
	}
	const a = cloud.NumProviders
	d := p.cfg.Features.Dim()
	p.x = resize(p.x, n*d)
	for i := range state.Strategic {
		row := state.Strategic[i].AppendFeatures(p.x[i*d:i*d], p.cfg.Features)
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				row[j] = 0
				p.Stats.NonFiniteInputs++
			}
		}
	}
	if sc := p.w.Scaler; sc != nil {
		if _, err := sc.Transform(p.x, p.x); err != nil {
			return fmt.Errorf("dqn deciding tick %d: %w", state.Header.Tick, err)
		}
	}
	zeroInputs(p.x, d, p.cfg.Ablated)
	q, err := p.w.Forward(p.q, p.x)
	if err != nil {
		return fmt.Errorf("dqn deciding tick %d: %w", state.Header.Tick, err)
	}
	p.q = q
	tick := state.Header.Tick
	for i := range state.Strategic {
		app := state.Strategic[i].App
		row := q[i*a : (i+1)*a]
		best, value := argmax(row)
		allowed := [a]bool{true, true, true}
		if p.cfg.Mask != nil && p.cfg.Mask.Allow(&state.Strategic[i], &allowed) {
			p.Stats.Masked++
			un := best
			if best, value = argmaxAllowed(row, &allowed); best != un {
				p.Stats.MaskChanged++
			}
		}
		act := best
		if p.cfg.Epsilon > 0 {
			h := draw.Hash(p.cfg.Seed, tick, Name, app) // salted with the name: not the random baseline's draws
			if draw.Uniform(h) < p.cfg.Epsilon {
				act = pickAllowed(draw.Uniform(draw.SplitMix(h)), &allowed)
				p.Stats.Explored++
			}
		}
		dec := schemas.DecisionRow{
			App: app, Action: int32(act), Provider: cloud.Provider(act).String(),
			Policy: Name, PolicyVersion: p.cfg.Version,
		}
		if math.IsNaN(value) {
			p.Stats.NonFiniteQ++
		} else {
			dec.Value = schemas.Some(value)
		}
		out.Rows = append(out.Rows, dec)
		p.Stats.Decisions++
	}
	return nil
}

// argmax returns the index of the largest finite value (the lowest index
// on ties; 0 when none is finite) and that value, or NaN when some value
// is not finite.
func argmax(q []float32) (int, float64) {
	best, bv, finite := 0, math.Inf(-1), true
	for i, v := range q {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			finite = false
			continue
		}
		if f > bv {
			best, bv = i, f
		}
	}
	if !finite {
		return best, math.NaN()
	}
	return best, bv
}

// argmaxAllowed is argmax over the allowed entries of q (over all of
// them when none is allowed): the allowed index of the largest finite
// value, the lowest on ties and the first allowed when none is finite,
// with NaN as its value when some allowed value is not finite.
func argmaxAllowed(q []float32, allowed *[cloud.NumProviders]bool) (int, float64) {
	best, first, bv, finite := -1, -1, math.Inf(-1), true
	for i, v := range q {
		if !allowed[i] {
			continue
		}
		if first < 0 {
			first = i
		}
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			finite = false
			continue
		}
		if best < 0 || f > bv {
			best, bv = i, f
		}
	}
	switch {
	case first < 0:
		return argmax(q)
	case best < 0:
		best = first
	}
	if !finite {
		return best, math.NaN()
	}
	return best, bv
}

// pickAllowed maps u in [0, 1) uniformly onto the allowed providers (all
// of them when none is allowed): with every provider allowed it is
// min(⌊u·3⌋, 2), the unmasked draw.
func pickAllowed(u float64, allowed *[cloud.NumProviders]bool) int {
	var idx [cloud.NumProviders]int
	n := 0
	for i, ok := range allowed {
		if ok {
			idx[n] = i
			n++
		}
	}
	if n == 0 {
		return min(int(u*cloud.NumProviders), cloud.NumProviders-1)
	}
	return idx[min(int(u*float64(n)), n-1)]
}

// zeroInputs sets inputs idx of each row of width d in x to 0: the
// ablated features, after scaling.
func zeroInputs(x []float32, d int, idx []int) {
	if len(idx) == 0 {
		return
	}
	for r := 0; r+d <= len(x); r += d {
		for _, j := range idx {
			x[r+j] = 0
		}
	}
}

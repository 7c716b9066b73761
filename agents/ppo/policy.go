package ppo

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/internal/draw"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Name is the policy's registry name.
const Name = "ppo"

// PolicyOptions configures a Policy.
type PolicyOptions struct {
	// Seed seeds the action sampling.
	Seed int64
	// Greedy picks the most probable allowed action (ties to the lower
	// index) instead of sampling: evaluation mode. Training samples.
	Greedy bool
	// DefaultProvider is the provider a row is decided (and masked) for
	// when it does not name a known one (AWS, as the baselines'
	// default_provider).
	DefaultProvider cloud.Provider
	// Availability masks the actions a provider does not offer; nil allows
	// every action (CatalogAvailability of the embedded catalog does too).
	Availability *Availability
	// Mask overrides the served model's Config.Mask when not empty
	// (MaskNone or MaskMemory).
	Mask string
}

// PolicyStats counts what a policy decided.
type PolicyStats struct {
	// Decided counts decision rows written.
	Decided uint64
	// SkippedNonFinite counts tactical rows left out because their state
	// vector held NaN or ±Inf (the entity keeps its previous decision).
	SkippedNonFinite uint64
	// Uniform counts rows decided by the uniform version-0 policy.
	Uniform uint64
	// MemoryMasked counts rows whose tiers below the function's memory
	// peak were masked (MaskMemory).
	MemoryMasked uint64
}

// Policy is the tactical PPO policy: agents.Policy's method set (Name,
// Version, Layer, Decide) over a Model. Not safe for concurrent use.
type Policy struct {
	opts  PolicyOptions
	avail *Availability
	model *Model
	w     *nn.PPOWeights
	stats PolicyStats

	// Scratch reused across ticks.
	raw, x []float32
	vec    []float32 // one row's state
	masks  []bool
	keep   []int
	prov   []cloud.Provider
	out    nn.PPOOutput
}

// NewPolicy returns a policy serving m. The model must have the tactical
// shape (its feature set's size of inputs, Actions actions); the policy
// builds each row's state in that feature set.
func NewPolicy(m *Model, opts PolicyOptions) (*Policy, error) {
	if int(opts.DefaultProvider) >= cloud.NumProviders {
		return nil, fmt.Errorf("creating PPO policy: %w: default provider %d", ErrConfig, opts.DefaultProvider)
	}
	if opts.Mask != "" {
		if _, err := ParseMask(opts.Mask); err != nil {
			return nil, fmt.Errorf("creating PPO policy: %w", err)
		}
	}
	p := &Policy{opts: opts, avail: opts.Availability}
	if p.avail == nil {
		p.avail = AllAvailable()
	}
	if err := p.SetModel(m); err != nil {
		return nil, fmt.Errorf("creating PPO policy: %w", err)
	}
	return p, nil
}

// SetModel switches the policy to m from the next Decide on (a new
// checkpoint's version).
func (p *Policy) SetModel(m *Model) error {
	if m == nil {
		return errors.New("switching PPO model: nil model")
	}
	if f := m.cfg.Features(); m.cfg.Net.Inputs != f.Dim() || m.cfg.Net.Actions != Actions {
		return fmt.Errorf("switching PPO model: %w: %d inputs and %d actions, want %d (feature set %s) and %d",
			ErrConfig, m.cfg.Net.Inputs, m.cfg.Net.Actions, f.Dim(), f, Actions)
	}
	if err := CheckMask(p.maskOf(m), m.cfg.Features()); err != nil {
		return fmt.Errorf("switching PPO model: %w", err)
	}
	p.model, p.w = m, m.w.Clone()
	return nil
}

// maskOf returns the mask the policy applies serving m: the override, or
// m's own.
func (p *Policy) maskOf(m *Model) string {
	if p.opts.Mask != "" {
		return p.opts.Mask
	}
	return m.cfg.Mask
}

// Model returns the model the policy serves.
func (p *Policy) Model() *Model { return p.model }

// Name returns "ppo".
func (p *Policy) Name() string { return Name }

// Version returns the served model's version string.
func (p *Policy) Version() string { return p.model.Version() }

// Layer returns schemas.Tactical.
func (p *Policy) Layer() schemas.Layer { return schemas.Tactical }

// Stats returns the policy's counters.
func (p *Policy) Stats() PolicyStats { return p.stats }

// Decide appends one decision per tactical row to out.Rows, in row order.
// For each row it builds the raw state in the model's feature set
// (TacticalRow.AppendFeatures), masks the
// actions its provider lacks (the row's provider, DefaultProvider when
// unknown) and, with MaskMemory, the tiers below the function's memory
// peak (MemoryMask), scales the state and runs the exported actor-critic, then
// samples the action from a uniform number drawn from hash(seed, tick,
// app, func) — or takes the argmax when Greedy — so the decision depends
// neither on row order nor on other rows. The row gets Action, Provider,
// Region (metro), MemoryMB (tier), LogProb and Value. A model without a
// scaler decides uniformly over the allowed actions and leaves Value
// unset. Rows whose state is not finite are left out and counted.
func (p *Policy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ppo deciding: %w", err)
	}
	if state == nil || out == nil {
		return errors.New("ppo deciding: nil state or output batch")
	}
	tick := state.Header.Tick
	if state.Header.Layer != schemas.Tactical {
		return fmt.Errorf("ppo deciding tick %d: got a %s state batch, want %s", tick, state.Header.Layer, schemas.Tactical)
	}
	p.raw, p.masks, p.keep, p.prov = p.raw[:0], p.masks[:0], p.keep[:0], p.prov[:0]
	features := p.model.cfg.Features()
	memory := p.maskOf(p.model) == MaskMemory
	for i := range state.Tactical {
		r := &state.Tactical[i]
		v := r.AppendFeatures(p.vec[:0], features)
		p.vec = v
		if !schemas.Finite(v) {
			p.stats.SkippedNonFinite++
			continue
		}
		pv := p.opts.DefaultProvider
		if q, err := cloud.ParseProvider(r.Provider); err == nil {
			pv = q
		}
		if p.avail.Count(pv) == 0 {
			return fmt.Errorf("ppo deciding tick %d for %s/%s: provider %s offers no action", tick, r.App, r.Func, pv)
		}
		p.raw = append(p.raw, v...)
		p.masks = append(p.masks, p.avail.allowed[pv][:]...)
		if memory && MemoryMask(p.masks[len(p.masks)-Actions:], r.MemoryPeakMB) {
			p.stats.MemoryMasked++
		}
		p.keep = append(p.keep, i)
		p.prov = append(p.prov, pv)
	}
	if len(p.keep) == 0 {
		return nil
	}
	fitted := p.model.Fitted()
	if fitted {
		var err error
		p.x = grow(p.x, len(p.raw))
		if p.x, err = scaleStates(p.w.Scaler, p.model.cfg.StateClip, p.model.ablated, p.x, p.raw); err != nil {
			return fmt.Errorf("ppo deciding tick %d: %w", tick, err)
		}
		if p.out, err = p.w.Forward(p.out, p.x, p.masks); err != nil {
			return fmt.Errorf("ppo deciding tick %d with %s: %w", tick, p.Version(), err)
		}
	}
	version := p.Version()
	for k, i := range p.keep {
		r := &state.Tactical[i]
		mask := p.masks[k*Actions : (k+1)*Actions]
		u := draw.Uniform(draw.Hash(p.opts.Seed, tick, r.App, r.Func))
		var a int
		d := schemas.DecisionRow{App: r.App, Func: r.Func, Policy: Name, PolicyVersion: version}
		if fitted {
			probs := p.out.Probs[k*Actions : (k+1)*Actions]
			if p.opts.Greedy {
				a = argmax(probs, mask)
			} else {
				a = sample(probs, mask, u)
			}
			d.LogProb = schemas.Some(float64(p.out.LogProbs[k*Actions+a]))
			d.Value = schemas.Some(float64(p.out.Values[k]))
		} else {
			n := countAllowed(mask)
			a = nthAllowed(mask, min(int(u*float64(n)), n-1))
			d.LogProb = schemas.Some(-math.Log(float64(n)))
			p.stats.Uniform++
		}
		metro, tier := cloud.Metro(a/cloud.NumTiers), cloud.Tier(a%cloud.NumTiers)
		d.Action = int32(a)
		d.Provider = p.prov[k].String()
		d.Region = metro.String()
		d.MemoryMB = int32(tier.MB())
		out.Rows = append(out.Rows, d)
		p.stats.Decided++
	}
	return nil
}

// sample returns the allowed action whose cumulative probability first
// exceeds u ∈ (0, 1); rounding leftovers go to the last allowed action.
func sample(probs []float32, mask []bool, u float64) int {
	var c float64
	last := -1
	for j, q := range probs {
		if !mask[j] {
			continue
		}
		last = j
		c += float64(q)
		if u < c {
			return j
		}
	}
	return last
}

// argmax returns the allowed action of highest probability, ties to the
// lower index.
func argmax(probs []float32, mask []bool) int {
	best := -1
	for j, q := range probs {
		if mask[j] && (best < 0 || q > probs[best]) {
			best = j
		}
	}
	return best
}

// countAllowed returns how many actions mask allows.
func countAllowed(mask []bool) int {
	n := 0
	for _, ok := range mask {
		if ok {
			n++
		}
	}
	return n
}

// nthAllowed returns the index of the n-th (0-based) allowed action.
func nthAllowed(mask []bool, n int) int {
	for j, ok := range mask {
		if ok {
			if n == 0 {
				return j
			}
			n--
		}
	}
	return -1
}

// grow returns dst resized to n values, reusing its storage when it can.
func grow(dst []float32, n int) []float32 {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]float32, n)
}

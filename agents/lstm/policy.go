package lstm

import (
	"context"
	"fmt"
	"math"

	"github.com/strata-rl/strata/schemas"
)

// Name is the policy's registry name.
const Name = "lstm"

// PolicyConfig configures a serving policy.
type PolicyConfig struct {
	// Version is reported in every decision row (the checkpoint's version).
	Version string
	// Rule converts predictions into pre-warm counts.
	Rule PrewarmRule
}

// DefaultPolicyConfig returns the default pre-warm rule and no version.
func DefaultPolicyConfig() PolicyConfig { return PolicyConfig{Rule: DefaultPrewarmRule()} }

// PolicyStats counts what a policy did.
type PolicyStats struct {
	// Decisions counts decision rows written.
	Decisions uint64
	// NonFiniteInputs counts sequence values that were NaN or ±Inf and
	// were replaced by 0, the missing-value convention of schemas.
	NonFiniteInputs uint64
	// NonFinitePredictions counts rows whose predicted request rate was
	// not finite; they get Prewarm 0 and no Predicted value.
	NonFinitePredictions uint64
}

// Policy is the operational LSTM serving policy: one model shared by every
// function. For each operational row it builds the 12×5 sequence
// (schemas.OperationalRow.Vector), scales it, runs the exported forward
// pass, inverse-scales the prediction and applies the pre-warm rule to the
// predicted request rate. Each row's decision depends on that row only, so
// decisions do not depend on the order of the rows or on earlier ticks.
// It implements agents.Policy and is not safe for concurrent use.
type Policy struct {
	m     *Model
	cfg   PolicyConfig
	x     []float32
	Stats PolicyStats
}

// NewPolicy returns a policy serving m (which it clones, so m may be
// reused).
func NewPolicy(m *Model, cfg PolicyConfig) (*Policy, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("creating LSTM policy: %w", err)
	}
	if err := cfg.Rule.Validate(); err != nil {
		return nil, fmt.Errorf("creating LSTM policy: %w", err)
	}
	return &Policy{m: m.Clone(), cfg: cfg}, nil
}

// Name returns "lstm".
func (p *Policy) Name() string { return Name }

// Version returns the version of the weights served.
func (p *Policy) Version() string { return p.cfg.Version }

// Layer returns schemas.Operational.
func (p *Policy) Layer() schemas.Layer { return schemas.Operational }

// Decide appends one decision per operational row to out.Rows: Prewarm
// and Action (the pre-warm count) and Predicted, the predicted invocations
// in the next step (predicted request rate × 15 s). KeepWarmMS is 0 (the
// provider's keep-alive).
func (p *Policy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lstm deciding: %w", err)
	}
	if state == nil || out == nil {
		return fmt.Errorf("lstm deciding: nil state or output batch")
	}
	if state.Header.Layer != schemas.Operational {
		return fmt.Errorf("lstm deciding tick %d: got a %s state batch, want %s", state.Header.Tick, state.Header.Layer, schemas.Operational)
	}
	n := len(state.Operational)
	if n == 0 {
		return nil
	}
	p.x = p.x[:0]
	for i := range state.Operational {
		v := state.Operational[i].Vector()
		for j, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				v[j] = 0
				p.Stats.NonFiniteInputs++
			}
		}
		p.x = append(p.x, v...)
	}
	pred, err := p.m.Predict(p.x)
	if err != nil {
		return fmt.Errorf("lstm deciding tick %d: %w", state.Header.Tick, err)
	}
	for i := range state.Operational {
		r := &state.Operational[i]
		d := schemas.DecisionRow{App: r.App, Func: r.Func, Policy: Name, PolicyVersion: p.cfg.Version}
		rate := float64(pred[i][TargetRequestRate])
		if finite(rate) {
			d.Prewarm = p.cfg.Rule.Prewarm(r, rate)
			d.Predicted = schemas.Some(rate * StepS)
		} else {
			p.Stats.NonFinitePredictions++
		}
		d.Action = d.Prewarm
		out.Rows = append(out.Rows, d)
		p.Stats.Decisions++
	}
	return nil
}

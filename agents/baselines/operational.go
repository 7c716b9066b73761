package baselines

import (
	"context"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// stepS is the length of one operational step in seconds.
const stepS = float64(grid.OperationalTickUS) / 1e6

// last is the index of step k−1, the newest of the operational sequences.
const last = schemas.SeqLen - 1

// newOperational builds the operational baseline b.name.
func newOperational(b base, ps *params) (Policy, error) {
	switch b.name {
	case "reactive":
		return &scaled{base: b, factor: 1}, nil
	case "static-2x":
		return &scaled{base: b, factor: ps.float("factor", 2, 0, 1000)}, nil
	case "moving-average":
		return &movingAverage{base: b, window: int(ps.int("window", 5, 1, schemas.SeqLen))}, nil
	case "keepalive-10m":
		return &keepAlive{base: b, keepMS: ps.int("keep_warm_ms", 600_000, 1, 86_400_000)}, nil
	case "keepalive-20m":
		return &keepAlive{base: b, keepMS: ps.int("keep_warm_ms", 1_200_000, 1, 86_400_000)}, nil
	case "knative":
		return newKnative(b, ps), nil
	default: // hybrid-histogram
		return newHybrid(b, ps), nil
	}
}

// scaled is the reactive (factor 1) and static-2x (factor 2) baseline:
// Prewarm = ⌈factor × ConcurrencyPeak[k−1]⌉, the last step's peak
// concurrency scaled by the over-provisioning factor; KeepWarmMS = 0 (the
// provider's keep-alive). Predicted = the last step's invocations
// (RequestRate[k−1] × 15 s), the persistence forecast both act on. It keeps
// no state.
type scaled struct {
	base
	factor float64
}

// Decide implements the policy for every row of the batch.
func (p *scaled) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	for i := range state.Operational {
		r := &state.Operational[i]
		d := p.row(r.App, r.Func)
		d.Prewarm = ceilCount(p.factor * r.ConcurrencyPeak[last])
		d.Action = d.Prewarm
		d.Predicted = schemas.Some(r.RequestRate[last] * stepS)
		out.Rows = append(out.Rows, d)
	}
	return nil
}

// movingAverage is the 5-step moving-average baseline: Prewarm =
// ⌈mean of ConcurrencyMean over the last window steps⌉. ConcurrencyMean is
// the time-averaged number of invocations in flight, i.e. request rate ×
// mean duration by Little's law, measured directly (the operational row
// carries no durations). Predicted = mean RequestRate over the same steps ×
// 15 s. KeepWarmMS = 0.
type movingAverage struct {
	base
	window int
}

// Decide implements the policy for every row of the batch.
func (p *movingAverage) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	for i := range state.Operational {
		r := &state.Operational[i]
		var conc, rate float64
		for j := schemas.SeqLen - p.window; j < schemas.SeqLen; j++ {
			conc += r.ConcurrencyMean[j]
			rate += r.RequestRate[j]
		}
		n := float64(p.window)
		d := p.row(r.App, r.Func)
		d.Prewarm = ceilCount(conc / n)
		d.Action = d.Prewarm
		d.Predicted = schemas.Some(rate / n * stepS)
		out.Rows = append(out.Rows, d)
	}
	return nil
}

// keepAlive is the fixed keep-alive baseline (docs/baselines.md#keepalive): no pre-warming
// (Prewarm 0) and an idle instance kept keepMS after its last execution ends
// (KeepWarmMS; 600 000 for AWS's 10 min, 1 200 000 for Azure's 20 min). It
// does not predict.
type keepAlive struct {
	base
	keepMS int64
}

// Decide implements the policy for every row of the batch.
func (p *keepAlive) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	for i := range state.Operational {
		r := &state.Operational[i]
		d := p.row(r.App, r.Func)
		d.KeepWarmMS = p.keepMS
		out.Rows = append(out.Rows, d)
	}
	return nil
}

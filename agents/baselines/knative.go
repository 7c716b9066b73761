package baselines

import (
	"context"
	"math"

	"github.com/strata-rl/strata/schemas"
)

// knative is the Knative Serving KPA autoscaler (docs/baselines.md#knative) run once per
// 15 s operational tick instead of every 2 s, per function. Its decision is
// the pod count, published as Prewarm.
//
// At tick k, with R = max(1, the previous tick's decision) standing in for
// the ready pods:
//
//   - stable = mean ConcurrencyMean over the last stable_window_s / 15 s
//     steps (60 s = 4 steps); panic = ConcurrencyPeak[k−1]: the 6 s panic
//     window is shorter than a step, and the step's peak is the largest
//     value any 6 s average inside it can take (an upper bound, so the
//     approximation panics at least as often as the real KPA).
//   - target = CC × target_utilization (CC = 1 → 0.7; CC = 0 → 100 × 0.7).
//   - d_stable = ⌈stable / target⌉, d_panic = ⌈panic / target⌉, each
//     clamped into [⌊R / down^n⌋, ⌈R × up^n⌉] where down = 2, up = 1000
//     and n = kpa_ticks_per_step = 7: the per-2 s-tick rate limits
//     compounded over the 7 whole KPA ticks of a 15 s step (2^7 = 128×).
//   - over = d_panic / R ≥ panic_threshold (2.0): enter panic, or extend
//     it, at this tick. In panic without over and at least
//     stable_window_s / 15 s = 4 steps after the last over tick: leave
//     (Knative leaves 2 s after the 60 s; the 15 s grid rounds to 60 s).
//   - desired = d_stable; in panic max(d_stable, d_panic, the episode's
//     highest decision): no scale-down while panicking.
//   - scale to zero: desired falls to 0 only through d_stable = 0 (no
//     concurrency for the stable window), and a function that held pods
//     keeps one until it has had no concurrency for (stable window + grace
//     30 s) / 15 s = 6 steps (Knative's ≈90 s, docs/baselines.md#knative). With
//     enable_scale_to_zero false it keeps at least one.
//
// KeepWarmMS is keep_warm_ms (default 0: the provider's keep-alive). The KPA
// does not predict invocations: Predicted is left missing.
type knative struct {
	base
	target      float64
	stableSteps int
	threshold   float64
	downFactor  float64
	upFactor    float64
	zeroSteps   int64
	toZero      bool
	keepMS      int64
	state       map[entity]*kpaState
}

// kpaState is one function's autoscaler state across ticks.
type kpaState struct {
	desired   int32
	panicking bool
	panicTick int64
	maxPanic  int32
	lastTick  int64
	idleSteps int64 // steps since ConcurrencyPeak was last above 0
}

func newKnative(b base, ps *params) *knative {
	cc := ps.float("container_concurrency", 1, 0, 1000)
	util := ps.float("target_utilization", 0.7, 0.01, 1)
	total := cc
	if cc == 0 {
		total = ps.float("container_concurrency_target_default", 100, 0.01, 1e6)
	}
	stableS := ps.float("stable_window_s", 60, stepS, 3600)
	grace := ps.float("scale_to_zero_grace_s", 30, 0, 3600)
	ticks := ps.float("kpa_ticks_per_step", 7, 1, 100)
	return &knative{
		base:        b,
		target:      max(0.01, total*util),
		stableSteps: int(min(math.Round(stableS/stepS), schemas.SeqLen)),
		threshold:   ps.float("panic_threshold", 2.0, 1.1, 10),
		downFactor:  math.Pow(ps.float("max_scale_down_rate", 2, 1.000001, 1e6), ticks),
		upFactor:    math.Pow(ps.float("max_scale_up_rate", 1000, 1.000001, 1e6), ticks),
		zeroSteps:   int64(math.Ceil((stableS + grace) / stepS)),
		toZero:      ps.bool("enable_scale_to_zero", true),
		keepMS:      ps.int("keep_warm_ms", 0, 0, 86_400_000),
		state:       map[entity]*kpaState{},
	}
}

// Decide implements the policy for every row of the batch.
func (p *knative) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	k := state.Header.Tick
	for i := range state.Operational {
		r := &state.Operational[i]
		id := key(r.App, r.Func)
		st := p.state[id]
		if st == nil {
			st = &kpaState{lastTick: k - 1, idleSteps: schemas.SeqLen}
			p.state[id] = st
		}
		d := p.row(r.App, r.Func)
		d.Prewarm = p.decide(st, r, k)
		d.Action = d.Prewarm
		d.KeepWarmMS = p.keepMS
		out.Rows = append(out.Rows, d)
	}
	return nil
}

func (p *knative) decide(st *kpaState, r *schemas.OperationalRow, k int64) int32 {
	// Steps without concurrency, counting ticks in which the function was
	// absent from the batch as idle.
	trailing := int64(0)
	for j := last; j >= 0 && r.ConcurrencyPeak[j] <= 0; j-- {
		trailing++
	}
	if trailing == schemas.SeqLen {
		st.idleSteps += max(k-st.lastTick, 1)
	} else {
		st.idleSteps = trailing
	}
	st.lastTick = k

	stable := 0.0
	for j := schemas.SeqLen - p.stableSteps; j < schemas.SeqLen; j++ {
		stable += r.ConcurrencyMean[j]
	}
	stable /= float64(p.stableSteps)
	panicVal := r.ConcurrencyPeak[last]

	ready := float64(max(st.desired, 1))
	lo := math.Floor(ready / p.downFactor)
	hi := math.Ceil(min(ready*p.upFactor, math.MaxInt32))
	dStableRaw := float64(ceilCount(stable / p.target))
	dPanicRaw := float64(ceilCount(panicVal / p.target))
	dStable := min(max(dStableRaw, lo), hi)
	dPanic := min(max(dPanicRaw, lo), hi)

	over := dPanicRaw/ready >= p.threshold
	switch {
	case over:
		st.panicking, st.panicTick = true, k
	case st.panicking && k-st.panicTick >= int64(p.stableSteps):
		st.panicking, st.maxPanic = false, 0
	}
	desired := int32(dStable)
	if st.panicking {
		desired = max(desired, int32(dPanic), st.maxPanic)
		st.maxPanic = desired
	}
	if desired == 0 && (!p.toZero || (st.desired > 0 && st.idleSteps < p.zeroSteps)) {
		desired = 1
	}
	st.desired = desired
	return desired
}

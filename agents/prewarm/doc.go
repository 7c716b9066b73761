// Package prewarm is strata's own operational policy, hazard-prewarm:
// pre-warm decided from a per-function forecast of the next arrival with
// its uncertainty, the keep-warm price part of the decision
// (docs/agents.md, "The operational layer: hazard-prewarm").
//
// For each function it keeps the idle times the state rows report (the
// gaps between an execution's end and the next start) and treats them as
// draws of a renewal process: at a tick that starts s seconds after the
// function's last execution ended, the chance that the next invocation
// arrives within the tick, given that none came in the s seconds so far,
// is the hazard h(s) = P(IT ∈ [s, s+15 s) | IT ≥ s), estimated from the
// kept idle times (smoothed over a window around the tick). One instance
// is pre-warmed for the tick when h(s) reaches the threshold θ, and only
// when the provider's free keep-alive no longer holds an instance; θ is
// the price ratio of the decision — a pre-warmed tick costs keep-warm
// money whether or not an invocation comes, and saves a cold start with
// probability h(s). It is the optimal rule for that trade-off under the
// renewal model; hybrid-histogram's windows (5th to 99th percentile of the
// idle times, or four hours when the histogram is uncertain) are a
// heuristic for the same question.
//
// The policy is deterministic and keeps per-function state across ticks;
// it imports no broker or database client.
package prewarm

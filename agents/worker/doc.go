// Package worker serves a decision policy over NATS: it follows a layer's
// state batches on strata.state.<layer>, asks the policy for the tick's
// decisions and publishes them, shard for shard, as a decision batch on
// strata.decision.<layer> with a deterministic message id.
//
// It also serves single live decisions on strata.act.<layer>
// (request/reply): ActServer answers a request, an Arrow state batch of the
// entities to decide for, with the decision batch of its policy, as one
// member of a NATS queue group so that several agents share a layer's
// requests. Act is the client side: it waits for the reply up to a
// deadline and decides with a local fallback policy when none comes, no
// server listens or the server answers with an error.
//
// An operational batch carries only the functions whose decision changed
// since the worker's previous batch (decision schema version 2); a
// function missing from it keeps its decision in force.
//
// # Metrics
//
// With Worker.Registerer a worker exports, labelled by layer,
// strata_worker_batches_total, strata_worker_decisions_total (decisions
// per second with rate()) and strata_worker_tick_seconds (per state batch:
// decode, decide, publish — the agent's hop of the loop); for a policy
// that reuses predictions (PredictionCounter: the LSTM),
// strata_worker_predictions_total by source — computed, reused (the
// entity's window did not change since its previous decision), shared
// (another entity of the batch had the same window); for a policy served
// with a fallback (FallbackCounter: agents.Fallback),
// strata_worker_fallback_batches_total by reason — failed, forced; with
// Worker.Guard, strata_worker_guardrail_projections_total by constraint —
// provider, region, memory, keep_warm (docs/guardrails.md).
package worker

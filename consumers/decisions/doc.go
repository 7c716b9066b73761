// Package decisions keeps the live view of the decisions in force and serves
// it over HTTP.
//
// A [View] follows the decision batches that the policy workers publish on
// JetStream (subject strata.decision.<layer>, stream STRATA_DECISION) for one
// run and keeps, per layer and entity, the decision of the newest tick: the
// strategic decision per app, the tactical and operational decisions per
// function. The semantics are those of the tick loop (docs/tick-contract.md):
//
//   - a batch for tick k is in force from the start of tick k, epoch +
//     k·period with periods of 15 s (operational), 1 h (tactical) and 24 h
//     (strategic); in live mode the epoch is the Unix epoch;
//   - an entity missing from a batch keeps its last decision, and before any
//     decision the configured default placement applies, field by field;
//   - a batch of an older tick arriving after a newer one never overwrites
//     the newer decision of an entity, and the shards of one tick merge;
//   - batches of other runs are ignored.
//
// [View.Handler] serves GET /v1/decisions/{app} and
// GET /v1/decisions/{app}/{func} as JSON: each layer's decision in force
// (tick, in force from, policy and version, action and the layer's fields,
// when received) and the effective placement, which combines the strategic
// provider, the tactical region and memory tier and the operational pre-warm
// count and keep-warm window, listing the fields still at the default.
//
// # Retention
//
// Decisions are never expired by age. An operational decision for a function
// that has left the active set stays in the view until a newer one replaces
// it, exactly as it stays in force in the tick loop (the twin keeps applying
// a function's last pre-warm decision), so the API reports what the loop
// applies. Memory is bounded by the number of entities instead:
// [Config.MaxEntities] caps the entities held per layer (default 100,000,
// far above the few hundred functions of the Azure trace). When a layer goes
// over the cap, the view evicts the entities whose decision is oldest (lowest
// tick) down to 15/16 of the cap, logs it and counts it in
// strata_decisions_evicted_total; an evicted entity reports the default
// placement again until it is decided anew. Rows whose app or function name
// is longer than [MaxNameBytes] (names the API could never be asked about)
// or whose tick has no representable start time are skipped and counted.
// Held strings are copied out of the Arrow buffers, so a held row never pins
// the batch it came from.
//
// # Metrics
//
// With a registerer, the view exports strata_decisions_batches_applied_total
// {layer}, strata_decisions_rows_held{layer},
// strata_decisions_decode_failures_total,
// strata_decisions_rows_skipped_total{reason} and
// strata_decisions_evicted_total{layer}.
package decisions

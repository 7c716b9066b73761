// Package baselines holds strata's baseline policies, one per name and
// layer (docs/agents.md, docs/baselines.md):
//
//   - strategic: random, greedy-latency, greedy-cost, greedy-carbon;
//   - tactical: random, greedy-latency, greedy-cost, greedy-carbon,
//     power-tuning;
//   - operational: reactive, static-2x, moving-average, keepalive-10m,
//     keepalive-20m, knative, hybrid-histogram.
//
// Each policy decides one layer's tick from that tick's state batch and may
// keep state across ticks. Given the same sequence of batches, parameters
// and seed, every policy returns the same decisions: randomness comes only
// from hashes of (seed, tick, app, func), and no result depends on map
// iteration order or on the order of rows in a batch. A policy is not safe
// for concurrent use.
//
// Build policies with [New] (or agents.New, which wraps it). Parameters with
// their defaults, sources and every approximation are listed in
// docs/baselines.md and on each policy's type. static-best and oracle need
// the twin's counterfactual engine and live there.
package baselines

// Package worker serves a decision policy over NATS: it follows a layer's
// state batches on strata.state.<layer>, asks the policy for the tick's
// decisions and publishes them, shard for shard, as a decision batch on
// strata.decision.<layer> with a deterministic message id.
package worker

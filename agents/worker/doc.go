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
package worker

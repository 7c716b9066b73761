// Package natsbus connects strata to NATS: the embedded nats-server with
// JetStream that `strata run` starts when no --nats address is given, the
// JetStream streams of tick batches (strata.state.<layer>,
// strata.decision.<layer>), deduplicated publishing by message id, and the
// key-value bucket where consumers keep their checkpoints.
package natsbus

// Package features turns the telemetry stream into per-tick state batches for
// the three decision layers.
//
// The windowing itself ([Partition]) is pure: it takes observed invocations
// and watermarks and emits [schemas.StateBatch] values, with no broker in
// sight. [Service] runs one Partition per Kafka partition of
// strata.telemetry.v1 inside a consumer group and publishes each batch to
// JetStream subject strata.state.<layer>.
//
// Event time everywhere: an invocation belongs to the 15 s tick in which it
// starts (start = end − duration). Tick k closes when the partition's
// watermark reaches the end of tick k. The state batch for tick k summarises
// telemetry up to the end of tick k−1, so closing tick k−1 publishes the
// operational batch for tick k; closing the last tick of an hour (day)
// publishes the tactical (strategic) batch of the next hour (day).
//
// Sharding: state is kept per Kafka partition (records are keyed by app, so
// an app lives in exactly one partition), and each partition's batches are
// published as shard p of n, n being the partition count. Whoever owns a
// partition after a rebalance or restart restores its checkpoint and
// continues; batches carry deterministic message ids, so JetStream drops the
// ones republished after a restart.
//
// # Metrics
//
// With a registerer the service exports strata_features_invocations_total,
// strata_features_rejected_total{reason}, strata_features_state_batches_total
// {layer}, strata_features_batch_encode_seconds and
// strata_features_watermark_seconds (per watermark of a partition: closing
// the ticks it passes and publishing their batches — the features' hop of
// the closed loop).
package features

// Package twin is the cloud twin of the closed loop: it runs each tick's
// arrivals under the decisions in force on the cloud model, produces the
// telemetry the feature service windows, and scores every decision against
// the counterfactual alternatives of its layer.
//
// [Engine] is the pure core — no broker, no clock: the same arrivals,
// decisions and configuration give the same telemetry, decisions and
// rewards, whatever the replay speed. Two services feed it from Kafka and
// NATS and write its output back:
//
//   - [Service], the replay-synchronous twin of the closed loop (strata
//     run, train, eval): it reads the replay's arrivals from
//     strata.invocations.v1, waits for every enabled layer's decision batch
//     of a tick (and, for the transition layers, the interval's state
//     batch), evaluates and scores the tick, and writes the telemetry the
//     features window with a watermark per tick, then the decisions,
//     rewards, outcomes and transitions. Its output does not depend on
//     timing (docs/tick-contract.md).
//   - [Shadow], the twin beside a live run (strata live, docs/shadow.md):
//     it reads the observed invocations and watermarks on
//     strata.telemetry.v1, evaluates each tick as soon as the watermarks
//     pass it with the decisions that arrived in time, never waiting for
//     one, and writes decisions, rewards, outcomes and transitions but no
//     telemetry.
//
// Both are configured by [CommonConfig] (inside [ServiceConfig] and
// [ShadowConfig]) and share everything but that difference: the decision
// and state intake, the loop that reads the input topic, tracks its
// watermarks and pauses partitions read too far ahead, the evaluation and
// scoring of a tick, the records produced with their digests, the
// transitions and the [Stats].
//
// Rewards, per docs/reward.md:
//   - operational, per function-tick: the tick's invocations run from the
//     tick's starting pool under each pre-warm alternative (Config.
//     PrewarmAlternatives plus the decided count);
//   - tactical, per function-hour: the hour's invocations run from the
//     hour's starting pools under each of the 24 region × tier placements on
//     the hour's provider, with the operational pre-warm schedule carried
//     over;
//   - strategic, per app-day: the day's invocations of every function of the
//     app run from the day's starting pools on each provider, with each
//     hour's metro and tier and the pre-warm schedule carried over.
//
// Each alternative is scored with cloud.Rewards; the decided alternative's
// score is the reward, the best one the hindsight oracle, and the difference
// the regret. An interval with no invocations and no cost emits no reward.
//
// # Checkpoints
//
// With CommonConfig.Checkpoints either service stores its state every
// CheckpointEvery ticks (Engine.Snapshot, plus its figures, digests and
// the input it holds with its offsets) and goes on from it after a crash:
// a Service after Restore, a Shadow when it starts (docs/twin.md,
// "Checkpoint and restart").
//
// # Metrics
//
// With CommonConfig.Registerer either service exports
// strata_twin_ticks_total, strata_twin_evaluate_seconds (per tick: decisions
// applied, arrivals simulated, telemetry written — the twin's hop),
// strata_twin_score_seconds (the counterfactuals and records after it),
// strata_twin_decision_wait_seconds (Service only: idle from one tick's end
// until the next one's decisions are complete — the features' and agents'
// hops not hidden behind scoring), strata_twin_watermark_lag_ticks and
// strata_twin_decisions_total{layer}, strata_twin_rewards_total{layer}; with
// checkpoints strata_twin_checkpoint_seconds, strata_twin_checkpoint_bytes
// and strata_twin_restores_total.
package twin

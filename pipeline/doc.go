// Package pipeline wires strata's roles into runs: the open loop, the
// closed loop and (in time) live mode. It owns the environment a run
// stands on (Env: an embedded or remote Kafka and NATS with strata's
// topics, streams and buckets), the consumer-group names of a run
// (Groups), and the order in which the roles start, run and stop.
//
// Read top to bottom, each entry point follows the data-flow diagram of
// docs/design.md:
//
//   - OpenLoop: a trace replay writes observed telemetry to Kafka; the
//     feature service windows it and publishes state batches to JetStream.
//   - ClosedLoop: the replay writes arrivals; the twin runs each tick under
//     the decisions in force and writes telemetry, decisions, rewards and
//     transitions; the features turn telemetry into state; the policy
//     workers turn state into the next decisions; optionally the sink
//     writes the run to a store and an in-process learner trains on its
//     transitions.
//
// The domain packages (producers, consumers/..., agents/...) know nothing
// of one another; this package is where they meet. cmd/strata parses
// flags into the Configs here and calls the entry points.
//
// # Commands
//
// Each command that runs the pipeline has its configuration here, as the
// command line gives it, with RegisterFlags(fs, prefix) and Validate(),
// its defaults spelled once (DefaultRunRole and the like, on the
// constants of defaults.go): RunRole (`strata run`: RunLoop, which sets
// the closed loop up with SetupLoop, or OpenLoop), LiveRole, and the roles
// run alone against external servers — ReplayRole, FeaturesRole,
// AgentRole, SinkRole, LearnerRole, IngestRole and LoadRole (`strata
// ingest load`). The flag groups they share are Common (--kafka, --nats,
// --partitions, --prefix, --log-level, --metrics-addr, --trace-epoch),
// Source (the trace), ReplayFlags, StoreFlags, IngestFlags and Profiles.
// Package roleconf reads a command's --config file.
//
// # Shutdown
//
// A run stops its sources first (the replay ends, the twin evaluates the
// last tick, the features publish the last state), then waits for the
// readers behind them to catch up (the learner, the sink), then stops
// those, which flush and commit on the way out, and closes the
// environment last. OpenLoop and ClosedLoop run their roles as named
// actors of a run group (Actors) whose stages encode that order; a failing
// actor aborts the run, is named in the error, and the stages behind it
// still stop in order. Live mode keeps its own sequence (ingest, the
// drain, the back end, the sink) because its drain reports what each of
// those left unprocessed.
package pipeline

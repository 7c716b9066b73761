// Package depcheck keeps strata's dependencies pointing one way: the pure
// core links no Kafka, NATS or database client, and the twin and the
// decisions view do not link gorgonia. Adapters import the core, never the
// reverse. Its test (go test ./infra/depcheck -v, part of make test's unit
// tier) runs `go list -deps` over the module and fails naming, for each
// package that breaks a rule, the import chain that brings the forbidden
// package in (cloud → schemas/grid → github.com/twmb/franz-go/pkg/kgo). A
// second test plants such imports through a go list overlay, without
// touching the tree, and expects the check to fail.
//
// # The rules
//
// The pure core links none of the clients github.com/twmb/franz-go,
// github.com/nats-io/nats.go, github.com/nats-io/nats-server,
// github.com/duckdb/duckdb-go and github.com/ClickHouse/clickhouse-go. It
// is selected by pattern, so a package added under these folders is checked
// too:
//
//   - schemas/... — wire contracts, observation checks, the tick grid
//     (schemas/grid);
//   - replay/... — trace readers, generator, ordering, pacing;
//   - cloud/... — the cost, carbon and reward model;
//   - agents/... except agents/worker — the policy interface, baselines,
//     networks (nn), dqn, ppo, lstm and the learner, which reads and
//     publishes through interfaces that its callers implement;
//   - consumers/internal/... — deduplication;
//   - ingest/telemetry/... and ingest/loadgen/... — the JSON and OTLP
//     decoders and the HTTP load generator;
//   - experiments/dataset/... — the Phase-1 dataset's features and files
//     (`strata export dataset` wires it in cmd/strata).
//
// consumers/twin/... and consumers/decisions/... link no gorgonia.org
// package (the learner's networks): the twin scores decisions and the view
// serves them; neither trains or runs a network.
//
// consumers/... links no database client: the sink writes through its
// Writer interface, which pipeline fills with an infra/store backend.
//
// # Adapters
//
// These packages talk to a broker or a database and are not checked by the
// first rule, although some hold a pure core:
//
//   - agents/worker serves policies over NATS;
//   - consumers/features: the event-time windows (window.go, snapshot.go)
//     share a package with the Kafka service (service.go);
//   - consumers/twin: the engine (engine.go, tick.go, internal.go) shares a
//     package with the Kafka and NATS replay and shadow services
//     (service.go);
//   - consumers/decisions: the pure View.Apply beside the JetStream Follow;
//   - consumers/sink, producers, ingest (the HTTP service writes to Kafka),
//     infra/..., the wiring (pipeline/... and the workflows of
//     experiments/train and experiments/eval) and cmd/strata.
//
// Moving the twin's and the features' cores into packages of their own
// would let the first rule cover them.
//
// Only what a package links is checked, not its tests: a test of a pure
// package may still start an embedded broker.
package depcheck

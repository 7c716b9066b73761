// Package infra groups strata's adapters to external systems: kafka
// (franz-go clients, topics, the embedded kfake broker), natsbus (nats.go,
// JetStream streams and the embedded nats-server), and the scripts that
// install and start real servers for the integration tier (infra/scripts).
// Package depcheck, run by its own test, keeps the dependencies pointing one
// way: the pure core links none of these clients.
package infra

// Package kafka builds franz-go clients for strata: the client options every
// role shares (logging through slog, Prometheus metrics, the app-keyed
// partitioner), topic creation, and the embedded in-process broker (kfake)
// that `strata run` uses when no --kafka address is given.
package kafka

// Package bench holds the benchmarks that measure the pipeline's roles
// against a ceiling measured in the same run and print the ratio last
// (`strata bench ...`): the open loop against raw produce (Pipeline), the
// twin engine against the replay source (Twin), the closed loop against
// the twin engine replaying its decisions (Loop), the sink against a raw
// insert (Sink) and ingest against raw produce (Ingest). They wire the
// same components as package pipeline does, with instrumentation, so they
// live beside it; cmd/strata parses their flags.
//
// # Ingest
//
// Ingest (`strata bench ingest`) alternates the raw franz-go produce of
// pre-encoded telemetry records (the ceiling) with the same records sent
// over HTTP to an in-process ingest service by the load generator, 500 a
// request, 8 in flight, IngestConfig.Runs rounds (5 by default). It
// prints every run with its absolute rate and its round's ratio, the
// median request latency percentiles, both sides' medians, and last the
// ratio of the medians: on a shared machine one run's best measures the
// load more than the service. Scratch topics carry the run id.
//
// Measured on the development machine (AMD EPYC, 2 cores shared with the
// broker, the load generator and other engineers' jobs, load average 2-11;
// Go 1.26.8), each one run of 5 rounds,
//
//	go run ./cmd/strata bench ingest --records 600000 [--kafka $STRATA_KAFKA]
//
// (Kafka: infra/scripts/up.sh, then `set -a; . infra/.env.test; set +a`;
// Apache Kafka 4.4, local), JSON, ingest/raw as the ratio of the medians:
//
//	embedded kfake, before the one-pass encoding (238edde): 0.170 0.191 0.213 0.311
//	embedded kfake, after:  0.445 0.455 0.550 0.660 0.665 (ingest medians 256k-773k records/s)
//	Apache Kafka, before:   0.239 0.277 0.415 0.775 (0.775: a ceiling collapsed to 119k records/s)
//	Apache Kafka, after:    0.435 0.500 0.524 0.568 0.627 0.640 0.654 0.866 (213k-599k records/s)
//
// On an idle machine the embedded ceiling takes both cores (1.7M
// records/s) and the ratio sits at 0.45-0.55; OTLP protobuf stays at
// 0.29-0.39 (pdata's unmarshalling). The README's "Live ingest" has the
// table, the profiles and what changed.
package bench

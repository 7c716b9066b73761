// Package loadgen is the load generator behind `strata ingest load`: it
// replays a trace (any replay.Source) against strata's live-telemetry
// ingest service as if the invocations were happening now.
//
// Each invocation of the source becomes one live record whose end time is
// the wall clock when its batch is built and whose duration is the trace's,
// so the records look like they just finished. Records are sent in batches
// (one HTTP request each) in source order, in strata's JSON telemetry schema
// on POST /v1/telemetry or as OTLP/HTTP traces (protobuf or JSON) on
// POST /v1/traces, paced by a token-bucket rate limiter in records per
// second, with a bounded number of requests in flight.
//
// Every record carries a deterministic invocation id, so a request that
// fails (a connection error, 429, 5xx) is retried with the very same body
// and its records are deduplicated downstream if an earlier attempt did get
// through. Requests that still fail after their retries are counted and the
// run goes on; Run reports throughput, acceptance and request latency
// percentiles in a Result.
package loadgen

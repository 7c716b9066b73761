// Package ingest is strata's live telemetry service (`strata ingest`): it
// accepts invocation telemetry over HTTP — strata's JSON schema on
// POST /v1/telemetry and OTLP/HTTP traces on POST /v1/traces (package
// ingest/telemetry decodes both) — and writes each valid record to
// strata.telemetry.v1, keyed by app, as a stratapb.Observation of the live
// run.
//
// A request is acknowledged only once Kafka acknowledged every record of it
// (valid records on the telemetry topic, rejected ones with their reasons on
// strata.deadletter.v1); a failure answers 503 and the client retries the
// same body, which the invocation ids make harmless downstream. Requests
// are authenticated with bearer tokens, bounded in size, and rate-limited
// per token in records per second.
//
// The service writes wall-clock watermarks: every second it promises on
// every telemetry partition that no record starting before now − lateness
// follows, and it rejects such records as late. The feature consumer closes
// live ticks with these watermarks, exactly as it closes replayed ones.
package ingest

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
// Connections and requests are bounded too (Config, docs/ingest.md): a
// header timeout, a body deadline (408 when a body is not in by then), a
// write timeout that covers the wait for Kafka, an idle timeout for
// keep-alive connections, and caps on open connections and on requests
// in flight (503 beyond either, before anything of the request is read).
//
// The service writes wall-clock watermarks: every second it promises on
// every telemetry partition that no record starting before now − lateness
// follows, and it rejects such records as late. The feature consumer closes
// live ticks with these watermarks, exactly as it closes replayed ones.
// With Config.DrainWindow it writes one last watermark when it stops, past
// the window of every record it accepted, for a process that drains its
// consumers before it exits (strata live on the embedded broker).
package ingest

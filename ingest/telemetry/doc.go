// Package telemetry decodes live invocation telemetry — strata's JSON
// telemetry schema and OTLP traces that follow the OpenTelemetry FaaS
// semantic conventions — into strata.v1 Observations, validating each
// record on its own so that one bad record never costs the others. A
// Batch holds a request's valid records already encoded, in one pass from
// the decoded fields, as the service writes them to Kafka.
package telemetry

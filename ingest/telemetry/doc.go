// Package telemetry decodes live invocation telemetry — strata's JSON
// telemetry schema and OTLP traces that follow the OpenTelemetry FaaS
// semantic conventions — into strata.v1 Observations, validating each
// record on its own so that one bad record never costs the others.
package telemetry

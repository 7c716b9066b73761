// Package producers writes invocations into Kafka: the replay producer
// (a trace file or the synthetic generator → strata.invocations.v1, or, in
// its open-loop form, → strata.telemetry.v1 as observed on the trace's own
// platform), with exact event-time watermarks on every partition and
// dead-lettering of malformed or late input.
package producers

// Package bench holds the benchmarks that measure the pipeline's roles
// against a ceiling measured in the same run and print the ratio last
// (`strata bench ...`): the open loop against raw produce (Pipeline), the
// twin engine against the replay source (Twin), the closed loop against
// the twin engine replaying its decisions (Loop), the sink against a raw
// insert (Sink) and ingest against raw produce (Ingest). They wire the
// same components as package pipeline does, with instrumentation, so they
// live beside it; cmd/strata parses their flags.
package bench

// Package bench holds the benchmarks that measure the pipeline's roles
// against a ceiling measured in the same run and print the ratio last
// (`strata bench ...`). They wire the same components as package pipeline
// does, with instrumentation, so they live beside it; cmd/strata parses
// their flags.
package bench

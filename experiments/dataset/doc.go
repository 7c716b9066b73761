// Package dataset builds the seed's Phase-1 dataset (seed §2.3): one row
// per invocation of a trace with 47 features in five groups (temporal 12,
// workload 8, performance 10, cost 9, carbon 8), split by trace day into
// training, validation and test Parquet files, with a robust scaler fitted
// on the training split, a per-function profile of the training days and
// a metadata file. `strata export dataset` runs it; docs/dataset.md defines
// every feature (name, group, unit, formula, source, value with no
// history) and every file.
//
// The features are causal: an invocation's features depend only on its
// own start (never on its own duration, which is not known when it is
// placed; the duration is a label column), on the invocations of the trace
// that start before it in (start, row) order — and of those, for anything
// that uses a duration or an end, only the ones that have ended by its
// start — and on the catalog, the carbon and renewable series of its hour
// and the cloud model's parameters. Builder computes them from a stream of
// invocations in (start, row) order, in memory bounded by the number of
// functions and their concurrency; Export orders a trace as the replay
// does (replay.Orderer), writes the files and fits the scaler.
//
// The package is pure: it reads no broker, no database and no wall clock
// (Export's result reports its own wall time for the command's summary
// only), and it is deterministic: the same trace, configuration and model
// give byte-identical files.
package dataset

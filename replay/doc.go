// Package replay reads invocation traces, generates synthetic ones and paces
// them in event time.
//
// It is a pure domain package: it never imports a broker or database client.
// Traces are streams of [Invocation] values ordered (approximately) by start
// time; a [Source] yields them one at a time so that a 14-day trace is
// replayed in constant memory.
//
// A trace file comes in one of several formats (docs/traces.md), each with
// its reader here, next to its writer where strata writes it: the Azure
// Functions 2021 CSV ([CSVReader], [WriteCSV]), any CSV through a column
// mapping ([ColumnReader], [ColumnMap]), Parquet ([ParquetReader],
// [WriteParquet]) and a directory of Azure Functions 2019 files, whose
// per-minute counts become invocations by a seeded rule
// ([Azure2019Reader]). [Open] picks the reader for a [Format].
//
// Time inside a trace is measured in microseconds from the trace start
// ("trace time"). The trace epoch maps trace time 0 onto a wall-clock instant
// (DefaultEpoch in schemas/grid, with the tick lengths); it fixes the hour of
// day and the day of week.
package replay

// Package rowcache finds a batch row's entry among those of the previous
// batch by position, before a map would hash its names.
//
// The rows of a shard's state batches come in the same order tick after
// tick, and their names — two 64-character hashes — are the map keys of
// every per-function table an agent keeps. Looking a row up in such a map
// hashes 128 bytes; a Table instead walks, per shard, the previous batch's
// keys in step with the rows and compares (names equal by pointer after
// schemas.Sequences.Fill compare in a few instructions). A miss — a
// function that entered, or rows in another order — falls back to the
// table's map, which owns the values, so the cache changes what a lookup
// costs, never what it returns.
package rowcache

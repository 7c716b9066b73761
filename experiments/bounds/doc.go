// Package bounds measures how far a causal tactical policy can get against
// the twin's per-interval hindsight oracle (`strata bounds`,
// docs/bounds.md).
//
// Its input is one Row per tactical function-hour the twin scores: the
// reward every one of the 24 metro × tier actions would have earned in
// that hour, as the twin computes it in hindsight (twin.Counterfactual,
// collected by a Collector on a replay under the default placement), with
// the function's modelled descriptors. Compute replays a set of simple
// policies over those rows — the oracle, the default placement,
// static-best, follow-the-leader, exponentially weighted leaders, an
// hour-of-day leader, descriptor-group rules, one that cheats with the
// current hour's invocation count, static-best with a group prior — and
// returns each one's mean reward on the evaluation days with its share of
// the oracle's, and the oracle against static-best per invocation bucket.
//
// Everything here is a pure function of the rows: no trace, no engine, no
// I/O beyond the writer and reader given.
package bounds

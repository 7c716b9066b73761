// Package report is `strata report`: one command that runs an
// evaluation's configurations (or finds them already run in the store),
// reads every figure back from the store's tables and writes report.md,
// PNG figures and summary.json: the seed's tables measured beside its
// claims, Pareto fronts of cost against p95 latency and carbon, the
// operational cold-start/keep-warm trade-off, placement mixes, reward
// terms, regret distributions and learning curves (docs/report.md).
package report

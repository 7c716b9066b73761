// Package cloud is strata's cloud twin: a pure, deterministic model of
// where serverless functions run and what that costs.
//
// It covers AWS Lambda, Azure Functions and Google Cloud Functions in four
// metros (us-east, us-west, eu-west, ap-southeast) and six memory tiers
// (128–3008 MB). Every number comes from the embedded catalog
// (data/catalog.json, sources in data/CATALOG_SOURCES.md) or from the
// embedded hourly 2022 grid carbon intensity (data/carbon_2022_hourly_by_metro.csv,
// Electricity Maps data under ODbL and EIA data in the public domain; see
// data/CARBON_SOURCE.md); each carries its source as a [Sourced] value.
// Assumptions are fields of [Config], documented in docs/cloud-model.md.
//
// The entry points:
//   - [DefaultCatalog] parses the embedded data once.
//   - [NewModel] builds an immutable [Model] from a catalog and a [Config].
//   - [Model.Profile] draws a function's hidden properties (working set,
//     CPU-bound fraction, runtime) from hash(app, func) and the seed;
//     [Model.SLO] and [Model.UserMetro] derive its SLO and user metro.
//   - [Model.Evaluate] runs one interval of one function's invocations on a
//     [Pool] under a placement and a pre-warm schedule and returns
//     per-invocation outcomes (latency, cold start, cost, carbon, SLA),
//     per-tick telemetry and aggregates. Evaluate alternatives on
//     [Pool.Clone]s of the same starting pool for counterfactuals.
//     [Model.Evaluator] looks a function and placement up once for many
//     evaluations; [Model.NewSharedReplay] replays placements that differ
//     only in metro on one set of instances, pricing each (the same
//     figures as separate replays, at a fraction of the work).
//   - [Rewards] turns the alternatives' aggregates into the docs/reward.md
//     reward and names the best one (the per-interval oracle).
//
// The package does no I/O beyond reading its embedded files, imports no
// broker or database client, uses no global random source and no wall
// clock, and never depends on map iteration order.
package cloud

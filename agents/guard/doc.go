// Package guard holds strata's guardrails for live use: constraints that
// every policy's decisions honour, whichever policy decided them.
//
//   - Data residency: the providers and the regions (metros) an app may
//     run in.
//   - Memory-tier bounds: the smallest and largest memory tier, in MB, a
//     function may be placed on.
//   - A keep-warm budget: the most instances an app may keep pre-warmed,
//     summed over its functions.
//
// [Load] reads them from a YAML file (docs/guardrails.md) and checks it,
// naming the file, the line and the key of anything wrong. An [Enforcer]
// projects one layer's decision batches onto what the rules allow, after
// the policy decided and before the batch is published (the worker does
// it), so that no policy — baseline, learned, random or a fallback — can
// break them. A decision that breaks a rule is replaced by the nearest
// allowed one, by a fixed rule per constraint (see [Enforcer.Apply]); the
// enforcer counts what it changed.
//
// The package is pure: it imports no broker or database client
// (infra/depcheck checks it).
package guard

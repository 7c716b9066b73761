// Package draw derives the policies' random numbers from what they decide
// about, not from a stream: a draw for (seed, tick, entity) is the same
// whatever order the rows of a batch come in and whatever was drawn before,
// which keeps seeded policies deterministic at any replay speed.
package draw

// Package experiments holds what the training and evaluation workflows
// share: the trace's days (1-based, as the commands name them) and
// closed-loop runs over a window of them, replayed from trace time 0 with
// the epoch moved so hours of day, weekdays and the carbon series stay
// those of the trace's days.
//
// The workflows are its subpackages: train (`strata train`, `strata
// train-lstm`, `strata export sequences`) and eval (`strata eval`);
// sequences is the operational sequences file they write and read. It
// also holds `strata bounds`' workflow (RunBounds), which replays the
// trace for the pure computation in bounds.
package experiments

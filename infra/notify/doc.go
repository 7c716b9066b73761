// Package notify lets one goroutine wait, without polling, for a condition
// on what another counts: the counting side calls Signal.Notify after each
// change, the waiting side calls Until with the condition. It replaces
// loops that read a component's counters on a timer (a sink's rows, a
// learner's intervals, a replay's lead) with a wake-up on every change.
package notify

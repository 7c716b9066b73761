// Package grid is strata's time grid, the one definition of it: the tick
// lengths of the three decision layers, how many operational ticks make a
// tactical and a strategic tick, the tick that holds a trace time, and the
// wall-clock instant of trace time 0.
//
// Trace time is in microseconds from the start of the trace. Tick k of a
// layer is the half-open interval [k·length, (k+1)·length); tick indices
// are what state batches, decisions, rewards and transitions carry on the
// wire, so every producer and consumer must agree on them. The length of
// each schemas.Layer's tick is schemas.Layer.TickUS.
//
// The package imports only the standard library, so that every package —
// the pure cost model in cloud included — can depend on it.
package grid

import "time"

// Tick lengths of the three decision layers, in microseconds of trace time.
const (
	// OperationalTickUS is the operational (15 s) tick length.
	OperationalTickUS int64 = 15_000_000
	// TacticalTickUS is the tactical (1 h) tick length.
	TacticalTickUS int64 = 3_600_000_000
	// StrategicTickUS is the strategic (1 day) tick length.
	StrategicTickUS int64 = 86_400_000_000
)

// Periods of the slower layers in operational ticks. A tactical or strategic
// tick starts at the operational tick whose index is a multiple of its
// period.
const (
	// TicksPerHour is the number of operational ticks in one tactical
	// tick: 240.
	TicksPerHour = TacticalTickUS / OperationalTickUS
	// TicksPerDay is the number of operational ticks in one strategic
	// tick: 5760.
	TicksPerDay = StrategicTickUS / OperationalTickUS
)

// DefaultEpoch is the wall-clock instant that trace time 0 maps to:
// 2022-01-30T00:00Z, a Sunday like the Azure 2021 trace's first day
// (2021-01-31). ASSUMED: the trace's timestamps were shifted by Microsoft, so
// the true hour of day is unknown; 2022 is chosen because the carbon-intensity
// series in the project are for 2022. It places the grid on the calendar:
// the hour of day of a tactical tick, the weekday of a strategic tick.
var DefaultEpoch = time.Date(2022, time.January, 30, 0, 0, 0, 0, time.UTC)

// TickOf returns the index of the tick of length tickUS that contains trace
// time t (microseconds). Negative times belong to negative ticks.
func TickOf(t, tickUS int64) int64 {
	if t >= 0 {
		return t / tickUS
	}
	return -((-t + tickUS - 1) / tickUS)
}

package twin

import (
	"errors"
	"io"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

// TrainingDays is the number of leading trace days that function
// properties (SLO, user metro) are derived from: days 1–10 (docs/agents.md).
const TrainingDays = 10

// ProfileBuilder derives the twin's per-function properties from a trace's
// training days, before the run: the SLO from the function's own durations
// (cloud.Model.SLO) and the user metro from its app's hour-of-day traffic
// under the epoch (cloud.Model.UserMetro). Nothing from later days is used.
type ProfileBuilder struct {
	epoch     time.Time
	durations map[fnKey][]int64
	hours     map[string]*[24]float64
}

// NewProfileBuilder returns an empty builder for a trace starting at epoch.
func NewProfileBuilder(epoch time.Time) *ProfileBuilder {
	return &ProfileBuilder{epoch: epoch, durations: map[fnKey][]int64{}, hours: map[string]*[24]float64{}}
}

// Add records one invocation; invocations after the training days are
// ignored.
func (b *ProfileBuilder) Add(in replay.Invocation) {
	s := in.StartUS()
	if s >= TrainingDays*grid.StrategicTickUS {
		return
	}
	k := fnKey{in.App, in.Func}
	b.durations[k] = append(b.durations[k], in.DurationUS)
	h := b.hours[in.App]
	if h == nil {
		h = &[24]float64{}
		b.hours[in.App] = h
	}
	h[cloud.HourOfDayUTC(b.epoch, s)]++
}

// Build returns the profile function for the twin: functions and apps not
// seen in the training days get the floor SLO and the default metro rule's
// answer for no traffic.
func (b *ProfileBuilder) Build(m *cloud.Model) func(app, fn string) cloud.Function {
	metro := map[string]cloud.Metro{}
	for app, h := range b.hours {
		metro[app] = m.UserMetro(*h)
	}
	return func(app, fn string) cloud.Function {
		um, ok := metro[app]
		if !ok {
			um = m.UserMetro([24]float64{})
		}
		return m.NewFunction(app, fn, um, b.durations[fnKey{app, fn}])
	}
}

// ProfileOf reads src to its end into a ProfileBuilder for a trace starting
// at epoch and returns its Build(m): the profile function of a replay of
// src. Lines that do not parse are skipped, as the replay dead-letters
// them.
func ProfileOf(src replay.Source, epoch time.Time, m *cloud.Model) (func(app, fn string) cloud.Function, error) {
	b := NewProfileBuilder(epoch)
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b.Add(in)
	}
	return b.Build(m), nil
}

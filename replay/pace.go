package replay

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Clock is the wall clock the pacer waits on; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Speed is a replay speed: trace seconds per wall second, or 0 for as fast as
// possible ("max").
type Speed float64

// ParseSpeed parses "max" or a positive factor such as "3600" (one trace hour
// per wall second).
func ParseSpeed(s string) (Speed, error) {
	if s == "max" || s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("parsing speed %q: want max or a positive number", s)
	}
	return Speed(v), nil
}

// String renders the speed as ParseSpeed accepts it.
func (s Speed) String() string {
	if s == 0 {
		return "max"
	}
	return strconv.FormatFloat(float64(s), 'g', -1, 64)
}

// Pacer releases trace time at a fixed speed against a clock: trace time t
// (microseconds) is due at start + (t − t0)/speed, t0 being the trace time of
// the first Wait. At speed max it never waits. Pacing changes when records
// are sent, never which records or in what order.
type Pacer struct {
	speed   Speed
	clock   Clock
	started bool
	wall0   time.Time
	trace0  int64
}

// NewPacer returns a pacer at speed on clock.
func NewPacer(speed Speed, clock Clock) *Pacer {
	if clock == nil {
		clock = SystemClock{}
	}
	return &Pacer{speed: speed, clock: clock}
}

// Wait blocks until trace time t is due.
func (p *Pacer) Wait(ctx context.Context, t int64) error {
	if p.speed == 0 {
		return nil
	}
	if !p.started {
		p.started, p.wall0, p.trace0 = true, p.clock.Now(), t
		return nil
	}
	due := p.wall0.Add(time.Duration(float64(t-p.trace0) * 1e3 / float64(p.speed)))
	if d := due.Sub(p.clock.Now()); d > time.Millisecond {
		return p.clock.Sleep(ctx, d)
	}
	return nil
}

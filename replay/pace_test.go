package replay_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-rl/strata/replay"
)

// fakeClock records Sleep durations and advances Now by them.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
	nows   int
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { c.nows++; return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

const hourUS = int64(3_600_000_000)

func TestPacerSleeps(t *testing.T) {
	cases := []struct {
		name   string
		speed  replay.Speed
		waits  []int64 // trace times, µs
		work   []time.Duration
		sleeps []time.Duration
	}{
		{
			name: "speed 3600: trace hour 1 is due 1 s after the first wait", speed: 3600,
			waits: []int64{0, hourUS}, sleeps: []time.Duration{time.Second},
		},
		{
			name: "first wait sets the origin, not trace time 0", speed: 3600,
			waits: []int64{5 * hourUS, 6 * hourUS, 6 * hourUS, 8 * hourUS}, sleeps: []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name: "work between waits is subtracted", speed: 3600,
			waits: []int64{0, hourUS, 2 * hourUS}, work: []time.Duration{0, 300 * time.Millisecond, 1500 * time.Millisecond},
			sleeps: []time.Duration{700 * time.Millisecond},
		},
		{
			name: "earlier trace time than the last due is not slept", speed: 3600,
			waits: []int64{0, 2 * hourUS, hourUS, 2 * hourUS}, sleeps: []time.Duration{2 * time.Second},
		},
		{
			name: "waits of 1 ms or less are skipped", speed: 1,
			waits: []int64{0, 1000, 500, 1_000_000}, sleeps: []time.Duration{time.Second},
		},
		{
			name: "speed 0.5 doubles trace durations", speed: 0.5,
			waits: []int64{0, 10_000_000}, sleeps: []time.Duration{20 * time.Second},
		},
		{
			name: "speed max never sleeps", speed: 0,
			waits: []int64{0, hourUS, 100 * hourUS, 1000 * hourUS},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			p := replay.NewPacer(tc.speed, clk)
			for i, w := range tc.waits {
				if i < len(tc.work) {
					clk.now = clk.now.Add(tc.work[i])
				}
				if err := p.Wait(t.Context(), w); err != nil {
					t.Fatalf("Wait(%d) = %v", w, err)
				}
			}
			if !slices.Equal(clk.sleeps, tc.sleeps) {
				t.Errorf("slept %v, want %v", clk.sleeps, tc.sleeps)
			}
			if tc.speed == 0 && clk.nows != 0 {
				t.Errorf("speed max read the clock %d times, want 0", clk.nows)
			}
		})
	}
}

func TestPacerCancelled(t *testing.T) {
	clk := newFakeClock()
	p := replay.NewPacer(3600, clk)
	ctx, cancel := context.WithCancel(t.Context())
	if err := p.Wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Wait(ctx, hourUS); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}

// TestSystemClockSleep runs SystemClock in a synctest bubble, whose fake
// clock advances only when every goroutine in it is blocked: the elapsed
// times are exact whatever the machine's load.
func TestSystemClockSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := replay.SystemClock{}
		// A cancelled context returns at once.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := clk.Now()
		if err := clk.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
		}
		if d := clk.Now().Sub(start); d != 0 {
			t.Fatalf("Sleep on a cancelled context returned after %v, want at once", d)
		}
		// A sleep lasts its duration.
		start = clk.Now()
		if err := clk.Sleep(t.Context(), 90*time.Second); err != nil {
			t.Fatalf("Sleep = %v", err)
		}
		if d := clk.Now().Sub(start); d != 90*time.Second {
			t.Fatalf("Sleep(90 s) returned after %v", d)
		}
		// A cancel during a sleep ends it then.
		ctx, cancel = context.WithCancel(t.Context())
		time.AfterFunc(10*time.Minute, cancel)
		start = clk.Now()
		if err := clk.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep cancelled after 10 min = %v, want context.Canceled", err)
		}
		if d := clk.Now().Sub(start); d != 10*time.Minute {
			t.Fatalf("Sleep cancelled after 10 min returned after %v", d)
		}
	})
}

// TestPacerOnSystemClock paces a replay at speed 3600 on the real clock
// inside a synctest bubble: three trace hours take exactly three (fake)
// seconds, with the work between waits subtracted.
func TestPacerOnSystemClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := replay.NewPacer(3600, nil)
		start := time.Now()
		for h := range int64(4) {
			if err := p.Wait(t.Context(), h*hourUS); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // work
		}
		if d := time.Since(start); d != 3*time.Second+200*time.Millisecond {
			t.Fatalf("three paced trace hours and 4 × 200 ms of work took %v, want 3.2 s", d)
		}
	})
}

func TestParseSpeed(t *testing.T) {
	cases := []struct {
		in      string
		want    replay.Speed
		wantErr bool
	}{
		{in: "max", want: 0},
		{in: "", want: 0},
		{in: "3600", want: 3600},
		{in: "0.5", want: 0.5},
		{in: "1e3", want: 1000},
		{in: "0", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "-0.5", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "MAX", wantErr: true},
		{in: "3600x", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "+Inf", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := replay.ParseSpeed(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseSpeed(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSpeed(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			// String renders what ParseSpeed accepts.
			back, err := replay.ParseSpeed(got.String())
			if err != nil || back != got {
				t.Errorf("ParseSpeed(%q.String() = %q) = %v, %v", tc.in, got.String(), back, err)
			}
		})
	}
	if s := replay.Speed(0).String(); s != "max" {
		t.Errorf("Speed(0).String() = %q, want max", s)
	}
	if s := replay.Speed(math.Pi).String(); s != "3.141592653589793" {
		t.Errorf("Speed(π).String() = %q", s)
	}
}

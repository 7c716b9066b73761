package experiments_test

import (
	"errors"
	"io"
	"testing"

	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

func TestParseDays(t *testing.T) {
	for _, c := range []struct {
		in          string
		first, last int
		ok          bool
	}{
		{"13-14", 13, 14, true}, {"3", 3, 3, true}, {" 2 - 5 ", 2, 5, true},
		{"0-2", 0, 0, false}, {"5-4", 0, 0, false}, {"a-b", 0, 0, false}, {"", 0, 0, false},
	} {
		f, l, err := experiments.ParseDays(c.in)
		if (err == nil) != c.ok || f != c.first || l != c.last {
			t.Errorf("ParseDays(%q) = %d, %d, %v", c.in, f, l, err)
		}
	}
}

// TestWindowShiftsTheTrace checks the evaluation window: only invocations
// starting inside it, moved to start at trace time 0, durations kept.
func TestWindowShiftsTheTrace(t *testing.T) {
	const day = grid.StrategicTickUS
	src, err := replay.NewSynth(replay.SynthConfig{Days: 3, Seed: 2, Apps: 3})
	if err != nil {
		t.Fatal(err)
	}
	var want []replay.Invocation
	all, _ := replay.NewSynth(replay.SynthConfig{Days: 3, Seed: 2, Apps: 3})
	for {
		in, err := all.Next()
		if err != nil {
			break
		}
		if s := in.StartUS(); s >= day && s < 2*day {
			want = append(want, in)
		}
	}
	w := &experiments.Window{Src: src, FromUS: day, ToUS: 2 * day}
	for i := 0; ; i++ {
		in, err := w.Next()
		if errors.Is(err, io.EOF) {
			if i != len(want) {
				t.Fatalf("window gave %d invocations, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if in.StartUS() != want[i].StartUS()-day || in.DurationUS != want[i].DurationUS || in.App != want[i].App {
			t.Fatalf("invocation %d: %+v, want %+v shifted by a day", i, in, want[i])
		}
	}
}

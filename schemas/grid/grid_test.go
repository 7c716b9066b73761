package grid

import (
	"testing"
	"time"
)

func TestTickOf(t *testing.T) {
	cases := []struct{ t, tickUS, want int64 }{
		{0, OperationalTickUS, 0},
		{OperationalTickUS - 1, OperationalTickUS, 0},
		{OperationalTickUS, OperationalTickUS, 1},
		{-1, OperationalTickUS, -1},
		{-OperationalTickUS, OperationalTickUS, -1},
		{-OperationalTickUS - 1, OperationalTickUS, -2},
		{StrategicTickUS + TacticalTickUS, StrategicTickUS, 1},
	}
	for _, c := range cases {
		if got := TickOf(c.t, c.tickUS); got != c.want {
			t.Errorf("TickOf(%d, %d) = %d, want %d", c.t, c.tickUS, got, c.want)
		}
	}
}

func TestPeriods(t *testing.T) {
	if TicksPerHour != 240 || TicksPerDay != 5760 {
		t.Errorf("TicksPerHour, TicksPerDay = %d, %d, want 240, 5760", TicksPerHour, TicksPerDay)
	}
	if TicksPerHour*OperationalTickUS != TacticalTickUS || TicksPerDay*OperationalTickUS != StrategicTickUS {
		t.Error("a tactical or strategic tick is not a whole number of operational ticks")
	}
	if DefaultEpoch.Weekday() != time.Sunday || DefaultEpoch.Hour() != 0 {
		t.Errorf("DefaultEpoch %v is not a Sunday midnight", DefaultEpoch)
	}
}

package twin

import (
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
)

func TestProfileBuilderUsesTrainingDaysOnly(t *testing.T) {
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	b := NewProfileBuilder(grid.DefaultEpoch)
	day := grid.StrategicTickUS
	for i := range int64(100) {
		b.Add(replay.Invocation{App: "a", Func: "f", EndUS: 14*3_600_000_000 + i*1000 + 2_000_000, DurationUS: 2_000_000})
	}
	// A huge duration after the training days must not move the SLO.
	b.Add(replay.Invocation{App: "a", Func: "f", EndUS: TrainingDays*day + 500_000_000, DurationUS: 400_000_000})
	fn := b.Build(m)("a", "f")
	if want := m.SLO([]int64{2_000_000}); fn.SLOMS != want {
		t.Fatalf("SLO %v ms, want %v from the training-day durations only", fn.SLOMS, want)
	}
	var h [24]float64
	h[14] = 100
	if want := m.UserMetro(h); fn.UserMetro != want {
		t.Fatalf("user metro %v, want %v (traffic peaks at 14:00 UTC)", fn.UserMetro, want)
	}
	if other := b.Build(m)("x", "y"); other.SLOMS != m.SLO(nil) {
		t.Fatalf("unseen function SLO %v, want the floor %v", other.SLOMS, m.SLO(nil))
	}
}

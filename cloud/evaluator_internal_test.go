package cloud

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIdleTickEqualsGeneralPath checks EvaluateInto's shortcut for one
// whole tick without requests against its general path: the same Result
// and the same pool, bit for bit (signed zeros included), over random
// pools — executions still running into the tick, idle instances past and
// within their keep-alive, AWS provisioned-concurrency units paid to
// various points — and pre-warm counts, under every provider, with and
// without pre-warm carbon and the SLO counted from the profile.
func TestIdleTickEqualsGeneralPath(t *testing.T) {
	cat, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	const tick = int64(15_000_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, carbonPrewarm := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.CarbonPrewarm = carbonPrewarm
		cfg.MaxInstances = 6
		m, err := NewModel(cat, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for p := range NumProviders {
			for _, ws := range []float64{0, 300} {
				fn := m.NewFunction("app", "fn", EUWest, []int64{200_000, 2_000_000})
				fn.Profile.WorkingSetMB = ws
				pl := Placement{Provider: Provider(p), Metro: Metro(rng.IntN(NumMetros)), Tier: Tier(rng.IntN(NumTiers))}
				ev, err := m.Evaluator(&fn, pl)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 300 {
					name := fmt.Sprintf("carbon prewarm %v/%v/working set %v/%d", carbonPrewarm, pl, ws, i)
					ks := 100*tick + int64(rng.IntN(3))*tick
					pool := NewPool(pl, ks-int64(rng.IntN(2))*tick)
					for range rng.IntN(8) {
						// Around the tick's start, or around the keep-alive's
						// end within the tick.
						base := ks
						if rng.IntN(2) == 0 {
							base = ks - ev.keepUS
						}
						free := base + int64(rng.IntN(16)-8)*tick/4 + int64(rng.IntN(1000))
						pool.insert(instance{freeAt: free, busyFrom: free - int64(rng.IntN(60))*tick/4})
					}
					for range rng.IntN(4) {
						pool.pcPaid = append(pool.pcPaid, ks+int64(rng.IntN(50)-25)*tick/5)
					}
					var prewarm []int
					if rng.IntN(6) > 0 {
						prewarm = []int{rng.IntN(9)}
					}
					iv := Interval{StartUS: ks, EndUS: ks + tick}
					general, fast := pool.Clone(), pool.Clone()
					var want, got Result
					ev.evaluate(&want, general, iv, prewarm, nil)
					// A result left dirty by a bigger evaluation, as the
					// twin's scratch is.
					got.Ticks = make([]TickStats, 3)
					got.Ticks[0].CPUUtil = 7
					got.Outcomes = make([]Outcome, 2)
					if err := ev.EvaluateInto(&got, fast, iv, prewarm, nil); err != nil {
						t.Fatal(err)
					}
					if w, g := fmt.Sprintf("%+v %+v %d", want.Ticks, want.Aggregate, len(want.Outcomes)), fmt.Sprintf("%+v %+v %d", got.Ticks, got.Aggregate, len(got.Outcomes)); w != g {
						t.Fatalf("%s: shortcut gave\n%s\ngeneral path\n%s", name, g, w)
					}
					if general.now != fast.now || !slices.Equal(general.inst, fast.inst) || !slices.Equal(general.pcPaid, fast.pcPaid) {
						t.Fatalf("%s: shortcut left pool %+v, general path %+v", name, fast, general)
					}
				}
			}
		}
	}
}

// BenchmarkIdleTick measures an hour of a function held warm without
// invocations (240 one-tick evaluations with 2 instances pre-warmed, from
// a copy of the same pool, as the twin's hour replay does), through
// EvaluateInto's shortcut and through its general path, in one run.
func BenchmarkIdleTick(b *testing.B) {
	cat, err := DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewModel(cat, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	const tick = int64(15_000_000)
	fn := m.NewFunction("bench", "fn", USEast, nil)
	for _, p := range []Provider{AWS, GCP} {
		pl := Placement{Provider: p, Metro: USEast, Tier: 3}
		ev, err := m.Evaluator(&fn, pl)
		if err != nil {
			b.Fatal(err)
		}
		start := NewPool(pl, 0)
		for _, path := range []string{"shortcut", "general"} {
			b.Run(p.String()+"/"+path, func(b *testing.B) {
				var res Result
				var pool Pool
				prewarm := []int{2}
				for b.Loop() {
					start.CopyTo(&pool)
					for k := range int64(240) {
						iv := Interval{StartUS: k * tick, EndUS: (k + 1) * tick}
						if path == "general" {
							ev.evaluate(&res, &pool, iv, prewarm, nil)
						} else if err := ev.EvaluateInto(&res, &pool, iv, prewarm, nil); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(240*float64(b.N)/b.Elapsed().Seconds(), "ticks/s")
			})
		}
	}
}

// TestIntensityKeepsTheHour checks the Evaluator's kept hour of grid
// intensity against the Model's lookup at instants around hour boundaries,
// forward and backward, before the trace epoch and past the series' end,
// at every placement.
func TestIntensityKeepsTheHour(t *testing.T) {
	cat, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cat, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const hourUS = int64(3_600_000_000)
	rng := rand.New(rand.NewPCG(3, 4))
	fn := m.NewFunction("app", "fn", EUWest, []int64{200_000})
	series := 0
	for p := range NumProviders {
		for mt := range NumMetros {
			pl := Placement{Provider: Provider(p), Metro: Metro(mt), Tier: Tier(0)}
			ev, err := m.Evaluator(&fn, pl)
			if err != nil {
				t.Fatal(err)
			}
			if ev.carbonCol >= 0 {
				series++
			}
			var h int64
			for i := range 3000 {
				if i%3 == 0 { // three instants of each hour: the kept one answers two
					h = int64(rng.IntN(20_000)) - 10_000
				}
				at := h*hourUS + int64(rng.IntN(3)-1) + []int64{0, hourUS / 2, hourUS - 1}[i%3]
				want := m.intensity(ev.carbonCol, ev.staticGPerKWh, at)
				if got := ev.intensity(at); got != want {
					t.Fatalf("%v at %d µs: kept-hour intensity %v, the series %v", pl, at, got, want)
				}
			}
		}
	}
	if series == 0 {
		t.Fatal("no placement has a carbon series: nothing was kept")
	}
}

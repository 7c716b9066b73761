package cloud_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-rl/strata/cloud"
)

// TestSharedReplayEqualsSeparate checks that a SharedReplay under the
// metros of one provider and tier gives each placement, tick by tick, the
// aggregate and outcomes replaying it alone on its own pool with
// EvaluateInto gives, bit for bit: over random runs of ticks with and
// without requests (executions running over several ticks, bursts, gaps),
// pre-warm counts, under every provider (AWS with its provisioned-
// concurrency blocks) and tier, from new pools, from pools holding the
// same warm instances, and from a mix of new pools and pools whose
// instances expired (AWS units paid ahead); and that it refuses starting
// pools with other instances or of another placement.
func TestSharedReplayEqualsSeparate(t *testing.T) {
	const tick = int64(15_000_000)
	m := newModel(t, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	for run := range 60 {
		fn := m.NewFunction("app", fmt.Sprint("fn", run), cloud.Metro(rng.IntN(cloud.NumMetros)), []int64{100_000, 3_000_000})
		fn.Profile.CPUBoundFraction = rng.Float64()
		p, tier := cloud.Provider(run%cloud.NumProviders), cloud.Tier(rng.IntN(cloud.NumTiers))
		var pls []cloud.Placement
		for me := range cloud.NumMetros {
			pls = append(pls, cloud.Placement{Provider: p, Metro: cloud.Metro(me), Tier: tier})
		}
		k := int64(1000 + rng.IntN(100))
		// The starting pools: new (nil) or, in some runs, pools that held
		// instances — all the same ones, left by the same warm-up on each —
		// or held them until they expired, with AWS units paid ahead.
		var res cloud.Result
		starts := make([]*cloud.Pool, len(pls))
		if scenario := run / 3 % 3; scenario > 0 {
			for i, pl := range pls {
				if scenario == 2 && rng.IntN(2) == 0 {
					continue // new: it holds no instance either
				}
				w := k - 17 // minutes before: within every keep-alive; AWS blocks paid past k
				if scenario == 2 {
					w = k - 300
				}
				p := cloud.NewPool(pl, w*tick)
				warm := []cloud.Request{{StartUS: w * tick, DurationUS: 2_000_000}, {StartUS: w*tick + 1000, DurationUS: 20_000_000}}
				if err := m.EvaluateInto(&res, &fn, p, cloud.Interval{StartUS: w * tick, EndUS: (w + 1) * tick}, []int{3}, warm); err != nil {
					t.Fatal(err)
				}
				last := k - 1 // instances still warm
				if scenario == 2 {
					last = k - 200 // past every keep-alive: none left
				}
				hold := 2 // AWS units paid into the replay
				if scenario == 2 {
					hold = 0
				}
				if err := m.EvaluateInto(&res, &fn, p, cloud.Interval{StartUS: last * tick, EndUS: (last + 1) * tick}, []int{hold}, nil); err != nil {
					t.Fatal(err)
				}
				if (scenario == 2) != (p.Len() == 0) {
					t.Fatalf("run %d, scenario %d: the warm-up left %d instances", run, scenario, p.Len())
				}
				starts[i] = p
			}
			if scenario == 1 {
				starts[0] = nil // a new pool with another pool's instances: refused
				if _, err := m.NewSharedReplay(&fn, pls, starts, k*tick); !errors.Is(err, cloud.ErrInvalidInput) {
					t.Fatalf("run %d: NewSharedReplay of a new pool and warm ones: err %v, want ErrInvalidInput", run, err)
				}
				starts[0] = starts[1].Clone()
				if _, err := m.NewSharedReplay(&fn, pls, starts, k*tick); !errors.Is(err, cloud.ErrInvalidInput) {
					t.Fatalf("run %d: NewSharedReplay with another placement's pool: err %v, want ErrInvalidInput", run, err)
				}
				starts = starts[1:]
				pls = pls[1:]
			}
		}
		shared, err := m.NewSharedReplay(&fn, pls, starts, k*tick)
		if err != nil {
			t.Fatal(err)
		}
		pools := make([]*cloud.Pool, len(pls))
		for i, pl := range pls {
			pools[i] = cloud.NewPool(pl, k*tick)
			if starts[i] != nil {
				pools[i] = starts[i].Clone()
			}
		}
		for range 200 {
			ks := k * tick
			hold := []int{0, 0, 1, 2, 4, 8}[rng.IntN(6)]
			var reqs []cloud.Request
			if rng.IntN(4) == 0 {
				s := ks
				for range 1 + rng.IntN(5) {
					s += rng.Int64N(tick / 5)
					if s >= ks+tick {
						break
					}
					reqs = append(reqs, cloud.Request{StartUS: s, DurationUS: rng.Int64N(40_000_000)}) // up to 40 s: over ticks
				}
			}
			want := make([]string, len(pls))
			for i := range pls {
				if err := m.EvaluateInto(&res, &fn, pools[i], cloud.Interval{StartUS: ks, EndUS: ks + tick}, []int{hold}, reqs); err != nil {
					t.Fatal(err)
				}
				want[i] = fmt.Sprintf("%+v %+v", res.Aggregate, res.Outcomes)
			}
			got := make([]string, len(pls))
			if len(reqs) == 0 {
				aggs, err := shared.IdleTick(ks, hold)
				if err != nil {
					t.Fatal(err)
				}
				for i, a := range aggs {
					got[i] = fmt.Sprintf("%+v %+v", a, []cloud.Outcome{})
				}
			} else if err := shared.Tick(ks, hold, reqs, func(i int, r *cloud.Result) {
				got[i] = fmt.Sprintf("%+v %+v", r.Aggregate, r.Outcomes)
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("run %d (%v), tick %d, hold %d, %d requests:\nshared   %q\nseparate %q", run, pls[0], k, hold, len(reqs), got, want)
			}
			k += 1 + int64(max(rng.IntN(8)-5, 0)) // mostly the next tick, some gaps
		}
	}
}

// TestSharedReplayRefusesOtherDynamics checks that placements whose
// instances behave otherwise — another provider's keep-alive, another
// tier's speed for a CPU-bound function — cannot share a replay, and that
// a tick before the replay's time is refused.
func TestSharedReplayRefusesOtherDynamics(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.USEast, nil)
	fn.Profile.CPUBoundFraction = 1
	for _, tc := range []struct {
		name string
		pls  []cloud.Placement
	}{
		{"none", nil},
		{"another provider", []cloud.Placement{{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 2}, {Provider: cloud.GCP, Metro: cloud.USEast, Tier: 2}}},
		{"another tier", []cloud.Placement{{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 0}, {Provider: cloud.AWS, Metro: cloud.EUWest, Tier: 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.NewSharedReplay(&fn, tc.pls, make([]*cloud.Pool, len(tc.pls)), 0); !errors.Is(err, cloud.ErrInvalidInput) {
				t.Fatalf("NewSharedReplay: err %v, want ErrInvalidInput", err)
			}
		})
	}
	s, err := m.NewSharedReplay(&fn, []cloud.Placement{{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 2}, {Provider: cloud.AWS, Metro: cloud.EUWest, Tier: 2}}, make([]*cloud.Pool, 2), 30_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdleTick(15_000_000, 1); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Fatalf("IdleTick before the replay's time: err %v, want ErrInvalidInput", err)
	}
}

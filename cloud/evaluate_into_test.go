package cloud_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/strata-rl/strata/cloud"
)

// TestEvaluateIntoReusesBuffers checks that EvaluateInto over a Result
// left dirty by a bigger evaluation gives what Evaluate gives.
func TestEvaluateIntoReusesBuffers(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.EUWest, []int64{100_000, 200_000})
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.EUWest, Tier: tier(t, 512)}
	big := []cloud.Request{{StartUS: 0, DurationUS: 500_000}, {StartUS: 10_000, DurationUS: 500_000}, {StartUS: 20 * sec, DurationUS: 7000}, {StartUS: 50 * sec, DurationUS: 9 * sec}}
	var scratch cloud.Result
	if err := m.EvaluateInto(&scratch, &fn, cloud.NewPool(pl, 0), cloud.Interval{StartUS: 0, EndUS: min1}, []int{2, 0, 1, 3}, big); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		iv      cloud.Interval
		prewarm []int
		reqs    []cloud.Request
	}{
		{"fewer requests", cloud.Interval{StartUS: min1, EndUS: min1 + 15*sec}, []int{1}, []cloud.Request{{StartUS: min1 + sec, DurationUS: 100}}},
		{"no requests, held warm", cloud.Interval{StartUS: min1, EndUS: min1 + 15*sec}, []int{4}, nil},
		{"longer interval", cloud.Interval{StartUS: min1, EndUS: 3 * min1}, nil, []cloud.Request{{StartUS: min1, DurationUS: 100}, {StartUS: 2 * min1, DurationUS: 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p1, p2 := cloud.NewPool(pl, min1), cloud.NewPool(pl, min1)
			want := evaluate(t, m, &fn, p1, tc.iv, tc.prewarm, tc.reqs)
			if err := m.EvaluateInto(&scratch, &fn, p2, tc.iv, tc.prewarm, tc.reqs); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want.Aggregate, scratch.Aggregate) || !reflect.DeepEqual(want.Ticks, scratch.Ticks) ||
				len(want.Outcomes) != len(scratch.Outcomes) || (len(want.Outcomes) > 0 && !reflect.DeepEqual(want.Outcomes, scratch.Outcomes)) {
				t.Errorf("EvaluateInto on a reused result:\n got %+v\nwant %+v", scratch, want)
			}
		})
	}
}

// TestIntensityAcrossTheSeries checks the carbon lookup by trace time
// against the series' own hour index, at hour boundaries, before the
// series' start and past its end (it wraps).
func TestIntensityAcrossTheSeries(t *testing.T) {
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	s := cat.Series
	for _, epoch := range []time.Time{cloud.DefaultConfig().Epoch, s.Start.Add(-90 * time.Minute), s.Start.Add(time.Duration(s.Hours)*time.Hour - time.Minute)} {
		cfg := cloud.DefaultConfig()
		cfg.Epoch = epoch
		m, err := cloud.NewModel(cat, cfg)
		if err != nil {
			t.Fatal(err)
		}
		col, err := s.Column(cfg.CarbonColumns[cloud.GCP][cloud.EUWest])
		if err != nil {
			t.Fatal(err)
		}
		for _, us := range []int64{-hour - 1, -hour, -1, 0, 1, hour - 1, hour, 36*hour + 17, 400 * 24 * hour} {
			want := s.At(col, s.HourIndex(epoch.Add(time.Duration(us)*time.Microsecond)))
			if got := m.IntensityGPerKWh(cloud.GCP, cloud.EUWest, us); got != want {
				t.Errorf("epoch %v, trace time %d µs: intensity %v, want %v", epoch, us, got, want)
			}
		}
	}
}

// TestEvaluatorReusedAcrossIntervals checks that one Evaluator, reused
// across intervals, pools and pre-warm counts of every provider, gives what
// a fresh Model.Evaluate gives each time, and that it refuses a pool of
// another placement or an unknown function.
func TestEvaluatorReusedAcrossIntervals(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.EUWest, []int64{100_000, 200_000, 3_000_000})
	reqs := []cloud.Request{{StartUS: min1, DurationUS: 500_000}, {StartUS: min1 + 10_000, DurationUS: 500_000}, {StartUS: min1 + 14*sec, DurationUS: 7000}}
	for _, p := range []cloud.Provider{cloud.AWS, cloud.Azure, cloud.GCP} {
		for _, mb := range []int{128, 2048} {
			pl := cloud.Placement{Provider: p, Metro: cloud.USWest, Tier: tier(t, mb)}
			ev, err := m.Evaluator(&fn, pl)
			if err != nil {
				t.Fatal(err)
			}
			var res cloud.Result
			evPool, fresh := cloud.NewPool(pl, 0), cloud.NewPool(pl, 0)
			for k, tc := range []struct {
				prewarm []int
				reqs    []cloud.Request
			}{{[]int{2}, reqs}, {[]int{0}, nil}, {[]int{1}, reqs[:1]}, {nil, reqs[1:]}} {
				iv := cloud.Interval{StartUS: min1 + int64(k)*min1, EndUS: min1 + int64(k)*min1 + 15*sec}
				shifted := make([]cloud.Request, len(tc.reqs))
				for i, r := range tc.reqs {
					shifted[i] = cloud.Request{StartUS: r.StartUS + int64(k)*min1, DurationUS: r.DurationUS}
				}
				want := evaluate(t, m, &fn, fresh, iv, tc.prewarm, shifted)
				if err := ev.EvaluateInto(&res, evPool, iv, tc.prewarm, shifted); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(want.Aggregate, res.Aggregate) || !reflect.DeepEqual(want.Ticks, res.Ticks) ||
					(len(want.Outcomes) > 0 && !reflect.DeepEqual(want.Outcomes, res.Outcomes)) {
					t.Errorf("%v interval %d: evaluator gave\n %+v\nwant %+v", pl, k, res, want)
				}
			}
		}
	}
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USWest, Tier: tier(t, 128)}
	ev, err := m.Evaluator(&fn, pl)
	if err != nil {
		t.Fatal(err)
	}
	other := cloud.NewPool(cloud.Placement{Provider: cloud.GCP, Metro: cloud.USWest, Tier: tier(t, 128)}, 0)
	var res cloud.Result
	if err := ev.EvaluateInto(&res, other, cloud.Interval{StartUS: 0, EndUS: 15 * sec}, nil, nil); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("a pool of another placement: got %v, want ErrInvalidInput", err)
	}
	if _, err := m.Evaluator(nil, pl); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("a nil function: got %v, want ErrInvalidInput", err)
	}
	bad := fn
	bad.UserMetro = cloud.Metro(cloud.NumMetros)
	if _, err := m.Evaluator(&bad, pl); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("an unknown user metro: got %v, want ErrInvalidInput", err)
	}
}

// TestPoolCopyTo checks that a pool copied into a used scratch pool is
// the source's state and independent of it.
func TestPoolCopyTo(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.EUWest, []int64{100_000})
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.EUWest, Tier: tier(t, 512)}
	src := cloud.NewPool(pl, 0)
	evaluate(t, m, &fn, src, cloud.Interval{StartUS: 0, EndUS: 15 * sec}, []int{3}, []cloud.Request{{StartUS: sec, DurationUS: 2 * sec}})
	scratch := cloud.NewPool(cloud.Placement{Provider: cloud.GCP, Metro: cloud.USEast, Tier: tier(t, 128)}, 0)
	evaluate(t, m, &fn, scratch, cloud.Interval{StartUS: 0, EndUS: 15 * sec}, []int{5}, nil)
	src.CopyTo(scratch)
	if !reflect.DeepEqual(scratch, src.Clone()) {
		t.Fatalf("CopyTo gave %+v, want %+v", scratch, src.Clone())
	}
	before := src.Clone()
	evaluate(t, m, &fn, scratch, cloud.Interval{StartUS: 15 * sec, EndUS: 30 * sec}, []int{1}, []cloud.Request{{StartUS: 16 * sec, DurationUS: sec}})
	if !reflect.DeepEqual(src, before) {
		t.Errorf("evaluating the copy changed the source: %+v, was %+v", src, before)
	}
}

// TestTickIndex checks TickIndex at tick boundaries.
func TestTickIndex(t *testing.T) {
	for _, tc := range []struct {
		start, at int64
		want      int
	}{{0, 0, 0}, {0, 15*sec - 1, 0}, {0, 15 * sec, 1}, {min1, min1 + 45*sec, 3}, {min1, 2*min1 - 1, 3}, {min1, 2 * min1, 4}} {
		if got := cloud.TickIndex(tc.start, tc.at, 15*sec); got != tc.want {
			t.Errorf("TickIndex(%d, %d) = %d, want %d", tc.start, tc.at, got, tc.want)
		}
	}
}

// TestPoolArena checks that the arena's clones equal Pool.Clone's across
// its chunks, and that evaluating one of them — which grows its instances
// — changes neither the source nor the clone beside it in the chunk.
func TestPoolArena(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.EUWest, []int64{100_000})
	var srcs []*cloud.Pool
	for i, pl := range []cloud.Placement{
		{Provider: cloud.AWS, Metro: cloud.EUWest, Tier: tier(t, 512)},
		{Provider: cloud.GCP, Metro: cloud.USEast, Tier: tier(t, 128)},
		{Provider: cloud.Azure, Metro: cloud.EUWest, Tier: tier(t, 1024)},
	} {
		p := cloud.NewPool(pl, 0)
		reqs := make([]cloud.Request, 40*(i+1)) // enough at once for a pool bigger than a chunk's spare room
		for j := range reqs {
			reqs[j] = cloud.Request{StartUS: sec, DurationUS: 10 * sec}
		}
		evaluate(t, m, &fn, p, cloud.Interval{StartUS: 0, EndUS: 15 * sec}, []int{i + 1}, reqs)
		srcs = append(srcs, p, cloud.NewPool(pl, 15*sec)) // and an empty one
	}
	var a cloud.PoolArena
	var clones, wants []*cloud.Pool
	for i := range 3000 { // several chunks of pools and instances
		src := srcs[i%len(srcs)]
		clones, wants = append(clones, a.Clone(src)), append(wants, src.Clone())
	}
	for i := range clones {
		if !reflect.DeepEqual(clones[i], wants[i]) {
			t.Fatalf("clone %d: %+v, want %+v", i, clones[i], wants[i])
		}
	}
	before := make([]*cloud.Pool, len(srcs))
	for i, s := range srcs {
		before[i] = s.Clone()
	}
	many := make([]cloud.Request, 200)
	for j := range many {
		many[j] = cloud.Request{StartUS: 16 * sec, DurationUS: sec}
	}
	for i := 0; i < len(clones)-1; i += 7 {
		evaluate(t, m, &fn, clones[i], cloud.Interval{StartUS: 15 * sec, EndUS: 30 * sec}, []int{2}, many)
		if !reflect.DeepEqual(clones[i+1], wants[i+1]) {
			t.Fatalf("evaluating clone %d changed clone %d: %+v, want %+v", i, i+1, clones[i+1], wants[i+1])
		}
	}
	if !reflect.DeepEqual(srcs, before) {
		t.Error("evaluating the clones changed their sources")
	}
}

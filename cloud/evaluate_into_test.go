package cloud_test

import (
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

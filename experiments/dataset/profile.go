package dataset

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
)

// ProfileColumns are profile.csv's columns, in order; docs/dataset.md
// defines each.
var ProfileColumns = []string{
	"app", "func", "invocations", "active_days", "first_start_s", "last_start_s", "rate_per_h", "peak_per_min",
	"dur_mean_ms", "dur_p50_ms", "dur_p95_ms", "dur_p99_ms", "dur_max_ms",
	"iat_mean_s", "iat_p50_s", "iat_cv", "burstiness", "timer_score", "period_s",
	"peak_hour_utc", "user_metro", "slo_ms", "cold_rate_ref",
	"runtime", "working_set_mb", "cpu_bound_fraction",
}

// timerScoreMin is the timer_score above which a function counts as
// timer-driven and period_s gives its period.
const timerScoreMin = 0.9

// profiler accumulates the training split's invocations per function.
// It keeps each training invocation's duration and inter-arrival time
// (16 bytes per training row) so the percentiles are exact.
type profiler struct {
	m     *cloud.Model
	epoch time.Time
	fns   map[fnKey]*profAcc
}

type profAcc struct {
	app, fn     string
	durs, gaps  []int64 // µs
	first, last int64
	days        int
	lastDay     int
	minute      int64
	minuteN     int64
	peakMinute  int64
	hours       [24]float64
	colds       int64
}

func newProfiler(m *cloud.Model) *profiler {
	return &profiler{m: m, epoch: m.Config().Epoch.UTC(), fns: map[fnKey]*profAcc{}}
}

// add takes a training invocation (in start order) and its cold_ref.
func (p *profiler) add(in replay.Invocation, day int, cold bool) {
	k := fnKey{in.App, in.Func}
	s := in.StartUS()
	a, ok := p.fns[k]
	if !ok {
		a = &profAcc{app: in.App, fn: in.Func, first: s, minute: -1}
		p.fns[k] = a
	} else {
		a.gaps = append(a.gaps, s-a.last)
	}
	a.last = s
	a.durs = append(a.durs, max(in.DurationUS, 0))
	if day != a.lastDay {
		a.days++
		a.lastDay = day
	}
	if mi := s / 60_000_000; mi != a.minute {
		a.minute, a.minuteN = mi, 0
	}
	a.minuteN++
	a.peakMinute = max(a.peakMinute, a.minuteN)
	a.hours[p.epoch.Add(time.Duration(s)*time.Microsecond).Hour()]++
	if cold {
		a.colds++
	}
}

// nearestRank returns the nearest-rank q-percentile of sorted v.
func nearestRank(v []int64, q float64) int64 {
	if len(v) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(k, 0), len(v)-1)]
}

// meanStd returns the mean and population standard deviation of v.
func meanStd(v []int64) (mean, std float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		std += d * d
	}
	return mean, math.Sqrt(std / float64(len(v)))
}

// csv returns profile.csv: one line per function with training
// invocations, sorted by (app, func); hours is the training split's
// length in hours.
func (p *profiler) csv(hours float64) ([]byte, error) {
	accs := make([]*profAcc, 0, len(p.fns))
	appHours := map[string]*[24]float64{}
	for _, a := range p.fns {
		accs = append(accs, a)
		h, ok := appHours[a.app]
		if !ok {
			h = &[24]float64{}
			appHours[a.app] = h
		}
		for i, v := range a.hours {
			h[i] += v
		}
	}
	slices.SortFunc(accs, func(x, y *profAcc) int {
		return cmp.Or(cmp.Compare(x.app, y.app), cmp.Compare(x.fn, y.fn))
	})
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(ProfileColumns); err != nil {
		return nil, err
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, a := range accs {
		n := len(a.durs)
		durMean, _ := meanStd(a.durs)
		slo := p.m.SLO(a.durs) // sorts a copy
		durs := slices.Clone(a.durs)
		slices.Sort(durs)
		gapMean, gapStd := meanStd(a.gaps)
		gaps := slices.Clone(a.gaps)
		slices.Sort(gaps)
		gapP50 := nearestRank(gaps, 0.5)
		var cv, burst, timer, period float64
		if len(gaps) >= 2 {
			if gapMean > 0 {
				cv = gapStd / gapMean
			}
			if gapStd+gapMean > 0 {
				burst = (gapStd - gapMean) / (gapStd + gapMean)
			}
		}
		if len(gaps) > 0 {
			tol := max(1_000_000, gapP50/50) // ±max(1 s, 2 % of the median gap)
			near := 0
			for _, x := range gaps {
				if x >= gapP50-tol && x <= gapP50+tol {
					near++
				}
			}
			timer = float64(near) / float64(len(gaps))
			if timer >= timerScoreMin && gapP50 > 0 {
				period = float64(gapP50) / 1e6
			}
		}
		peakHour := 0
		for h, v := range a.hours {
			if v > a.hours[peakHour] {
				peakHour = h
			}
		}
		prof := p.m.Profile(a.app, a.fn)
		rec := []string{
			a.app, a.fn, strconv.Itoa(n), strconv.Itoa(a.days), g(float64(a.first) / 1e6), g(float64(a.last) / 1e6),
			g(float64(n) / hours), strconv.FormatInt(a.peakMinute, 10),
			g(durMean / 1000), g(float64(nearestRank(durs, 0.5)) / 1000), g(float64(nearestRank(durs, 0.95)) / 1000),
			g(float64(nearestRank(durs, 0.99)) / 1000), g(float64(durs[n-1]) / 1000),
			g(gapMean / 1e6), g(float64(gapP50) / 1e6), g(cv), g(burst), g(timer), g(period),
			strconv.Itoa(peakHour), p.m.UserMetro(*appHours[a.app]).String(), g(slo), g(float64(a.colds) / float64(n)),
			prof.Runtime.String(), g(prof.WorkingSetMB), g(prof.CPUBoundFraction),
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("writing profile.csv: %w", err)
	}
	return buf.Bytes(), nil
}

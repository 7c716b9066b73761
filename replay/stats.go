package replay

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Bounds used by ComputeStats.
const (
	// StatsTopApps is the number of busiest apps whose burstiness is
	// reported.
	StatsTopApps = 10
	// timerPeriodUS is the timer period looked for: 60 s.
	timerPeriodUS = 60_000_000
	// timerTolerance is the relative tolerance around the timer period: 2%.
	timerTolerance = 0.02
	// minTimerGaps is the fewest inter-arrivals an app needs to be
	// considered as the timer-like app, so that a rare app with two gaps
	// of 60 s does not win.
	minTimerGaps = 10
	minuteUS     = 60_000_000
	hourUS       = 3_600_000_000
	dayUS        = 86_400_000_000
)

// Stats summarises a trace. Times are in seconds, shares in [0,1], rates in
// invocations per second. Days, hours and minutes are counted from trace
// time 0 by start time; "the span" is trace time 0 to the last start.
type Stats struct {
	// Invocations is the number of invocations read.
	Invocations int64 `json:"invocations"`
	// Malformed is the number of malformed lines (*LineError) skipped.
	Malformed int64 `json:"malformed"`
	// OutOfOrder counts invocations that start before the previous one of
	// the same app; their inter-arrival is left out.
	OutOfOrder int64 `json:"out_of_order"`
	// Apps is the number of distinct applications.
	Apps int `json:"apps"`
	// Functions is the number of distinct (app, function) pairs.
	Functions int `json:"functions"`
	// SpanSeconds is the last start time.
	SpanSeconds float64 `json:"span_s"`
	// Duration summarises execution durations.
	Duration DurationStats `json:"duration"`
	// Top1Share, Top5Share and Top20Share are the shares of invocations of
	// the 1, 5 and 20 busiest apps.
	Top1Share  float64 `json:"top1_share"`
	Top5Share  float64 `json:"top5_share"`
	Top20Share float64 `json:"top20_share"`
	// HourlyRate is the aggregate rate by hour of day, averaged over the
	// days of the span.
	HourlyRate [24]float64 `json:"hourly_rate"`
	// HourlyRateMin and HourlyRateMax are the extremes of HourlyRate.
	HourlyRateMin float64 `json:"hourly_rate_min"`
	HourlyRateMax float64 `json:"hourly_rate_max"`
	// DailyCounts holds the invocations that start on each day of the span.
	DailyCounts []int64 `json:"daily_counts"`
	// WedSatRatio is day 3 over day 6 (the first Wednesday over the first
	// Saturday when day 0 is a Sunday); 0 when either is absent or empty.
	WedSatRatio float64 `json:"wed_sat_ratio"`
	// TopApps describes the burstiness of the busiest apps, busiest first.
	TopApps []AppBurst `json:"top_apps"`
	// InterArrivals is the number of same-app inter-arrivals (by start).
	InterArrivals int64 `json:"inter_arrivals"`
	// InterArrivalUnder1s and InterArrivalOver60s are the shares of
	// same-app inter-arrivals shorter than 1 s and longer than 60 s.
	InterArrivalUnder1s float64 `json:"inter_arrival_under_1s"`
	InterArrivalOver60s float64 `json:"inter_arrival_over_60s"`
	// Timer is the most timer-like app.
	Timer TimerApp `json:"timer"`
}

// DurationStats summarises durations in seconds. Percentiles interpolate
// linearly between order statistics.
type DurationStats struct {
	// Mean is the arithmetic mean.
	Mean float64 `json:"mean_s"`
	// P50, P95 and P99 are percentiles.
	P50 float64 `json:"p50_s"`
	P95 float64 `json:"p95_s"`
	P99 float64 `json:"p99_s"`
	// Max is the longest duration.
	Max float64 `json:"max_s"`
	// ZeroShare is the share of durations recorded as 0.
	ZeroShare float64 `json:"zero_share"`
}

// AppBurst describes the burstiness of one app over the span.
type AppBurst struct {
	// App is the application identifier.
	App string `json:"app"`
	// Invocations is the app's number of invocations.
	Invocations int64 `json:"invocations"`
	// MinuteCV is the coefficient of variation of its 1-minute counts.
	MinuteCV float64 `json:"minute_cv"`
	// EmptyMinuteShare is the share of minutes without an invocation.
	EmptyMinuteShare float64 `json:"empty_minute_share"`
	// IdleDays is the number of days of the span without an invocation.
	IdleDays int `json:"idle_days"`
}

// TimerApp names the app with the largest share of inter-arrivals within 2%
// of 60 s, among apps with at least 10 inter-arrivals.
type TimerApp struct {
	// App is the application identifier; empty when no app qualifies.
	App string `json:"app"`
	// Share is the share of its inter-arrivals within 2% of 60 s.
	Share float64 `json:"share"`
	// InterArrivals is its number of inter-arrivals.
	InterArrivals int64 `json:"inter_arrivals"`
}

// appAcc accumulates per-app figures.
type appAcc struct {
	count     int64
	lastStart int64
	gaps      int64
	timerGaps int64
	minutes   map[int64]int32 // non-empty minutes
	days      map[int64]struct{}
}

// ComputeStats reads src to the end and summarises it. Malformed lines
// (*LineError) are counted and skipped; any other error stops it. Durations
// are kept in memory for exact percentiles (8 bytes per invocation); other
// state is bounded by apps, functions and the minutes of the span.
func ComputeStats(src Source) (Stats, error) {
	var st Stats
	apps := map[string]*appAcc{}
	funcs := map[[2]string]struct{}{}
	var durs []int64
	var hourCounts [24]int64
	var sumDur float64
	var maxStart int64
	var under1, over60 int64
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				st.Malformed++
				continue
			}
			return Stats{}, fmt.Errorf("computing stats after %d invocations: %w", st.Invocations, err)
		}
		st.Invocations++
		start := in.StartUS()
		if start < 0 {
			start = 0
		}
		maxStart = max(maxStart, start)
		a := apps[in.App]
		if a == nil {
			a = &appAcc{lastStart: -1, minutes: map[int64]int32{}, days: map[int64]struct{}{}}
			apps[in.App] = a
		}
		if _, ok := funcs[[2]string{in.App, in.Func}]; !ok {
			funcs[[2]string{in.App, in.Func}] = struct{}{}
		}
		a.count++
		a.minutes[start/minuteUS]++
		day := start / dayUS
		a.days[day] = struct{}{}
		for int64(len(st.DailyCounts)) <= day {
			st.DailyCounts = append(st.DailyCounts, 0)
		}
		st.DailyCounts[day]++
		hourCounts[(start/hourUS)%24]++
		if a.lastStart >= 0 {
			gap := start - a.lastStart
			switch {
			case gap < 0:
				st.OutOfOrder++
			default:
				st.InterArrivals++
				a.gaps++
				if gap < 1_000_000 {
					under1++
				}
				if gap > 60_000_000 {
					over60++
				}
				if math.Abs(float64(gap-timerPeriodUS)) <= timerTolerance*timerPeriodUS {
					a.timerGaps++
				}
			}
		}
		if start > a.lastStart {
			a.lastStart = start
		}
		durs = append(durs, in.DurationUS)
		sumDur += float64(in.DurationUS)
	}
	if st.Invocations == 0 {
		return st, nil
	}
	st.Apps = len(apps)
	st.Functions = len(funcs)
	st.SpanSeconds = float64(maxStart) / 1e6
	st.Duration = durationStats(durs, sumDur)
	if st.InterArrivals > 0 {
		st.InterArrivalUnder1s = float64(under1) / float64(st.InterArrivals)
		st.InterArrivalOver60s = float64(over60) / float64(st.InterArrivals)
	}

	days := maxStart/dayUS + 1
	st.HourlyRateMin = math.Inf(1)
	for h, c := range hourCounts {
		st.HourlyRate[h] = float64(c) / float64(days*3600)
		st.HourlyRateMin = min(st.HourlyRateMin, st.HourlyRate[h])
		st.HourlyRateMax = max(st.HourlyRateMax, st.HourlyRate[h])
	}
	if len(st.DailyCounts) > 6 && st.DailyCounts[6] > 0 && st.DailyCounts[3] > 0 {
		st.WedSatRatio = float64(st.DailyCounts[3]) / float64(st.DailyCounts[6])
	}

	type ranked struct {
		id string
		a  *appAcc
	}
	rank := make([]ranked, 0, len(apps))
	for id, a := range apps {
		rank = append(rank, ranked{id, a})
	}
	slices.SortFunc(rank, func(x, y ranked) int {
		if x.a.count != y.a.count {
			if x.a.count > y.a.count {
				return -1
			}
			return 1
		}
		return strings.Compare(x.id, y.id)
	})
	var cum int64
	for i, r := range rank {
		cum += r.a.count
		share := float64(cum) / float64(st.Invocations)
		if i < 1 {
			st.Top1Share = share
		}
		if i < 5 {
			st.Top5Share = share
		}
		if i < 20 {
			st.Top20Share = share
		}
	}
	minutes := float64(maxStart/minuteUS + 1)
	for _, r := range rank[:min(StatsTopApps, len(rank))] {
		var sum, sq float64
		for _, c := range r.a.minutes {
			sum += float64(c)
			sq += float64(c) * float64(c)
		}
		mean := sum / minutes
		variance := max(sq/minutes-mean*mean, 0)
		st.TopApps = append(st.TopApps, AppBurst{
			App:              r.id,
			Invocations:      r.a.count,
			MinuteCV:         math.Sqrt(variance) / mean,
			EmptyMinuteShare: 1 - float64(len(r.a.minutes))/minutes,
			IdleDays:         int(days) - len(r.a.days),
		})
	}
	for _, r := range rank { // busiest first, so ties go to the busier app
		if r.a.gaps < minTimerGaps {
			continue
		}
		share := float64(r.a.timerGaps) / float64(r.a.gaps)
		if st.Timer.App == "" || share > st.Timer.Share {
			st.Timer = TimerApp{App: r.id, Share: share, InterArrivals: r.a.gaps}
		}
	}
	return st, nil
}

// durationStats summarises durations in microseconds; it sorts durs.
func durationStats(durs []int64, sum float64) DurationStats {
	slices.Sort(durs)
	var zeros int
	for zeros < len(durs) && durs[zeros] == 0 {
		zeros++
	}
	pct := func(p float64) float64 {
		x := p * float64(len(durs)-1)
		i := int(x)
		if i+1 >= len(durs) {
			return float64(durs[len(durs)-1]) / 1e6
		}
		f := x - float64(i)
		return (float64(durs[i])*(1-f) + float64(durs[i+1])*f) / 1e6
	}
	return DurationStats{
		Mean:      sum / float64(len(durs)) / 1e6,
		P50:       pct(0.50),
		P95:       pct(0.95),
		P99:       pct(0.99),
		Max:       float64(durs[len(durs)-1]) / 1e6,
		ZeroShare: float64(zeros) / float64(len(durs)),
	}
}

// WriteText writes a human-readable report of s to w.
func (s Stats) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("invocations           %d (malformed lines skipped: %d, out of order: %d)\n", s.Invocations, s.Malformed, s.OutOfOrder)
	p("apps / functions      %d / %d\n", s.Apps, s.Functions)
	p("span                  %.1f s (%.2f days)\n", s.SpanSeconds, s.SpanSeconds/86400)
	d := s.Duration
	p("duration (s)          mean %.3f  p50 %.3f  p95 %.3f  p99 %.3f  max %.3f  zero %.1f%%\n",
		d.Mean, d.P50, d.P95, d.P99, d.Max, 100*d.ZeroShare)
	p("top 1/5/20 app share  %.1f%% / %.1f%% / %.1f%%\n", 100*s.Top1Share, 100*s.Top5Share, 100*s.Top20Share)
	p("hourly rate (1/s)     min %.3f  max %.3f  (max/min %.2f)\n", s.HourlyRateMin, s.HourlyRateMax, ratio(s.HourlyRateMax, s.HourlyRateMin))
	p("by hour of day       ")
	for _, r := range s.HourlyRate {
		p(" %.2f", r)
	}
	p("\n")
	p("per day              ")
	for _, c := range s.DailyCounts {
		p(" %d", c)
	}
	p("\n")
	p("wed/sat (day 3/day 6) %.2f\n", s.WedSatRatio)
	p("same-app inter-arrivals %d: under 1 s %.1f%%, over 60 s %.1f%%\n",
		s.InterArrivals, 100*s.InterArrivalUnder1s, 100*s.InterArrivalOver60s)
	p("timer-like app        %s  %.1f%% of %d inter-arrivals within 2%% of 60 s\n", short(s.Timer.App), 100*s.Timer.Share, s.Timer.InterArrivals)
	p("top apps              invocations  minute-CV  empty-minutes  idle-days\n")
	for i, a := range s.TopApps {
		p("  %2d %-12s %11d  %9.2f  %12.1f%%  %9d\n", i+1, short(a.App), a.Invocations, a.MinuteCV, 100*a.EmptyMinuteShare, a.IdleDays)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing stats report: %w", err)
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// short abbreviates a hashed identifier for display.
func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

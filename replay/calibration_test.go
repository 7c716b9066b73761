package replay

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Calibration targets: the published statistics of the full Azure Functions
// 2021 trace (testdata/azure2021/STATS.md), with the tolerance each check allows
// and why.
//
//	check                      target (STATS.md)     accepted              why this tolerance
//	invocations                1,980,951             ±10%                  volumes are drawn per app-day (log-sd 0.15), the top app alone is 27%
//	apps / functions           119 / 424             exact                 the population is fixed by construction and every app must appear
//	duration mean              3.35 s                ±15%                  1% of rows (>72 s) carry ~40% of the mean; app volumes shift the tail mass
//	duration p50               0.031 s               ±20%                  log-linear quantile between 10 and 100 ms; a 1-pp shift moves it ~10%
//	duration p95 / p99         14.416 s / 72.2 s     ±20%                  same, in the steep part of the quantile function
//	zero durations             8.6%                  ±1.5 pp               segment mass is balanced exactly in expectation
//	duration max               578.62 s              ≤ 578.62 s            hard cap of the trace
//	top 1 / 5 / 20 share       27.0 / 72.3 / 92.5%   ±3 / ±4 / ±3 pp       realised volumes of a handful of heavy apps
//	hourly rate min / max      0.87 / 2.78 /s        ±30% each              14 samples per hour of day, dominated by bursty heavy apps
//	wed/sat (day 3 / day 6)    6.2                   4.5 – 8.5             one realisation of two days, heavy apps idle on some days
//	second week flatter        —                     max/min of days 7–13 below wed/sat
//	top-10 minute CV           1.5 – 25.6            the published range   shape: every top-10 app must be as bursty as the real ones
//	top-10 empty minutes       34 – 98%              the published range   shape
//	top-10 apps idle 7–10 days 4 of 10               at least 3            shape
//	inter-arrivals < 1 s       73%                   ±6 pp                 shape; Poisson at these rates gives far less
//	inter-arrivals > 60 s      3%                    1.5 – 6%              shape
//	timer-like app             35% within 2% of 60 s ≥ 30%                 the brief's requirement
//
// calibrationViolations compares s with the published statistics of the
// full 14-day trace and returns one line per check that fails. Each line
// starts with the check's name.
func calibrationViolations(s Stats) []string {
	var v []string
	fail := func(name, format string, args ...any) {
		v = append(v, name+": "+fmt.Sprintf(format, args...))
	}
	within := func(name string, got, want, rel float64) {
		if math.Abs(got-want) > rel*want {
			fail(name, "got %.4g, want %.4g ±%.0f%%", got, want, 100*rel)
		}
	}
	between := func(name string, got, lo, hi float64) {
		if got < lo || got > hi {
			fail(name, "got %.4g, want %.4g..%.4g", got, lo, hi)
		}
	}
	within("invocations", float64(s.Invocations), 1_980_951, 0.10)
	if s.Apps != 119 || s.Functions != 424 {
		fail("population", "got %d apps / %d functions, want 119 / 424", s.Apps, s.Functions)
	}
	within("duration mean", s.Duration.Mean, 3.35, 0.15)
	within("duration p50", s.Duration.P50, 0.031, 0.20)
	within("duration p95", s.Duration.P95, 14.416, 0.20)
	within("duration p99", s.Duration.P99, 72.2, 0.20)
	between("zero durations", s.Duration.ZeroShare, 0.086-0.015, 0.086+0.015)
	between("duration max", s.Duration.Max, 0, 578.62)
	between("top1 share", s.Top1Share, 0.27-0.03, 0.27+0.03)
	between("top5 share", s.Top5Share, 0.723-0.04, 0.723+0.04)
	between("top20 share", s.Top20Share, 0.925-0.03, 0.925+0.03)
	within("hourly rate min", s.HourlyRateMin, 0.87, 0.30)
	within("hourly rate max", s.HourlyRateMax, 2.78, 0.30)
	between("wed/sat ratio", s.WedSatRatio, 4.5, 8.5)
	if len(s.DailyCounts) >= 14 {
		week2 := s.DailyCounts[7:14]
		lo, hi := slices.Min(week2), slices.Max(week2)
		if lo == 0 || float64(hi)/float64(lo) >= s.WedSatRatio {
			fail("second week flatter", "week-2 max/min %d/%d not below wed/sat %.2f", hi, lo, s.WedSatRatio)
		}
	} else {
		fail("second week flatter", "only %d days", len(s.DailyCounts))
	}
	if len(s.TopApps) < 10 {
		fail("top-10 minute CV", "only %d apps", len(s.TopApps))
	}
	idle := 0
	for i, a := range s.TopApps {
		if a.MinuteCV < 1.5 || a.MinuteCV > 25.6 {
			fail("top-10 minute CV", "app #%d %s: %.3g, want 1.5..25.6", i+1, short(a.App), a.MinuteCV)
		}
		if a.EmptyMinuteShare < 0.34 || a.EmptyMinuteShare > 0.98 {
			fail("top-10 empty minutes", "app #%d %s: %.3g, want 0.34..0.98", i+1, short(a.App), a.EmptyMinuteShare)
		}
		if a.IdleDays >= 7 && a.IdleDays <= 10 {
			idle++
		}
	}
	if idle < 3 {
		fail("top-10 idle days", "%d top-10 apps idle on 7-10 days, want at least 3", idle)
	}
	between("inter-arrivals under 1 s", s.InterArrivalUnder1s, 0.73-0.06, 0.73+0.06)
	between("inter-arrivals over 60 s", s.InterArrivalOver60s, 0.015, 0.06)
	if s.Timer.Share < 0.30 {
		fail("timer app", "best timer-like app %s has %.3g of inter-arrivals within 2%% of 60 s, want ≥ 0.30", short(s.Timer.App), s.Timer.Share)
	}
	return v
}

// statsPath is the committed file of published statistics the calibration
// targets come from.
const statsPath = "../testdata/azure2021/STATS.md"

// TestCalibrationTargetsAreInStats checks that every target of the table
// above is written in STATS.md, so the targets and their cited source
// cannot drift apart.
func TestCalibrationTargetsAreInStats(t *testing.T) {
	b, err := os.ReadFile(statsPath)
	if err != nil {
		t.Fatalf("reading the committed statistics: %v", err)
	}
	for check, text := range map[string]string{
		"invocations":           "**1,980,951**",
		"apps / functions":      "**119 / 424**",
		"duration mean":         "**3.35**",
		"duration p50":          "**0.031**",
		"duration p95 / p99":    "**14.416 / 72.200**",
		"zero durations":        "| 8.6% |",
		"duration max":          "0 / 578.62",
		"top 1 / 5 / 20 share":  "27.0% / 43.6% / 72.3% / 83.9% / 92.5%",
		"hourly rate min / max": "0.87/s to 2.78/s",
		"wed/sat":               "(6.2×)",
		"second week flatter":   "the second week is flatter",
		"top-10 minute CV":      "CV of counts 1.5–25.6",
		"top-10 empty minutes":  "34–98% of minutes empty",
		"top-10 apps idle":      "4 of the top 10 apps have no invocation on 7–10",
		"inter-arrivals < 1 s":  "73% of same-app inter-arrivals are under 1 s",
		"inter-arrivals > 60 s": "3% are over 60 s",
		"timer-like app":        "35% of its inter-arrivals fall within 2% of 60 s",
	} {
		if !strings.Contains(string(b), text) {
			t.Errorf("%s: %s does not state %q", check, statsPath, text)
		}
	}
}

func TestCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("generates the full 14-day synthetic trace")
	}
	t.Parallel()
	// Three seeds, so that the calibration is a property of the model and
	// not of one lucky realisation (about 1 s each).
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("synthetic trace seed %d matches STATS.md", seed), func(t *testing.T) {
			begin := time.Now()
			src, err := NewSynth(SynthConfig{Days: 14, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			st, err := ComputeStats(src)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := st.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			t.Logf("14-day synthetic trace, seed %d (generation + stats %v):\n%s", seed, time.Since(begin).Round(time.Millisecond), b.String())
			for _, v := range calibrationViolations(st) {
				t.Error(v)
			}
		})
	}
	t.Run("Poisson control is rejected", func(t *testing.T) {
		st, err := ComputeStats(newPoissonControl(14, 1))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := st.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		v := calibrationViolations(st)
		t.Logf("Poisson control:\n%s\nviolations:\n%s", b.String(), strings.Join(v, "\n"))
		for _, name := range []string{"top-10 minute CV", "inter-arrivals under 1 s"} {
			if !slices.ContainsFunc(v, func(s string) bool { return strings.HasPrefix(s, name+":") }) {
				t.Errorf("Poisson control passed the %q check", name)
			}
		}
	})
}

func TestSynthMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams the full 14-day synthetic trace")
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	begin := time.Now()
	src, err := NewSynth(SynthConfig{Days: 14, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var peak uint64
	for {
		_, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n%20_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
		}
	}
	t.Logf("streamed %d invocations in %v; peak heap above baseline %.1f MB (sampled every 20k rows)",
		n, time.Since(begin).Round(time.Millisecond), float64(peak)/1e6)
	if peak > 200e6 {
		t.Errorf("peak heap %.1f MB, want well under 200 MB", float64(peak)/1e6)
	}
}

// poissonControl is the negative control: every app of the synthetic
// population arrives as a Poisson process at its mean rate, modulated by the
// same hour-of-day curve, with durations from the same quantile function.
// It has the right volumes, skew, durations and daily cycle but none of the
// burstiness, so the shape checks must reject it.
type poissonControl struct {
	rng    *rand.Rand
	cum    []float64 // cumulative app volumes
	ids    []string
	funcs  [][]string
	total  float64 // invocations per second, before modulation
	t, end float64
	row    int64
}

func newPoissonControl(days int, seed uint64) *poissonControl {
	pop := buildPopulation(int64(seed))
	p := &poissonControl{rng: rand.New(rand.NewPCG(seed, 42)), end: float64(days) * 86400}
	sum := 0.0
	for _, sp := range pop {
		sum += sp.count
		p.cum = append(p.cum, sum)
		p.ids = append(p.ids, sp.id)
		p.funcs = append(p.funcs, sp.funcs)
	}
	p.total = sum / (SynthReferenceDays * 86400)
	return p
}

func (p *poissonControl) Next() (Invocation, error) {
	meanW := 0.0
	for _, w := range hourWeights {
		meanW += w / 24
	}
	for {
		h := int(p.t/3600) % 24
		rate := p.total * hourWeights[h] / meanW
		hourEnd := math.Floor(p.t/3600)*3600 + 3600
		next := p.t + p.rng.ExpFloat64()/rate
		if next >= hourEnd { // memoryless: restart at the hour boundary
			p.t = hourEnd
			if p.t >= p.end {
				return Invocation{}, io.EOF
			}
			continue
		}
		p.t = next
		break
	}
	x := p.rng.Float64() * p.cum[len(p.cum)-1]
	a, _ := slices.BinarySearch(p.cum, x)
	a = min(a, len(p.cum)-1)
	fs := p.funcs[a]
	dur := int64(math.Round(durQ(p.rng.Float64())*1000)) * 1000
	start := int64(p.t * 1e6)
	p.row++
	return Invocation{App: p.ids[a], Func: fs[p.rng.IntN(len(fs))], EndUS: start + dur, DurationUS: dur, Row: p.row}, nil
}

package replay

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// listSource yields fixed invocations or errors, then io.EOF.
type listSource struct {
	items []any // Invocation or error
}

func (s *listSource) Next() (Invocation, error) {
	if len(s.items) == 0 {
		return Invocation{}, io.EOF
	}
	x := s.items[0]
	s.items = s.items[1:]
	if err, ok := x.(error); ok {
		return Invocation{}, err
	}
	return x.(Invocation), nil
}

// inv builds an invocation starting at startS seconds lasting durS seconds.
func inv(app, fn string, startS, durS float64) Invocation {
	s, d := int64(math.Round(startS*1e6)), int64(math.Round(durS*1e6))
	return Invocation{App: app, Func: fn, EndUS: s + d, DurationUS: d}
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestComputeStatsBasic(t *testing.T) {
	src := &listSource{items: []any{
		inv("A", "f1", 0, 0),
		inv("A", "f1", 0.5, 1),
		inv("B", "f1", 30, 0.5),
		inv("A", "f1", 61.5, 2),
		inv("B", "f2", 100, 0),
		inv("A", "f1", 200, 3),
		inv("C", "f1", 93600, 10), // day 1, hour 2
	}}
	st, err := ComputeStats(src)
	if err != nil {
		t.Fatal(err)
	}
	const minutes = 93600/60 + 1
	cv := func(sum, sq float64) float64 {
		m := sum / minutes
		return math.Sqrt(sq/minutes-m*m) / m
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"invocations", float64(st.Invocations), 7},
		{"apps", float64(st.Apps), 3},
		{"functions", float64(st.Functions), 4},
		{"span", st.SpanSeconds, 93600},
		{"mean", st.Duration.Mean, 16.5 / 7},
		{"p50", st.Duration.P50, 1},
		{"p95", st.Duration.P95, 3 + 0.7*7},  // position 5.7 between 3 and 10
		{"p99", st.Duration.P99, 3 + 0.94*7}, // position 5.94
		{"max", st.Duration.Max, 10},
		{"zero share", st.Duration.ZeroShare, 2.0 / 7},
		{"top1", st.Top1Share, 4.0 / 7},
		{"top5", st.Top5Share, 1},
		{"top20", st.Top20Share, 1},
		{"hourly min", st.HourlyRateMin, 0},
		{"hourly max", st.HourlyRateMax, 6.0 / (2 * 3600)},
		{"hour 2", st.HourlyRate[2], 1.0 / (2 * 3600)},
		{"wed/sat", st.WedSatRatio, 0},
		{"inter-arrivals", float64(st.InterArrivals), 4}, // A: 0.5, 61, 138.5; B: 70
		{"under 1 s", st.InterArrivalUnder1s, 0.25},
		{"over 60 s", st.InterArrivalOver60s, 0.75},
		{"timer share", st.Timer.Share, 0},
		{"top apps", float64(len(st.TopApps)), 3},
		{"A cv", st.TopApps[0].MinuteCV, cv(4, 2*2+1+1)}, // minutes 0, 1, 3 hold 2, 1, 1
		{"A empty", st.TopApps[0].EmptyMinuteShare, 1 - 3.0/minutes},
		{"A idle days", float64(st.TopApps[0].IdleDays), 1},
		{"B cv", st.TopApps[1].MinuteCV, cv(2, 2)},
		{"C invocations", float64(st.TopApps[2].Invocations), 1},
		{"C idle days", float64(st.TopApps[2].IdleDays), 1},
	}
	for _, c := range checks {
		if !approx(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := st.DailyCounts; len(got) != 2 || got[0] != 6 || got[1] != 1 {
		t.Errorf("daily counts = %v, want [6 1]", got)
	}
	if st.Timer.App != "" {
		t.Errorf("timer app = %q, want none (no app has 10 inter-arrivals)", st.Timer.App)
	}
	if st.TopApps[0].App != "A" || st.TopApps[1].App != "B" || st.TopApps[2].App != "C" {
		t.Errorf("top apps = %+v, want A, B, C", st.TopApps)
	}
}

func TestComputeStatsCases(t *testing.T) {
	lineErr := &LineError{File: "t.csv", Line: 3, Reason: "bad"}
	everyDay := func(perDay map[int]int) []any {
		var out []any
		for d := 0; d < 7; d++ {
			for i := range perDay[d] {
				out = append(out, inv("A", "f", float64(d*86400+i*100), 0))
			}
		}
		return out
	}
	timer := func() []any {
		var out []any
		for i := range 12 {
			out = append(out, inv("T", "f", float64(i*60)+0.3*float64(i%2), 0))
			out = append(out, inv("U", "f", float64(i*60)+1, 0))
			out = append(out, inv("U", "f", float64(i*60)+31, 0))
		}
		return out
	}()
	tests := []struct {
		name  string
		items []any
		check func(t *testing.T, st Stats)
	}{
		{"empty", nil, func(t *testing.T, st Stats) {
			if st.Invocations != 0 || st.Apps != 0 || len(st.TopApps) != 0 {
				t.Errorf("stats of an empty source = %+v", st)
			}
		}},
		{"malformed lines are counted", []any{inv("A", "f", 1, 0), lineErr, inv("A", "f", 2, 0)}, func(t *testing.T, st Stats) {
			if st.Malformed != 1 || st.Invocations != 2 {
				t.Errorf("malformed %d, invocations %d, want 1, 2", st.Malformed, st.Invocations)
			}
		}},
		{"out of order", []any{inv("A", "f", 10, 0), inv("A", "f", 5, 0), inv("A", "f", 20, 0)}, func(t *testing.T, st Stats) {
			if st.OutOfOrder != 1 || st.InterArrivals != 1 || st.InterArrivalUnder1s != 0 {
				t.Errorf("out of order %d, inter-arrivals %d, want 1, 1", st.OutOfOrder, st.InterArrivals)
			}
		}},
		{"wednesday over saturday", everyDay(map[int]int{0: 1, 3: 6, 6: 2}), func(t *testing.T, st Stats) {
			if st.WedSatRatio != 3 || len(st.DailyCounts) != 7 || st.DailyCounts[3] != 6 {
				t.Errorf("wed/sat %v, daily %v, want 3", st.WedSatRatio, st.DailyCounts)
			}
			if st.TopApps[0].IdleDays != 4 {
				t.Errorf("idle days %d, want 4", st.TopApps[0].IdleDays)
			}
		}},
		{"timer app", timer, func(t *testing.T, st Stats) {
			// T: 11 gaps of 60 ± 0.3 s; U: gaps of 30 s.
			if st.Timer.App != "T" || st.Timer.Share != 1 || st.Timer.InterArrivals != 11 {
				t.Errorf("timer = %+v, want T with share 1 over 11 gaps", st.Timer)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ComputeStats(&listSource{items: tt.items})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, st)
		})
	}
}

func TestComputeStatsStopsOnReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := ComputeStats(&listSource{items: []any{inv("A", "f", 1, 0), boom}})
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want it to wrap %v", err, boom)
	}
}

func TestStatsWriteText(t *testing.T) {
	st, err := ComputeStats(mustSynth(t, SynthConfig{Days: 1, Seed: 1, Apps: 4}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"invocations", "duration (s)", "top 1/5/20", "timer-like app", "minute-CV"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestComputeStatsRealSample(t *testing.T) {
	r, err := OpenTrace("../testdata/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv")
	if err != nil {
		t.Fatalf("opening the committed real sample: %v", err)
	}
	defer r.Close()
	st, err := ComputeStats(r)
	if err != nil {
		t.Fatal(err)
	}
	// Figures from testdata/azure2021/SOURCE.md.
	if st.Invocations != 998 || st.Apps != 21 || st.Functions != 49 || st.OutOfOrder != 0 ||
		math.Abs(st.Duration.Max-404.99) > 0.01 || math.Abs(st.Duration.Mean-24.83) > 0.01 {
		t.Errorf("real sample: %d rows, %d apps, %d functions, %d out of order, mean %.3f, max %.3f; want 998, 21, 49, 0, 24.83, 404.99",
			st.Invocations, st.Apps, st.Functions, st.OutOfOrder, st.Duration.Mean, st.Duration.Max)
	}
}

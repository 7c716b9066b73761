package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"testing"
)

// drain reads src to the end.
func drain(t *testing.T, src Source) []Invocation {
	t.Helper()
	var out []Invocation
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading invocation %d: %v", len(out)+1, err)
		}
		out = append(out, in)
	}
}

func mustSynth(t *testing.T, cfg SynthConfig) *Synth {
	t.Helper()
	s, err := NewSynth(cfg)
	if err != nil {
		t.Fatalf("NewSynth(%+v): %v", cfg, err)
	}
	return s
}

func TestNewSynthRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  SynthConfig
	}{
		{"zero days", SynthConfig{Days: 0}},
		{"negative days", SynthConfig{Days: -1}},
		{"too many days", SynthConfig{Days: maxSynthDays + 1}},
		{"negative apps", SynthConfig{Days: 1, Apps: -1}},
		{"too many apps", SynthConfig{Days: 1, Apps: SynthPopulationApps + 1}},
		{"negative scale", SynthConfig{Days: 1, Scale: -1}},
		{"too large a scale", SynthConfig{Days: 1, Scale: maxSynthScale + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSynth(tt.cfg)
			if !errors.Is(err, ErrSynthConfig) {
				t.Fatalf("NewSynth(%+v) error = %v, want ErrSynthConfig", tt.cfg, err)
			}
		})
	}
}

func TestSynthDeterministic(t *testing.T) {
	csv := func(cfg SynthConfig) []byte {
		var b bytes.Buffer
		if _, err := WriteCSV(&b, mustSynth(t, cfg)); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name      string
		a, b      SynthConfig
		wantEqual bool
	}{
		{"same seed", SynthConfig{Days: 1, Seed: 7, Apps: 6}, SynthConfig{Days: 1, Seed: 7, Apps: 6}, true},
		{"same seed, full population", SynthConfig{Days: 1, Seed: 3}, SynthConfig{Days: 1, Seed: 3}, true},
		{"different seed", SynthConfig{Days: 1, Seed: 7, Apps: 6}, SynthConfig{Days: 1, Seed: 8, Apps: 6}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := csv(tt.a), csv(tt.b)
			if got := bytes.Equal(a, b); got != tt.wantEqual {
				t.Fatalf("outputs equal = %v, want %v (%d and %d bytes)", got, tt.wantEqual, len(a), len(b))
			}
			if len(a) < 1000 {
				t.Fatalf("suspiciously short trace: %d bytes", len(a))
			}
		})
	}
}

func TestSynthInvariants(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	const days = 2
	invs := drain(t, mustSynth(t, SynthConfig{Days: days, Seed: 11}))
	if len(invs) < 100_000 {
		t.Fatalf("got %d invocations in %d days, want about %d", len(invs), days, SynthReferenceInvocations*days/14)
	}
	prev := int64(0)
	for i, in := range invs {
		if in.Row != int64(i+1) {
			t.Fatalf("invocation %d has row %d", i+1, in.Row)
		}
		s := in.StartUS()
		if s < prev {
			t.Fatalf("row %d starts at %d, before the previous start %d", in.Row, s, prev)
		}
		prev = s
		if s < 0 || s >= days*dayUS {
			t.Fatalf("row %d starts at %d, outside [0, %d)", in.Row, s, days*dayUS)
		}
		if in.DurationUS < 0 || in.DurationUS%1000 != 0 || in.DurationUS > SynthMaxDurationUS {
			t.Fatalf("row %d has duration %d µs, want whole ms in [0, %d]", in.Row, in.DurationUS, SynthMaxDurationUS)
		}
		if !hex64.MatchString(in.App) || !hex64.MatchString(in.Func) {
			t.Fatalf("row %d ids %q/%q are not 64-hex", in.Row, in.App, in.Func)
		}
	}
}

func TestSynthAppsSubset(t *testing.T) {
	pop := buildPopulation(5)
	full := drain(t, mustSynth(t, SynthConfig{Days: 1, Seed: 5}))
	for _, k := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("apps=%d", k), func(t *testing.T) {
			keep := selectApps(k)
			if len(keep) != k || !slices.Contains(keep, 0) || (k >= 2 && !slices.Contains(keep, timerApp)) {
				t.Fatalf("selectApps(%d) = %v, want %d apps incl. rank 0 and (k≥2) the timer app", k, keep, k)
			}
			ids := map[string]bool{}
			for _, i := range keep {
				ids[pop[i].id] = true
			}
			got := drain(t, mustSynth(t, SynthConfig{Days: 1, Seed: 5, Apps: k}))
			// The subset is the full trace restricted to the kept apps: each
			// app's stream does not depend on which others are generated.
			var want []Invocation
			for _, in := range full {
				if ids[in.App] {
					in.Row = int64(len(want) + 1)
					want = append(want, in)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Apps=%d gave %d invocations, want the full trace's %d of those apps", k, len(got), len(want))
			}
			if got[0].Row != 1 || !ids[pop[0].id] {
				t.Fatalf("Apps=%d: busiest app missing", k)
			}
		})
	}
}

func TestSynthShorterTraceIsPrefix(t *testing.T) {
	one := drain(t, mustSynth(t, SynthConfig{Days: 1, Seed: 9, Apps: 5}))
	two := drain(t, mustSynth(t, SynthConfig{Days: 2, Seed: 9, Apps: 5}))
	if len(two) <= len(one) || !slices.Equal(one, two[:len(one)]) {
		t.Fatalf("the 1-day trace (%d rows) is not a prefix of the 2-day trace (%d rows)", len(one), len(two))
	}
}

func TestSynthCSVRoundTrip(t *testing.T) {
	cfg := SynthConfig{Days: 1, Seed: 2, Apps: 6}
	want := drain(t, mustSynth(t, cfg))
	var b bytes.Buffer
	n, err := WriteCSV(&b, mustSynth(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Fatalf("WriteCSV wrote %d rows, want %d", n, len(want))
	}
	r, err := NewCSVReader(&b, "synthetic")
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, r)
	if len(got) != len(want) {
		t.Fatalf("read back %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] || got[i].ID() != want[i].ID() {
			t.Fatalf("row %d: read back %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

func TestSynthPopulation(t *testing.T) {
	pop := buildPopulation(1)
	funcs, single := 0, 0
	var perApp []int
	var total float64
	for _, sp := range pop {
		funcs += len(sp.funcs)
		perApp = append(perApp, len(sp.funcs))
		if len(sp.funcs) == 1 {
			single++
		}
		total += sp.count
	}
	slices.Sort(perApp)
	if len(pop) != 119 || funcs != 424 || single != 55 || perApp[59] != 2 || perApp[118] != 29 || perApp[116] <= 15 || perApp[115] > 15 {
		t.Fatalf("population: %d apps, %d functions, %d single, median %d, max %d; want 119, 424, 55, 2, 29 and 3 apps above 15",
			len(pop), funcs, single, perApp[59], perApp[118])
	}
	if total < SynthReferenceInvocations-1 || total > SynthReferenceInvocations+1 {
		t.Fatalf("expected volume %.0f, want %d", total, SynthReferenceInvocations)
	}
}

func BenchmarkSynth(b *testing.B) {
	for b.Loop() {
		s, err := NewSynth(SynthConfig{Days: 1, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	}
}

// TestSynthScale checks that Scale k repeats the population k times: copy
// 0 is the unscaled trace exactly, the k copies have apps and functions of
// their own, and each copy carries about as many invocations as the
// unscaled trace (the same models, random streams of their own).
func TestSynthScale(t *testing.T) {
	const k = 3
	cfg := SynthConfig{Days: 1, Seed: 7, Apps: 12}
	base := drain(t, mustSynth(t, cfg))
	cfg.Scale = k
	scaled := drain(t, mustSynth(t, cfg))
	if again := drain(t, mustSynth(t, cfg)); !slices.Equal(scaled, again) {
		t.Fatal("a scaled trace is not deterministic")
	}
	baseApps := map[string]bool{}
	for _, in := range base {
		baseApps[in.App] = true
	}
	var copy0 []Invocation
	apps, funcs := map[string]int{}, map[[2]string]bool{}
	for i, in := range scaled {
		if i > 0 && in.EndUS-in.DurationUS < scaled[i-1].EndUS-scaled[i-1].DurationUS {
			t.Fatalf("invocation %d starts before the one before it", i+1)
		}
		apps[in.App]++
		funcs[[2]string{in.App, in.Func}] = true
		if baseApps[in.App] {
			in.Row = int64(len(copy0) + 1)
			copy0 = append(copy0, in)
		}
	}
	if !slices.Equal(copy0, base) {
		t.Fatalf("copy 0 holds %d invocations, not the unscaled trace's %d", len(copy0), len(base))
	}
	// An app may have no invocation on a given day: the copies of one
	// active in the unscaled trace need not be.
	if len(apps) <= (k-1)*len(baseApps) || len(apps) > k*cfg.Apps {
		t.Errorf("%d apps active in the scaled trace, want more than %d and at most %d × %d", len(apps), (k-1)*len(baseApps), k, cfg.Apps)
	}
	if ratio := float64(len(scaled)) / float64(len(base)); ratio < 0.8*k || ratio > 1.2*k {
		t.Errorf("%d invocations scaled, %d unscaled: ratio %.2f, want about %d", len(scaled), len(base), ratio, k)
	}
	t.Logf("scale %d: %d apps, %d functions, %d invocations (unscaled %d apps, %d invocations)", k, len(apps), len(funcs), len(scaled), len(baseApps), len(base))
}

package dqn

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

func testModel(t testing.TB) *cloud.Model {
	t.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMask(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{{"", MaskNone, true}, {"none", MaskNone, true}, {"slo-risk", MaskSLORisk, true}, {"SLO-risk", "", false}, {"all", "", false}} {
		got, err := ParseMask(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMask(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("ParseMask(%q): %v does not wrap ErrConfig", tc.in, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Mask = "everything"
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("a config with mask %q validated: %v", cfg.Mask, err)
	}
}

// TestSLORiskBreach pins the breach probabilities of the embedded catalog
// and the default runtime mix (JavaScript 0.40, Python 0.30, .NET 0.15,
// Java 0.10, Go 0.05; access RTT 20 ms): a short function (SLO 1,100 ms)
// breaks it on a cold start at GCP under Python (1.106 s) and the runtimes
// GCP was not measured for (.NET, Java: its slowest), at Azure under every
// runtime but .NET (0.932 s), at AWS never (≤ 0.372 s).
func TestSLORiskBreach(t *testing.T) {
	s, err := NewSLORisk(testModel(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		mean, p95    float64
		aws, az, gcp float64
	}{
		{"short", 100, 200, 0, 0.85, 0.55},
		{"no history", 0, 0, 0, 0.85, 0.55},
		{"non-finite durations", math.NaN(), math.Inf(1), 0, 0.85, 0.55},
		{"p95 500 ms: SLO 1,600 ms", 300, 500, 0, 0.85, 0},
		{"long", 2000, 3000, 0, 0, 0},
	} {
		got := [3]float64{s.Breach(cloud.AWS, tc.mean, tc.p95), s.Breach(cloud.Azure, tc.mean, tc.p95), s.Breach(cloud.GCP, tc.mean, tc.p95)}
		want := [3]float64{tc.aws, tc.az, tc.gcp}
		for p := range got {
			if math.Abs(got[p]-want[p]) > 1e-9 {
				t.Errorf("%s: breach %v, want %v", tc.name, got, want)
				break
			}
		}
	}
	if _, err := NewSLORisk(nil); !errors.Is(err, ErrConfig) {
		t.Errorf("a mask without a model: %v", err)
	}
}

// TestSLORiskAllow checks the rule risk(p) − min risk > WCost + WPerf +
// WCarbon (= 1) with SLAPenalty 10: a mostly-cold short app keeps only
// AWS; a cold-start rate of 0.15 masks Azure (risk 1.275) but not GCP
// (0.825); a warm app and a long one keep every provider.
func TestSLORiskAllow(t *testing.T) {
	s, err := NewSLORisk(testModel(t))
	if err != nil {
		t.Fatal(err)
	}
	short := func(inv int64, cold schemas.Value) schemas.StrategicRow {
		return schemas.StrategicRow{App: "a", Invocations: inv, DurationMeanMS: 100, DurationP95MS: 200, ColdStartRate: cold}
	}
	for _, tc := range []struct {
		name string
		row  schemas.StrategicRow
		want [3]bool
	}{
		{"tiny, every invocation cold", short(3, schemas.Some(1)), [3]bool{true, false, false}},
		{"no invocation yesterday", short(0, schemas.Some(0)), [3]bool{true, false, false}},
		{"no cold-start rate", short(40, schemas.Value{}), [3]bool{true, false, false}},
		{"cold-start rate 0.15", short(40, schemas.Some(0.15)), [3]bool{true, false, true}},
		{"warm", short(100_000, schemas.Some(0.01)), [3]bool{true, true, true}},
		{"long functions", schemas.StrategicRow{App: "a", Invocations: 3, DurationMeanMS: 2000, DurationP95MS: 3000, ColdStartRate: schemas.Some(1)}, [3]bool{true, true, true}},
	} {
		var got [3]bool
		masked := s.Allow(&tc.row, &got)
		if got != tc.want || masked != (tc.want != [3]bool{true, true, true}) {
			t.Errorf("%s: allowed %v (masked %v), want %v", tc.name, got, masked, tc.want)
		}
	}
}

func TestArgmaxAllowed(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name    string
		q       []float32
		allowed [3]bool
		want    int
		nan     bool
	}{
		{"all allowed", []float32{1, 3, 2}, [3]bool{true, true, true}, 1, false},
		{"best masked", []float32{1, 3, 2}, [3]bool{true, false, true}, 2, false},
		{"only one", []float32{1, 3, 2}, [3]bool{true, false, false}, 0, false},
		{"none allowed: unmasked", []float32{1, 3, 2}, [3]bool{}, 1, false},
		{"tie: lowest allowed", []float32{2, 2, 2}, [3]bool{false, true, true}, 1, false},
		{"masked NaN ignored", []float32{nan, 3, 2}, [3]bool{false, true, true}, 1, false},
		{"allowed NaN", []float32{1, nan, 2}, [3]bool{false, true, true}, 2, true},
		{"every allowed NaN: first allowed", []float32{1, nan, nan}, [3]bool{false, true, true}, 1, true},
	} {
		got, v := argmaxAllowed(tc.q, &tc.allowed)
		if got != tc.want || math.IsNaN(v) != tc.nan {
			t.Errorf("%s: %d (%v), want %d (NaN %v)", tc.name, got, v, tc.want, tc.nan)
		}
	}
	// With every provider allowed the draw is the unmasked one.
	all := [3]bool{true, true, true}
	for _, u := range []float64{0, 0.2, 0.34, 0.5, 0.67, 0.9999} {
		if got, want := pickAllowed(u, &all), min(int(u*3), 2); got != want {
			t.Errorf("pickAllowed(%v) = %d, want %d", u, got, want)
		}
	}
	two := [3]bool{true, false, true}
	if pickAllowed(0.3, &two) != 0 || pickAllowed(0.7, &two) != 2 {
		t.Errorf("pickAllowed over aws and gcp: %d, %d", pickAllowed(0.3, &two), pickAllowed(0.7, &two))
	}
}

// TestMaskedPolicy serves one trained network with and without the mask:
// the mask recorded in the checkpoint applies by default, an override
// replaces it, it needs the cloud model, it binds exploring policies too,
// and where it masks nothing the decisions are the unmasked ones.
func TestMaskedPolicy(t *testing.T) {
	cfg := smallConfig()
	cfg.Mask = MaskSLORisk
	l := mustLearner(t, cfg)
	fill(t, l, 8, 80)
	l.SetEpisode(5)
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	ckpt := buf.Bytes()
	m := testModel(t)
	load := func(o LoadOptions) *Policy {
		t.Helper()
		p, err := LoadPolicy(bytes.NewReader(ckpt), o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := LoadPolicy(bytes.NewReader(ckpt), LoadOptions{Seed: 1}); !errors.Is(err, ErrConfig) {
		t.Errorf("a slo-risk checkpoint loaded without a model: %v", err)
	}
	if _, err := LoadPolicy(bytes.NewReader(ckpt), LoadOptions{Seed: 1, Model: m, Mask: "bogus"}); !errors.Is(err, ErrConfig) {
		t.Errorf("an unknown mask override: %v", err)
	}
	// Half the apps tiny, short and cold (only AWS allowed), half warm.
	rows := strategicRows(21, 80)
	for i := range rows {
		if i%2 == 0 {
			rows[i].Invocations, rows[i].ColdStartRate = 2, schemas.Some(1)
			rows[i].DurationMeanMS, rows[i].DurationP95MS = 80, 150
		} else {
			rows[i].ColdStartRate = schemas.Some(0.001)
		}
	}
	masked := load(LoadOptions{Seed: 1, Model: m})
	plain := load(LoadOptions{Seed: 1, Model: m, Mask: MaskNone})
	dm, dp := decide(t, masked, 3, rows), decide(t, plain, 3, rows)
	changed := 0
	for i, r := range rows {
		switch {
		case i%2 == 0 && dm[r.App].Provider != "aws":
			t.Errorf("%s (tiny, cold, short): masked policy chose %s", r.App, dm[r.App].Provider)
		case i%2 == 1 && dm[r.App] != dp[r.App]:
			t.Errorf("%s (warm): masked %+v, unmasked %+v", r.App, dm[r.App], dp[r.App])
		}
		if dm[r.App].Action != dp[r.App].Action {
			changed++
		}
	}
	if masked.Stats.Masked != 40 || masked.Stats.MaskChanged != uint64(changed) || plain.Stats.Masked != 0 {
		t.Errorf("masked stats %+v (changed %d), unmasked %+v", masked.Stats, changed, plain.Stats)
	}
	explore := load(LoadOptions{Seed: 1, Model: m, Explore: true})
	for tick := range int64(5) {
		d := decide(t, explore, tick, rows)
		for i, r := range rows {
			if i%2 == 0 && d[r.App].Provider != "aws" {
				t.Fatalf("tick %d %s: exploring masked policy chose %s", tick, r.App, d[r.App].Provider)
			}
		}
	}
	if explore.Stats.Explored == 0 {
		t.Errorf("the exploring policy never explored: %+v", explore.Stats)
	}
}

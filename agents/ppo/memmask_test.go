package ppo

import (
	"errors"
	"math"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// TestMemoryMask checks which tiers the memory mask clears: those below
// the peak (1,100 MB clears 128–1,024 MB in every metro), none for no
// peak, and none when clearing would leave no action.
func TestMemoryMask(t *testing.T) {
	tiersOf := func(mask []bool) map[int32]bool {
		m := map[int32]bool{}
		for a, ok := range mask {
			if ok {
				m[int32(cloud.Tier(a%cloud.NumTiers).MB())] = true
			}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		peak    float64
		only    []int32 // the tiers it allows, in every metro
		smaller bool    // the mask given allows only tiers below 1,024 MB
		changed bool
	}{
		{"no peak", 0, []int32{128, 256, 512, 1024, 2048, 3008}, false, false},
		{"NaN peak", math.NaN(), []int32{128, 256, 512, 1024, 2048, 3008}, false, false},
		{"1,100 MB", 1100, []int32{2048, 3008}, false, true},
		{"exactly 1,024 MB", 1024, []int32{1024, 2048, 3008}, false, true},
		{"3,008 MB, capped at the largest tier", 3008, []int32{3008}, false, true},
		{"more than any tier", 4000, []int32{128, 256, 512, 1024, 2048, 3008}, false, false},
		{"only small tiers offered", 1100, []int32{128, 256, 512}, true, false},
	} {
		mask := AllAvailable().Mask(cloud.AWS)
		if tc.smaller {
			for a := range mask {
				mask[a] = a%cloud.NumTiers < 3
			}
		}
		changed := MemoryMask(mask, tc.peak)
		got := tiersOf(mask)
		if changed != tc.changed || len(got) != len(tc.only) {
			t.Errorf("%s: changed %v, tiers %v; want %v, %v", tc.name, changed, got, tc.changed, tc.only)
			continue
		}
		for _, mb := range tc.only {
			if !got[mb] {
				t.Errorf("%s: tier %d MB masked", tc.name, mb)
			}
		}
		n := 0
		for _, ok := range mask {
			if ok {
				n++
			}
		}
		if n != len(tc.only)*cloud.NumMetros {
			t.Errorf("%s: %d actions allowed, want %d tiers in each of %d metros", tc.name, n, len(tc.only), cloud.NumMetros)
		}
	}
}

func TestCheckMaskAndPeakOfState(t *testing.T) {
	for _, tc := range []struct {
		mask string
		f    schemas.FeatureSet
		ok   bool
	}{
		{"", schemas.TacticalSeed, true}, {MaskNone, schemas.TacticalPlacement, true},
		{MaskMemory, schemas.TacticalPlacementV2, true}, {MaskMemory, schemas.TacticalSeed, false},
		{MaskMemory, schemas.TacticalPlacement, false}, {"tiers", schemas.TacticalPlacementV2, false},
	} {
		if err := CheckMask(tc.mask, tc.f); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("CheckMask(%q, %s) = %v, want ok %v", tc.mask, tc.f, err, tc.ok)
		}
	}
	cfg := smallConfig(8).WithFeatures(schemas.TacticalSeed)
	cfg.Mask = MaskMemory
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("a memory mask on the seed's state validated: %v", err)
	}
	r := schemas.TacticalRow{Provider: "gcp", MemoryPeakMB: 1234.5, RequestRate: 1}
	if peak, ok := PeakOfState(r.AppendFeatures(nil, schemas.TacticalPlacementV2), schemas.TacticalPlacementV2); !ok || peak != 1234.5 {
		t.Errorf("peak of a placement-v2 state: %v, %v", peak, ok)
	}
	if _, ok := PeakOfState(r.AppendFeatures(nil, schemas.TacticalPlacement), schemas.TacticalPlacement); ok {
		t.Error("a placement-v1 state gave a peak")
	}
}

// TestMemoryMaskPolicy serves a placement-v2 model with the memory mask:
// sampled and greedy, no function is placed below its memory peak, the
// log-probability is that of the masked distribution, an override turns
// the mask off, and a model whose state lacks the peak is refused.
func TestMemoryMaskPolicy(t *testing.T) {
	cfg := smallConfig(128).WithFeatures(schemas.TacticalPlacementV2)
	cfg.Mask = MaskMemory
	l := mustLearner(t, cfg, 41)
	fillRollout(t, l, 41)
	if _, err := l.Update(); err != nil {
		t.Fatal(err)
	}
	rows := tacticalRows(42, 120)
	for i := range rows {
		rows[i].MemoryPeakMB = []float64{0, 300, 1100, 2500}[i%4]
	}
	for _, greedy := range []bool{false, true} {
		p := mustPolicy(t, l.Model(), PolicyOptions{Seed: 5, Greedy: greedy})
		for tick := range int64(4) {
			for i, d := range decide(t, p, tick, rows) {
				if float64(d.MemoryMB) < rows[i].MemoryPeakMB {
					t.Fatalf("greedy %v tick %d: %s/%s with a peak of %v MB placed at %d MB", greedy, tick, d.App, d.Func, rows[i].MemoryPeakMB, d.MemoryMB)
				}
			}
		}
		if got, want := p.Stats().MemoryMasked, uint64(4*90); got != want {
			t.Errorf("greedy %v: %d rows masked, want %d (three in four rows have a peak)", greedy, got, want)
		}
	}
	// The log-probability is the masked distribution's.
	p := mustPolicy(t, l.Model(), PolicyOptions{Seed: 5})
	d := decide(t, p, 0, rows[2:3])[0]
	mask := AllAvailable().Mask(cloud.AWS)
	MemoryMask(mask, rows[2].MemoryPeakMB)
	out, err := l.Model().Forward(rows[2].AppendFeatures(nil, schemas.TacticalPlacementV2), mask)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(out.LogProbs[d.Action]); math.Abs(d.LogProb.V-want) > 1e-5 {
		t.Errorf("log-probability %v, want the masked distribution's %v", d.LogProb.V, want)
	}
	off := mustPolicy(t, l.Model(), PolicyOptions{Seed: 5, Mask: MaskNone})
	decide(t, off, 0, rows)
	if off.Stats().MemoryMasked != 0 {
		t.Errorf("mask=none masked %d rows", off.Stats().MemoryMasked)
	}
	seed := mustLearner(t, smallConfig(8), 43)
	if _, err := NewPolicy(seed.Model(), PolicyOptions{Mask: MaskMemory}); !errors.Is(err, ErrConfig) {
		t.Errorf("a memory mask over the seed's state: %v", err)
	}
	if _, err := NewPolicy(l.Model(), PolicyOptions{Mask: "bogus"}); !errors.Is(err, ErrConfig) {
		t.Errorf("an unknown mask: %v", err)
	}
}

package schemas_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// TestParseFeatureSet checks the names a set is given by: full, short,
// empty (the layer's default); another layer's set or an unknown name is an
// error that lists the layer's sets.
func TestParseFeatureSet(t *testing.T) {
	tests := []struct {
		layer   schemas.Layer
		in      string
		want    schemas.FeatureSet
		wantErr bool
	}{
		{schemas.Tactical, "", schemas.TacticalSeed, false},
		{schemas.Tactical, "seed-v1", schemas.TacticalSeed, false},
		{schemas.Tactical, "placement-v1", schemas.TacticalPlacement, false},
		{schemas.Tactical, "tactical/placement-v1", schemas.TacticalPlacement, false},
		{schemas.Strategic, "", schemas.StrategicSeed, false},
		{schemas.Strategic, "placement-v1", schemas.StrategicPlacement, false},
		{schemas.Strategic, "placement-v2", "", true},
		{schemas.Tactical, "strategic/seed-v1", "", true},
		{schemas.Tactical, "placement-v9", "", true},
	}
	for _, tc := range tests {
		got, err := schemas.ParseFeatureSet(tc.layer, tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseFeatureSet(%s, %q) = %q, %v; want %q, error %v", tc.layer, tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), string(schemas.DefaultFeatureSet(tc.layer))) {
			t.Errorf("ParseFeatureSet(%s, %q): %v does not list the layer's sets", tc.layer, tc.in, err)
		}
	}
	for _, l := range schemas.Layers {
		for _, n := range schemas.FeatureSets(l) {
			f := schemas.FeatureSet(n)
			if f.Layer() != l || f.Dim() == 0 || f.Validate(l) != nil {
				t.Errorf("set %s: layer %s, dim %d", f, f.Layer(), f.Dim())
			}
		}
	}
}

// TestPlacementFeaturesMatchCatalog checks that the placement set's
// one-hots follow the catalog's metros and tiers, the PPO's action order.
func TestPlacementFeaturesMatchCatalog(t *testing.T) {
	if len(schemas.PlacementMetros) != cloud.NumMetros || len(schemas.PlacementTiersMB) != cloud.NumTiers {
		t.Fatalf("%d metros and %d tiers, the catalog has %d and %d", len(schemas.PlacementMetros), len(schemas.PlacementTiersMB), cloud.NumMetros, cloud.NumTiers)
	}
	for m := range cloud.Metro(cloud.NumMetros) {
		if schemas.PlacementMetros[m] != m.String() {
			t.Errorf("metro %d: %s, catalog %s", m, schemas.PlacementMetros[m], m)
		}
	}
	for i, mb := range cloud.TierMB {
		if int(schemas.PlacementTiersMB[i]) != mb {
			t.Errorf("tier %d: %d MB, catalog %d", i, schemas.PlacementTiersMB[i], mb)
		}
	}
}

// TestAppendFeatures checks the placement set: the seed's vector first,
// then the metro and tier one-hots, the descriptors; all zero and finite
// for a function with no history or an unknown placement.
func TestAppendFeatures(t *testing.T) {
	full := schemas.TacticalRow{App: "a", Func: "f", Invocations: 36, RequestRate: 0.01, PeakRate: 0.2, DurationMeanMS: 120, DurationP95MS: 900,
		CarbonG: schemas.Some(3.5), Provider: "gcp", Region: "eu-west", MemoryMB: 1024, Trend: 0.5}
	tests := []struct {
		name      string
		row       schemas.TacticalRow
		metro     int // -1: none
		tier      int
		wantTails [4]float32
	}{
		{"placed", full, 2, 3, [4]float32{120, 900, 0.2, 3.5}},
		{"no history", schemas.TacticalRow{App: "a", Func: "g"}, -1, -1, [4]float32{}},
		{"unknown placement", schemas.TacticalRow{App: "a", Func: "h", Region: "mars", MemoryMB: 999}, -1, -1, [4]float32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := tc.row.AppendFeatures(nil, schemas.TacticalSeed)
			v := tc.row.AppendFeatures([]float32{42}, schemas.TacticalPlacement)[1:]
			if len(seed) != schemas.TacticalDim || len(v) != schemas.TacticalPlacementDim || !slices.Equal(v[:schemas.TacticalDim], seed) {
				t.Fatalf("seed %d values, placement %d, want %d and %d with the seed's first", len(seed), len(v), schemas.TacticalDim, schemas.TacticalPlacementDim)
			}
			if !schemas.Finite(v) {
				t.Fatalf("non-finite features %v", v)
			}
			metros := v[schemas.TacticalDim : schemas.TacticalDim+cloud.NumMetros]
			tiers := v[schemas.TacticalDim+cloud.NumMetros : schemas.TacticalDim+cloud.NumMetros+cloud.NumTiers]
			for i, x := range metros {
				if (i == tc.metro) != (x == 1) || x != 0 && x != 1 {
					t.Errorf("metro one-hot %v, want %d", metros, tc.metro)
				}
			}
			for i, x := range tiers {
				if (i == tc.tier) != (x == 1) || x != 0 && x != 1 {
					t.Errorf("tier one-hot %v, want %d", tiers, tc.tier)
				}
			}
			if got := [4]float32(v[schemas.TacticalPlacementDim-4:]); got != tc.wantTails {
				t.Errorf("descriptors %v, want %v", got, tc.wantTails)
			}
		})
	}
	if log1p := schemas.TacticalLog1p(schemas.TacticalPlacement); len(log1p) != schemas.TacticalPlacementDim || !log1p[schemas.TacticalPlacementDim-1] || log1p[schemas.TacticalDim] {
		t.Errorf("placement log1p flags %v", log1p)
	}
}

// TestAppendFeaturesV2 checks what placement-v2 adds after placement-v1:
// the memory peak, the app's busiest hour and the state's hour on the
// circle; finite and 0 for the users' hour before any traffic.
func TestAppendFeaturesV2(t *testing.T) {
	tests := []struct {
		name string
		row  schemas.TacticalRow
		want [5]float32
	}{
		{"no history", schemas.TacticalRow{App: "a", Func: "f", AppPeakHour: -1}, [5]float32{0, 0, 0, 0, 1}},
		{"busy at 06 UTC, state for 18 UTC", schemas.TacticalRow{App: "a", Func: "f", MemoryPeakMB: 700, AppPeakHour: 6, Hour: 18}, [5]float32{700, 1, 0, -1, 0}},
		{"out of range hour", schemas.TacticalRow{App: "a", Func: "f", AppPeakHour: 24, Hour: 12}, [5]float32{0, 0, 0, 0, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v1 := tc.row.AppendFeatures(nil, schemas.TacticalPlacement)
			v := tc.row.AppendFeatures(nil, schemas.TacticalPlacementV2)
			if len(v) != schemas.TacticalPlacementV2Dim || !slices.Equal(v[:schemas.TacticalPlacementDim], v1) || !schemas.Finite(v) {
				t.Fatalf("v2 %v: want %d finite values starting with v1's %v", v, schemas.TacticalPlacementV2Dim, v1)
			}
			got := v[schemas.TacticalPlacementDim:]
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-6 {
					t.Fatalf("v2 tail %v, want %v", got, tc.want)
				}
			}
		})
	}
	log1p := schemas.TacticalLog1p(schemas.TacticalPlacementV2)
	if len(log1p) != schemas.TacticalPlacementV2Dim || !log1p[schemas.TacticalPlacementDim] || log1p[schemas.TacticalPlacementDim+1] {
		t.Errorf("placement-v2 log1p flags %v: want the memory peak's only among the new ones", log1p)
	}
	if !schemas.TacticalPlacementV2.HasPlacement() || schemas.TacticalSeed.HasPlacement() {
		t.Error("HasPlacement: want true for placement-v2, false for seed-v1")
	}
	v := (&schemas.TacticalRow{Region: "us-west", MemoryMB: 256}).AppendFeatures(nil, schemas.TacticalPlacementV2)
	if m, tier, ok := schemas.PlacementOf(v); !ok || m != 1 || tier != 1 {
		t.Errorf("PlacementOf a v2 vector: %d %d %v, want 1 1 true", m, tier, ok)
	}
}

// TestStrategicAppendFeatures checks strategic/placement-v1: the seed's
// vector first, then the provider and metro one-hots, the tier and memory
// peak, the utilisations and the users' hour on the circle — finite and 0
// where the row says nothing.
func TestStrategicAppendFeatures(t *testing.T) {
	tests := []struct {
		name string
		row  schemas.StrategicRow
		want [13]float32
	}{
		{"no telemetry", schemas.StrategicRow{App: "a", AppPeakHour: -1}, [13]float32{}},
		{"azure in eu-west, busy at 06 UTC", schemas.StrategicRow{App: "a", Provider: "azure", Region: "eu-west", MemoryMB: 512,
			MemoryPeakMB: 300, CPUUtil: schemas.Some(0.25), MemoryUtil: schemas.Some(0.5), AppPeakHour: 6},
			[13]float32{0, 1, 0, 0, 0, 1, 0, 512, 300, 0.25, 0.5, 1, 0}},
		{"gcp, unknown metro, hour out of range", schemas.StrategicRow{App: "a", Provider: "gcp", Region: "mars", AppPeakHour: 24},
			[13]float32{0, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v := tc.row.AppendFeatures(nil, schemas.StrategicSeed); !slices.Equal(v, tc.row.Vector()) {
				t.Fatalf("seed set %v, want the seed's vector %v", v, tc.row.Vector())
			}
			v := tc.row.AppendFeatures([]float32{7}, schemas.StrategicPlacement)
			if len(v) != 1+schemas.StrategicPlacementDim || v[0] != 7 || !slices.Equal(v[1:1+schemas.StrategicDim], tc.row.Vector()) || !schemas.Finite(v) {
				t.Fatalf("placement-v1 %v: want 7 then %d finite values starting with the seed's %v", v, schemas.StrategicPlacementDim, tc.row.Vector())
			}
			got := v[1+schemas.StrategicDim:]
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-6 {
					t.Fatalf("placement-v1 tail %v, want %v", got, tc.want)
				}
			}
		})
	}
	log1p := schemas.StrategicLog1p(schemas.StrategicPlacement)
	m := schemas.StrategicDim + 3 + len(schemas.PlacementMetros)
	if len(log1p) != schemas.StrategicPlacementDim || !log1p[m] || !log1p[m+1] || log1p[m+2] || log1p[schemas.StrategicDim] {
		t.Errorf("placement-v1 log1p flags %v: want the tier's and the memory peak's among the new ones", log1p)
	}
	if seed := schemas.StrategicLog1p(schemas.StrategicSeed); !slices.Equal(seed, log1p[:schemas.StrategicDim]) {
		t.Errorf("seed log1p flags %v differ from placement-v1's first %d %v", seed, schemas.StrategicDim, log1p[:schemas.StrategicDim])
	}
	if schemas.StrategicLog1p(schemas.TacticalSeed) != nil {
		t.Error("StrategicLog1p of a tactical set: want nil")
	}
}

// TestFeatureGroups checks that each tactical and strategic set's groups tile its vector
// in order, and that AblatedIndices maps names to their indices.
func TestFeatureGroups(t *testing.T) {
	for _, name := range append(schemas.FeatureSets(schemas.Tactical), schemas.FeatureSets(schemas.Strategic)...) {
		f := schemas.FeatureSet(name)
		at := 0
		for _, g := range schemas.FeatureGroups(f) {
			if g.From != at || g.To <= g.From {
				t.Fatalf("%s: group %+v does not start at %d", f, g, at)
			}
			at = g.To
		}
		if at != f.Dim() {
			t.Fatalf("%s: groups end at %d, the vector at %d", f, at, f.Dim())
		}
	}
	idx, err := schemas.AblatedIndices(schemas.TacticalPlacementV2, []string{"hour", "memory-peak", "hour"})
	if want := []int{schemas.TacticalPlacementDim, schemas.TacticalPlacementV2Dim - 2, schemas.TacticalPlacementV2Dim - 1}; err != nil || !slices.Equal(idx, want) {
		t.Fatalf("AblatedIndices: %v, %v; want %v", idx, err, want)
	}
	if _, err := schemas.AblatedIndices(schemas.TacticalPlacement, []string{"hour"}); err == nil || !strings.Contains(err.Error(), "placement, descriptors") {
		t.Fatalf("ablating hour of placement-v1: %v, want an error listing its groups", err)
	}
	if idx, err := schemas.AblatedIndices(schemas.StrategicSeed, []string{"app-id"}); err != nil || !slices.Equal(idx, []int{10}) {
		t.Fatalf("ablating the strategic app-id: %v, %v; want [10] (after the 10 metrics)", idx, err)
	}
	if _, err := schemas.AblatedIndices(schemas.StrategicSeed, []string{"placement"}); err == nil {
		t.Fatal("ablating placement of strategic/seed-v1 gave no error")
	}
	if g := schemas.FeatureGroups(schemas.OperationalSeed); g != nil {
		t.Fatalf("operational groups %v, want none", g)
	}
}

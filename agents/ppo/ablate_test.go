package ppo

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// TestAblate checks that an ablated feature group never reaches the
// network, in a trained and reloaded model: two states that differ only in
// ablated features get the same policy and value, and a difference in a
// kept feature still shows. Unknown groups are refused.
func TestAblate(t *testing.T) {
	cfg := smallConfig(64).WithFeatures(schemas.TacticalPlacementV2)
	cfg.Ablate = []string{"memory-peak", "users-hour"}
	l, data := trainedCheckpoint(t, cfg, 3, 4)
	m, err := LoadModel(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Config().Ablate, cfg.Ablate) {
		t.Fatalf("reloaded ablation %v, want %v", m.Config().Ablate, cfg.Ablate)
	}
	row := tacticalRows(9, 1)[0]
	row.Region, row.MemoryMB, row.Hour = "eu-west", 512, 3
	state := func(r schemas.TacticalRow) []float32 { return r.AppendFeatures(nil, schemas.TacticalPlacementV2) }
	base := state(row)
	other := row
	other.MemoryPeakMB, other.AppPeakHour = 2900, 17 // ablated groups only
	moved := row
	moved.Hour = 15 // a kept group
	for _, model := range []*Model{l.Model(), m} {
		out, err := model.Forward(slices.Concat(base, state(other), state(moved)), nil)
		if err != nil {
			t.Fatal(err)
		}
		a := Actions
		if !slices.Equal(out.Probs[:a], out.Probs[a:2*a]) || out.Values[0] != out.Values[1] {
			t.Errorf("states differing in ablated features only: policies or values differ (%v vs %v)", out.Values[0], out.Values[1])
		}
		if slices.Equal(out.Probs[:a], out.Probs[2*a:3*a]) {
			t.Error("states differing in the hour of day (kept) got the same policy")
		}
	}
	for _, tc := range []struct {
		set    schemas.FeatureSet
		ablate []string
	}{
		{schemas.TacticalPlacementV2, []string{"nope"}},
		{schemas.TacticalSeed, []string{"memory-peak"}},
	} {
		bad := smallConfig(64).WithFeatures(tc.set)
		bad.Ablate = tc.ablate
		if err := bad.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "want one of") {
			t.Errorf("ablating %v of %s: %v, want ErrConfig listing the groups", tc.ablate, tc.set, err)
		}
	}
}

package nn

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFitScaler(t *testing.T) {
	// Two features, five rows: feature 0 = 1..5, feature 1 constant.
	rows := []float32{1, 7, 2, 7, 3, 7, 4, 7, 5, 7}
	for _, tc := range []struct {
		kind          string
		center, scale [2]float32
	}{
		{ScalerRobust, [2]float32{3, 7}, [2]float32{2, 1}}, // median 3, IQR 4 − 2; constant feature gets scale 1
		{ScalerMinMax, [2]float32{1, 7}, [2]float32{4, 1}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s, err := FitScaler(tc.kind, rows, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			for j := range 2 {
				if s.Center[j] != tc.center[j] || s.Scale[j] != tc.scale[j] {
					t.Errorf("feature %d: centre %v scale %v, want %v %v", j, s.Center[j], s.Scale[j], tc.center[j], tc.scale[j])
				}
			}
		})
	}
}

func TestScalerRoundTrip(t *testing.T) {
	raw := []float32{0, 0.5, 10, 150, 0.2, 3, 40, 0.9, 7, 1e3, 0.1, -2}
	s, err := FitScaler(ScalerMinMax, raw, 3, []bool{true, false, false})
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.Transform(nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	// Min-max after log1p: the first feature's training range maps to [0, 1].
	if y[0] != 0 || math.Abs(float64(y[9])-1) > 1e-6 {
		t.Errorf("log1p min-max gave %v and %v, want 0 and 1", y[0], y[9])
	}
	back, err := s.Inverse(nil, y)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		if math.Abs(float64(back[i]-raw[i])) > 1e-3*math.Max(1, math.Abs(float64(raw[i]))) {
			t.Errorf("value %d: %v → %v → %v", i, raw[i], y[i], back[i])
		}
	}
	// JSON round trip, as in the checkpoint metadata.
	var s2 Scaler
	if err := json.Unmarshal(mustJSON(t, s), &s2); err != nil {
		t.Fatal(err)
	}
	y2, err := s2.Transform(make([]float32, len(raw)), raw)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, y, y2); d != 0 {
		t.Errorf("scaler changed through JSON: %g", d)
	}
}

func TestScalerIgnoresNonFiniteAndChecksShapes(t *testing.T) {
	s, err := FitScaler(ScalerRobust, []float32{1, float32(math.NaN()), 3, float32(math.Inf(1))}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Center[0] != 2 {
		t.Errorf("median %v, want 2 (non-finite values ignored)", s.Center[0])
	}
	if _, err := FitScaler(ScalerRobust, []float32{1, 2, 3}, 2, nil); !errors.Is(err, ErrShape) {
		t.Errorf("ragged rows: %v", err)
	}
	if _, err := FitScaler("zscore", []float32{1, 2}, 1, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := s.Transform(nil, []float32{1, 2, 3}); err != nil {
		t.Errorf("dim-1 scaler on 3 values: %v", err)
	}
	bad := &Scaler{Dim: 2, Center: []float32{0}, Scale: []float32{1, 1}}
	if err := bad.Validate(); !errors.Is(err, ErrShape) {
		t.Errorf("validate: %v", err)
	}
	zero := &Scaler{Dim: 1, Center: []float32{0}, Scale: []float32{0}}
	if err := zero.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("validate zero scale: %v", err)
	}
}

package nn

import (
	"fmt"
	"math"
	"slices"
)

// Scaler kinds.
const (
	// ScalerRobust centres on the median and divides by the interquartile
	// range.
	ScalerRobust = "robust"
	// ScalerMinMax maps the fitted minimum to 0 and the maximum to 1.
	ScalerMinMax = "minmax"
)

// Scaler is a per-feature affine transform, optionally after log1p:
// y = (f(x) − Center) / Scale, with f(x) = log1p(max(x, 0)) for the
// features marked Log1p and f(x) = x otherwise. It is fitted on training
// rows only and saved in the checkpoint metadata as JSON. Transform treats
// its input as consecutive rows of Dim values, so one Scaler of Dim 5
// scales every step of a flattened 12×5 operational sequence.
type Scaler struct {
	// Kind is ScalerRobust or ScalerMinMax (informational once fitted).
	Kind string `json:"kind"`
	// Dim is the number of features.
	Dim int `json:"dim"`
	// Log1p marks features transformed with log1p(max(x, 0)) before the
	// affine map; nil means none.
	Log1p []bool `json:"log1p,omitempty"`
	// Center and Scale are the per-feature offset and divisor. Scale is
	// never 0: a constant feature gets scale 1.
	Center []float32 `json:"center"`
	Scale  []float32 `json:"scale"`
}

// FitScaler fits a scaler of the given kind on rows (row-major, dim values
// per row). Non-finite values are ignored; a feature with no finite value
// gets centre 0 and scale 1. log1p may be nil or hold one flag per
// feature.
func FitScaler(kind string, rows []float32, dim int, log1p []bool) (*Scaler, error) {
	if dim <= 0 || len(rows) == 0 || len(rows)%dim != 0 {
		return nil, fmt.Errorf("fitting scaler: %w: %d values for %d features", ErrShape, len(rows), dim)
	}
	if log1p != nil && len(log1p) != dim {
		return nil, fmt.Errorf("fitting scaler: %w: %d log1p flags for %d features", ErrShape, len(log1p), dim)
	}
	if kind != ScalerRobust && kind != ScalerMinMax {
		return nil, fmt.Errorf("fitting scaler: %w: kind %q", ErrConfig, kind)
	}
	s := &Scaler{Kind: kind, Dim: dim, Center: make([]float32, dim), Scale: make([]float32, dim)}
	if log1p != nil {
		s.Log1p = slices.Clone(log1p)
	}
	col := make([]float64, 0, len(rows)/dim)
	for j := range dim {
		col = col[:0]
		for i := j; i < len(rows); i += dim {
			x := float64(rows[i])
			if math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
			if s.log(j) {
				x = math.Log1p(max(x, 0))
			}
			col = append(col, x)
		}
		s.Center[j], s.Scale[j] = 0, 1
		if len(col) == 0 {
			continue
		}
		slices.Sort(col)
		var center, scale float64
		if kind == ScalerRobust {
			center = quantile(col, 0.5)
			scale = quantile(col, 0.75) - quantile(col, 0.25)
		} else {
			center = col[0]
			scale = col[len(col)-1] - col[0]
		}
		if !(scale > 1e-12) {
			scale = 1
		}
		s.Center[j], s.Scale[j] = float32(center), float32(scale)
	}
	return s, nil
}

// quantile interpolates linearly in sorted values (NumPy's default).
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[hi]-sorted[lo])
}

func (s *Scaler) log(j int) bool { return s.Log1p != nil && s.Log1p[j] }

// Validate reports a scaler whose slices do not match Dim or whose scale
// is zero or not finite.
func (s *Scaler) Validate() error {
	if s.Dim <= 0 || len(s.Center) != s.Dim || len(s.Scale) != s.Dim || (s.Log1p != nil && len(s.Log1p) != s.Dim) {
		return fmt.Errorf("%w: scaler of dim %d with %d centres, %d scales, %d log flags", ErrShape, s.Dim, len(s.Center), len(s.Scale), len(s.Log1p))
	}
	for j := range s.Dim {
		if !finite32(s.Center[j]) || !finite32(s.Scale[j]) || s.Scale[j] == 0 {
			return fmt.Errorf("%w: scaler feature %d has centre %v and scale %v", ErrConfig, j, s.Center[j], s.Scale[j])
		}
	}
	return nil
}

// Transform writes the scaled values of x into dst (which may be x) and
// returns dst; x must hold a whole number of rows of Dim values. A nil dst
// is allocated.
func (s *Scaler) Transform(dst, x []float32) ([]float32, error) {
	if len(x)%s.Dim != 0 {
		return nil, fmt.Errorf("scaling: %w: %d values for %d features", ErrShape, len(x), s.Dim)
	}
	if dst == nil {
		dst = make([]float32, len(x))
	}
	if len(dst) != len(x) {
		return nil, fmt.Errorf("scaling: %w: destination of %d values for %d", ErrShape, len(dst), len(x))
	}
	for i, v := range x {
		j := i % s.Dim
		if s.log(j) {
			v = float32(math.Log1p(max(float64(v), 0)))
		}
		dst[i] = (v - s.Center[j]) / s.Scale[j]
	}
	return dst, nil
}

// Inverse undoes Transform (features marked Log1p come back through expm1,
// so negative raw values come back as 0).
func (s *Scaler) Inverse(dst, y []float32) ([]float32, error) {
	if len(y)%s.Dim != 0 {
		return nil, fmt.Errorf("unscaling: %w: %d values for %d features", ErrShape, len(y), s.Dim)
	}
	if dst == nil {
		dst = make([]float32, len(y))
	}
	if len(dst) != len(y) {
		return nil, fmt.Errorf("unscaling: %w: destination of %d values for %d", ErrShape, len(dst), len(y))
	}
	for i, v := range y {
		j := i % s.Dim
		x := v*s.Scale[j] + s.Center[j]
		if s.log(j) {
			x = float32(math.Expm1(float64(x)))
		}
		dst[i] = x
	}
	return dst, nil
}

package nn

import (
	"math"
	"testing"
)

func TestVectorMath(t *testing.T) {
	x := randn(5, 1003)
	for i := range x {
		x[i] *= 6
	}
	x[0], x[1], x[2], x[3] = 0, 100, -100, 1e-6
	for _, tc := range []struct {
		name string
		f    func(dst, src []float32)
		ref  func(float64) float64
	}{
		{"exp", vexp, math.Exp},
		{"sigmoid", vsigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }},
		{"tanh", vtanh, math.Tanh},
	} {
		got := make([]float32, len(x))
		tc.f(got, x)
		for i, v := range x {
			want := tc.ref(float64(v))
			if math.IsInf(want, 1) {
				want = math.MaxFloat32
			}
			tol := 1e-6*math.Abs(want) + 1e-7
			if tc.name == "exp" && v < -87 {
				tol = 1e-37
			}
			if math.Abs(float64(got[i])-want) > tol && !(tc.name == "exp" && v > 88) {
				t.Errorf("%s(%v) = %v, want %v", tc.name, v, got[i], want)
			}
		}
	}
	nan := []float32{float32(math.NaN()), 0, 0, 0, 0, 0, 0, 0, float32(math.NaN())}
	for _, f := range []func(dst, src []float32){vexp, vsigmoid, vtanh} {
		out := make([]float32, len(nan))
		f(out, nan)
		if !math.IsNaN(float64(out[0])) || !math.IsNaN(float64(out[8])) {
			t.Errorf("NaN did not propagate: %v", out)
		}
	}
}

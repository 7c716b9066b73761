package nn

import "math"

// Float32 exp, sigmoid and tanh for the fast backend, over slices: the
// AVX2 assembly does blocks of 8 where the CPU has it, the scalar Go
// versions (the same Cephes algorithm) the rest.

// expF is Cephes' expf: exp(x) = 2^n·e^r with |r| ≤ ln2/2 and a degree-5
// polynomial for e^r; relative error about 2e-7. Inputs are clamped to
// ±88.376 (exp of the lower bound gives 0).
func expF(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, -88.3762626647949), 88.3762626647949)
	fx := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	x -= fx * 0.693359375
	x -= fx * -2.12194440e-4
	y := float32(1.9875691500e-4)
	y = y*x + 1.3981999507e-3
	y = y*x + 8.3334519073e-3
	y = y*x + 4.1665795894e-2
	y = y*x + 1.6666665459e-1
	y = y*x + 5.0000001201e-1
	y = y*(x*x) + x + 1
	return y * math.Float32frombits(uint32(int32(fx)+127)<<23)
}

func sigmoidF(x float32) float32 { return 1 / (1 + expF(-x)) }

func tanhF(x float32) float32 { return 2/(1+expF(-2*x)) - 1 }

// vexp writes exp(src[i]) into dst[i]; dst and src may be the same slice.
func vexp(dst, src []float32) {
	dst = dst[:len(src)]
	m := 0
	if useAVX2 && len(src) >= 8 {
		m = len(src) &^ 7
		expAVX2(&dst[0], &src[0], m)
	}
	for i := m; i < len(src); i++ {
		dst[i] = expF(src[i])
	}
}

// vsigmoid writes σ(src[i]) into dst[i]; dst and src may be the same slice.
func vsigmoid(dst, src []float32) {
	dst = dst[:len(src)]
	m := 0
	if useAVX2 && len(src) >= 8 {
		m = len(src) &^ 7
		sigmoidAVX2(&dst[0], &src[0], m)
	}
	for i := m; i < len(src); i++ {
		dst[i] = sigmoidF(src[i])
	}
}

// vtanh writes tanh(src[i]) into dst[i]; dst and src may be the same slice.
func vtanh(dst, src []float32) {
	dst = dst[:len(src)]
	m := 0
	if useAVX2 && len(src) >= 8 {
		m = len(src) &^ 7
		tanhAVX2(&dst[0], &src[0], m)
	}
	for i := m; i < len(src); i++ {
		dst[i] = tanhF(src[i])
	}
}

//go:build !amd64 || purego

package nn

// useAVX2 is false off amd64 (or with the purego tag): the pure-Go kernels
// run.
var useAVX2 = false

// kernel6x16 computes one 6×16 tile of C (see kernel6x16Go).
func kernel6x16(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
	kernel6x16Go(kc, a, b, ldb, c, ldc, acc)
}

// kernel6x16Row is kernel6x16 with A read in place.
func kernel6x16Row(kc int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	kernel6x16RowGo(kc, a, lda, b, ldb, c, ldc, acc)
}

func expAVX2(dst, src *float32, n int)     { panic("no AVX2") }
func sigmoidAVX2(dst, src *float32, n int) { panic("no AVX2") }
func tanhAVX2(dst, src *float32, n int)    { panic("no AVX2") }

func lstmFwdAVX2(z, cp, c, tc, h *float32, n, stride int)   { panic("no AVX2") }
func lstmBwdAVX2(z, tc, dh, dc, cp *float32, n, stride int) { panic("no AVX2") }
func adamAVX2(k *adamConsts, w, grad, m, v *float32, n int) { panic("no AVX2") }

func reluAVX2(y, mask *float32, n int)       { panic("no AVX2") }
func reluBwdAVX2(d, o, mask *float32, n int) { panic("no AVX2") }

//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// useAVX2 reports whether the assembly kernels run: the CPU has AVX2 and
// FMA (and the OS saves the YMM registers, which cpu checks).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func sgemm6x16AVX2(kc int, a, b *float32, ldb int, c *float32, ldc int, acc bool)

// kernel6x16 computes one 6×16 tile of C (see kernel6x16Go).
func kernel6x16(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if !useAVX2 {
		kernel6x16Go(kc, a, b, ldb, c, ldc, acc)
		return
	}
	_ = a[kc*gemmMR-1]
	_ = b[(kc-1)*ldb+gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	sgemm6x16AVX2(kc, &a[0], &b[0], ldb, &c[0], ldc, acc)
}

//go:noescape
func sgemm6x16RowAVX2(kc int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc bool)

// kernel6x16Row is kernel6x16 with A read in place: row r of the tile's A
// is a[r*lda : r*lda+kc].
func kernel6x16Row(kc int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if !useAVX2 {
		kernel6x16RowGo(kc, a, lda, b, ldb, c, ldc, acc)
		return
	}
	_ = a[(gemmMR-1)*lda+kc-1]
	_ = b[(kc-1)*ldb+gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	sgemm6x16RowAVX2(kc, &a[0], lda, &b[0], ldb, &c[0], ldc, acc)
}

//go:noescape
func expAVX2(dst, src *float32, n int)

//go:noescape
func sigmoidAVX2(dst, src *float32, n int)

//go:noescape
func tanhAVX2(dst, src *float32, n int)

//go:noescape
func lstmFwdAVX2(z, cp, c, tc, h *float32, n, stride int)

//go:noescape
func lstmBwdAVX2(z, tc, dh, dc, cp *float32, n, stride int)

//go:noescape
func adamAVX2(k *adamConsts, w, grad, m, v *float32, n int)

//go:noescape
func reluAVX2(y, mask *float32, n int)

//go:noescape
func reluBwdAVX2(d, o, mask *float32, n int)

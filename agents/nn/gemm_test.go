package nn

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// naiveGemm is the float64 reference of gemm.
func naiveGemm(m, n, k int, a, b mat, c []float32, ldc int, acc bool) []float32 {
	at := func(x mat, i, j int) float64 {
		if x.t {
			return float64(x.d[j*x.ld+i])
		}
		return float64(x.d[i*x.ld+j])
	}
	out := make([]float32, len(c))
	copy(out, c)
	for i := range m {
		for j := range n {
			var s float64
			if acc {
				s = float64(c[i*ldc+j])
			}
			for p := range k {
				s += at(a, i, p) * at(b, p, j)
			}
			out[i*ldc+j] = float32(s)
		}
	}
	return out
}

func TestGemmMatchesNaive(t *testing.T) {
	var w gemmWork
	for _, tc := range []struct{ m, n, k int }{
		{1, 1, 1}, {6, 16, 4}, {7, 17, 5}, {64, 128, 11}, {13, 24, 300}, {128, 512, 128}, {5, 3, 513}, {97, 33, 257},
	} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					lda, ldb, ldc := tc.k+1, tc.n+2, tc.n+3
					if ta {
						lda = tc.m + 1
					}
					if tb {
						ldb = tc.k + 2
					}
					rowsA, rowsB := tc.m, tc.k
					if ta {
						rowsA = tc.k
					}
					if tb {
						rowsB = tc.n
					}
					a := mat{randn(1, rowsA*lda), lda, ta}
					b := mat{randn(2, rowsB*ldb), ldb, tb}
					c := randn(3, tc.m*ldc)
					want := naiveGemm(tc.m, tc.n, tc.k, a, b, c, ldc, acc)
					w.gemm(tc.m, tc.n, tc.k, a, b, c, ldc, acc)
					for i := range c {
						if d := math.Abs(float64(c[i] - want[i])); d > 1e-4*math.Sqrt(float64(tc.k)) {
							t.Fatalf("%+v ta %v tb %v acc %v: c[%d] = %v, want %v", tc, ta, tb, acc, i, c[i], want[i])
						}
					}
				}
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	for _, tc := range []struct{ m, n, k int }{{64, 512, 128}, {64, 128, 128}, {32, 128, 128}, {128, 512, 768}} {
		b.Run(fmt.Sprintf("%dx%dx%d", tc.m, tc.n, tc.k), func(b *testing.B) {
			var w gemmWork
			a := mat{randn(1, tc.m*tc.k), tc.k, false}
			var pb packedB
			pb.pack(mat{randn(2, tc.k*tc.n), tc.n, false}, tc.k, tc.n)
			c := make([]float32, tc.m*tc.n)
			start := cpuTime()
			for b.Loop() {
				w.gemmPacked(tc.m, a, &pb, c, tc.n, false)
			}
			b.ReportMetric(2*float64(tc.m*tc.n*tc.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			reportCPU(b, start, 2*float64(tc.m*tc.n*tc.k)/1e9, "GFLOP")
		})
	}
}

// TestGemmBitwiseIndependentOfLayout: an element of C is the same chain of
// multiply-adds whichever kernel computes it (A packed or read in place,
// B packed or read in place) and wherever its tile falls.
func TestGemmBitwiseIndependentOfLayout(t *testing.T) {
	var w gemmWork
	const m, n, k = 37, 45, 300
	a := randn(1, m*k)
	at := make([]float32, k*m)
	for i := range m {
		for p := range k {
			at[p*m+i] = a[i*k+p]
		}
	}
	b := randn(2, k*n)
	bt := make([]float32, n*k)
	for p := range k {
		for j := range n {
			bt[j*k+p] = b[p*n+j]
		}
	}
	ref := make([]float32, m*n)
	w.gemm(m, n, k, mat{a, k, false}, mat{b, n, false}, ref, n, false)
	for _, tc := range []struct {
		name string
		a, b mat
	}{
		{"A transposed", mat{at, m, true}, mat{b, n, false}},
		{"B transposed", mat{a, k, false}, mat{bt, k, true}},
		{"both transposed", mat{at, m, true}, mat{bt, k, true}},
	} {
		c := make([]float32, m*n)
		w.gemm(m, n, k, tc.a, tc.b, c, n, false)
		if !slices.Equal(c, ref) {
			t.Errorf("%s: result differs in its bits", tc.name)
		}
	}
	// Rows computed apart (as shards do) equal rows computed together.
	c := make([]float32, m*n)
	w.gemm(20, n, k, mat{a, k, false}, mat{b, n, false}, c, n, false)
	w.gemm(m-20, n, k, mat{a[20*k:], k, false}, mat{b, n, false}, c[20*n:], n, false)
	if !slices.Equal(c, ref) {
		t.Error("splitting the rows changed the bits")
	}
}

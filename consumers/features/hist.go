package features

import "math"

// histBase is the bucket growth factor of logHist: bucket i holds values x
// with ln(1+x)/ln(histBase) in [i, i+1), so a quantile read at the bucket's
// geometric centre is within ±2.5 % of the true value (for x ≫ 1).
const histBase = 1.05

var lnHistBase = math.Log(histBase)

// logHist is a deterministic, bounded-memory histogram of non-negative
// values (milliseconds) with logarithmic buckets.
type logHist struct {
	counts []int64
	n      int64
}

func (h *logHist) add(x float64) {
	if x < 0 || math.IsNaN(x) {
		x = 0
	}
	i := int(math.Log1p(x) / lnHistBase)
	for len(h.counts) <= i {
		h.counts = append(h.counts, 0)
	}
	h.counts[i]++
	h.n++
}

// quantile returns the value at quantile q in [0, 1]: the centre of the
// bucket holding the ⌈q·n⌉-th smallest value.
func (h *logHist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var c int64
	for i, k := range h.counts {
		c += k
		if c >= rank {
			lo := math.Expm1(float64(i) * lnHistBase)
			hi := math.Expm1(float64(i+1) * lnHistBase)
			return math.Sqrt((1+lo)*(1+hi)) - 1
		}
	}
	return math.Expm1(float64(len(h.counts)) * lnHistBase)
}

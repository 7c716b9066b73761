package nn

import "math"

// The CPU backend's optimiser step: the same Adam as adam.update
// (PyTorch's bias-corrected form), over the parameters split among
// threads by fixed ranges. Each value is updated on its own, so the
// result does not depend on the split.

// adamChunk is the granularity of the split.
const adamChunk = 4096

// updateFast applies one Adam step with the gradients scaled by scale.
func (a *adam) updateFast(ps *paramSet, grads [][]float32, scale float32, threads int) {
	a.t++
	b1, b2 := float32(a.cfg.Beta1), float32(a.cfg.Beta2)
	c1 := 1 - math.Pow(a.cfg.Beta1, float64(a.t))
	c2 := 1 - math.Pow(a.cfg.Beta2, float64(a.t))
	k := adamConsts{
		b1: b1, b2: b2, nb1: 1 - b1, nb2: 1 - b2,
		lr: float32(a.cfg.LearningRate / c1), rc2: float32(1 / math.Sqrt(c2)),
		eps: float32(a.cfg.Epsilon), scale: scale,
	}
	total := ps.count()
	S := max(1, min(threads, total/(4*adamChunk)))
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, total)
		off := 0
		for i, p := range ps.list {
			w := p.data()
			n := len(w)
			// The part of parameter i inside [lo, hi).
			from, to := max(lo-off, 0), min(hi-off, n)
			off += n
			if from >= to {
				continue
			}
			adamRange(&k, w[from:to], grads[i][from:to], a.m[i][from:to], a.v[i][from:to])
		}
	})
}

// adamConsts are one step's constants.
type adamConsts struct {
	b1, b2, nb1, nb2, lr, rc2, eps, scale float32
}

// adamRange updates w from g with the moments m and v (equal lengths).
func adamRange(k *adamConsts, w, g, m, v []float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	j0 := 0
	if useAVX2 && len(w) >= 8 {
		j0 = len(w) &^ 7
		adamAVX2(k, &w[0], &g[0], &m[0], &v[0], j0)
	}
	for j := j0; j < len(w); j++ {
		gj := g[j] * k.scale
		m[j] = k.b1*m[j] + k.nb1*gj
		v[j] = k.b2*v[j] + k.nb2*gj*gj
		w[j] -= k.lr * m[j] / (sqrt32(v[j])*k.rc2 + k.eps)
	}
}

// sumSquares returns the sum of the squares of every value, in float64
// with four partial sums (a fixed order).
func sumSquares(vs [][]float32) float64 {
	var s0, s1, s2, s3 float64
	for _, v := range vs {
		j := 0
		for ; j+4 <= len(v); j += 4 {
			x := v[j : j+4 : j+4]
			s0 += float64(x[0]) * float64(x[0])
			s1 += float64(x[1]) * float64(x[1])
			s2 += float64(x[2]) * float64(x[2])
			s3 += float64(x[3]) * float64(x[3])
		}
		for ; j < len(v); j++ {
			s0 += float64(v[j]) * float64(v[j])
		}
	}
	return (s0 + s1) + (s2 + s3)
}

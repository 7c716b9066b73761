package nn

import "math"

// Building blocks of the CPU backend. Activations are row-major
// rows×width slices of one shard's rows; weights are read from the
// network's parameters (the same tensors the gorgonia backend binds), so
// checkpoints, CopyFrom and SoftUpdate need no synchronisation. Gradients
// are accumulated into per-shard slices in paramSet order.

// fastShard is what every shard of every network has: its packing
// scratch and its gradient slices (shard 0 writes straight into the
// core's).
type fastShard struct {
	w     gemmWork
	grads [][]float32
}

// zeroGrads returns shard s's gradient slices, zeroed: the core's for
// shard 0, its own otherwise.
func (sh *fastShard) zeroGrads(s int, core [][]float32) [][]float32 {
	if s == 0 {
		sh.grads = core
	} else if len(sh.grads) != len(core) {
		sh.grads = make([][]float32, len(core))
		for i, g := range core {
			sh.grads[i] = make([]float32, len(g))
		}
	}
	for _, g := range sh.grads {
		clear(g)
	}
	return sh.grads
}

// sumShardGrads adds the gradients of shards 1.. into shard 0's (the
// core's), in shard order.
func sumShardGrads(core [][]float32, S int, shard func(s int) *fastShard) {
	for s := 1; s < S; s++ {
		for i, g := range shard(s).grads {
			dst := core[i][:len(g)]
			for j, v := range g {
				dst[j] += v
			}
		}
	}
}

// denseFwd writes x·W + b into y (rows×out) for x (rows×in).
func (sh *fastShard) denseFwd(rows int, x []float32, d denseParams, y []float32) {
	in, out := d.w.shape[0], d.w.shape[1]
	b := d.b.data()
	for r := range rows {
		copy(y[r*out:(r+1)*out], b)
	}
	sh.w.gemm(rows, out, in, mat{x, in, false}, mat{d.w.data(), out, false}, y, out, true)
}

// denseBwd accumulates the gradients of a dense layer given dy (rows×out)
// and its input x (rows×in), and writes dx = dy·Wᵀ when dx is not nil.
func (sh *fastShard) denseBwd(rows int, x, dy []float32, d denseParams, dx []float32) {
	sh.denseBwdAcc(rows, x, dy, d, dx, false)
}

// denseBwdAcc is denseBwd that adds dy·Wᵀ to dx when accDx is set.
func (sh *fastShard) denseBwdAcc(rows int, x, dy []float32, d denseParams, dx []float32, accDx bool) {
	in, out := d.w.shape[0], d.w.shape[1]
	// dW += xᵀ·dy
	sh.w.gemm(in, out, rows, mat{x, in, true}, mat{dy, out, false}, sh.grads[d.w.idx], out, true)
	colSums(sh.grads[d.b.idx], dy, rows, out)
	if dx != nil {
		sh.w.gemm(rows, in, out, mat{dy, out, false}, mat{d.w.data(), out, true}, dx, in, accDx)
	}
}

// colSums adds the column sums of m (rows×w) to dst.
func colSums(dst, m []float32, rows, w int) {
	dst = dst[:w]
	for r := range rows {
		row := m[r*w : (r+1)*w]
		for j, v := range row {
			dst[j] += v
		}
	}
}

// reluMask applies ReLU in place and, when mask is not nil, multiplies by
// the dropout mask. Branch-free: the signs of activations are not
// predictable.
func reluMask(y, mask []float32) {
	j0 := 0
	var mp *float32
	if mask != nil {
		mask = mask[:len(y)]
		if len(y) > 0 {
			mp = &mask[0]
		}
	}
	if useAVX2 && len(y) >= 8 {
		j0 = len(y) &^ 7
		reluAVX2(&y[0], mp, j0)
	}
	for j := j0; j < len(y); j++ {
		v := y[j]
		if v < 0 {
			v = 0
		}
		if mask != nil {
			v *= mask[j]
		}
		y[j] = v
	}
}

// reluMaskBwd turns the gradient with respect to a ReLU(·)⊙mask output o
// into the gradient with respect to the ReLU's input, in place (mask nil:
// no dropout).
func reluMaskBwd(d, o, mask []float32) {
	o = o[:len(d)]
	var mp *float32
	if mask != nil {
		mask = mask[:len(d)]
		if len(d) > 0 {
			mp = &mask[0]
		}
	}
	j0 := 0
	if useAVX2 && len(d) >= 8 {
		j0 = len(d) &^ 7
		reluBwdAVX2(&d[0], &o[0], mp, j0)
	}
	for j := j0; j < len(d); j++ {
		g := d[j]
		if mask != nil {
			g *= mask[j]
		}
		if !(o[j] > 0) {
			g = 0
		}
		d[j] = g
	}
}

// normBlock is the activations of one Linear → LayerNorm → ReLU → dropout
// block: xhat the normalised rows, inv their 1/σ, o the output.
// g receives the gradient with respect to o, d is scratch.
type normBlock struct {
	xhat, inv, o, g, d []float32
}

func (b *normBlock) size(rows, w int) {
	b.xhat = grow(b.xhat, rows*w)
	b.inv = grow(b.inv, rows)
	b.o = grow(b.o, rows*w)
	b.g = grow(b.g, rows*w)
	b.d = grow(b.d, rows*w)
}

// normFwd runs the block on x (rows×in) into b.o; mask is nil in
// evaluation or without dropout.
func (sh *fastShard) normFwd(rows int, x []float32, d denseParams, n normParams, eps float32, mask []float32, b *normBlock) {
	w := d.w.shape[1]
	b.size(rows, w)
	sh.denseFwd(rows, x, d, b.xhat)
	gain, shift := n.gain.data()[:w], n.shift.data()[:w]
	fw := float32(w)
	for r := range rows {
		z := b.xhat[r*w : (r+1)*w]
		var sum float32
		for _, v := range z {
			sum += v
		}
		mean := sum / fw
		var sq float32
		for j, v := range z {
			c := v - mean
			z[j] = c
			sq += c * c
		}
		inv := float32(1 / math.Sqrt(float64(sq/fw+eps)))
		b.inv[r] = inv
		o := b.o[r*w : (r+1)*w]
		for j, c := range z {
			xh := c * inv
			z[j] = xh
			o[j] = xh*gain[j] + shift[j]
		}
	}
	var m []float32
	if mask != nil {
		m = mask[:rows*w]
	}
	reluMask(b.o[:rows*w], m)
}

// normBwd back-propagates b.g (the gradient with respect to the output,
// overwritten) through the block whose input was x; it accumulates the
// parameter gradients and writes the gradient with respect to x into dx
// when dx is not nil.
func (sh *fastShard) normBwd(rows int, x []float32, d denseParams, n normParams, mask []float32, b *normBlock, dx []float32) {
	w := d.w.shape[1]
	do := b.g
	var m []float32
	if mask != nil {
		m = mask[:rows*w]
	}
	reluMaskBwd(do[:rows*w], b.o, m)
	gain := n.gain.data()[:w]
	dg, ds := sh.grads[n.gain.idx][:w], sh.grads[n.shift.idx][:w]
	fw := float32(w)
	dz := b.d
	for r := range rows {
		dy := do[r*w : (r+1)*w]
		xh := b.xhat[r*w : (r+1)*w]
		var s1, s2 float32
		for j, g := range dy {
			dg[j] += g * xh[j]
			ds[j] += g
			dxh := g * gain[j]
			s1 += dxh
			s2 += dxh * xh[j]
		}
		m1, m2 := s1/fw, s2/fw
		inv := b.inv[r]
		dzr := dz[r*w : (r+1)*w]
		for j, g := range dy {
			dzr[j] = inv * (g*gain[j] - m1 - xh[j]*m2)
		}
	}
	sh.denseBwd(rows, x, dz, d, dx)
}

// reluBwd zeroes the gradient d where the ReLU output o is not positive.
func reluBwd(d, o []float32) { reluMaskBwd(d, o, nil) }

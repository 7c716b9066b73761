package nn

// lstmFast is the LSTM predictor on the CPU backend. Each layer's four
// gates are fused: one in×4H input product over all time steps at once,
// one H×4H recurrent product per step, gates computed in place; the
// backward pass runs the recurrence once per layer and then takes the
// weight gradients of all steps in one product each. The weights are
// joined and packed once per call, shared by the shards.
type lstmFast struct {
	n      *LSTMNet
	shards []*lstmShard
	// Both layers' weights with the gates joined (in×4H and H×4H,
	// row-major; the kernel reads them in place) and the packed
	// transposes the backward pass multiplies by.
	wx, wh   [2][]float32
	wxT, whT [2]packedB
	bias     [2][]float32
}

// lstmLayerAct is one layer's activations over T steps of R rows, all
// step-major: z the gates (pre-activations, then activations, then their
// gradients), c the cell states, tc tanh(c), h the hidden states with a
// leading block of zeros (h[t+1] is the state after step t), dh the
// gradients with respect to the hidden states.
type lstmLayerAct struct {
	z, c, tc, h, dh []float32
}

type lstmShard struct {
	fastShard
	x1, x2    []float32 // layer inputs, T×R×F and T×R×H1 (dropped h1)
	l         [2]lstmLayerAct
	dc, dhRec []float32 // R×H scratch of the recurrence
	hd, d0, y []float32 // head: dropped last h2, dense hidden, output
	gd0, ghd  []float32
	dy        []float32
	dx2       []float32 // gradient with respect to x2, T×R×H1
	tmp       []float32 // fused weight-gradient scratch
	loss      float64
}

func (e *lstmFast) close() {}

// prepare joins the gates' weights and packs the transposes for one call.
func (e *lstmFast) prepare(train bool) {
	for k, l := range e.n.l.rnn {
		in, H := l.in, l.hidden
		e.wx[k] = grow(e.wx[k], in*4*H)
		joinGates(e.wx[k], l.wx, in, H)
		if train && k == 1 {
			e.wxT[k].pack(mat{e.wx[k], 4 * H, true}, 4*H, in)
		}
		e.wh[k] = grow(e.wh[k], H*4*H)
		joinGates(e.wh[k], l.wh, H, H)
		if train {
			e.whT[k].pack(mat{e.wh[k], 4 * H, true}, 4*H, H)
		}
		e.bias[k] = grow(e.bias[k], 4*H)
		for g, p := range l.b {
			copy(e.bias[k][g*H:(g+1)*H], p.data())
		}
	}
}

// joinGates writes the four in×H gate matrices side by side into dst
// (in×4H).
func joinGates(dst []float32, ws [4]*param, in, H int) {
	for g, p := range ws {
		w := p.data()
		for i := range in {
			copy(dst[i*4*H+g*H:i*4*H+(g+1)*H], w[i*H:(i+1)*H])
		}
	}
}

func (e *lstmFast) shard(s, rows int) *lstmShard {
	for len(e.shards) <= s {
		e.shards = append(e.shards, &lstmShard{})
	}
	sh := e.shards[s]
	c := e.n.cfg
	T, R := c.Steps, rows
	sh.x1 = grow(sh.x1, T*R*c.Features)
	sh.x2 = grow(sh.x2, T*R*c.Hidden[0])
	sh.dx2 = grow(sh.dx2, T*R*c.Hidden[0])
	for k, H := range c.Hidden {
		a := &sh.l[k]
		a.z = grow(a.z, T*R*4*H)
		a.c = grow(a.c, T*R*H)
		a.tc = grow(a.tc, T*R*H)
		a.h = grow(a.h, (T+1)*R*H)
		a.dh = grow(a.dh, T*R*H)
	}
	Hm := max(c.Hidden[0], c.Hidden[1])
	sh.dc, sh.dhRec = grow(sh.dc, R*Hm), grow(sh.dhRec, R*Hm)
	sh.hd, sh.ghd = grow(sh.hd, R*c.Hidden[1]), grow(sh.ghd, R*c.Hidden[1])
	sh.d0, sh.gd0 = grow(sh.d0, R*c.DenseHidden), grow(sh.gd0, R*c.DenseHidden)
	sh.y, sh.dy = grow(sh.y, R*c.Outputs), grow(sh.dy, R*c.Outputs)
	sh.tmp = grow(sh.tmp, max(c.Features, Hm)*4*Hm)
	return sh
}

// layerFwd runs layer k over T steps of R rows of x (T×R×in).
func (e *lstmFast) layerFwd(sh *lstmShard, k, R int, x []float32) {
	T := e.n.cfg.Steps
	H := e.n.l.rnn[k].hidden
	a := &sh.l[k]
	G := 4 * H
	z := a.z[:T*R*G]
	for r := range T * R {
		copy(z[r*G:(r+1)*G], e.bias[k])
	}
	in := e.n.l.rnn[k].in
	sh.w.gemm(T*R, G, in, mat{x, in, false}, mat{e.wx[k], G, false}, z, G, true)
	clear(a.h[:R*H])
	for t := range T {
		zt := z[t*R*G : (t+1)*R*G]
		if t > 0 {
			sh.w.gemm(R, G, H, mat{a.h[t*R*H : (t+1)*R*H], H, false}, mat{e.wh[k], G, false}, zt, G, true)
		}
		ct, tct := a.c[t*R*H:(t+1)*R*H], a.tc[t*R*H:(t+1)*R*H]
		ht := a.h[(t+1)*R*H : (t+2)*R*H]
		for r := range R {
			var cp []float32
			if t > 0 {
				cp = a.c[(t-1)*R*H+r*H : (t-1)*R*H+(r+1)*H]
			}
			lstmCellFwd(zt[r*G:(r+1)*G], cp, ct[r*H:(r+1)*H], tct[r*H:(r+1)*H], ht[r*H:(r+1)*H])
		}
	}
}

// lstmCellFwd runs one row of an LSTM step: z (4H) holds the gates'
// pre-activations and receives their activations; cp is the previous cell
// state (nil at the first step); it writes c, tanh(c) and h (H each).
func lstmCellFwd(z, cp, c, tc, h []float32) {
	H := len(c)
	z, tc, h = z[:4*H], tc[:H], h[:H]
	j0 := 0
	if useAVX2 && H >= 8 {
		j0 = H &^ 7
		var cpp *float32
		if cp != nil {
			cpp = &cp[0]
		}
		lstmFwdAVX2(&z[0], cpp, &c[0], &tc[0], &h[0], j0, H)
	}
	for j := j0; j < H; j++ {
		i, f, g, o := sigmoidF(z[j]), sigmoidF(z[H+j]), tanhF(z[2*H+j]), sigmoidF(z[3*H+j])
		z[j], z[H+j], z[2*H+j], z[3*H+j] = i, f, g, o
		cj := i * g
		if cp != nil {
			cj += f * cp[j]
		}
		c[j] = cj
		tc[j] = tanhF(cj)
		h[j] = o * tc[j]
	}
}

// lstmCellBwd runs one row of an LSTM step's backward pass: z (4H) holds
// the gates' activations and receives the gradients with respect to their
// pre-activations; dh is the gradient with respect to h; dc holds the
// gradient with respect to c from the next step and receives the one with
// respect to the previous cell state cp (nil at the first step).
func lstmCellBwd(z, tc, dh, dc, cp []float32) {
	H := len(dh)
	z, tc, dc = z[:4*H], tc[:H], dc[:H]
	j0 := 0
	if useAVX2 && H >= 8 {
		j0 = H &^ 7
		var cpp *float32
		if cp != nil {
			cpp = &cp[0]
		}
		lstmBwdAVX2(&z[0], &tc[0], &dh[0], &dc[0], cpp, j0, H)
	}
	for j := j0; j < H; j++ {
		i, f, g, o, tcj := z[j], z[H+j], z[2*H+j], z[3*H+j], tc[j]
		dhj := dh[j]
		dct := dc[j] + dhj*o*(1-tcj*tcj)
		var df float32
		if cp != nil {
			df = dct * cp[j]
		}
		dc[j] = dct * f
		z[j] = dct * g * i * (1 - i)
		z[H+j] = df * f * (1 - f)
		z[2*H+j] = dct * i * (1 - g*g)
		z[3*H+j] = dhj * tcj * o * (1 - o)
	}
}

// layerBwd back-propagates a.dh (T×R×H, the gradients with respect to the
// hidden states from above; overwritten) through layer k whose input was
// x; it accumulates the layer's parameter gradients and writes the
// gradient with respect to x into dx when dx is not nil.
func (e *lstmFast) layerBwd(sh *lstmShard, k, R int, x, dx []float32) {
	T := e.n.cfg.Steps
	l := e.n.l.rnn[k]
	H, in := l.hidden, l.in
	G := 4 * H
	a := &sh.l[k]
	dc, dhRec := sh.dc[:R*H], sh.dhRec[:R*H]
	clear(dc)
	for t := T - 1; t >= 0; t-- {
		zt := a.z[t*R*G : (t+1)*R*G]
		dht := a.dh[t*R*H : (t+1)*R*H]
		if t < T-1 {
			for j, v := range dhRec {
				dht[j] += v
			}
		}
		for r := range R {
			var cp []float32
			if t > 0 {
				cp = a.c[(t-1)*R*H+r*H : (t-1)*R*H+(r+1)*H]
			}
			lstmCellBwd(zt[r*G:(r+1)*G], a.tc[t*R*H+r*H:t*R*H+(r+1)*H], dht[r*H:(r+1)*H], dc[r*H:(r+1)*H], cp)
		}
		if t > 0 {
			sh.w.gemmPacked(R, mat{zt, G, false}, &e.whT[k], dhRec, H, false)
		}
	}
	// Weight gradients of all steps at once.
	dz := a.z[:T*R*G]
	tmp := sh.tmp[:max(in, H)*G]
	sh.w.gemm(in, G, T*R, mat{x, in, true}, mat{dz, G, false}, tmp, G, false)
	addGates(sh.grads, l.wx, tmp, in, H)
	// The first step has no recurrent input: dWh sums h(t−1)ᵀ·dz(t) over t ≥ 1.
	sh.w.gemm(H, G, (T-1)*R, mat{a.h[R*H : T*R*H], H, true}, mat{dz[R*G:], G, false}, tmp, G, false)
	addGates(sh.grads, l.wh, tmp, H, H)
	for g, p := range l.b {
		db := sh.grads[p.idx][:H]
		for r := range T * R {
			row := dz[r*G+g*H : r*G+(g+1)*H]
			for j, v := range row {
				db[j] += v
			}
		}
	}
	if dx != nil {
		sh.w.gemmPacked(T*R, mat{dz, G, false}, &e.wxT[k], dx, in, false)
	}
}

// addGates adds the fused in×4H gradient src to the four gates' gradients.
func addGates(grads [][]float32, ws [4]*param, src []float32, in, H int) {
	for g, p := range ws {
		d := grads[p.idx]
		for i := range in {
			dst, s := d[i*H:(i+1)*H], src[i*4*H+g*H:i*4*H+(g+1)*H]
			for j, v := range s {
				dst[j] += v
			}
		}
	}
}

// fwd runs rows [lo, hi) forward into sh.y.
func (e *lstmFast) fwd(sh *lstmShard, seqs []float32, lo, hi int, masks [][]float32) {
	c, l := e.n.cfg, e.n.l
	T, F, R := c.Steps, c.Features, hi-lo
	H1, H2 := c.Hidden[0], c.Hidden[1]
	for t := range T {
		for r := range R {
			copy(sh.x1[(t*R+r)*F:(t*R+r+1)*F], seqs[((lo+r)*T+t)*F:((lo+r)*T+t+1)*F])
		}
	}
	e.layerFwd(sh, 0, R, sh.x1)
	h1 := sh.l[0].h[R*H1 : (T+1)*R*H1]
	x2 := h1
	if masks != nil {
		x2 = sh.x2[:T*R*H1]
		for t := range T {
			m := maskRows(masks, t, H1, lo, hi)
			for j := range m {
				x2[t*R*H1+j] = h1[t*R*H1+j] * m[j]
			}
		}
	}
	e.layerFwd(sh, 1, R, x2)
	last := sh.l[1].h[T*R*H2 : (T+1)*R*H2]
	hd := sh.hd[:R*H2]
	if masks != nil {
		m := maskRows(masks, T, H2, lo, hi)
		for j := range hd {
			hd[j] = last[j] * m[j]
		}
	} else {
		copy(hd, last)
	}
	sh.denseFwd(R, hd, l.dense[0], sh.d0)
	reluMask(sh.d0[:R*c.DenseHidden], nil)
	sh.denseFwd(R, sh.d0, l.dense[1], sh.y)
}

// lstmChunk bounds the rows a shard runs at once in evaluation, so a
// large batch does not need activations for all its rows.
const lstmChunk = 256

func (e *lstmFast) forward(dst, seqs []float32, batch int) ([]float32, error) {
	O := e.n.cfg.Outputs
	dst = grow(dst, batch*O)
	e.prepare(false)
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, min(hi-lo, lstmChunk))
	}
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		sh := e.shards[s]
		for c0 := lo; c0 < hi; c0 += lstmChunk {
			c1 := min(c0+lstmChunk, hi)
			e.fwd(sh, seqs, c0, c1, nil)
			copy(dst[c0*O:c1*O], sh.y[:(c1-c0)*O])
		}
	})
	return dst, nil
}

func (e *lstmFast) lossGrad(b LSTMBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	c, l := e.n.cfg, e.n.l
	T, O := c.Steps, c.Outputs
	H1, H2 := c.Hidden[0], c.Hidden[1]
	e.prepare(true)
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, hi-lo)
	}
	bu, bo := float32(c.BetaUnder), float32(c.BetaOver)
	inv := 1 / float32(batch*O)
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		R := hi - lo
		sh := e.shards[s]
		sh.zeroGrads(s, grads)
		e.fwd(sh, b.Seqs, lo, hi, masks)
		var loss float64
		for j := range R * O {
			d := sh.y[j] - b.Targets[lo*O+j]
			switch {
			case d > 0:
				loss += float64(bo * d * d)
				sh.dy[j] = 2 * bo * d * inv
			case d < 0:
				loss += float64(bu * d * d)
				sh.dy[j] = 2 * bu * d * inv
			default:
				sh.dy[j] = 0
			}
		}
		sh.loss = loss
		// Head.
		sh.denseBwd(R, sh.d0, sh.dy, l.dense[1], sh.gd0)
		reluBwd(sh.gd0[:R*c.DenseHidden], sh.d0)
		sh.denseBwd(R, sh.hd, sh.gd0, l.dense[0], sh.ghd)
		// Layer 2: only the last hidden state feeds the head.
		a2 := &sh.l[1]
		clear(a2.dh[:(T-1)*R*H2])
		last := a2.dh[(T-1)*R*H2 : T*R*H2]
		copy(last, sh.ghd[:R*H2])
		if masks != nil {
			m := maskRows(masks, T, H2, lo, hi)
			for j := range last {
				last[j] *= m[j]
			}
		}
		x2 := sh.l[0].h[R*H1 : (T+1)*R*H1]
		if masks != nil {
			x2 = sh.x2[:T*R*H1]
		}
		e.layerBwd(sh, 1, R, x2, sh.dx2)
		// Layer 1: the gradient with respect to its (dropped) outputs.
		a1 := &sh.l[0]
		dh1 := a1.dh[:T*R*H1]
		copy(dh1, sh.dx2[:T*R*H1])
		if masks != nil {
			for t := range T {
				m := maskRows(masks, t, H1, lo, hi)
				d := dh1[t*R*H1 : (t+1)*R*H1]
				for j := range d {
					d[j] *= m[j]
				}
			}
		}
		e.layerBwd(sh, 0, R, sh.x1, nil)
	})
	sumShardGrads(grads, S, func(s int) *fastShard { return &e.shards[s].fastShard })
	var loss float64
	for s := range S {
		loss += e.shards[s].loss
	}
	return float32(loss / float64(batch*O)), nil
}

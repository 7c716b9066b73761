//go:build strata_cuda

package nn

// lstmCUDA is the LSTM predictor on the CUDA backend. A layer's input
// product runs once over all steps on cuBLAS; its recurrence is one
// kernel launch for all T steps (lstm_fwd: a block carries RB rows through
// every step, the recurrent weights read from L2), and so is the
// recurrence's backward pass (lstm_bwd); the weight gradients of all
// steps are one cuBLAS product each. The gates' weights are joined
// (in×4H, H×4H, 4H) in the device layout, so the upload joins them and the
// download splits their gradients.
type lstmCUDA struct {
	cudaBase
	n      *LSTMNet
	layers [2]lstmCUDALayer
	x1, x2 dvec
	dx2    dvec
	whT    dvec
	hd, d0 dvec
	y, dy  dvec
	gd0    dvec
	ghd    dvec
	loss   dvec
}

// lstmCUDALayer is one layer's device activations (the CPU backend's
// lstmLayerAct).
type lstmCUDALayer struct {
	z, c, tc, h, dh dvec
}

func newLSTMCUDA(n *LSTMNet) lstmEngine { return &lstmCUDA{n: n} }

func (e *lstmCUDA) layout() []cudaSeg {
	skip := map[*param]bool{}
	var segs []cudaSeg
	for _, l := range e.n.l.rnn {
		in, H := l.in, l.hidden
		G := 4 * H
		for _, ws := range [][4]*param{l.wx, l.wh, l.b} {
			for _, p := range ws {
				skip[p] = true
			}
		}
		join := func(ws [4]*param, rows int) cudaSeg {
			return cudaSeg{n: rows * G,
				pack: func(dst []float32) { joinGates(dst, ws, rows, H) },
				unpack: func(src []float32, grads [][]float32) {
					for g, p := range ws {
						d := grads[p.idx]
						for i := range rows {
							copy(d[i*H:(i+1)*H], src[i*G+g*H:i*G+(g+1)*H])
						}
					}
				}}
		}
		segs = append(segs, join(l.wx, in), join(l.wh, H), join(l.b, 1))
	}
	return append(segs, identitySegs(e.n.c.ps, skip)...)
}

// weights returns layer k's joined weights and gradients on the device.
func (e *lstmCUDA) weights(k int) (wx, wh, b, dwx, dwh, db uint64) {
	s := e.segs[3*k : 3*k+3]
	return at(e.dParams.p, s[0].off), at(e.dParams.p, s[1].off), at(e.dParams.p, s[2].off),
		at(e.dGrads.p, s[0].off), at(e.dGrads.p, s[1].off), at(e.dGrads.p, s[2].off)
}

// recThreads is the block size of the recurrence kernels for H.
func recThreads(H int) int { return min(1024, (4*H+31)&^31) }

func (e *lstmCUDA) layerFwd(k, R int, x dm) {
	T := e.n.cfg.Steps
	l := e.n.l.rnn[k]
	H, in := l.hidden, l.in
	G := 4 * H
	a := &e.layers[k]
	e.alloc(&a.z, T*R*G)
	e.alloc(&a.c, T*R*H)
	e.alloc(&a.tc, T*R*H)
	e.alloc(&a.h, (T+1)*R*H)
	wx, wh, b, _, _, _ := e.weights(k)
	e.biasRows(a.z.p, b, T*R, G)
	e.gemm(T*R, G, in, x, dm{wx, G, false}, a.z.p, G, true)
	e.launch("lstm_fwd", blocks(R, cudaRowsPerBlock), recThreads(H), cudaRowsPerBlock*5*H*4,
		a.z.p, a.c.p, a.tc.p, a.h.p, wh, ai(T), ai(R), ai(H))
}

// layerBwd back-propagates a.dh through layer k whose input was x; dx 0
// skips the input's gradient.
func (e *lstmCUDA) layerBwd(k, R int, x dm, dx uint64) {
	T := e.n.cfg.Steps
	l := e.n.l.rnn[k]
	H, in := l.hidden, l.in
	G := 4 * H
	a := &e.layers[k]
	wx, wh, _, dwx, dwh, db := e.weights(k)
	e.alloc(&e.whT, G*H)
	e.launch("transpose", blocks(H*G, 256), 256, 0, e.whT.p, wh, ai(H), ai(G))
	e.launch("lstm_bwd", blocks(R, cudaRowsPerBlock), recThreads(H), cudaRowsPerBlock*10*H*4,
		a.z.p, a.c.p, a.tc.p, a.dh.p, e.whT.p, ai(T), ai(R), ai(H))
	e.gemm(in, G, T*R, x.T(), dm{a.z.p, G, false}, dwx, G, true)
	if T > 1 {
		e.gemm(H, G, (T-1)*R, dm{at(a.h.p, R*H), H, true}, dm{at(a.z.p, R*G), G, false}, dwh, G, true)
	}
	e.colSums(db, a.z.p, T*R, G, G)
	if dx != 0 {
		e.gemm(T*R, in, G, dm{a.z.p, G, false}, dm{wx, G, true}, dx, in, false)
	}
}

// fwd runs R sequences (device, B×T×F) forward into e.y; masks are the
// T step masks of the first layer's output (contiguous) and the last
// hidden state's.
func (e *lstmCUDA) fwd(R int, seqs uint64, stepMasks, lastMask uint64) {
	c, l := e.n.cfg, e.n.l
	T, F := c.Steps, c.Features
	H1, H2 := c.Hidden[0], c.Hidden[1]
	e.alloc(&e.x1, T*R*F)
	e.launch("seq_tmajor", blocks(R*T*F, 256), 256, 0, e.x1.p, seqs, ai(R), ai(T), ai(F))
	e.layerFwd(0, R, dm{e.x1.p, F, false})
	h1 := at(e.layers[0].h.p, R*H1)
	x2 := h1
	if stepMasks != 0 {
		e.alloc(&e.x2, T*R*H1)
		e.mul(e.x2.p, h1, stepMasks, T*R*H1)
		x2 = e.x2.p
	}
	e.layerFwd(1, R, dm{x2, H1, false})
	last := at(e.layers[1].h.p, T*R*H2)
	e.alloc(&e.hd, R*H2)
	e.dropOrCopy(e.hd.p, last, lastMask, R*H2)
	e.alloc(&e.d0, R*c.DenseHidden)
	e.alloc(&e.y, R*c.Outputs)
	e.denseFwd(R, []dPart{{x: dm{e.hd.p, H2, false}, in: H2}}, e.dense(l.dense[0]), e.d0.p)
	e.reluMask(e.d0.p, 0, R*c.DenseHidden)
	e.denseFwd(R, []dPart{{x: dm{e.d0.p, c.DenseHidden, false}, in: c.DenseHidden}}, e.dense(l.dense[1]), e.y.p)
}

func (e *lstmCUDA) forward(dst, seqs []float32, batch int) ([]float32, error) {
	return e.evalForward(dst, e.n.c.ps, e.layout, batch, seqs, func(in uint64) { e.fwd(batch, in, 0, 0) }, &e.y, batch*e.n.cfg.Outputs)
}

func (e *lstmCUDA) lossGrad(b LSTMBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	loss, err := e.trainCall(grads, func() []float32 { return e.trainStep(b, batch, masks) })
	return float32(loss / float64(batch*e.n.cfg.Outputs)), err
}

// trainStep queues one training step and returns the per-value losses
// (valid after finish).
func (e *lstmCUDA) trainStep(b LSTMBatch, batch int, masks [][]float32) []float32 {
	c, l := e.n.cfg, e.n.l
	T, O, R := c.Steps, c.Outputs, batch
	H1, H2 := c.Hidden[0], c.Hidden[1]
	e.begin(e.n.c.ps, e.layout, graphKey{train: true, batch: batch, flags: len(masks)})
	// The step masks go up back to back, one T×R×H1 block.
	var stepMasks, lastMask uint64
	in := e.uploadMasks([]piece{{f: b.Seqs}, {f: b.Targets}}, masks, T)
	if masks != nil {
		stepMasks, lastMask = in[2], in[3]
	}
	e.fwd(R, in[0], stepMasks, lastMask)
	e.alloc(&e.dy, R*O)
	e.alloc(&e.loss, R*O)
	e.launch("asym_loss", blocks(R*O, 256), 256, 0, e.y.p, in[1], e.dy.p, e.loss.p, ai(R*O),
		af(float32(c.BetaUnder)), af(float32(c.BetaOver)), af(1/float32(batch*O)))
	// Head.
	e.alloc(&e.gd0, R*c.DenseHidden)
	e.alloc(&e.ghd, R*H2)
	e.denseBwd(R, []dPart{{x: dm{e.d0.p, c.DenseHidden, false}, in: c.DenseHidden, dx: e.gd0.p}}, e.dy.p, e.dense(l.dense[1]))
	e.reluMaskBwd(e.gd0.p, e.d0.p, 0, R*c.DenseHidden)
	e.denseBwd(R, []dPart{{x: dm{e.hd.p, H2, false}, in: H2, dx: e.ghd.p}}, e.gd0.p, e.dense(l.dense[0]))
	// Layer 2: only the last hidden state feeds the head.
	a2 := &e.layers[1]
	e.alloc(&a2.dh, T*R*H2)
	e.memset(a2.dh.p, (T-1)*R*H2)
	e.dropOrCopy(at(a2.dh.p, (T-1)*R*H2), e.ghd.p, lastMask, R*H2)
	x2 := at(e.layers[0].h.p, R*H1)
	if stepMasks != 0 {
		x2 = e.x2.p
	}
	e.alloc(&e.dx2, T*R*H1)
	e.layerBwd(1, R, dm{x2, H1, false}, e.dx2.p)
	// Layer 1: the gradient with respect to its (dropped) outputs.
	a1 := &e.layers[0]
	e.alloc(&a1.dh, T*R*H1)
	e.dropOrCopy(a1.dh.p, e.dx2.p, stepMasks, T*R*H1)
	e.layerBwd(0, R, dm{e.x1.p, c.Features, false}, 0)
	e.reserve(R * O)
	return e.download(e.loss.p, R*O)
}

// uploadMasks uploads ps, then the T step masks back to back and the last
// mask; it returns ps's addresses, then (with masks) the step block's and
// the last mask's.
func (e *lstmCUDA) uploadMasks(ps []piece, masks [][]float32, T int) []uint64 {
	if masks == nil {
		return e.upload(ps...)
	}
	return e.upload(append(ps, piece{fs: masks[:T]}, piece{f: masks[T]})...)
}

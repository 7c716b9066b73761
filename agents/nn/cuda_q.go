//go:build strata_cuda

package nn

// qCUDA is the Q-network on the CUDA backend: the CPU backend's passes
// with cuBLAS products and the kernels of cudaKernelSource; the concat
// before the head is two products into one output (no copy).
type qCUDA struct {
	cudaBase
	n                  *QNet
	s0, s1, a0, h0, h1 dBlock
	q, dq, loss        dvec
}

func newQCUDA(n *QNet) qEngine { return &qCUDA{n: n} }

func (e *qCUDA) layout() []cudaSeg { return identitySegs(e.n.c.ps, nil) }

// fwd runs the forward pass of batch rows of states (device) into e.q.
func (e *qCUDA) fwd(batch int, states uint64, masks []uint64) {
	c, l := e.n.cfg, e.n.l
	si, ai := c.StrategicInputs, c.AppInputs
	xs := dm{states, si + ai, false}
	xa := dm{at(states, si), si + ai, false}
	eps := float32(c.LayerNormEps)
	S0, H0, H1 := c.StrategicHidden[0], c.HeadHidden[0], c.HeadHidden[1]
	e.normFwd(batch, []dPart{{x: xs, in: si}}, e.dense(l.strategic[0]), e.norm(l.strategicLN[0]), eps, maskAddr(masks, 0), &e.s0)
	e.normFwd(batch, []dPart{{x: dm{e.s0.o.p, S0, false}, in: S0}}, e.dense(l.strategic[1]), e.norm(l.strategicLN[1]), eps, maskAddr(masks, 1), &e.s1)
	e.normFwd(batch, []dPart{{x: xa, in: ai}}, e.dense(l.app), e.norm(l.appLN), eps, maskAddr(masks, 2), &e.a0)
	e.normFwd(batch, e.catParts(), e.dense(l.head[0]), e.norm(l.headLN[0]), eps, maskAddr(masks, 3), &e.h0)
	e.normFwd(batch, []dPart{{x: dm{e.h0.o.p, H0, false}, in: H0}}, e.dense(l.head[1]), e.norm(l.headLN[1]), eps, maskAddr(masks, 4), &e.h1)
	e.alloc(&e.q, batch*c.Actions)
	e.denseFwd(batch, []dPart{{x: dm{e.h1.o.p, H1, false}, in: H1}}, e.dense(l.out), e.q.p)
}

// catParts is the head's input: the strategic encoding, then the app's,
// with their gradients going to the two blocks.
func (e *qCUDA) catParts() []dPart {
	c := e.n.cfg
	S1, A0 := c.StrategicHidden[1], c.AppHidden
	return []dPart{{x: dm{e.s1.o.p, S1, false}, in: S1, dx: e.s1.g.p}, {x: dm{e.a0.o.p, A0, false}, in: A0, dx: e.a0.g.p}}
}

func (e *qCUDA) forward(dst, states []float32, batch int) ([]float32, error) {
	return e.evalForward(dst, e.n.c.ps, e.layout, batch, states, func(in uint64) { e.fwd(batch, in, nil) }, &e.q, batch*e.n.cfg.Actions)
}

func (e *qCUDA) lossGrad(b QBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	loss, err := e.trainCall(grads, func() []float32 { return e.trainStep(b, batch, masks) })
	return float32(loss / float64(batch)), err
}

// trainStep queues one training step and returns the per-row losses
// (valid after finish).
func (e *qCUDA) trainStep(b QBatch, batch int, masks [][]float32) []float32 {
	c, l := e.n.cfg, e.n.l
	A := c.Actions
	e.begin(e.n.c.ps, e.layout, graphKey{train: true, batch: batch, flags: len(masks)})
	in := e.upload(append([]piece{{f: b.States}, {i: b.Actions}, {f: b.Targets}}, maskPieces(masks)...)...)
	var ms []uint64
	if masks != nil {
		ms = in[3:]
	}
	e.fwd(batch, in[0], ms)
	e.alloc(&e.dq, batch*A)
	e.alloc(&e.loss, batch)
	huber := 0
	if c.Loss != LossMSE {
		huber = 1
	}
	e.launch("q_loss", blocks(batch, 64), 64, 0, e.q.p, in[1], in[2], e.dq.p, e.loss.p, ai(batch), ai(A),
		af(float32(c.HuberDelta)), ai(huber), af(1/float32(batch)))
	si, ai_ := c.StrategicInputs, c.AppInputs
	S0, H0, H1 := c.StrategicHidden[0], c.HeadHidden[0], c.HeadHidden[1]
	e.denseBwd(batch, []dPart{{x: dm{e.h1.o.p, H1, false}, in: H1, dx: e.h1.g.p}}, e.dq.p, e.dense(l.out))
	e.normBwd(batch, []dPart{{x: dm{e.h0.o.p, H0, false}, in: H0, dx: e.h0.g.p}}, e.dense(l.head[1]), e.norm(l.headLN[1]), maskAddr(ms, 4), &e.h1)
	e.normBwd(batch, e.catParts(), e.dense(l.head[0]), e.norm(l.headLN[0]), maskAddr(ms, 3), &e.h0)
	e.normBwd(batch, []dPart{{x: dm{at(in[0], si), si + ai_, false}, in: ai_}}, e.dense(l.app), e.norm(l.appLN), maskAddr(ms, 2), &e.a0)
	e.normBwd(batch, []dPart{{x: dm{e.s0.o.p, S0, false}, in: S0, dx: e.s0.g.p}}, e.dense(l.strategic[1]), e.norm(l.strategicLN[1]), maskAddr(ms, 1), &e.s1)
	e.normBwd(batch, []dPart{{x: dm{in[0], si + ai_, false}, in: si}}, e.dense(l.strategic[0]), e.norm(l.strategicLN[0]), maskAddr(ms, 0), &e.s0)
	e.reserve(batch)
	return e.download(e.loss.p, batch)
}

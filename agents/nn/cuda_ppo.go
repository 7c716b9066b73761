//go:build strata_cuda

package nn

import "math"

// ppoCUDA is the actor-critic on the CUDA backend (the CPU backend's
// passes; the loss a thread per row, its terms summed on the host in
// float64 as the CPU backend sums them).
type ppoCUDA struct {
	cudaBase
	n                     *PPONet
	s0, s1                dBlock
	a0, a1, ga0, ga1      dvec
	logits, logp, dlogits dvec
	v0, gv0, v, dv, terms dvec
}

func newPPOCUDA(n *PPONet) ppoEngine { return &ppoCUDA{n: n} }

func (e *ppoCUDA) layout() []cudaSeg { return identitySegs(e.n.c.ps, nil) }

func (e *ppoCUDA) fwd(batch int, states, addMask uint64, masks []uint64) {
	c, l := e.n.cfg, e.n.l
	eps := float32(c.LayerNormEps)
	S0, S1, A0, A1, A := c.Shared[0], c.Shared[1], c.ActorHidden[0], c.ActorHidden[1], c.Actions
	e.normFwd(batch, []dPart{{x: dm{states, c.Inputs, false}, in: c.Inputs}}, e.dense(l.shared[0]), e.norm(l.sharedLN[0]), eps, maskAddr(masks, 0), &e.s0)
	e.normFwd(batch, []dPart{{x: dm{e.s0.o.p, S0, false}, in: S0}}, e.dense(l.shared[1]), e.norm(l.sharedLN[1]), eps, maskAddr(masks, 1), &e.s1)
	h := []dPart{{x: dm{e.s1.o.p, S1, false}, in: S1, dx: e.s1.g.p}}
	e.alloc(&e.a0, batch*A0)
	e.alloc(&e.a1, batch*A1)
	e.alloc(&e.logits, batch*A)
	e.alloc(&e.logp, batch*A)
	e.alloc(&e.v0, batch*c.CriticHidden)
	e.alloc(&e.v, batch)
	e.denseFwd(batch, h, e.dense(l.actor[0]), e.a0.p)
	e.reluMask(e.a0.p, 0, batch*A0)
	e.denseFwd(batch, []dPart{{x: dm{e.a0.p, A0, false}, in: A0}}, e.dense(l.actor[1]), e.a1.p)
	e.reluMask(e.a1.p, 0, batch*A1)
	e.denseFwd(batch, []dPart{{x: dm{e.a1.p, A1, false}, in: A1}}, e.dense(l.actor[2]), e.logits.p)
	e.launch("log_softmax", blocks(batch, 64), 64, 0, e.logits.p, addMask, e.logp.p, ai(batch), ai(A))
	e.denseFwd(batch, h, e.dense(l.critic[0]), e.v0.p)
	e.reluMask(e.v0.p, 0, batch*c.CriticHidden)
	e.denseFwd(batch, []dPart{{x: dm{e.v0.p, c.CriticHidden, false}, in: c.CriticHidden}}, e.dense(l.critic[1]), e.v.p)
}

func (e *ppoCUDA) forward(states, addMask []float32, batch int) (logp, values []float32, err error) {
	A := e.n.cfg.Actions
	var lp, v []float32
	err = e.call(func() error {
		e.begin(e.n.c.ps, e.layout, graphKey{batch: batch})
		in := e.upload(piece{f: states}, piece{f: addMask})
		e.fwd(batch, in[0], in[1], nil)
		e.reserve(batch*A + batch)
		lp = e.download(e.logp.p, batch*A)
		v = e.download(e.v.p, batch)
		return e.finish(nil)
	})
	if err != nil {
		return nil, nil, err
	}
	return append([]float32(nil), lp...), append([]float32(nil), v...), nil
}

func (e *ppoCUDA) lossGrad(b PPOBatch, addMask []float32, batch int, masks [][]float32, grads [][]float32) (PPOLosses, error) {
	c := e.n.cfg
	rewards := b.ActionRewards
	if c.CounterfactualCoef == 0 {
		rewards = nil
	}
	var terms []float32
	err := e.call(func() error {
		terms = e.trainStep(b, addMask, batch, masks, rewards)
		return e.finish(grads)
	})
	if err != nil {
		return PPOLosses{}, err
	}
	var policy, value, entropy, counterfactual float64
	for r := range batch {
		policy += float64(terms[4*r])
		value += float64(terms[4*r+1])
		entropy -= float64(terms[4*r+2])
		counterfactual += float64(terms[4*r+3])
	}
	return ppoLosses(c, batch, policy, value, entropy, counterfactual, rewards != nil), nil
}

// trainStep queues one training step and returns the per-row loss terms
// (valid after finish).
func (e *ppoCUDA) trainStep(b PPOBatch, addMask []float32, batch int, masks [][]float32, rewards []float32) []float32 {
	c, l := e.n.cfg, e.n.l
	A, A0, A1, S0, S1 := c.Actions, c.ActorHidden[0], c.ActorHidden[1], c.Shared[0], c.Shared[1]
	cc := float32(c.CounterfactualCoef)
	flags := len(masks)
	if rewards != nil {
		flags += 1 << 16
	}
	e.begin(e.n.c.ps, e.layout, graphKey{train: true, batch: batch, flags: flags})
	in := e.upload(append([]piece{{f: b.States}, {f: addMask}, {i: b.Actions}, {f: b.OldLogProbs}, {f: b.Advantages},
		{f: b.Returns}, {f: rewards}}, maskPieces(masks)...)...)
	var ms []uint64
	if masks != nil {
		ms = in[7:]
	}
	e.fwd(batch, in[0], in[1], ms)
	e.alloc(&e.dlogits, batch*A)
	e.alloc(&e.dv, batch)
	e.alloc(&e.terms, 4*batch)
	e.alloc(&e.ga0, batch*A0)
	e.alloc(&e.ga1, batch*A1)
	e.alloc(&e.gv0, batch*c.CriticHidden)
	invB := 1 / float32(batch)
	e.launch("ppo_loss", blocks(batch, 64), 64, 0, e.logp.p, in[2], in[3], in[4], in[5], e.v.p, in[6],
		e.dlogits.p, e.dv.p, e.terms.p, ai(batch), ai(A),
		af(float32(math.Log(c.RatioMin))), af(float32(math.Log(c.RatioMax))),
		af(1-float32(c.ClipEpsilon)), af(1+float32(c.ClipEpsilon)),
		af(float32(c.ValueCoef)), af(float32(c.EntropyCoef)), af(cc), af(invB))
	// Actor.
	e.denseBwd(batch, []dPart{{x: dm{e.a1.p, A1, false}, in: A1, dx: e.ga1.p}}, e.dlogits.p, e.dense(l.actor[2]))
	e.reluMaskBwd(e.ga1.p, e.a1.p, 0, batch*A1)
	e.denseBwd(batch, []dPart{{x: dm{e.a0.p, A0, false}, in: A0, dx: e.ga0.p}}, e.ga1.p, e.dense(l.actor[1]))
	e.reluMaskBwd(e.ga0.p, e.a0.p, 0, batch*A0)
	e.denseBwd(batch, []dPart{{x: dm{e.s1.o.p, S1, false}, in: S1, dx: e.s1.g.p}}, e.ga0.p, e.dense(l.actor[0]))
	// Critic, added to the shared extractor's gradient.
	e.denseBwd(batch, []dPart{{x: dm{e.v0.p, c.CriticHidden, false}, in: c.CriticHidden, dx: e.gv0.p}}, e.dv.p, e.dense(l.critic[1]))
	e.reluMaskBwd(e.gv0.p, e.v0.p, 0, batch*c.CriticHidden)
	e.denseBwd(batch, []dPart{{x: dm{e.s1.o.p, S1, false}, in: S1, dx: e.s1.g.p, accDx: true}}, e.gv0.p, e.dense(l.critic[0]))
	// Shared extractor.
	e.normBwd(batch, []dPart{{x: dm{e.s0.o.p, S0, false}, in: S0, dx: e.s0.g.p}}, e.dense(l.shared[1]), e.norm(l.sharedLN[1]), maskAddr(ms, 1), &e.s1)
	e.normBwd(batch, []dPart{{x: dm{in[0], c.Inputs, false}, in: c.Inputs}}, e.dense(l.shared[0]), e.norm(l.sharedLN[0]), maskAddr(ms, 0), &e.s0)
	e.reserve(4 * batch)
	return e.download(e.terms.p, 4*batch)
}

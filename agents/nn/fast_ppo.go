package nn

import "math"

// ppoFast is the actor-critic on the CPU backend.
type ppoFast struct {
	n      *PPONet
	shards []*ppoShard
}

type ppoShard struct {
	fastShard
	s0, s1                    normBlock
	a0, a1, ga0, ga1          []float32
	logits, logp, dlogits, ex []float32
	v0, gv0, v, dv            []float32
	policy, value, entropy    float64
	counterfactual            float64
}

func (e *ppoFast) close() {}

func (e *ppoFast) shard(s, rows int) *ppoShard {
	for len(e.shards) <= s {
		e.shards = append(e.shards, &ppoShard{})
	}
	sh := e.shards[s]
	c := e.n.cfg
	sh.a0, sh.ga0 = grow(sh.a0, rows*c.ActorHidden[0]), grow(sh.ga0, rows*c.ActorHidden[0])
	sh.a1, sh.ga1 = grow(sh.a1, rows*c.ActorHidden[1]), grow(sh.ga1, rows*c.ActorHidden[1])
	A := c.Actions
	sh.logits, sh.logp, sh.dlogits = grow(sh.logits, rows*A), grow(sh.logp, rows*A), grow(sh.dlogits, rows*A)
	sh.ex = grow(sh.ex, A)
	sh.v0, sh.gv0 = grow(sh.v0, rows*c.CriticHidden), grow(sh.gv0, rows*c.CriticHidden)
	sh.v, sh.dv = grow(sh.v, rows), grow(sh.dv, rows)
	return sh
}

// fwd runs rows [lo, hi) forward: log-probabilities into sh.logp, values
// into sh.v.
func (e *ppoFast) fwd(sh *ppoShard, states, addMask []float32, lo, hi int, masks [][]float32) {
	c, l := e.n.cfg, e.n.l
	rows := hi - lo
	eps := float32(c.LayerNormEps)
	x := states[lo*c.Inputs : hi*c.Inputs]
	sh.normFwd(rows, x, l.shared[0], l.sharedLN[0], eps, maskRows(masks, 0, c.Shared[0], lo, hi), &sh.s0)
	sh.normFwd(rows, sh.s0.o, l.shared[1], l.sharedLN[1], eps, maskRows(masks, 1, c.Shared[1], lo, hi), &sh.s1)
	h := sh.s1.o
	sh.denseFwd(rows, h, l.actor[0], sh.a0)
	reluMask(sh.a0[:rows*c.ActorHidden[0]], nil)
	sh.denseFwd(rows, sh.a0, l.actor[1], sh.a1)
	reluMask(sh.a1[:rows*c.ActorHidden[1]], nil)
	sh.denseFwd(rows, sh.a1, l.actor[2], sh.logits)
	A := c.Actions
	for r := range rows {
		z := sh.logits[r*A : (r+1)*A]
		am := addMask[(lo+r)*A : (lo+r+1)*A]
		m := float32(math.Inf(-1))
		for j := range z {
			z[j] += am[j]
			m = max(m, z[j])
		}
		ex := sh.ex[:A]
		for j, v := range z {
			ex[j] = v - m
		}
		vexp(ex, ex)
		var s float32
		for _, v := range ex {
			s += v
		}
		lse := m + float32(math.Log(float64(s)))
		lp := sh.logp[r*A : (r+1)*A]
		for j, v := range z {
			lp[j] = v - lse
		}
	}
	sh.denseFwd(rows, h, l.critic[0], sh.v0)
	reluMask(sh.v0[:rows*c.CriticHidden], nil)
	sh.denseFwd(rows, sh.v0, l.critic[1], sh.v)
}

func (e *ppoFast) forward(states, addMask []float32, batch int) (logp, values []float32, err error) {
	A := e.n.cfg.Actions
	logp, values = make([]float32, batch*A), make([]float32, batch)
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, hi-lo)
	}
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		sh := e.shards[s]
		e.fwd(sh, states, addMask, lo, hi, nil)
		copy(logp[lo*A:hi*A], sh.logp[:(hi-lo)*A])
		copy(values[lo:hi], sh.v[:hi-lo])
	})
	return logp, values, nil
}

func (e *ppoFast) lossGrad(b PPOBatch, addMask []float32, batch int, masks [][]float32, grads [][]float32) (PPOLosses, error) {
	c, l := e.n.cfg, e.n.l
	A := c.Actions
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, hi-lo)
	}
	invB := 1 / float32(batch)
	lnMin, lnMax := float32(math.Log(c.RatioMin)), float32(math.Log(c.RatioMax))
	clipLo, clipHi := 1-float32(c.ClipEpsilon), 1+float32(c.ClipEpsilon)
	vc, ec := float32(c.ValueCoef), float32(c.EntropyCoef)
	cc := float32(c.CounterfactualCoef)
	rewards := b.ActionRewards
	if cc == 0 {
		rewards = nil
	}
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		rows := hi - lo
		sh := e.shards[s]
		sh.zeroGrads(s, grads)
		e.fwd(sh, b.States, addMask, lo, hi, masks)
		var policy, value, entropy, counterfactual float64
		for r := range rows {
			i := lo + r
			lp := sh.logp[r*A : (r+1)*A]
			p := sh.ex[:A]
			vexp(p, lp)
			a := b.Actions[i]
			// Ratio clipped in log space, then the surrogate's clip.
			d := lp[a] - b.OldLogProbs[i]
			lr := min(max(d, lnMin), lnMax)
			ratio := float32(math.Exp(float64(lr)))
			adv := b.Advantages[i]
			rc := min(max(ratio, clipLo), clipHi)
			s1, s2 := ratio*adv, rc*adv
			var dr float32
			if s1-s2 >= 0 { // the min is the clipped term
				policy -= float64(s2)
				if ratio >= clipLo && ratio <= clipHi {
					dr = -invB * adv
				}
			} else {
				policy -= float64(s1)
				dr = -invB * adv
			}
			dd := dr * ratio
			if !(d >= lnMin && d <= lnMax) {
				dd = 0
			}
			// Entropy term: total −= ec·mean(−Σ p log p).
			dl := sh.dlogits[r*A : (r+1)*A]
			var ent, sum float32
			for j, lj := range lp {
				pj := p[j]
				ent += pj * lj
				g := ec * invB * (pj*lj + pj)
				dl[j] = g
			}
			dl[a] += dd
			if rewards != nil {
				// total −= cc·mean(Σ p R): on the log-probabilities −cc·p·R/B,
				// which the log-softmax below turns into −cc·p·(R − Σ p R)/B.
				rw := rewards[i*A : (i+1)*A]
				var j float32
				for k, rk := range rw {
					j += p[k] * rk
					dl[k] -= cc * invB * p[k] * rk
				}
				counterfactual += float64(j)
			}
			for _, g := range dl {
				sum += g
			}
			for j := range dl {
				dl[j] -= p[j] * sum
			}
			entropy -= float64(ent)
			dv := sh.v[r] - b.Returns[i]
			value += float64(dv * dv)
			sh.dv[r] = vc * 2 * dv * invB
		}
		sh.policy, sh.value, sh.entropy, sh.counterfactual = policy, value, entropy, counterfactual
		// Actor.
		sh.denseBwd(rows, sh.a1, sh.dlogits, l.actor[2], sh.ga1)
		reluBwd(sh.ga1[:rows*c.ActorHidden[1]], sh.a1)
		sh.denseBwd(rows, sh.a0, sh.ga1, l.actor[1], sh.ga0)
		reluBwd(sh.ga0[:rows*c.ActorHidden[0]], sh.a0)
		sh.denseBwd(rows, sh.s1.o, sh.ga0, l.actor[0], sh.s1.g)
		// Critic, added to the shared extractor's gradient.
		sh.denseBwd(rows, sh.v0, sh.dv, l.critic[1], sh.gv0)
		reluBwd(sh.gv0[:rows*c.CriticHidden], sh.v0)
		sh.denseBwdAcc(rows, sh.s1.o, sh.gv0, l.critic[0], sh.s1.g, true)
		// Shared extractor.
		sh.normBwd(rows, sh.s0.o, l.shared[1], l.sharedLN[1], maskRows(masks, 1, c.Shared[1], lo, hi), &sh.s1, sh.s0.g)
		sh.normBwd(rows, b.States[lo*c.Inputs:hi*c.Inputs], l.shared[0], l.sharedLN[0], maskRows(masks, 0, c.Shared[0], lo, hi), &sh.s0, nil)
	})
	sumShardGrads(grads, S, func(s int) *fastShard { return &e.shards[s].fastShard })
	var policy, value, entropy, counterfactual float64
	for s := range S {
		sh := e.shards[s]
		policy += sh.policy
		value += sh.value
		entropy += sh.entropy
		counterfactual += sh.counterfactual
	}
	return ppoLosses(c, batch, policy, value, entropy, counterfactual, rewards != nil), nil
}

// ppoLosses turns the batch's summed loss terms into PPOLosses: the
// means, and the total with the counterfactual term when it is on.
func ppoLosses(c PPOConfig, batch int, policy, value, entropy, counterfactual float64, withCF bool) PPOLosses {
	fb := float64(batch)
	policy, value, entropy, counterfactual = policy/fb, value/fb, entropy/fb, counterfactual/fb
	total := policy + c.ValueCoef*value - c.EntropyCoef*entropy
	if withCF {
		total -= c.CounterfactualCoef * counterfactual
	}
	return PPOLosses{Total: float32(total), Policy: float32(policy), Value: float32(value), Entropy: float32(entropy),
		Counterfactual: float32(counterfactual)}
}

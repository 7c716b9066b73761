package nn

import "math"

// qFast is the Q-network on the CPU backend.
type qFast struct {
	n      *QNet
	shards []*qShard
}

type qShard struct {
	fastShard
	xs, xa             []float32
	s0, s1, a0, h0, h1 normBlock
	cat, dcat, q, dq   []float32
	loss               float64
}

func (e *qFast) close() {}

// shard returns the s-th shard's workspace sized for rows rows.
func (e *qFast) shard(s, rows int) *qShard {
	for len(e.shards) <= s {
		e.shards = append(e.shards, &qShard{})
	}
	sh := e.shards[s]
	c := e.n.cfg
	sh.xs = grow(sh.xs, rows*c.StrategicInputs)
	sh.xa = grow(sh.xa, rows*c.AppInputs)
	cat := c.StrategicHidden[1] + c.AppHidden
	sh.cat = grow(sh.cat, rows*cat)
	sh.dcat = grow(sh.dcat, rows*cat)
	sh.q = grow(sh.q, rows*c.Actions)
	sh.dq = grow(sh.dq, rows*c.Actions)
	return sh
}

// maskRows returns rows [lo, hi) of the k-th mask of width w, or nil.
func maskRows(masks [][]float32, k, w, lo, hi int) []float32 {
	if masks == nil {
		return nil
	}
	return masks[k][lo*w : hi*w]
}

// fwd runs the forward pass of rows [lo, hi) of states into sh.q.
func (e *qFast) fwd(sh *qShard, states []float32, lo, hi int, masks [][]float32) {
	c, l := e.n.cfg, e.n.l
	rows := hi - lo
	si, ai := c.StrategicInputs, c.AppInputs
	for r := range rows {
		row := states[(lo+r)*(si+ai) : (lo+r+1)*(si+ai)]
		copy(sh.xs[r*si:(r+1)*si], row[:si])
		copy(sh.xa[r*ai:(r+1)*ai], row[si:])
	}
	eps := float32(c.LayerNormEps)
	S0, S1, A0, H0, H1 := c.StrategicHidden[0], c.StrategicHidden[1], c.AppHidden, c.HeadHidden[0], c.HeadHidden[1]
	sh.normFwd(rows, sh.xs, l.strategic[0], l.strategicLN[0], eps, maskRows(masks, 0, S0, lo, hi), &sh.s0)
	sh.normFwd(rows, sh.s0.o, l.strategic[1], l.strategicLN[1], eps, maskRows(masks, 1, S1, lo, hi), &sh.s1)
	sh.normFwd(rows, sh.xa, l.app, l.appLN, eps, maskRows(masks, 2, A0, lo, hi), &sh.a0)
	W := S1 + A0
	for r := range rows {
		copy(sh.cat[r*W:r*W+S1], sh.s1.o[r*S1:(r+1)*S1])
		copy(sh.cat[r*W+S1:(r+1)*W], sh.a0.o[r*A0:(r+1)*A0])
	}
	sh.normFwd(rows, sh.cat, l.head[0], l.headLN[0], eps, maskRows(masks, 3, H0, lo, hi), &sh.h0)
	sh.normFwd(rows, sh.h0.o, l.head[1], l.headLN[1], eps, maskRows(masks, 4, H1, lo, hi), &sh.h1)
	sh.denseFwd(rows, sh.h1.o, l.out, sh.q)
}

func (e *qFast) forward(dst, states []float32, batch int) ([]float32, error) {
	A := e.n.cfg.Actions
	dst = grow(dst, batch*A)
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, hi-lo)
	}
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		sh := e.shards[s]
		e.fwd(sh, states, lo, hi, nil)
		copy(dst[lo*A:hi*A], sh.q[:(hi-lo)*A])
	})
	return dst, nil
}

func (e *qFast) lossGrad(b QBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	c, l := e.n.cfg, e.n.l
	A := c.Actions
	S := shardCount(e.n.c.threads, batch)
	for s := range S {
		lo, hi := shardRows(s, S, batch)
		e.shard(s, hi-lo)
	}
	delta := float32(c.HuberDelta)
	huber := c.Loss != LossMSE
	invB := 1 / float32(batch)
	parallel(S, func(s int) {
		lo, hi := shardRows(s, S, batch)
		rows := hi - lo
		sh := e.shards[s]
		sh.zeroGrads(s, grads)
		e.fwd(sh, b.States, lo, hi, masks)
		// Loss on Q(s, a) and its gradient.
		clear(sh.dq[:rows*A])
		var loss float64
		for r := range rows {
			a := b.Actions[lo+r]
			err := sh.q[r*A+a] - b.Targets[lo+r]
			var li, de float32
			if huber {
				ab := float32(math.Abs(float64(err)))
				if ab < delta {
					li, de = 0.5*ab*ab, ab
				} else {
					li, de = delta*(ab-0.5*delta), delta
				}
				if err < 0 {
					de = -de
				} else if err == 0 {
					de = 0
				}
			} else {
				li, de = err*err, 2*err
			}
			loss += float64(li)
			sh.dq[r*A+a] = de * invB
		}
		sh.loss = loss
		S0, S1, A0, H0, H1 := c.StrategicHidden[0], c.StrategicHidden[1], c.AppHidden, c.HeadHidden[0], c.HeadHidden[1]
		sh.denseBwd(rows, sh.h1.o, sh.dq, l.out, sh.h1.g)
		sh.normBwd(rows, sh.h0.o, l.head[1], l.headLN[1], maskRows(masks, 4, H1, lo, hi), &sh.h1, sh.h0.g)
		sh.normBwd(rows, sh.cat, l.head[0], l.headLN[0], maskRows(masks, 3, H0, lo, hi), &sh.h0, sh.dcat)
		W := S1 + A0
		for r := range rows {
			copy(sh.s1.g[r*S1:(r+1)*S1], sh.dcat[r*W:r*W+S1])
			copy(sh.a0.g[r*A0:(r+1)*A0], sh.dcat[r*W+S1:(r+1)*W])
		}
		sh.normBwd(rows, sh.xa, l.app, l.appLN, maskRows(masks, 2, A0, lo, hi), &sh.a0, nil)
		sh.normBwd(rows, sh.s0.o, l.strategic[1], l.strategicLN[1], maskRows(masks, 1, S1, lo, hi), &sh.s1, sh.s0.g)
		sh.normBwd(rows, sh.xs, l.strategic[0], l.strategicLN[0], maskRows(masks, 0, S0, lo, hi), &sh.s0, nil)
	})
	sumShardGrads(grads, S, func(s int) *fastShard { return &e.shards[s].fastShard })
	var loss float64
	for s := range S {
		loss += e.shards[s].loss
	}
	return float32(loss / float64(batch)), nil
}

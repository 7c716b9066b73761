package ppo

import (
	"cmp"
	"math"
	"slices"
)

// GAE returns the generalised advantage estimates and value targets of one
// trajectory segment of n steps: rewards[t] and values[t] = V(s_t) for
// t < n, and bootstrap = V(s_n), the value of the state after the last
// step (0 when the last step ended the trajectory):
//
//	δ_t = r_t + γ·V(s_{t+1}) − V(s_t),  A_t = δ_t + γλ·A_{t+1},  A_n = 0,
//	R_t = A_t + V(s_t).
//
// It panics if rewards and values differ in length.
func GAE(rewards, values []float32, bootstrap float32, gamma, lambda float64) (adv, ret []float32) {
	adv = make([]float32, len(rewards))
	ret = make([]float32, len(rewards))
	gaeInto(adv, ret, rewards, values, bootstrap, gamma, lambda)
	return adv, ret
}

// gaeInto is GAE writing into adv and ret (each as long as rewards),
// accumulating in float64.
func gaeInto(adv, ret, rewards, values []float32, bootstrap float32, gamma, lambda float64) {
	if len(values) != len(rewards) || len(adv) != len(rewards) || len(ret) != len(rewards) {
		panic("ppo: GAE slices differ in length")
	}
	next := float64(bootstrap)
	var a float64
	for t := len(rewards) - 1; t >= 0; t-- {
		v := float64(values[t])
		delta := float64(rewards[t]) + gamma*next - v
		a = delta + gamma*lambda*a
		adv[t] = float32(a)
		ret[t] = float32(a + v)
		next = v
	}
}

// NormalizeAdvantages rescales adv in place to mean 0 and standard
// deviation 1 (population standard deviation, plus 1e-8 so that a
// constant vector becomes all zeros rather than NaN). It returns the mean
// and standard deviation it removed.
func NormalizeAdvantages(adv []float32) (mean, std float64) {
	if len(adv) == 0 {
		return 0, 0
	}
	for _, a := range adv {
		mean += float64(a)
	}
	mean /= float64(len(adv))
	var ss float64
	for _, a := range adv {
		d := float64(a) - mean
		ss += d * d
	}
	std = math.Sqrt(ss / float64(len(adv)))
	for i, a := range adv {
		adv[i] = float32((float64(a) - mean) / (std + 1e-8))
	}
	return mean, std
}

// segments splits the buffered transitions into trajectory segments: the
// transitions of one entity (run, app, function), ordered by tick, where
// each continues the previous one. A transition continues into the
// entity's next buffered transition when it is not done and the next one's
// tick is exactly one later; otherwise its segment ends there and is
// bootstrapped from V(NextState), or from 0 when it is done. Each segment
// lists buffer indices in tick order; the segments come in a fixed order
// (by entity, then tick), independent of the order of Add calls.
func segments(buf []Transition) [][]int {
	order := make([]int, len(buf))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := &buf[a], &buf[b]
		return cmp.Or(cmp.Compare(x.RunID, y.RunID), cmp.Compare(x.App, y.App),
			cmp.Compare(x.Func, y.Func), cmp.Compare(x.Tick, y.Tick))
	})
	var segs [][]int
	start := 0
	for k := 1; k <= len(order); k++ {
		if k < len(order) {
			p, c := &buf[order[k-1]], &buf[order[k]]
			if !p.Done && c.Tick == p.Tick+1 && c.RunID == p.RunID && c.App == p.App && c.Func == p.Func {
				continue
			}
		}
		segs = append(segs, order[start:k])
		start = k
	}
	return segs
}

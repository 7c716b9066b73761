package dqn

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/strata-rl/strata/schemas"
)

// chain is a 5-state chain MDP: states 0…4, actions 0 left, 1 right,
// 2 stay; moving right from state 3 into state 4 ends the episode with
// reward 1, every other step gives 0; left from 0 stays at 0. The optimal
// policy is "right" everywhere, with Q*(s, right) = γ^(3−s),
// Q*(s, stay) = γ·Q*(s, right) and Q*(s, left) = γ²·Q*(s, right)
// (γ·Q*(0, right) at state 0, where left stays put).
const chainStates = 5

// chainVec is the state as a 14-value vector: a one-hot of the state in the
// strategic inputs, zeros elsewhere.
func chainVec(s int) []float32 {
	v := make([]float32, schemas.StrategicDim)
	v[s] = 1
	return v
}

// chainStep returns the next state, reward and done flag.
func chainStep(s, a int) (int, float32, bool) {
	switch a {
	case 0:
		s = max(s-1, 0)
	case 1:
		s++
	}
	if s == chainStates-1 {
		return s, 1, true
	}
	return s, 0, false
}

func chainConfig() Config {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Gamma = 0.9
	cfg.Net.Optimizer.LearningRate = 1e-3
	cfg.Tau = 0.02
	cfg.BufferSize = 5_000
	cfg.WarmUp = 200
	cfg.ScalerFit = 200
	cfg.ScalerLog1p = nil
	return cfg
}

// TestLearnsChain trains the learner, through the real Q-network, on
// transitions of the chain collected by a uniformly random behaviour
// policy (DQN is off-policy), one gradient step per added transition, and
// checks that the greedy policy is optimal in every non-terminal state.
//
// It takes 6–10 s (about 100 s under the race detector), so -short
// skips it: the learner is single-goroutine numeric code, and the goroutine
// gorgonia runs each pass on is exercised under -race by the short tests'
// training steps (TestTrainStepUsesTargets, TestSoftUpdateMovesTargetByTau).
func TestLearnsChain(t *testing.T) {
	if testing.Short() {
		t.Skip("about 900 training steps; single-goroutine numeric code, see the comment")
	}
	start := time.Now()
	l, err := NewLearner(chainConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var states []float32
	for s := range chainStates - 1 {
		states = append(states, chainVec(s)...)
	}
	greedyOptimal := func() (bool, []float32) {
		q, err := l.QValues(states)
		if err != nil {
			t.Fatal(err)
		}
		for s := range chainStates - 1 {
			if best, _ := argmax(q[s*3 : s*3+3]); best != 1 {
				return false, q
			}
		}
		return true, q
	}
	const maxTransitions = 3000
	var solvedAt int
	for i := range maxTransitions {
		s, a := rng.IntN(chainStates-1), rng.IntN(3)
		next, r, done := chainStep(s, a)
		if err := l.Add(Transition{State: chainVec(s), Action: a, Reward: r, Next: chainVec(next), Done: done}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 && l.Ready() {
			if ok, _ := greedyOptimal(); ok && solvedAt == 0 {
				solvedAt = i + 1
			} else if !ok {
				solvedAt = 0
			}
			if solvedAt > 0 && i+1-solvedAt >= 500 {
				break
			}
		}
	}
	ok, q := greedyOptimal()
	st := l.Stats()
	t.Logf("%d transitions, %d steps, loss %.5f, greedy optimal since transition %d, %v", st.Added, st.Steps, st.LastLoss, solvedAt, time.Since(start))
	for s := range chainStates - 1 {
		t.Logf("state %d: Q(left) %.3f Q(right) %.3f Q(stay) %.3f; Q*(right) %.3f", s, q[s*3], q[s*3+1], q[s*3+2], pow(0.9, 3-s))
	}
	if !ok {
		t.Fatalf("greedy policy not optimal after %d steps: Q = %v", st.Steps, q)
	}
	for s := range chainStates - 1 {
		if d := float64(q[s*3+1]) - pow(0.9, 3-s); d < -0.1 || d > 0.1 {
			t.Errorf("Q(%d, right) = %.3f, want %.3f ± 0.1", s, q[s*3+1], pow(0.9, 3-s))
		}
	}
	if st.RejectedSteps != 0 || st.RejectedNonFinite != 0 {
		t.Errorf("rejections during training: %+v", st)
	}
}

func pow(x float64, n int) float64 {
	y := 1.0
	for range n {
		y *= x
	}
	return y
}

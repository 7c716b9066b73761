package ppo

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// fuzzConfig is a narrow actor-critic with a rollout of 8, so that fuzz
// seeds stay a few kB.
func fuzzConfig() Config {
	cfg := smallConfig(8)
	cfg.Net.Shared, cfg.Net.ActorHidden, cfg.Net.CriticHidden = [2]int{4, 3}, [2]int{3, 2}, 2
	return cfg
}

// fuzzLearner returns a learner of fuzzConfig that was offered n
// transitions (updating whenever its rollout filled).
func fuzzLearner(f *testing.F, n int) *Learner {
	l, err := NewLearner(fuzzConfig(), 9)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(l.Close)
	rng := rand.New(rand.NewPCG(3, 13))
	rows := tacticalRows(3, 4)
	for k := range n {
		r := &rows[k%len(rows)]
		err := l.Add(Transition{RunID: "fuzz", App: r.App, Func: r.Func, Tick: int64(k),
			State: r.Vector(), Action: rng.IntN(Actions), Reward: float32(rng.NormFloat64()), NextState: r.Vector(),
			Done: k%3 == 0, LogProb: -3.178, PolicyVersion: l.Version()})
		if err != nil {
			f.Fatal(err)
		}
		if l.Ready() {
			if _, err := l.Update(); err != nil {
				f.Fatal(err)
			}
		}
	}
	return l
}

// FuzzLoadModel feeds arbitrary bytes to the PPO checkpoint readers
// (LoadModel, LoadLearner): they must return a value or an error, never
// panic or allocate what a corrupt header or configuration claims. A
// learner that loads saves a checkpoint that loads and saves again to the
// same bytes.
func FuzzLoadModel(f *testing.F) {
	for _, n := range []int{0, 8} { // version 0 and version 1 (after an update)
		var b bytes.Buffer
		if err := fuzzLearner(f, n).Save(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		if n > 0 {
			f.Add(b.Bytes()[:len(b.Bytes())-5])
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := LoadModel(bytes.NewReader(data)); err == nil && m == nil {
			t.Fatal("LoadModel returned neither a model nor an error")
		}
		l, err := LoadLearner(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer l.Close()
		var b1, b2 bytes.Buffer
		if err := l.Save(&b1); err != nil {
			t.Fatalf("saving a loaded learner: %v", err)
		}
		again, err := LoadLearner(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("loading a saved learner: %v", err)
		}
		defer again.Close()
		if err := again.Save(&b2); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("the checkpoint changed through a load and save (%v)", err)
		}
	})
}

// FuzzLoadState feeds arbitrary bytes to LoadState, the PPO's training
// state: it must return a learner or an error, never panic or allocate what
// the state claims. A state that loads saves a state that loads and saves
// again to the same bytes.
func FuzzLoadState(f *testing.F) {
	for _, n := range []int{0, 5, 11} { // empty, mid-rollout, after an update and mid-rollout
		var b bytes.Buffer
		if err := fuzzLearner(f, n).SaveState(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := LoadState(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer l.Close()
		var b1, b2 bytes.Buffer
		if err := l.SaveState(&b1); err != nil {
			t.Fatalf("saving a loaded state: %v", err)
		}
		again, err := LoadState(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("loading a saved state: %v", err)
		}
		defer again.Close()
		if err := again.SaveState(&b2); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("the state changed through a load and save (%v)", err)
		}
	})
}

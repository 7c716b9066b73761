package dqn

import (
	"bytes"
	"testing"
)

// fuzzConfig is smallConfig with a narrow network and a short buffer, so
// that fuzz seeds stay a few kB.
func fuzzConfig() Config {
	cfg := smallConfig()
	cfg.Net.StrategicHidden, cfg.Net.AppHidden, cfg.Net.HeadHidden = [2]int{4, 3}, 2, [2]int{3, 2}
	cfg.BufferSize = 24
	cfg.WarmUp, cfg.BatchSize, cfg.ScalerFit = 8, 4, 8
	return cfg
}

// fuzzLearner returns a learner of fuzzConfig that has taken n transitions.
func fuzzLearner(f *testing.F, n int) *Learner {
	l, err := NewLearner(fuzzConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(l.Close)
	fill(f, l, 5, n)
	return l
}

// FuzzLoadLearner feeds arbitrary bytes to the DQN checkpoint readers
// (LoadLearner, LoadPolicy): they must return a value or an error, never
// panic or allocate what a corrupt manifest or network header claims. A
// learner that loads saves a checkpoint that loads and saves again to the
// same bytes.
func FuzzLoadLearner(f *testing.F) {
	for _, n := range []int{0, 12} {
		var b bytes.Buffer
		if err := fuzzLearner(f, n).Save(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		if n > 0 {
			f.Add(b.Bytes()[:len(b.Bytes())/2])
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, 1024)) // an empty tar archive
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := LoadPolicy(bytes.NewReader(data), LoadOptions{Seed: 1, Explore: true}); err == nil && p == nil {
			t.Fatal("LoadPolicy returned neither a policy nor an error")
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

// FuzzLoadState feeds arbitrary bytes to LoadState, the DQN's training
// state: it must return a learner or an error, never panic or allocate what
// the state claims. A state that loads saves a state that loads and saves
// again to the same bytes.
func FuzzLoadState(f *testing.F) {
	for _, n := range []int{0, 6, 30} { // before the scaler fit, before warm-up, after the buffer wrapped
		var b bytes.Buffer
		if err := fuzzLearner(f, n).SaveState(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		if n == 6 {
			f.Add(b.Bytes()[:len(b.Bytes())-700])
		}
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

package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randn returns n standard normal values from a seeded generator.
func randn(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// maxAbsDiff returns the largest |a[i] − b[i]|.
func maxAbsDiff(t *testing.T, a, b []float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("lengths differ: %d and %d", len(a), len(b))
	}
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func mustQ(t testing.TB, cfg QConfig, seed uint64) *QNet {
	t.Helper()
	n, err := NewQNet(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func mustPPO(t testing.TB, cfg PPOConfig, seed uint64) *PPONet {
	t.Helper()
	n, err := NewPPONet(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func mustLSTM(t testing.TB, cfg LSTMConfig, seed uint64) *LSTMNet {
	t.Helper()
	n, err := NewLSTMNet(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func mustQOpts(t testing.TB, cfg QConfig, seed uint64, opts ...Option) *QNet {
	t.Helper()
	n, err := NewQNet(cfg, seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func mustPPOOpts(t testing.TB, cfg PPOConfig, seed uint64, opts ...Option) *PPONet {
	t.Helper()
	n, err := NewPPONet(cfg, seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func mustLSTMOpts(t testing.TB, cfg LSTMConfig, seed uint64, opts ...Option) *LSTMNet {
	t.Helper()
	n, err := NewLSTMNet(cfg, seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

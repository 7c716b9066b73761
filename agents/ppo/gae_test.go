package ppo

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestGAEHandComputed checks GAE on a 3-step trajectory against values
// worked out by hand: r = (1, 0, 2), V = (0.5, 0.4, 0.3), γ 0.99, λ 0.95
// (γλ = 0.9405).
func TestGAEHandComputed(t *testing.T) {
	r := []float32{1, 0, 2}
	v := []float32{0.5, 0.4, 0.3}
	cases := []struct {
		name      string
		bootstrap float32
		adv       []float64
	}{
		// δ2 = 2 − 0.3 = 1.7; δ1 = 0.99·0.3 − 0.4 = −0.103; δ0 = 1 + 0.99·0.4 − 0.5 = 0.896.
		// A2 = 1.7; A1 = −0.103 + 0.9405·1.7 = 1.49585; A0 = 0.896 + 0.9405·1.49585 = 2.302846925.
		{"done", 0, []float64{2.302846925, 1.49585, 1.7}},
		// With V(s3) = 0.6: δ2 = 2 + 0.594 − 0.3 = 2.294; A1 = −0.103 + 0.9405·2.294 = 2.054507;
		// A0 = 0.896 + 0.9405·2.054507 = 2.8282638335.
		{"bootstrapped", 0.6, []float64{2.8282638335, 2.054507, 2.294}},
	}
	for _, c := range cases {
		adv, ret := GAE(r, v, c.bootstrap, 0.99, 0.95)
		for i := range adv {
			if !near(float64(adv[i]), c.adv[i], 1e-6) {
				t.Errorf("%s: A[%d] = %v, want %v", c.name, i, adv[i], c.adv[i])
			}
			if want := c.adv[i] + float64(v[i]); !near(float64(ret[i]), want, 1e-6) {
				t.Errorf("%s: R[%d] = %v, want %v", c.name, i, ret[i], want)
			}
		}
	}
	// λ = 1 gives discounted returns minus values; λ = 0 one-step TD errors.
	adv, _ := GAE(r, v, 0, 0.99, 1)
	if want := 1 + 0.99*0 + 0.99*0.99*2 - 0.5; !near(float64(adv[0]), want, 1e-6) {
		t.Errorf("λ=1: A0 = %v, want %v", adv[0], want)
	}
	adv, _ = GAE(r, v, 0, 0.99, 0)
	if !near(float64(adv[0]), 0.896, 1e-6) {
		t.Errorf("λ=0: A0 = %v, want 0.896", adv[0])
	}
}

// TestSegments checks how buffered transitions are cut into trajectories:
// per entity, by tick, continuing only to the next tick and not past done,
// whatever the order they were added in.
func TestSegments(t *testing.T) {
	tx := func(app string, tick int64, done bool) Transition {
		return Transition{RunID: "r", App: app, Func: "f", Tick: tick, Done: done}
	}
	buf := []Transition{
		tx("b", 2, false), // 0
		tx("a", 1, false), // 1
		tx("a", 3, true),  // 2: a's tick 2 ends the first segment
		tx("a", 2, true),  // 3
		tx("b", 1, false), // 4
		tx("b", 4, false), // 5: gap after b's tick 2
		tx("a", 4, false), // 6: after done
	}
	got := segments(buf)
	want := [][]int{{1, 3}, {2}, {6}, {4, 0}, {5}}
	if len(got) != len(want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("segments %v, want %v", got, want)
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("segments %v, want %v", got, want)
			}
		}
	}
}

// TestNormalizeAdvantages checks mean 0, standard deviation 1, and that a
// constant vector becomes zeros, not NaN.
func TestNormalizeAdvantages(t *testing.T) {
	adv := []float32{1, 2, 3, 4, 10}
	m, s := NormalizeAdvantages(adv)
	if !near(m, 4, 1e-9) || !near(s, math.Sqrt(10), 1e-9) {
		t.Errorf("removed mean %v std %v, want 4 and √10", m, s)
	}
	var mean, sq float64
	for _, a := range adv {
		mean += float64(a) / 5
	}
	for _, a := range adv {
		sq += (float64(a) - mean) * (float64(a) - mean) / 5
	}
	if !near(mean, 0, 1e-6) || !near(math.Sqrt(sq), 1, 1e-6) {
		t.Errorf("normalised mean %v std %v", mean, math.Sqrt(sq))
	}
	if !near(float64(adv[0]), -3/math.Sqrt(10), 1e-6) {
		t.Errorf("adv[0] = %v, want %v", adv[0], -3/math.Sqrt(10))
	}
	flat := []float32{2, 2, 2}
	NormalizeAdvantages(flat)
	for _, a := range flat {
		if a != 0 {
			t.Errorf("constant advantages normalised to %v, want 0", flat)
		}
	}
}

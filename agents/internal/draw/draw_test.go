package draw

import "testing"

func TestHash(t *testing.T) {
	a, b := Hash(1, 2, "app", "f"), Hash(1, 2, "app", "f")
	if a != b {
		t.Fatal("not deterministic")
	}
	// The parts are separated: ("ap", "pf") differs from ("app", "f").
	for _, other := range []uint64{Hash(1, 2, "ap", "pf"), Hash(2, 2, "app", "f"), Hash(1, 3, "app", "f"), Hash(1, 2, "app", "")} {
		if other == a {
			t.Fatal("different inputs hash alike")
		}
	}
	if u := Uniform(a); u <= 0 || u >= 1 {
		t.Fatalf("uniform %v outside (0, 1)", u)
	}
	if Uniform(0) <= 0 || Uniform(^uint64(0)) >= 1 {
		t.Fatal("uniform reaches a bound")
	}
	if SplitMix(a) == a {
		t.Fatal("splitmix is the identity")
	}
}

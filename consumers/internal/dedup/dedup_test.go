package dedup

import (
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	s := New()
	steps := []struct {
		id        string
		tick      int64
		wantAdded bool
		wantTick  int64
	}{
		{"a", 1, true, 1},
		{"a", 1, false, 1},
		{"a", 2, false, 1}, // another open tick: still a duplicate
		{"", 1, true, 1},
		{"", 1, true, 1}, // empty ids are never recorded
		{"b", 2, true, 2},
	}
	for i, st := range steps {
		if tick, added := s.Add(st.id, st.tick); added != st.wantAdded || tick != st.wantTick {
			t.Fatalf("step %d: Add(%q, %d) = %d, %v; want %d, %v", i, st.id, st.tick, tick, added, st.wantTick, st.wantAdded)
		}
	}
	if got := s.Ticks(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("Ticks() = %v", got)
	}
	r := New() // a restored copy behaves the same
	for _, k := range s.Ticks() {
		r.Restore(k, s.IDs(k))
	}
	s.Forget(1)
	if _, added := s.Add("a", 3); !added {
		t.Fatal("a forgotten with tick 1 is not new again")
	}
	if _, added := r.Add("a", 3); added {
		t.Fatal("restored set lost a")
	}
	r.ForgetBefore(3)
	if len(r.Ticks()) != 0 {
		t.Fatalf("ForgetBefore(3) left ticks %v", r.Ticks())
	}
}

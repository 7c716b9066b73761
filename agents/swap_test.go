package agents_test

import (
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/schemas"
)

// TestSwappable checks that a swapped-in policy decides from the next
// batch on, that the rows and the name say who decided, and that of two
// swaps before a batch the later wins.
func TestSwappable(t *testing.T) {
	a, b, c := &flaky{name: "a", prewarm: 1}, &flaky{name: "b", prewarm: 2}, &flaky{name: "c", prewarm: 3}
	s := agents.NewSwappable(a)
	prev := "a"
	for i, tc := range []struct {
		swap []*flaky
		who  string
		n    int
	}{
		{nil, "a", 0},
		{[]*flaky{b}, "b", 1},
		{nil, "b", 1},
		{[]*flaky{a, c}, "c", 2},
	} {
		for _, p := range tc.swap {
			s.Swap(p)
		}
		if s.Name() != prev {
			t.Errorf("batch %d: serving %s before deciding, want %s until the batch", i, s.Name(), prev)
		}
		st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: int64(i)},
			Operational: []schemas.OperationalRow{{App: "x", Func: "f"}}}
		out := &schemas.DecisionBatch{Header: st.Header}
		if err := s.Decide(t.Context(), st, out); err != nil {
			t.Fatal(err)
		}
		want := map[string]int32{"a": 1, "b": 2, "c": 3}[tc.who]
		if s.Name() != tc.who || s.Version() != "v-"+tc.who || out.Rows[0].Prewarm != want || s.Switches() != tc.n {
			t.Errorf("batch %d: %s decided %+v after %d switches; want %s after %d", i, s.Name(), out.Rows, s.Switches(), tc.who, tc.n)
		}
		prev = tc.who
	}
	if a.seen != 1 || b.seen != 2 || c.seen != 1 {
		t.Errorf("batches seen: a %d, b %d, c %d; want 1, 2, 1", a.seen, b.seen, c.seen)
	}
}

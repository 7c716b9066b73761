package schemas

import "testing"

func TestWatermarks(t *testing.T) {
	type step struct {
		writer string
		us     int64
		want   int64
	}
	for _, tc := range []struct {
		name  string
		idle  int64
		steps []step
		live  int // writers left in the set at the end
	}{
		{"one writer: the maximum seen", 0, []step{{"", 10, 10}, {"", 30, 30}, {"", 20, 30}, {"", 40, 40}}, 1},
		{"two writers: the minimum", 100, []step{{"a", 10, 10}, {"b", 50, 10}, {"a", 40, 40}, {"a", 70, 50}, {"b", 90, 70}}, 2},
		{"a stopped writer leaves after the idle bound", 100,
			[]step{{"a", 10, 10}, {"b", 10, 10}, {"a", 100, 10}, {"a", 110, 10}, {"a", 111, 111}, {"a", 200, 200}}, 1},
		{"no idle bound: a stopped writer holds the watermark", 0,
			[]step{{"a", 10, 10}, {"b", 10, 10}, {"a", 1000, 10}}, 2},
		{"a writer rejoining behind does not move the watermark back", 100,
			[]step{{"a", 10, 10}, {"a", 200, 200}, {"b", 150, 200}, {"a", 220, 200}, {"b", 210, 210}, {"b", 300, 220}}, 2},
		{"a writer far behind is idle at once", 100, []step{{"a", 500, 500}, {"b", 10, 500}, {"a", 510, 510}}, 1},
		{"a watermark of a writer never moves it back", 0, []step{{"a", 50, 50}, {"a", 20, 50}, {"b", 60, 50}, {"a", 70, 60}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Watermarks{IdleUS: tc.idle}
			for i, s := range tc.steps {
				if got := w.Advance(s.writer, s.us); got != s.want {
					t.Fatalf("step %d (%s at %d): watermark %d, want %d", i, s.writer, s.us, got, s.want)
				}
			}
			if len(w.Writers) != tc.live {
				t.Errorf("%d writers live, want %d: %v", len(w.Writers), tc.live, w.Writers)
			}
		})
	}
}

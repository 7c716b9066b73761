package train

import "testing"

func TestFlatFor(t *testing.T) {
	tests := []struct {
		name    string
		best    map[string]int
		episode int
		want    int
	}{
		{"no layer yet", map[string]int{}, 3, 3},
		{"improved now", map[string]int{"tactical": 3}, 3, 0},
		{"flat for two", map[string]int{"tactical": 1}, 3, 2},
		{"the latest layer counts", map[string]int{"strategic": 1, "tactical": 4}, 6, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := flatFor(tc.best, tc.episode); got != tc.want {
				t.Errorf("flatFor(%v, %d) = %d, want %d", tc.best, tc.episode, got, tc.want)
			}
		})
	}
}

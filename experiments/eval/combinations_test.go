package eval

import (
	"slices"
	"testing"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
)

// TestCombinationJobs checks the combinations of baselines: every causal
// baseline of each layer once with every other layer's (no oracle), in
// strategic, tactical, operational order, and --policies narrowing each
// layer, a layer it names none of keeping its reference policy.
func TestCombinationJobs(t *testing.T) {
	tests := []struct {
		name  string
		only  []string
		want  int
		first string
		last  string
	}{
		{"every causal baseline", nil, 5 * 6 * 7, "combination random / random / reactive", "combination static-best / static-best / hybrid-histogram"},
		{"narrowed", []string{"greedy-cost", "random", "knative"}, 2 * 2 * 1, "combination random / random / knative", "combination greedy-cost / greedy-cost / knative"},
		{"a layer named by none keeps its reference", []string{"power-tuning"}, 1, "combination greedy-cost / power-tuning / hybrid-histogram", "combination greedy-cost / power-tuning / hybrid-histogram"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs := CombinationJobs(tt.only, 7)
			if len(jobs) != tt.want {
				t.Fatalf("%d jobs, want %d", len(jobs), tt.want)
			}
			if jobs[0].Label != tt.first || jobs[len(jobs)-1].Label != tt.last {
				t.Errorf("first %q, last %q; want %q, %q", jobs[0].Label, jobs[len(jobs)-1].Label, tt.first, tt.last)
			}
			seen := map[string]bool{}
			for _, j := range jobs {
				if seen[j.Label] {
					t.Errorf("%q twice", j.Label)
				}
				seen[j.Label] = true
				if j.Section != SectionCombination || j.Models != "" || j.PolicySeed != 7 {
					t.Errorf("%q: section %q, models %q, seed %d", j.Label, j.Section, j.Models, j.PolicySeed)
				}
				for l, p := range j.Policies {
					if p == string(twin.PolicyOracle) {
						t.Errorf("%q combines the %s oracle", j.Label, l)
					}
					if !slices.Contains(CausalBaselines(schemas.Layer(l)), p) {
						t.Errorf("%q: %s policy %q is not a causal baseline", j.Label, l, p)
					}
				}
			}
		})
	}
}

package eval

import (
	"slices"
	"strings"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
)

// SectionCombination is the section of the configurations that combine
// one causal baseline per layer (CombinationJobs).
const SectionCombination = "combination"

// CausalBaselines returns the baselines of layer l that decide from what
// they could know at the time: the layer's hand-written policies and, for
// the placement layers, static-best (chosen on the training days). The
// per-interval oracles are left out: they are hindsight bounds, not
// policies anyone could run.
func CausalBaselines(l schemas.Layer) []string {
	names := slices.Clone(agents.Names(l))
	if l != schemas.Operational {
		names = append(names, string(twin.PolicyStaticBest))
	}
	return names
}

// Baselines returns every baseline of layer l the comparisons run: the
// causal ones and, for the placement layers, the per-interval oracle.
func Baselines(l schemas.Layer) []string {
	names := CausalBaselines(l)
	if l != schemas.Operational {
		names = append(names, string(twin.PolicyOracle))
	}
	return names
}

// CombinationJobs returns one job per combination of a causal baseline of
// each layer (CausalBaselines), strategic outermost, then tactical, then
// operational, each labelled "combination S / T / O" in section
// SectionCombination. only, if not empty, narrows each layer to the
// baselines it names, in the layer's order; a layer it names none of keeps
// its reference policy alone. seed is every job's policy seed.
func CombinationJobs(only []string, seed int64) []Job {
	ref := map[schemas.Layer]string{schemas.Strategic: refStrategic, schemas.Tactical: refTactical, schemas.Operational: refOperational}
	per := map[schemas.Layer][]string{}
	for _, l := range []schemas.Layer{schemas.Strategic, schemas.Tactical, schemas.Operational} {
		names := CausalBaselines(l)
		if len(only) > 0 {
			names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(only, n) })
			if len(names) == 0 {
				names = []string{ref[l]}
			}
		}
		per[l] = names
	}
	var jobs []Job
	for _, s := range per[schemas.Strategic] {
		for _, t := range per[schemas.Tactical] {
			for _, o := range per[schemas.Operational] {
				r := evalRow{Varied: SectionCombination, Policy: strings.Join([]string{s, t, o}, " / "),
					Policies: map[string]string{"strategic": s, "tactical": t, "operational": o}}
				jobs = append(jobs, newJob(SectionCombination, r, seed))
			}
		}
	}
	return jobs
}

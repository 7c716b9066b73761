package report

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments/eval"
)

// Variant is one setting of the ASSUMED hidden function properties
// (docs/cloud-model.md, "Hidden function properties") a sensitivity study
// re-runs the baseline comparison under.
type Variant struct {
	// Name is the property; Level "low" or "high"; Sets the cloud model
	// settings that make it.
	Name, Level string
	Sets        []cloud.Setting
	// What says the setting in words.
	What string
}

// Tag is the suffix of the variant's run labels.
func (v Variant) Tag() string { return " [" + v.Name + " " + v.Level + "]" }

func set(name, key, value string) cloud.Setting {
	return cloud.Setting{Name: name, Key: key, Value: value}
}

// Variants are the low and high values of each ASSUMED hidden property,
// around the defaults (working set lognormal with median 170 MB and σ
// 0.668, CPU-bound fraction Beta(2, 3), runtime mix 40 % JavaScript, 30 %
// Python, 15 % .NET, 10 % Java, 5 % Go).
var Variants = []Variant{
	{Name: "working-set median", Level: "low", Sets: []cloud.Setting{set("working_set_median_mb", "", "85")}, What: "working-set median 85 MB (half the default 170)"},
	{Name: "working-set median", Level: "high", Sets: []cloud.Setting{set("working_set_median_mb", "", "340")}, What: "working-set median 340 MB (twice the default)"},
	{Name: "working-set spread", Level: "low", Sets: []cloud.Setting{set("working_set_sigma", "", "0.334")}, What: "working-set σ 0.334 (half the default 0.668)"},
	{Name: "working-set spread", Level: "high", Sets: []cloud.Setting{set("working_set_sigma", "", "1.0")}, What: "working-set σ 1.0"},
	{Name: "CPU-bound fraction", Level: "low", Sets: []cloud.Setting{set("cpu_bound_alpha", "", "1"), set("cpu_bound_beta", "", "4")}, What: "Beta(1, 4): mean 0.2 (default Beta(2, 3), mean 0.4)"},
	{Name: "CPU-bound fraction", Level: "high", Sets: []cloud.Setting{set("cpu_bound_alpha", "", "4"), set("cpu_bound_beta", "", "1")}, What: "Beta(4, 1): mean 0.8"},
	{Name: "runtime mix", Level: "low", Sets: runtimeMix(map[string]string{"javascript": "0.5", "python": "0.2", "go": "0.3"}), What: "fast cold starts: 50 % JavaScript, 20 % Python, 30 % Go"},
	{Name: "runtime mix", Level: "high", Sets: runtimeMix(map[string]string{"dotnet": "0.4", "java": "0.4", "python": "0.2"}), What: "slow cold starts: 40 % .NET, 40 % Java, 20 % Python"},
}

// runtimeMix sets every runtime's share: those given, 0 for the others.
func runtimeMix(m map[string]string) []cloud.Setting {
	var out []cloud.Setting
	for _, r := range []string{"javascript", "python", "dotnet", "java", "go"} {
		v := m[r]
		if v == "" {
			v = "0"
		}
		out = append(out, set("runtime_mix", r, v))
	}
	return out
}

// variantJobs returns the baseline jobs relabelled for each variant.
func variantJobs(base []eval.Job) map[int][]eval.Job {
	out := map[int][]eval.Job{}
	for i, v := range Variants {
		for _, j := range base {
			// The baseline comparison only: the rankings are its sections',
			// so a baseline row of the full hierarchy's (hindsight: oracle)
			// or a combination would run eight times for nothing.
			if j.Models != "" || !slices.Contains([]string{"reference", "strategic", "tactical", "operational"}, j.Section) {
				continue
			}
			j.Label += v.Tag()
			out[i] = append(out[i], j)
		}
	}
	return out
}

// runVariants finds (in the store or the runs files of more) or runs every
// variant's jobs (see runMissing), each variant under its own cloud model,
// and returns their refs.
func runVariants(ctx context.Context, c *Config, s *eval.Session, win eval.Window, jobs map[int][]eval.Job, more *carried, stderr io.Writer) ([]ref, error) {
	st := s.Recorder().Store()
	var all []ref
	for i, v := range Variants {
		refs, err := resolve(ctx, st, win, jobs[i], more)
		if err != nil {
			return nil, err
		}
		if c.FromStore {
			for _, r := range refs {
				if !r.found && !c.Partial {
					return nil, fmt.Errorf("strata report --from-store --sensitivity: %s has no finished run in the store", r.job.Label)
				}
			}
			all = append(all, refs...)
			continue
		}
		vs := s.Variant(c.VariantModel(v.Sets))
		if err := runMissing(ctx, vs, refs, c.Eval.Parallel, stderr); err != nil {
			return nil, err
		}
		if refs, err = resolve(ctx, st, win, jobs[i], more); err != nil {
			return nil, err
		}
		all = append(all, refs...)
	}
	return all, nil
}

// DefaultVariantModel builds the default catalog's cloud model with sets
// applied over the default configuration.
func DefaultVariantModel(sets []cloud.Setting) func(epoch time.Time) (*cloud.Model, error) {
	return func(epoch time.Time) (*cloud.Model, error) {
		cat, err := cloud.DefaultCatalog()
		if err != nil {
			return nil, err
		}
		return VariantModel(cat, cloud.DefaultConfig(), sets, epoch)
	}
}

// VariantModel builds the model of catalog cat and configuration cfg with
// sets applied, trace time 0 at epoch.
func VariantModel(cat *cloud.Catalog, cfg cloud.Config, sets []cloud.Setting, epoch time.Time) (*cloud.Model, error) {
	if err := cfg.Override(sets); err != nil {
		return nil, fmt.Errorf("sensitivity variant: %w", err)
	}
	cfg.Epoch = epoch
	return cloud.NewModel(cat, cfg)
}

// Ranking is one section's configurations ordered by their layer's mean
// reward, best first, under the default model and under one variant.
type Ranking struct {
	Variant string   `json:"variant"`
	What    string   `json:"what"`
	Section string   `json:"section"`
	Default []string `json:"default"`
	Ranked  []string `json:"ranked"`
	// Changed says the order differs; Swaps lists the pairs whose order
	// flipped ("a > b" under the default, the other way under the
	// variant); KendallTau is the rank correlation of the two orders.
	Changed    bool     `json:"changed"`
	Swaps      []string `json:"swaps,omitempty"`
	KendallTau float64  `json:"kendall_tau"`
	// Incomplete says the variant's order lacks some of the default's
	// configurations (a --partial report): Swaps and KendallTau are over
	// the configurations both hold, and Changed is false, since an order
	// missing a configuration is not a changed order.
	Incomplete bool `json:"incomplete,omitempty"`
}

// ran counts the default's configurations the variant's order holds.
func (r Ranking) ran() int {
	n := 0
	for _, c := range r.Default {
		if slices.Contains(r.Ranked, c) {
			n++
		}
	}
	return n
}

// rankings compares, per section of the baseline comparison (strategic,
// tactical, operational: the configurations varying that layer and the
// reference, ranked by that layer's R), each variant's order with the
// default's.
func rankings(s *Summary) []Ranking {
	order := func(tag, section string) []string {
		type lr struct {
			label string
			r     float64
		}
		var xs []lr
		for _, c := range s.Configs {
			base, ok := strings.CutSuffix(c.Label, tag)
			if !ok || tag == "" && strings.HasSuffix(c.Label, "]") {
				continue
			}
			if c.Section != section && c.Section != "reference" || len(c.Models) > 0 {
				continue
			}
			if r, ok := c.MeanReward[section]; ok {
				xs = append(xs, lr{base, r})
			}
		}
		sort.SliceStable(xs, func(i, j int) bool {
			if xs[i].r != xs[j].r {
				return xs[i].r > xs[j].r
			}
			return xs[i].label < xs[j].label
		})
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = x.label
		}
		return out
	}
	var out []Ranking
	for _, v := range Variants {
		for _, sec := range []string{"strategic", "tactical", "operational"} {
			def, got := order("", sec), order(v.Tag(), sec)
			if len(def) < 2 || len(got) == 0 {
				continue
			}
			r := Ranking{Variant: v.Name + " " + v.Level, What: v.What, Section: sec, Default: def, Ranked: got}
			r.Swaps, r.KendallTau = compareOrders(def, got)
			r.Incomplete = r.ran() < len(def)
			r.Changed = !r.Incomplete && !slices.Equal(def, got)
			out = append(out, r)
		}
	}
	return out
}

// compareOrders returns the pairs of a (both in b) whose order b flips and
// Kendall's τ over those pairs.
func compareOrders(a, b []string) (swaps []string, tau float64) {
	pos := map[string]int{}
	for i, x := range b {
		pos[x] = i
	}
	var common []string
	for _, x := range a {
		if _, ok := pos[x]; ok {
			common = append(common, x)
		}
	}
	pairs := 0
	for i := range common {
		for j := i + 1; j < len(common); j++ {
			pairs++
			if pos[common[i]] > pos[common[j]] {
				swaps = append(swaps, common[i]+" > "+common[j])
			}
		}
	}
	if pairs == 0 {
		return nil, 1
	}
	return swaps, 1 - 2*float64(len(swaps))/float64(pairs)
}

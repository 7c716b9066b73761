package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/schemas"
)

// Summary is the report: every configuration's figures as read from the
// store, the Pareto fronts, the learning curves and the seed's claims they
// are set beside. summary.json holds it; report.md and the figures show it.
type Summary struct {
	Command     string  `json:"command"`
	WallSeconds float64 `json:"wall_seconds"`
	// Runs counts the distinct closed-loop runs the report reads and
	// RunSeconds sums their own wall times (runs.wall_ms), whenever and
	// however many at a time they ran: the machine time the report's
	// figures cost, where WallSeconds is this invocation's alone.
	Runs       int     `json:"runs"`
	RunSeconds float64 `json:"run_seconds"`
	// Window is the trace and days every run replayed.
	Window eval.Window `json:"window"`
	// Configs are the configurations in the order they were planned.
	Configs []*ConfigSummary `json:"configs"`
	// ParetoCostP95 and ParetoCostCarbon list the labels on each front.
	ParetoCostP95    []string `json:"pareto_cost_p95"`
	ParetoCostCarbon []string `json:"pareto_cost_carbon"`
	// Curves are the learning curves of the model directories evaluated.
	Curves []Curve `json:"curves,omitempty"`
	// Revisions are the source revisions of the runs (runs.revision).
	Revisions []string `json:"revisions"`
	// Sensitivity compares the rankings under each variant of the ASSUMED
	// hidden properties with the default's; VariantConfigs are the
	// variants' configurations (labels tagged with the variant).
	Sensitivity    []Ranking        `json:"sensitivity,omitempty"`
	VariantConfigs []*ConfigSummary `json:"variant_configs,omitempty"`
	// LSTMTest is the sequences file the forecasters were scored on, and
	// Predictions their metrics (--lstm-test; the seed's §4.4).
	LSTMTest    string       `json:"lstm_test,omitempty"`
	Predictions []Prediction `json:"predictions,omitempty"`
	// Combinations are the combinations of one causal baseline per layer
	// (--combinations), Standings and Dominance the learned hierarchies
	// against them.
	Combinations []*ConfigSummary `json:"combinations,omitempty"`
	Standings    []Standing       `json:"combination_standings,omitempty"`
	Dominance    []Dominance      `json:"combination_dominance,omitempty"`
	// CombinationsPlanned is how many combinations the report asked for:
	// more than Combinations holds in a partial report.
	CombinationsPlanned int `json:"combinations_planned,omitempty"`
	// Missing lists the runs a partial report (--partial) found no run
	// for, by label and model directory.
	Missing []string `json:"missing,omitempty"`
}

// ConfigSummary is one configuration: its runs (one per seed where a
// layer is learned) and their figures. Means and 95 % intervals are over
// the runs' per-run means (Student t, n−1 degrees of freedom); the rates
// and per-million figures pool the runs' operational reward rows (every
// function-tick the twin scored, pre-warm cost included: the twin's own
// totals); the percentiles come from the runs' merged latency histograms.
type ConfigSummary struct {
	Section  string            `json:"section"`
	Label    string            `json:"label"`
	Policies map[string]string `json:"policies"`
	RunIDs   []string          `json:"run_ids"`
	Models   []string          `json:"models,omitempty"`
	// PerRun is each run's mean reward per layer, in RunIDs' order: the
	// values MeanReward and CI95 are computed from.
	PerRun []RunReward `json:"per_run"`
	// MeanReward and CI95 are per layer.
	MeanReward map[string]float64 `json:"mean_reward"`
	CI95       map[string]float64 `json:"ci95_half_width,omitempty"`
	MeanRegret map[string]float64 `json:"mean_regret"`
	// Terms are the tactical reward's terms, means over the rows:
	// r_cost, r_perf, r_carbon, sla_penalty.
	Terms        map[string]float64 `json:"tactical_reward_terms"`
	Invocations  int64              `json:"invocations"`
	CostPerM     float64            `json:"cost_per_million_usd"`
	KeepWarmPerM float64            `json:"keep_warm_per_million_usd"`
	GCO2ePerM    float64            `json:"gco2e_per_million"`
	ColdRate     float64            `json:"cold_start_rate"`
	SLARate      float64            `json:"sla_violation_rate"`
	P50          float64            `json:"latency_p50_ms"`
	P95          float64            `json:"latency_p95_ms"`
	P99          float64            `json:"latency_p99_ms"`
	// Mix is each decision dimension's shares (strategic provider,
	// tactical provider, region and memory_mb).
	Mix map[string]map[string]float64 `json:"mix"`
	// Regret is the tactical regret distribution: rows per bucket of
	// width 1/20, keyed by the bucket's lower end.
	Regret map[string]int64 `json:"tactical_regret_rows"`
	// OnFrontCostP95 and OnFrontCostCarbon mark the Pareto fronts.
	OnFrontCostP95    bool `json:"on_front_cost_p95"`
	OnFrontCostCarbon bool `json:"on_front_cost_carbon"`

	hist   schemas.LatencyHistogram
	regret map[int]int64
}

// RunReward is one run of a configuration: its id, the model directory it
// evaluated (none for a baseline) and its mean reward per layer.
type RunReward struct {
	RunID      string             `json:"run_id"`
	Models     string             `json:"models,omitempty"`
	MeanReward map[string]float64 `json:"mean_reward"`
}

// Curve is one model directory's learning curve of one layer: the
// validation mean reward per episode (train.json).
type Curve struct {
	Models string    `json:"models"`
	Layer  string    `json:"layer"`
	Phase  string    `json:"phase"`
	X      []float64 `json:"episode"`
	Y      []float64 `json:"mean_reward"`
}

// runTime returns how many distinct runs refs name and the sum of their
// wall times in seconds.
func runTime(refs []ref) (int, float64) {
	seen := map[string]bool{}
	var ms int64
	for _, r := range refs {
		if r.runID == "" || seen[r.runID] {
			continue
		}
		seen[r.runID] = true
		ms += r.row.WallMS
	}
	return len(seen), float64(ms) / 1000
}

// build aggregates the runs into the report's configurations.
func build(d map[string]*runData, refs []ref, win eval.Window) *Summary {
	s := &Summary{Window: win}
	byLabel := map[string]*ConfigSummary{}
	sums := map[string]map[string]*layerSums{} // label → layer → pooled sums
	revs := map[string]bool{}
	for _, r := range refs {
		rd := d[r.runID]
		if rd == nil {
			continue
		}
		c := byLabel[r.job.Label]
		if c == nil {
			c = &ConfigSummary{Section: r.job.Section, Label: r.job.Label, Policies: r.job.Policies, MeanReward: map[string]float64{},
				CI95: map[string]float64{}, MeanRegret: map[string]float64{}, Terms: map[string]float64{}, Mix: map[string]map[string]float64{},
				Regret: map[string]int64{}, regret: map[int]int64{}}
			byLabel[r.job.Label] = c
			s.Configs = append(s.Configs, c)
			sums[c.Label] = map[string]*layerSums{}
		}
		if slices.Contains(c.RunIDs, r.runID) {
			continue
		}
		c.RunIDs = append(c.RunIDs, r.runID)
		if r.job.Models != "" {
			c.Models = append(c.Models, r.job.Models)
		}
		if r.row.Revision != "" {
			revs[r.row.Revision] = true
		}
		rr := RunReward{RunID: r.runID, Models: r.job.Models, MeanReward: map[string]float64{}}
		for l, ls := range rd.layers {
			if ls.Rows > 0 {
				rr.MeanReward[l] = ls.Reward / ls.Rows
			}
			p := sums[c.Label][l]
			if p == nil {
				p = &layerSums{}
				sums[c.Label][l] = p
			}
			addSums(p, ls)
		}
		c.PerRun = append(c.PerRun, rr)
		c.hist.Merge(&rd.hist)
		for dim, vals := range rd.mix {
			if c.Mix[dim] == nil {
				c.Mix[dim] = map[string]float64{}
			}
			for v, n := range vals {
				c.Mix[dim][v] += float64(n)
			}
		}
		for b, n := range rd.regret {
			c.regret[b] += n
		}
	}
	for _, c := range s.Configs {
		perLayer := map[string][]float64{} // layer → the runs' means, in run order
		for _, r := range c.PerRun {
			for l, m := range r.MeanReward {
				perLayer[l] = append(perLayer[l], m)
			}
		}
		for l, xs := range perLayer {
			c.MeanReward[l], c.CI95[l] = eval.MeanCI95(xs)
		}
		for l, p := range sums[c.Label] {
			if p.Rows > 0 {
				c.MeanRegret[l] = p.Regret / p.Rows
			}
		}
		if t := sums[c.Label]["tactical"]; t != nil && t.Rows > 0 {
			c.Terms = map[string]float64{"r_cost": t.RCost / t.Rows, "r_perf": t.RPerf / t.Rows, "r_carbon": t.RCarbon / t.Rows, "sla_penalty": t.SLAPenalty / t.Rows}
		}
		// The run's totals are the operational rows' (every function-tick
		// the twin scored, pre-warm included), as the twin counts them.
		if o := sums[c.Label]["operational"]; o != nil && o.Invocations > 0 {
			c.Invocations = int64(o.Invocations)
			c.CostPerM = o.CostUSD * 1e6 / o.Invocations
			c.KeepWarmPerM = o.PrewarmUSD * 1e6 / o.Invocations
			c.GCO2ePerM = o.CarbonG * 1e6 / o.Invocations
			c.ColdRate = o.ColdStarts / o.Invocations
			c.SLARate = o.SLAViolations / o.Invocations
		}
		c.P50, c.P95, c.P99 = c.hist.Quantile(0.5), c.hist.Quantile(0.95), c.hist.Quantile(0.99)
		for dim, vals := range c.Mix {
			tot := 0.0
			for _, n := range vals {
				tot += n
			}
			for v, n := range vals {
				vals[v] = n / tot
			}
			c.Mix[dim] = vals
		}
		for b, n := range c.regret {
			c.Regret[formatBucket(b)] = n
		}
	}
	for _, c := range s.Configs {
		c.round()
	}
	costP95 := make([]point, len(s.Configs))
	costCO2 := make([]point, len(s.Configs))
	for i, c := range s.Configs {
		costP95[i] = point{c.CostPerM, c.P95}
		costCO2[i] = point{c.CostPerM, c.GCO2ePerM}
	}
	f1, f2 := paretoFront(costP95), paretoFront(costCO2)
	for i, c := range s.Configs {
		c.OnFrontCostP95, c.OnFrontCostCarbon = f1[i], f2[i]
		if f1[i] {
			s.ParetoCostP95 = append(s.ParetoCostP95, c.Label)
		}
		if f2[i] {
			s.ParetoCostCarbon = append(s.ParetoCostCarbon, c.Label)
		}
	}
	for r := range revs {
		s.Revisions = append(s.Revisions, r)
	}
	sort.Strings(s.Revisions)
	s.Curves = readCurves(refs)
	return s
}

// round keeps 9 significant digits of c's figures: the stores sum
// floating-point values in no fixed order (DuckDB and ClickHouse aggregate
// in parallel), so the last bits of a sum vary between two reads of the
// same rows; a figure within such a difference of a rounding edge can still
// differ in its 9th digit.
func (c *ConfigSummary) round() {
	ms := []map[string]float64{c.MeanReward, c.CI95, c.MeanRegret, c.Terms}
	for _, r := range c.PerRun {
		ms = append(ms, r.MeanReward)
	}
	for _, m := range ms {
		for k, v := range m {
			m[k] = sig(v)
		}
	}
	for _, m := range c.Mix {
		for k, v := range m {
			m[k] = sig(v)
		}
	}
	for _, p := range []*float64{&c.CostPerM, &c.KeepWarmPerM, &c.GCO2ePerM, &c.ColdRate, &c.SLARate} {
		*p = sig(*p)
	}
}

// sig rounds x to 9 significant digits.
func sig(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 9, 64), 64)
	if err != nil {
		return x
	}
	return v
}

func addSums(p, ls *layerSums) {
	p.Rows += ls.Rows
	p.Invocations += ls.Invocations
	p.ColdStarts += ls.ColdStarts
	p.SLAViolations += ls.SLAViolations
	p.Reward += ls.Reward
	p.Regret += ls.Regret
	p.RCost += ls.RCost
	p.RPerf += ls.RPerf
	p.RCarbon += ls.RCarbon
	p.SLAPenalty += ls.SLAPenalty
	p.CostUSD += ls.CostUSD
	p.PrewarmUSD += ls.PrewarmUSD
	p.CarbonG += ls.CarbonG
}

func formatBucket(b int) string {
	return jsonFloat(float64(b) / regretBins)
}

func jsonFloat(x float64) string {
	b, _ := json.Marshal(x)
	return string(b)
}

// point is a configuration in a plane where both coordinates are to be
// minimised.
type point struct{ x, y float64 }

// paretoFront marks the points no other point dominates (at most as large
// in both coordinates and smaller in one), with a sort and one sweep:
// along increasing x (ties by y), a point is on the front when its y is
// below every y of a smaller x and it is the smallest y of its own x.
// Equal points are all on the front or all off it.
func paretoFront(ps []point) []bool {
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		pa, pb := ps[idx[a]], ps[idx[b]]
		if pa.x != pb.x {
			return pa.x < pb.x
		}
		return pa.y < pb.y
	})
	on := make([]bool, len(ps))
	best := math.Inf(1) // smallest y over the points of smaller x
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && ps[idx[j]].x == ps[idx[i]].x {
			j++
		}
		minY := ps[idx[i]].y // the group's smallest y (sorted)
		for k := i; k < j; k++ {
			p := ps[idx[k]]
			on[idx[k]] = p.y == minY && p.y < best
		}
		best = math.Min(best, minY)
		i = j
	}
	return on
}

// readCurves reads the learning curves of the model directories the refs
// evaluated (train.json's curves; a directory without one is skipped).
func readCurves(refs []ref) []Curve {
	// A model directory's own train.json, and those beside the
	// checkpoints it links to (a hierarchy's directory pairs the DQN and
	// the PPO of separate trainings).
	var dirs []string
	for _, r := range refs {
		if r.job.Models == "" {
			continue
		}
		cands := []string{r.job.Models}
		for _, ck := range []string{"dqn.ckpt", "ppo.ckpt", "lstm.ckpt"} {
			if p, err := filepath.EvalSymlinks(filepath.Join(r.job.Models, ck)); err == nil {
				cands = append(cands, filepath.Dir(p))
			}
		}
		for _, d := range cands {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	var out []Curve
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "train.json"))
		if err != nil {
			continue
		}
		var tj struct {
			Curves []struct {
				Episode    int     `json:"episode"`
				Phase      string  `json:"phase"`
				Layer      string  `json:"layer"`
				MeanReward float64 `json:"mean_reward"`
			} `json:"curves"`
		}
		if json.Unmarshal(b, &tj) != nil {
			continue
		}
		byKey := map[[2]string]*Curve{}
		var order [][2]string
		for _, c := range tj.Curves {
			k := [2]string{c.Layer, c.Phase}
			cv := byKey[k]
			if cv == nil {
				cv = &Curve{Models: dir, Layer: c.Layer, Phase: c.Phase}
				byKey[k] = cv
				order = append(order, k)
			}
			cv.X = append(cv.X, float64(c.Episode))
			cv.Y = append(cv.Y, c.MeanReward)
		}
		for _, k := range order {
			out = append(out, *byKey[k])
		}
	}
	return out
}

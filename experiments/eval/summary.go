package eval

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// rowSummary is one configuration's aggregate in the --summary JSON:
// per layer the mean reward over the runs (one per seed) with its 95 %
// confidence half-width (Student t, n−1 degrees of freedom; absent for a
// single run), the tactical mean as a share of the oracle row's, and the
// outcome metrics averaged over the runs.
type rowSummary struct {
	Section string   `json:"section"`
	Label   string   `json:"label"`
	Seeds   int      `json:"seeds"`
	Models  []string `json:"models,omitempty"`
	// MeanReward and CI95 are keyed by layer.
	MeanReward map[string]float64 `json:"mean_reward"`
	CI95       map[string]float64 `json:"ci95_half_width,omitempty"`
	// OracleShare is the tactical mean reward ÷ the tactical oracle row's
	// (absent when the evaluation ran no oracle row).
	OracleShare *float64 `json:"tactical_oracle_share,omitempty"`
	CostPerM    float64  `json:"cost_per_million_usd"`
	// KeepWarmPerM is the pre-warm (keep-warm) part of CostPerM.
	KeepWarmPerM float64 `json:"keep_warm_per_million_usd"`
	GCO2ePerM    float64 `json:"gco2e_per_million"`
	P95          float64 `json:"latency_p95_ms"`
	P99          float64 `json:"latency_p99_ms"`
	ColdRate     float64 `json:"cold_start_rate"`
	SLARate      float64 `json:"sla_violation_rate"`
}

// summarize aggregates the rows of a models evaluation (see rowSummary).
func summarize(rows []modelsRow) []rowSummary {
	var oracle float64
	hasOracle := false
	for _, r := range rows {
		if r.Section == "tactical" && r.Label == "oracle" && len(r.Runs) > 0 {
			oracle, hasOracle = r.Runs[0].MeanReward["tactical"], true
		}
	}
	out := make([]rowSummary, 0, len(rows))
	for _, r := range rows {
		n := len(r.Runs)
		if n == 0 {
			continue
		}
		s := rowSummary{Section: r.Section, Label: r.Label, Seeds: n, MeanReward: map[string]float64{}}
		for _, run := range r.Runs {
			if run.Models != "" {
				s.Models = append(s.Models, run.Models)
			}
			s.CostPerM += run.CostPerM / float64(n)
			s.KeepWarmPerM += run.KeepWarmPerM / float64(n)
			s.GCO2ePerM += run.GCO2ePerM / float64(n)
			s.P95 += run.P95 / float64(n)
			s.P99 += run.P99 / float64(n)
			s.ColdRate += run.ColdRate / float64(n)
			s.SLARate += run.SLARate / float64(n)
		}
		for layer := range r.Runs[0].MeanReward {
			xs := make([]float64, n)
			for i, run := range r.Runs {
				xs[i] = run.MeanReward[layer]
			}
			mean, half := MeanCI95(xs)
			s.MeanReward[layer] = mean
			if n > 1 {
				if s.CI95 == nil {
					s.CI95 = map[string]float64{}
				}
				s.CI95[layer] = half
			}
		}
		if hasOracle && oracle != 0 {
			share := s.MeanReward["tactical"] / oracle
			s.OracleShare = &share
		}
		out = append(out, s)
	}
	return out
}

// MeanCI95 returns the mean of xs and the half-width of its 95 %
// confidence interval, t(0.975, n−1)·s/√n (0 for fewer than two values).
func MeanCI95(xs []float64) (mean, half float64) {
	n := float64(len(xs))
	for _, x := range xs {
		mean += x / n
	}
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
	return mean, t * sd / math.Sqrt(n)
}

package dqn

import (
	"fmt"
	"math"
	"slices"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Action masks of Config.Mask (docs/agents.md, "SLO-risk mask").
const (
	// MaskNone masks nothing: every provider may be chosen (the seed's DQN,
	// and the meaning of an empty Config.Mask).
	MaskNone = "none"
	// MaskSLORisk rules out, per app and day, a provider whose expected SLA
	// penalty exceeds the lowest provider's by more than the reward's
	// cost, latency and carbon terms could ever pay back (SLORisk).
	MaskSLORisk = "slo-risk"
)

// Masks lists the valid values of Config.Mask after the empty default.
func Masks() []string { return []string{MaskNone, MaskSLORisk} }

// ParseMask returns the mask named s ("" is MaskNone) or an error naming
// the valid values.
func ParseMask(s string) (string, error) {
	if s == "" {
		return MaskNone, nil
	}
	if slices.Contains(Masks(), s) {
		return s, nil
	}
	return "", fmt.Errorf("%w: unknown action mask %q (want %s or %s)", ErrConfig, s, MaskNone, MaskSLORisk)
}

// SLORisk is the strategic action mask "slo-risk". The twin counts an
// invocation as an SLA violation when its latency (network round trip +
// cold start + queueing + execution) exceeds the function's SLO,
// max(SLOFloorMS, SLOMultiplier × p95 duration) + SLONetworkAllowanceMS,
// and the reward subtracts SLAPenalty × the violation rate while its other
// terms, WCost·R_cost + WPerf·R_perf + WCarbon·R_carbon, lie in
// [0, WCost + WPerf + WCarbon]. A cold start's length depends on the
// provider and the function's runtime (the catalog's medians); the runtime
// is not in the state, so SLORisk takes the model's runtime mix as its
// distribution. For one app-day it estimates, per provider p,
//
//	risk(p) = SLAPenalty × c × P_runtime(RTT + cold(p, runtime) + mean duration > SLO)
//
// with c the app's cold-start rate of the previous day (1 without one: a
// first invocation starts cold) and RTT the smallest access round trip of
// the catalog. It masks p when risk(p) − min_q risk(q) > WCost + WPerf +
// WCarbon: no cost, latency or carbon advantage can pay for that expected
// penalty. At least the lowest-risk provider always stays allowed.
//
// The mask uses only the state row and the cloud model's configuration
// (catalog, SLO rule, reward weights, runtime mix), never an outcome of
// the day it decides for.
type SLORisk struct {
	coldMS                 [cloud.NumProviders][cloud.NumRuntimes]float64
	mix                    [cloud.NumRuntimes]float64
	rttMS                  float64
	floor, mult, allowance float64
	penalty, payable       float64
}

// NewSLORisk returns the SLO-risk mask of model m.
func NewSLORisk(m *cloud.Model) (*SLORisk, error) {
	if m == nil {
		return nil, fmt.Errorf("creating the %s mask: %w: it needs the cloud model (catalog, SLO rule, reward)", MaskSLORisk, ErrConfig)
	}
	c := m.Config()
	s := &SLORisk{mix: c.RuntimeMix, floor: c.SLOFloorMS, mult: c.SLOMultiplier, allowance: c.SLONetworkAllowanceMS,
		penalty: c.Reward.SLAPenalty, payable: c.Reward.WCost + c.Reward.WPerf + c.Reward.WCarbon, rttMS: math.Inf(1)}
	for p := range cloud.Provider(cloud.NumProviders) {
		for r := range cloud.Runtime(cloud.NumRuntimes) {
			s.coldMS[p][r] = m.ColdStartMS(p, r)
		}
	}
	for mt := range cloud.Metro(cloud.NumMetros) {
		s.rttMS = min(s.rttMS, m.RTTMS(mt, mt))
	}
	return s, nil
}

// Breach returns the probability, over the runtime mix, that a cold
// invocation at provider p of a function with the given mean and p95
// durations (ms) breaks its SLO.
func (s *SLORisk) Breach(p cloud.Provider, meanMS, p95MS float64) float64 {
	meanMS, p95MS = nonNeg(meanMS), nonNeg(p95MS)
	slo := max(s.floor, s.mult*p95MS) + s.allowance
	b := 0.0
	for r, w := range s.mix {
		if s.rttMS+s.coldMS[p][r]+meanMS > slo {
			b += w
		}
	}
	return b
}

// Allow sets allowed[p] for each provider p of the app-day of row (see
// SLORisk) and reports whether it masked any.
func (s *SLORisk) Allow(row *schemas.StrategicRow, allowed *[cloud.NumProviders]bool) bool {
	c := 1.0
	if row.Invocations > 0 && row.ColdStartRate.Valid && !math.IsNaN(row.ColdStartRate.V) {
		c = min(max(row.ColdStartRate.V, 0), 1)
	}
	var risk [cloud.NumProviders]float64
	low := math.Inf(1)
	for p := range risk {
		risk[p] = s.penalty * c * s.Breach(cloud.Provider(p), row.DurationMeanMS, row.DurationP95MS)
		low = min(low, risk[p])
	}
	masked := false
	for p := range risk {
		allowed[p] = risk[p]-low <= s.payable
		masked = masked || !allowed[p]
	}
	return masked
}

// nonNeg maps NaN, ±Inf and negative values to 0.
func nonNeg(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

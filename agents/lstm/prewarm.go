package lstm

import (
	"fmt"
	"math"

	"github.com/strata-rl/strata/schemas"
)

// StepS is the length of one operational step in seconds.
const StepS = 15.0

// PrewarmRule turns a predicted request rate into a pre-warm count by
// Little's law: instances ≈ rate × mean duration.
//
// The mean duration D of the function is estimated from the row itself:
// D = Σ ConcurrencyMean[i] / Σ RequestRate[i] over the steps i where both
// are > 0 (ConcurrencyMean is the time-averaged number of invocations in
// flight, so ConcurrencyMean = rate × D per step). When no step has both,
// D = DefaultDurationS. The pre-warm count is then
//
//	Prewarm = min(⌈rate × D⌉, Max)
//
// and 0 when rate ≤ Threshold or is not finite. The rule is deterministic
// and keeps no state.
type PrewarmRule struct {
	// Max caps the count (64).
	Max int32 `json:"max"`
	// Threshold is the predicted request rate (invocations/s) at or below
	// which nothing is pre-warmed (0.01, less than one invocation in 100 s).
	Threshold float64 `json:"threshold"`
	// DefaultDurationS is D when the row gives no estimate (1 s).
	DefaultDurationS float64 `json:"default_duration_s"`
}

// DefaultPrewarmRule returns Max 64, Threshold 0.01/s, DefaultDurationS 1.
func DefaultPrewarmRule() PrewarmRule {
	return PrewarmRule{Max: 64, Threshold: 0.01, DefaultDurationS: 1}
}

// Validate reports an unusable rule.
func (r PrewarmRule) Validate() error {
	if r.Max < 0 || !(r.Threshold >= 0) || !finite(r.Threshold) || !(r.DefaultDurationS > 0) || !finite(r.DefaultDurationS) {
		return fmt.Errorf("%w: pre-warm rule %+v", ErrConfig, r)
	}
	return nil
}

// MeanDurationS returns the row's mean-duration estimate in seconds and
// whether the row gave one (see PrewarmRule).
func MeanDurationS(r *schemas.OperationalRow) (float64, bool) {
	var conc, rate float64
	for i := range schemas.SeqLen {
		c, q := r.ConcurrencyMean[i], r.RequestRate[i]
		if c > 0 && q > 0 && finite(c) && finite(q) {
			conc += c
			rate += q
		}
	}
	if rate == 0 {
		return 0, false
	}
	return conc / rate, true
}

// Prewarm returns the pre-warm count for a predicted request rate
// (invocations/s) of the function whose state is row.
func (r PrewarmRule) Prewarm(row *schemas.OperationalRow, rate float64) int32 {
	if !finite(rate) || rate <= r.Threshold {
		return 0
	}
	d, ok := MeanDurationS(row)
	if !ok {
		d = r.DefaultDurationS
	}
	n := rate * d
	if !(n > 1e-9) {
		return 0
	}
	return int32(min(math.Ceil(n-1e-9), float64(r.Max)))
}

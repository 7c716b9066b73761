package lstm

import (
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/nn"
)

// Metrics are the accuracy of predictions against actual values, per
// target (TargetCPU, TargetMemory, TargetRequestRate), in raw units.
type Metrics struct {
	// N is the number of samples.
	N int `json:"n"`
	// RMSE, MAE and R2 are the root mean squared error, the mean absolute
	// error and the coefficient of determination 1 − SS_res/SS_tot per
	// target. R2 is 0 when the actual values are constant and predicted
	// exactly, −Inf when constant and missed.
	RMSE [Targets]float64 `json:"rmse"`
	MAE  [Targets]float64 `json:"mae"`
	R2   [Targets]float64 `json:"r2"`
	// UnderRate is the share of samples whose predicted request rate is
	// below the actual one (under-provisioning).
	UnderRate float64 `json:"under_rate"`
}

// Evaluate computes the metrics of predictions pred against actual, one
// [Targets] row per sample.
func Evaluate(pred, actual [][Targets]float32) (Metrics, error) {
	if len(pred) != len(actual) || len(pred) == 0 {
		return Metrics{}, fmt.Errorf("evaluating LSTM predictions: %w: %d predictions for %d actual values", ErrConfig, len(pred), len(actual))
	}
	n := float64(len(pred))
	m := Metrics{N: len(pred)}
	var under int
	for j := range Targets {
		var mean, se, ae, tot float64
		for i := range actual {
			mean += float64(actual[i][j])
		}
		mean /= n
		for i := range pred {
			a, p := float64(actual[i][j]), float64(pred[i][j])
			se += (p - a) * (p - a)
			ae += math.Abs(p - a)
			tot += (a - mean) * (a - mean)
		}
		m.RMSE[j] = math.Sqrt(se / n)
		m.MAE[j] = ae / n
		switch {
		case tot > 0:
			m.R2[j] = 1 - se/tot
		case se == 0:
			m.R2[j] = 0
		default:
			m.R2[j] = math.Inf(-1)
		}
	}
	for i := range pred {
		if pred[i][TargetRequestRate] < actual[i][TargetRequestRate] {
			under++
		}
	}
	m.UnderRate = float64(under) / n
	return m, nil
}

// MovingAverage5 is the baseline predictor: for each target, the mean of
// the corresponding feature over the last 5 steps of the raw sequence.
func MovingAverage5(seq *[SeqDim]float32) [Targets]float32 {
	const w = 5
	var cpu, mem, rate float64
	for t := Steps - w; t < Steps; t++ {
		s := seq[t*Features : (t+1)*Features]
		cpu += float64(s[FeatCPUUtil])
		mem += float64(s[FeatMemoryUtil])
		rate += float64(s[FeatRequestRate])
	}
	return [Targets]float32{float32(cpu / w), float32(mem / w), float32(rate / w)}
}

// scaledBases returns, for residual heads, MovingAverage5 of each raw
// sequence in seqs (a whole number of SeqDim values) mapped by the target
// scaler, appended to dst[:0]: the scaled predictions a HeadResidual
// network's outputs are added to. It returns nil for a direct head.
func scaledBases(dst []float32, cfg Config, target *nn.Scaler, seqs []float32) ([]float32, error) {
	if !cfg.residual() {
		return nil, nil
	}
	n := len(seqs) / SeqDim
	b := dst[:0]
	for i := range n {
		ma := MovingAverage5((*[SeqDim]float32)(seqs[i*SeqDim : (i+1)*SeqDim]))
		b = append(b, ma[:]...)
	}
	if _, err := target.Transform(b, b); err != nil {
		return nil, fmt.Errorf("scaling the moving-average bases: %w", err)
	}
	return b, nil
}

// addBases adds bases (nil for a direct head) to the scaled outputs y.
func addBases(y, bases []float32) {
	for i := range bases {
		y[i] += bases[i]
	}
}

// PredictMovingAverage5 applies MovingAverage5 to every sample.
func PredictMovingAverage5(samples []Sample) [][Targets]float32 {
	out := make([][Targets]float32, len(samples))
	for i := range samples {
		out[i] = MovingAverage5(&samples[i].Seq)
	}
	return out
}

// Actuals returns the samples' targets.
func Actuals(samples []Sample) [][Targets]float32 {
	out := make([][Targets]float32, len(samples))
	for i := range samples {
		out[i] = samples[i].Target
	}
	return out
}

package schemas

import (
	"hash/fnv"
	"math"
)

// Dimensions of the learners' state vectors (seed §2.4–2.6).
const (
	// StrategicDim is the strategic DQN's state size: 10 strategic metrics
	// and 4 app-context values.
	StrategicDim = 14
	// TacticalDim is the tactical PPO's state size: 7 tactical metrics, the
	// provider one-hot and the workload trend.
	TacticalDim = 11
	// OperationalDim is the flattened operational sequence: SeqLen steps ×
	// 5 features.
	OperationalDim = SeqLen * 5
)

// or0 returns v's value, or 0 when it is missing. State vectors hold raw
// values; a missing measurement is 0 (the agents' scalers see the same).
func or0(v Value) float32 {
	if !v.Valid {
		return 0
	}
	return float32(v.V)
}

// Vector returns the tactical state vector, raw (unscaled), in this order:
// latency mean ms, cost USD, request rate /s, memory utilisation, CPU
// utilisation, queue depth, cold-start rate (the seed's 7 tactical metrics:
// "current latency, cost, request rate, memory utilization, CPU proxy, queue
// depth, cold start probability"), the one-hot of the provider the function
// ran on (aws, azure, gcp; all 0 when the telemetry does not say) and the
// workload trend. Missing values are 0.
func (r *TacticalRow) Vector() []float32 {
	v := make([]float32, TacticalDim)
	v[0], v[1] = or0(r.LatencyMeanMS), or0(r.CostUSD)
	v[2] = float32(r.RequestRate)
	v[3], v[4], v[5], v[6] = or0(r.MemoryUtil), or0(r.CPUUtil), or0(r.QueueDepth), or0(r.ColdStartRate)
	providerOneHot(v[7:10], r.Provider)
	v[10] = float32(r.Trend)
	return v
}

// Vector returns the strategic state vector, raw (unscaled): the 10
// strategic metrics — cost USD, carbon g, latency mean and p95 ms,
// invocations, request rate /s, peak hourly rate, workload trend, duration
// mean and p95 ms — then the 4 app-context values: an app-id embedding (the
// FNV-1a hash of the app id mapped to [0, 1), a fixed stand-in for the
// seed's learned embedding), function count (the seed's "function
// complexity"), active hours, and cold-start rate. The seed's carbon
// intensity forecasts and historical provider affinity are not in the
// state batch; the day's carbon and cold-start rate stand for them. Missing
// values are 0.
func (r *StrategicRow) Vector() []float32 {
	h := fnv.New64a()
	h.Write([]byte(r.App))
	emb := float32(float64(h.Sum64()>>11) / float64(1<<53))
	return []float32{
		or0(r.CostUSD), or0(r.CarbonG), or0(r.LatencyMeanMS), or0(r.LatencyP95MS),
		float32(r.Invocations), float32(r.RequestRate), float32(r.PeakHourRate), float32(r.Trend),
		float32(r.DurationMeanMS), float32(r.DurationP95MS),
		emb, float32(r.Functions), float32(r.ActiveHours), or0(r.ColdStartRate),
	}
}

// Vector returns the operational sequence flattened step-major, oldest step
// first, 5 raw features per step: request rate /s, memory utilisation, CPU
// utilisation, queue depth, hour sine. Missing values are 0.
func (r *OperationalRow) Vector() []float32 {
	return r.AppendVector(make([]float32, 0, OperationalDim))
}

// AppendVector appends the values of Vector to dst and returns the
// extended slice: serving policies fill their batch without a slice per
// row.
func (r *OperationalRow) AppendVector(dst []float32) []float32 {
	for i := range SeqLen {
		dst = append(dst, float32(r.RequestRate[i]), or0(r.MemoryUtil[i]), or0(r.CPUUtil[i]), or0(r.QueueDepth[i]), float32(r.HourSin[i]))
	}
	return dst
}

// Finite reports whether every value of v is finite: learners reject
// transitions that are not (docs/agents.md, stability rules).
func Finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// providerOneHot sets v[i] to 1 for provider i of (aws, azure, gcp), the
// strategic action order; an unknown or empty provider leaves v as it is.
func providerOneHot(v []float32, provider string) {
	switch provider {
	case "aws":
		v[0] = 1
	case "azure":
		v[1] = 1
	case "gcp":
		v[2] = 1
	}
}

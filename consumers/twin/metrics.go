package twin

import (
	"github.com/prometheus/client_golang/prometheus"
)

// serviceMetrics are the service's Prometheus metrics (see doc.go).
type serviceMetrics struct {
	ticks        prometheus.Counter
	evaluate     prometheus.Histogram
	score        prometheus.Histogram
	decisionWait prometheus.Histogram
	lag          prometheus.Gauge
	held         prometheus.Counter
	decisions    *prometheus.CounterVec
	rewards      *prometheus.CounterVec
	// checkpoint, checkpointBytes and restores: a replay's checkpoints.
	checkpoint      prometheus.Histogram
	checkpointBytes prometheus.Gauge
	restores        prometheus.Counter
}

// tickBuckets span 10 µs to ~2.7 s, for per-tick latencies.
var tickBuckets = prometheus.ExponentialBuckets(1e-5, 2, 19)

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "twin",
			Name: "ticks_total", Help: "Ticks evaluated."}),
		evaluate: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "twin",
			Name: "evaluate_seconds", Help: "Per tick: applying the decisions, simulating the arrivals and writing the telemetry and watermark (the twin's hop of the loop).", Buckets: tickBuckets}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "twin",
			Name: "score_seconds", Help: "Per tick: counterfactuals, rewards and the records after the telemetry (a replay scores on a goroutine of its own, beside the next ticks' simulation and round trips).", Buckets: tickBuckets}),
		decisionWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "twin",
			Name: "decision_wait_seconds", Help: "Replay: from the end of tick k's simulation (its telemetry written; its scoring goes on beside) until tick k+1 could be evaluated: the round trip through the features and the agents.", Buckets: tickBuckets}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "twin",
			Name: "watermark_lag_ticks", Help: "Ticks between the input watermark and the next tick to evaluate."}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "twin",
			Name: "backpressure_seconds_total", Help: "Replay: time the twin held its next tick because a reader of its output (the sink) was too far behind (ServiceConfig.Gate)."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "twin",
			Name: "decisions_total", Help: "Decision records written, by layer."}, []string{"layer"}),
		rewards: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "twin",
			Name: "rewards_total", Help: "Reward records written, by layer."}, []string{"layer"}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "twin",
			Name: "checkpoint_seconds", Help: "Replay: writing a checkpoint, from waiting for the scoring and Kafka's acknowledgements to the stored object.", Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}),
		checkpointBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "twin",
			Name: "checkpoint_bytes", Help: "Replay: the size of the last checkpoint written."}),
		restores: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "twin",
			Name: "restores_total", Help: "Replay: starts that restored the run's checkpoint."}),
	}
	if reg != nil {
		reg.MustRegister(m.ticks, m.evaluate, m.score, m.decisionWait, m.lag, m.held, m.decisions, m.rewards,
			m.checkpoint, m.checkpointBytes, m.restores)
	}
	return m
}

// addByLayer counts records on vec by their layer, one Add per run of
// records of the same layer (a tick's records come grouped by layer, and
// a reward per function-tick is too many for a label lookup each).
func addByLayer[M interface{ GetLayer() string }](vec *prometheus.CounterVec, ms []M) {
	for i := 0; i < len(ms); {
		l, j := ms[i].GetLayer(), i+1
		for j < len(ms) && ms[j].GetLayer() == l {
			j++
		}
		vec.WithLabelValues(l).Add(float64(j - i))
		i = j
	}
}

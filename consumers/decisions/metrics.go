package decisions

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches *prometheus.CounterVec
	held    *prometheus.GaugeVec
	decode  prometheus.Counter
	skipped *prometheus.CounterVec
	evicted *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "strata", "decisions"
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "batches_applied_total", Help: "Decision batches of the view's run applied, by layer (one per shard and tick)."}, []string{"layer"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rows_held", Help: "Decisions held, by layer: apps (strategic) or functions (tactical, operational)."}, []string{"layer"}),
		decode: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "decode_failures_total", Help: "Decision batches that could not be decoded and were skipped."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rows_skipped_total", Help: "Decision rows not applied, by reason: stale (older than the decision held), name (empty or too long), tick (out of range)."}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "evicted_total", Help: "Decisions evicted because the layer held more entities than the cap, by layer."}, []string{"layer"}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.held, m.decode, m.skipped, m.evicted)
	}
	return m
}

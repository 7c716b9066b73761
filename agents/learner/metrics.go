package learner

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descTransitions = prometheus.NewDesc("strata_learner_transitions_total",
		"Transitions received by the learner, by layer.", []string{"layer"}, nil)
	descIntervals = prometheus.NewDesc("strata_learner_intervals_total",
		"Intervals the learner trained on, by layer.", []string{"layer"}, nil)
	descRejected = prometheus.NewDesc("strata_learner_rejected_transitions_total",
		"Transitions the algorithms refused (NaN/Inf, malformed, stale version, duplicate, full buffer), by reason.", []string{"reason"}, nil)
	descCheckpoints = prometheus.NewDesc("strata_learner_checkpoints_total",
		"Checkpoints published, by layer.", []string{"layer"}, nil)
	descSteps = prometheus.NewDesc("strata_learner_gradient_steps_total",
		"Accepted gradient steps, by layer.", []string{"layer"}, nil)
	descRejectedSteps = prometheus.NewDesc("strata_learner_rejected_steps_total",
		"Gradient steps rejected by the NaN/Inf guards (input, loss or gradient norm), by layer.", []string{"layer"}, nil)
)

// collector exports a learner's Stats as Prometheus counters.
type collector struct{ l *Learner }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTransitions, descIntervals, descRejected, descCheckpoints, descSteps, descRejectedSteps} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	for l, n := range s.Transitions {
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(n), string(l))
	}
	for l, n := range s.Intervals {
		ch <- prometheus.MustNewConstMetric(descIntervals, prometheus.CounterValue, float64(n), string(l))
	}
	for r, n := range s.Rejected {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(n), r)
	}
	for l, n := range s.Checkpoints {
		ch <- prometheus.MustNewConstMetric(descCheckpoints, prometheus.CounterValue, float64(n), string(l))
	}
	if c.l.dqn != nil {
		ch <- prometheus.MustNewConstMetric(descSteps, prometheus.CounterValue, float64(s.DQN.Steps), "strategic")
		ch <- prometheus.MustNewConstMetric(descRejectedSteps, prometheus.CounterValue, float64(s.DQN.RejectedSteps), "strategic")
	}
	if c.l.ppo != nil {
		ch <- prometheus.MustNewConstMetric(descSteps, prometheus.CounterValue, float64(s.PPO.Net.Steps), "tactical")
		ch <- prometheus.MustNewConstMetric(descRejectedSteps, prometheus.CounterValue, float64(s.PPO.SkippedMinibatches), "tactical")
	}
}

package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/agents/internal/rowcache"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// Policy is what the worker serves: one layer's decisions for one tick.
type Policy interface {
	Name() string
	Version() string
	Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error
}

// Publisher sends an encoded batch with a message id; natsbus.BatchPublisher
// satisfies it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
	// Check returns the first failure among the acknowledgements received
	// so far, without waiting.
	Check() error
	Flush(ctx context.Context) error
}

// Worker serves one layer's policy for one run.
type Worker struct {
	js     jetstream.JetStream
	pub    Publisher
	layer  schemas.Layer
	runID  string
	policy Policy
	log    *slog.Logger
	// Names prefixes the streams and subjects the worker reads and writes
	// (see schemas.Names); set it before Run.
	Names schemas.Names
	// Decided counts the decision batches published.
	Decided int64
	// Registerer, if set, receives the worker's metrics: set it before
	// Run (doc.go).
	Registerer prometheus.Registerer
	// Guard, if set, projects every decision batch onto the guardrails
	// after the policy decided and before it is published, so that no
	// policy breaks them (agents/guard); it must guard the worker's layer
	// and see no other batches. Set it before Run.
	Guard *guard.Enforcer
	// sent is, for the operational layer, the last row published per
	// function (see Run), found by a row's position in its shard's
	// previous batch before its names are hashed (rowcache).
	sent rowcache.Table[entity, schemas.DecisionRow]
	// out is the decision batch of the state batch being served, its rows
	// reused from tick to tick (they are encoded before the next one).
	out schemas.DecisionBatch
	// seq rebuilds the operational sequences from the batches' newest
	// steps; it has read the run's batches from the stream's start.
	seq schemas.Sequences
}

// PredictionCounter is implemented by policies that compute a
// prediction only when its input changed (the LSTM, lstm.Policy): the
// running totals of predictions computed by the network, reused from the
// entity's previous decision and shared with another entity of the same
// batch. The worker exports them as strata_worker_predictions_total.
type PredictionCounter interface {
	PredictionCounts() (computed, reused, shared uint64)
}

// workerMetrics are a worker's Prometheus metrics.
type workerMetrics struct {
	batches prometheus.Counter
	rows    prometheus.Counter
	decide  prometheus.Histogram
	// computed, reused and shared count the policy's predictions by
	// source (PredictionCounter); last holds the totals already added.
	computed, reused, shared prometheus.Counter
	last                     [3]uint64
	// projected counts the decisions the guardrails changed, by
	// constraint (nil without guardrails).
	projected *prometheus.CounterVec
	// fellBack counts the batches a Fallback's fallback decided, by why;
	// fbLast holds the totals already added.
	fellBack *prometheus.CounterVec
	fbLast   [2]uint64
}

// FallbackCounter is implemented by policies served with a fallback
// (agents.Fallback): the running totals of batches the fallback decided
// because the primary failed and because it was forced. The worker
// exports them as strata_worker_fallback_batches_total.
type FallbackCounter interface {
	FallbackCounts() (failed, forced uint64)
}

func newWorkerMetrics(reg prometheus.Registerer, layer schemas.Layer) *workerMetrics {
	l := prometheus.Labels{"layer": string(layer)}
	m := &workerMetrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "worker", Name: "batches_total",
			Help: "Decision batches published.", ConstLabels: l}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "worker", Name: "decisions_total",
			Help: "Decision rows published (operational: changes only).", ConstLabels: l}),
		decide: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "worker", Name: "tick_seconds",
			Help: "Per state batch: decoding it, deciding and publishing the decision batch (the agent's hop of the loop).", ConstLabels: l,
			Buckets: prometheus.ExponentialBuckets(1e-5, 2, 19)}),
	}
	pred := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "worker", Name: "predictions_total",
		Help:        "Predictions of a policy that reuses them (the LSTM), by source: computed by the network, reused from the entity's previous decision (same input window), shared with another entity of the batch (same window).",
		ConstLabels: l}, []string{"source"})
	m.computed, m.reused, m.shared = pred.WithLabelValues("computed"), pred.WithLabelValues("reused"), pred.WithLabelValues("shared")
	m.fellBack = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "worker", Name: "fallback_batches_total",
		Help:        "Decision batches a policy's fallback decided instead of the policy (--fallback), by reason: failed (the policy failed on the batch) or forced (the operator chose the fallback).",
		ConstLabels: l}, []string{"reason"})
	if reg != nil {
		reg.MustRegister(m.batches, m.rows, m.decide, pred, m.fellBack)
	}
	return m
}

// guardMetrics registers the guardrails' projection counter, one series
// per constraint.
func (m *workerMetrics) guardMetrics(reg prometheus.Registerer, layer schemas.Layer) {
	m.projected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "worker", Name: "guardrail_projections_total",
		Help:        "Decisions the guardrails changed into the nearest allowed one (--guardrails, docs/guardrails.md), by the constraint they broke: provider, region, memory, keep_warm.",
		ConstLabels: prometheus.Labels{"layer": string(layer)}}, []string{"constraint"})
	for _, c := range guard.Constraints {
		m.projected.WithLabelValues(string(c))
	}
	if reg != nil {
		reg.MustRegister(m.projected)
	}
}

// countProjections adds what the guardrails changed in a batch.
func (m *workerMetrics) countProjections(n guard.Counts) {
	for c, k := range n {
		if k > 0 {
			m.projected.WithLabelValues(string(c)).Add(float64(k))
		}
	}
}

// countFallbacks adds what the policy's fallback decided since the last
// call.
func (m *workerMetrics) countFallbacks(p Policy) {
	fc, ok := p.(FallbackCounter)
	if !ok {
		return
	}
	failed, forced := fc.FallbackCounts()
	now := [2]uint64{failed, forced}
	for i, reason := range [2]string{"failed", "forced"} {
		if now[i] > m.fbLast[i] {
			m.fellBack.WithLabelValues(reason).Add(float64(now[i] - m.fbLast[i]))
		}
	}
	m.fbLast = now
}

// countPredictions adds what the policy counted since the last call.
func (m *workerMetrics) countPredictions(p Policy) {
	pc, ok := p.(PredictionCounter)
	if !ok {
		return
	}
	c, r, s := pc.PredictionCounts()
	now := [3]uint64{c, r, s}
	for i, ctr := range [3]prometheus.Counter{m.computed, m.reused, m.shared} {
		if now[i] >= m.last[i] { // a policy's totals only grow
			ctr.Add(float64(now[i] - m.last[i]))
		}
	}
	m.last = now
}

type entity struct{ app, fn string }

// New returns a worker for layer that answers the state batches of run
// runID with policy.
func New(js jetstream.JetStream, pub Publisher, layer schemas.Layer, runID string, policy Policy, logger *slog.Logger) *Worker {
	return &Worker{js: js, pub: pub, layer: layer, runID: runID, policy: policy, log: logger}
}

// changed keeps the operational rows that differ from the last row
// published for their function (the first one always does) and remembers
// them: an operational batch carries only the decisions that changed
// (docs/state-contract.md), and a function missing from a batch keeps its
// decision in force. A worker that restarts follows the state stream from
// its start again, so it publishes the same batches.
func (w *Worker) changed(shard int, rows []schemas.DecisionRow) []schemas.DecisionRow {
	w.sent.Batch(shard)
	out := rows[:0]
	for _, r := range rows {
		last, first := w.sent.Row(entity{r.App, r.Func}, newDecisionRow)
		if !first {
			// The key compared App and Func already: compare the rest
			// (the names are 64 bytes each, in another batch's memory).
			l := *last
			l.App, l.Func = r.App, r.Func
			if l == r {
				continue
			}
		}
		*last = r
		out = append(out, r)
	}
	return out
}

func newDecisionRow() *schemas.DecisionRow { return new(schemas.DecisionRow) }

// Run serves until ctx is done. A state batch that does not decode is
// logged and skipped; a policy error stops the worker.
func (w *Worker) Run(ctx context.Context) error {
	subject := w.Names.StateSubject(w.layer)
	met := newWorkerMetrics(w.Registerer, w.layer)
	if w.Guard != nil {
		met.guardMetrics(w.Registerer, w.layer)
	}
	err := natsbus.Follow(ctx, w.js, w.Names.Stream(schemas.StreamState), subject, func(data []byte) error {
		t0 := time.Now()
		st, err := schemas.DecodeState(data)
		if err != nil {
			w.log.Warn("skipping a state batch that does not decode", "subject", subject, "err", err)
			return nil
		}
		h := st.Header
		if h.RunID != w.runID || h.Layer != w.layer {
			return nil
		}
		w.seq.Fill(st)
		out := &w.out
		out.Header, out.Rows = h, slices.Grow(out.Rows[:0], st.Len())
		if err := w.policy.Decide(ctx, st, out); err != nil {
			return fmt.Errorf("deciding %s tick %d shard %d with %s: %w", h.Layer, h.Tick, h.Shard, w.policy.Name(), err)
		}
		for i := range out.Rows {
			out.Rows[i].Policy, out.Rows[i].PolicyVersion = w.policy.Name(), w.policy.Version()
		}
		if w.Guard != nil {
			met.countProjections(w.Guard.Apply(out))
		}
		if h.Layer == schemas.Operational {
			out.Rows = w.changed(h.Shard, out.Rows)
		}
		enc, err := schemas.EncodeDecisions(out)
		if err != nil {
			return err
		}
		if err := w.pub.Publish(ctx, w.Names.DecisionSubject(h.Layer), schemas.BatchMsgID(h.RunID, h.Layer, h.Tick, h.Shard, h.NShards), enc); err != nil {
			return err
		}
		w.Decided++
		met.batches.Inc()
		met.rows.Add(float64(len(out.Rows)))
		met.countPredictions(w.policy)
		met.countFallbacks(w.policy)
		met.decide.Observe(time.Since(t0).Seconds())
		// The batch is on its way (an async publish is written at once);
		// waiting for its acknowledgement here would add a JetStream round
		// trip per shard to every tick of the closed loop. Failures surface
		// at the next batch, and Run flushes on the way out.
		return w.pub.Check()
	})
	if err == nil {
		// Run returns once ctx is done: the acknowledgements still due
		// get a few seconds of their own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = w.pub.Flush(fctx)
		cancel()
	}
	if pc, ok := w.policy.(PredictionCounter); ok {
		c, r, s := pc.PredictionCounts()
		w.log.Info("worker stopped", "batches", w.Decided, "predictions_computed", c, "predictions_reused", r, "predictions_shared", s)
	}
	if err != nil && ctx.Err() != nil {
		// Stopped while deciding or publishing: a batch the twin no
		// longer waits for (it is past the run's last tick), not a
		// failure.
		return nil
	}
	return err
}

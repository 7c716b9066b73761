package twin

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ServiceConfig configures the twin service.
type ServiceConfig struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RunID selects the run: arrivals and decision batches of other runs are
	// ignored.
	RunID string
	// Group is the consumer group on strata.invocations.v1 (default
	// "strata-twin-"+RunID), or on strata.telemetry.v1 in shadow mode
	// (default "strata-shadow-"+RunID).
	Group string
	// Names prefixes the topics, default groups, streams and subjects (see
	// schemas.Names).
	Names schemas.Names
	// Layers are the enabled decision layers; the twin waits for each one's
	// batches (every shard) before it evaluates a tick.
	Layers []schemas.Layer
	// TelemetryPartitions is the partition count of strata.telemetry.v1:
	// every tick's watermark goes to each.
	TelemetryPartitions int
	// ReadAheadTicks bounds how far past the next tick to evaluate the twin
	// reads arrivals before it pauses fetching (default 240, one hour):
	// replay at full speed must not pull the whole trace into memory.
	ReadAheadTicks int64
	// OnTick, if set, is called after each evaluated tick.
	OnTick func(tick int64)
	// Registerer, if set, receives the service's metrics (doc.go).
	Registerer prometheus.Registerer
	// Record, if set, is handed the decision batches each tick is
	// evaluated under, before they are applied (the batches are not
	// changed afterwards): `strata bench loop` replays them through the
	// engine alone as its ceiling. Not called in shadow mode.
	Record func(tick int64, batches []*schemas.DecisionBatch)
	// Transitions are the layers whose transitions the service writes to
	// strata.transitions.v1; it follows their state batches for the state
	// vectors and waits, at each interval boundary, for the interval's
	// state batch (every shard) before it evaluates the interval's first
	// tick. The engine's Config.Transitions must name the same layers.
	Transitions []schemas.Layer
	// ScoreFromTick is the first tick the run's figures (Stats.Layers,
	// costs, carbon, cold starts, violations, latencies,
	// ScoredInvocations) count: the ticks before it are warm-up. It should
	// start a day, so that every interval is scored whole or not at all.
	ScoreFromTick int64
	// TelemetryOnly skips writing decisions, rewards and outcomes to Kafka
	// (they are still counted and digested): for an embedded run without a
	// store, where nothing would ever read them.
	TelemetryOnly bool
	// Shadow runs the twin beside a live run (docs/shadow.md): it reads the
	// run's observed invocations (stratapb.Observation of RunID whose
	// Source is not "twin") and watermarks from strata.telemetry.v1
	// instead of strata.invocations.v1, drops duplicate invocation ids,
	// starts at the tick of the first watermark it sees, and evaluates each
	// tick as soon as the watermarks pass it, with the decision batches
	// that are complete by then — a missing batch leaves the layer's
	// decisions in force, a late one takes effect at the layer's next
	// interval start (the next tick for the operational layer) — and
	// without waiting for state batches. It writes decisions, rewards,
	// outcomes and transitions but no telemetry and no watermarks (the
	// features window the live telemetry), and runs until ctx is done.
	// TelemetryPartitions is then unused; latency percentiles are not
	// kept (an endless run would hold every latency).
	Shadow bool
}

// Stats counts what the service did.
type Stats struct {
	Ticks     int64 `json:"ticks"`
	Arrivals  int64 `json:"arrivals"`
	Decisions int64 `json:"decisions"`
	Rewards   int64 `json:"rewards"`
	Telemetry int64 `json:"telemetry"`
	Outcomes  int64 `json:"outcomes"`
	// Transitions counts the transitions written; TransitionsDropped those
	// left out because the decision's state row was missing or a vector
	// was not finite.
	Transitions        int64 `json:"transitions"`
	TransitionsDropped int64 `json:"transitions_dropped"`
	// TransitionIntervals counts, per layer, the intervals closed with an
	// end-of-interval marker.
	TransitionIntervals map[string]int64 `json:"transition_intervals,omitempty"`
	HorizonTick         int64            `json:"horizon_tick"`
	// ScoredInvocations counts the invocations of the scored ticks
	// (ServiceConfig.ScoreFromTick on): the denominator of per-invocation
	// figures.
	ScoredInvocations int64 `json:"scored_invocations"`
	// RewardsSHA256 and DecisionsSHA256 digest the serialised rewards and
	// joined decisions in the order the twin wrote them: equal digests mean
	// byte-identical tables, whatever the replay speed.
	RewardsSHA256   string `json:"rewards_sha256"`
	DecisionsSHA256 string `json:"decisions_sha256"`
	// Layers holds per-layer decision counts and mean rewards.
	Layers map[string]LayerStats `json:"layers"`
	// Totals over every evaluated function-tick of the run: execution and
	// pre-warm cost (USD) and carbon (g), cold starts and SLA violations.
	CostUSD    float64 `json:"cost_usd"`
	CarbonG    float64 `json:"carbon_g"`
	ColdStarts int64   `json:"cold_starts"`
	Violations int64   `json:"sla_violations"`
	// Latency percentiles over every invocation, milliseconds.
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP95MS float64 `json:"latency_p95_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	// LateArrivals counts the arrivals dropped because their tick was
	// already evaluated (in shadow mode also those before the first
	// watermark's tick); DuplicateArrivals those dropped because their
	// invocation id was already read for a tick not yet evaluated (shadow
	// mode); InvalidArrivals the live observations that could not be
	// simulated (no app or func, negative duration).
	LateArrivals      int64 `json:"late_arrivals,omitempty"`
	DuplicateArrivals int64 `json:"duplicate_arrivals,omitempty"`
	InvalidArrivals   int64 `json:"invalid_arrivals,omitempty"`
	// DecisionBatches counts the decision batches completed (every shard
	// in); LateDecisionBatches, in shadow mode, those that completed after
	// their interval's first tick was evaluated and took effect later.
	DecisionBatches     int64 `json:"decision_batches,omitempty"`
	LateDecisionBatches int64 `json:"late_decision_batches,omitempty"`
}

// LayerStats summarises one layer's decisions and rewards.
type LayerStats struct {
	Decisions  int64   `json:"decisions"`
	Rewards    int64   `json:"rewards"`
	MeanReward float64 `json:"mean_reward"`
	MeanRegret float64 `json:"mean_regret"`
}

// Service runs the Engine between Kafka and NATS: arrivals from
// strata.invocations.v1 and decision batches from strata.decision.<layer>
// in; telemetry with a watermark per tick, decisions, rewards and outcomes
// out. It evaluates tick k once every arrival of the tick is in (the
// arrivals' watermark passed its end) and every enabled layer's batch for it
// is complete, so its output does not depend on timing. In shadow mode
// (ServiceConfig.Shadow) it follows a live run instead and never waits for
// decisions.
type Service struct {
	cfg ServiceConfig
	// topic is the topic the arrivals come from.
	topic string
	eng   *Engine
	cl    *kgo.Client
	js    jetstream.JetStream
	log   *slog.Logger

	mu                   sync.Mutex
	prodErr              error
	batches              map[batchKey]*pendingBatch
	wake                 chan struct{}
	stats                Stats
	digests              *Digests
	latencies            []float64
	rewardSum, regretSum map[string]float64
	// states holds the state vectors of the transition layers by interval;
	// pendingTr the transitions waiting for their next state.
	states    map[batchKey]*stateAcc
	pendingTr map[schemas.Layer][]*stratapb.Transition
	// trDone is, per transition layer, the last interval whose
	// transitions and end-of-interval marker are written.
	trDone map[schemas.Layer]int64
	// applied is, in shadow mode, the newest interval per layer whose
	// decision batch was applied.
	applied map[schemas.Layer]int64
	met     *serviceMetrics
	// opSeq rebuilds the operational state's sequences (transitions).
	opSeq schemas.Sequences
	// evaluated is when the last tick's evaluation ended (the start of
	// the next tick's decision wait).
	evaluated time.Time
}

// stateAcc gathers one interval's state vectors of a layer over its shards.
type stateAcc struct {
	n      int
	shards map[int]bool
	vec    map[FuncID][]float32
}

// complete reports whether every shard of the interval's state is in.
func (a *stateAcc) complete() bool { return a != nil && len(a.shards) >= a.n }

type batchKey struct {
	layer schemas.Layer
	tick  int64
}

type pendingBatch struct {
	n      int
	shards map[int]bool
	merged *schemas.DecisionBatch
}

// complete reports whether every shard of the batch is in.
func (p *pendingBatch) complete() bool { return p != nil && len(p.shards) >= p.n }

// NewService returns a service around eng.
func NewService(cfg ServiceConfig, eng *Engine, js jetstream.JetStream, logger *slog.Logger) (*Service, error) {
	topic := cfg.Names.Topic(schemas.TopicInvocations)
	switch {
	case cfg.Shadow:
		topic = cfg.Names.Topic(schemas.TopicTelemetry)
		if cfg.Group == "" {
			cfg.Group = cfg.Names.Group("strata-shadow-" + cfg.RunID)
		}
	case cfg.TelemetryPartitions <= 0:
		return nil, errors.New("configuring twin: telemetry partition count must be positive")
	case cfg.Group == "":
		cfg.Group = cfg.Names.Group("strata-twin-" + cfg.RunID)
	}
	if cfg.ReadAheadTicks <= 0 {
		cfg.ReadAheadTicks = 240
	}
	// An oracle decides on a whole interval's arrivals: read at least two
	// intervals ahead, so that a paused partition resumes before the next
	// interval's arrivals are needed.
	if need := 2 * (eng.MaxLookahead() + 1); cfg.ReadAheadTicks < need {
		cfg.ReadAheadTicks = need
	}
	s := &Service{cfg: cfg, topic: topic, applied: map[schemas.Layer]int64{}, eng: eng, js: js, log: logger, batches: map[batchKey]*pendingBatch{}, wake: make(chan struct{}, 1),
		digests:   NewDigests(),
		rewardSum: map[string]float64{}, regretSum: map[string]float64{},
		states: map[batchKey]*stateAcc{}, pendingTr: map[schemas.Layer][]*stratapb.Transition{}, trDone: map[schemas.Layer]int64{}}
	s.stats.Layers = map[string]LayerStats{}
	s.met = newServiceMetrics(cfg.Registerer)
	cl, err := kgo.NewClient(append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, fmt.Errorf("creating twin kafka client: %w", err)
	}
	s.cl = cl
	return s, nil
}

// Stats returns a copy of the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.RewardsSHA256 = s.digests.Rewards()
	st.DecisionsSHA256 = s.digests.Decisions()
	st.TransitionIntervals = maps.Clone(s.stats.TransitionIntervals)
	st.Layers = map[string]LayerStats{}
	for l, ls := range s.stats.Layers {
		if ls.Rewards > 0 {
			ls.MeanReward, ls.MeanRegret = s.rewardSum[l]/float64(ls.Rewards), s.regretSum[l]/float64(ls.Rewards)
		}
		st.Layers[l] = ls
	}
	lat := slices.Clone(s.latencies)
	st.LatencyP50MS, st.LatencyP95MS, st.LatencyP99MS = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
	return st
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run serves until the run's arrivals end and the last tick is evaluated,
// or ctx is done. In shadow mode the run has no end: Run returns when ctx
// is done, once the records of the ticks evaluated are flushed.
func (s *Service) Run(ctx context.Context) error {
	defer s.cl.Close()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(s.cfg.Layers)+len(s.cfg.Transitions))
	follow := func(stream, subject string, fn func([]byte) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := natsbus.Follow(ctx, s.js, stream, subject, fn); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	for _, l := range s.cfg.Layers {
		follow(s.cfg.Names.Stream(schemas.StreamDecision), s.cfg.Names.DecisionSubject(l), s.onDecision)
	}
	for _, l := range s.cfg.Transitions {
		follow(s.cfg.Names.Stream(schemas.StreamState), s.cfg.Names.StateSubject(l), s.onState)
	}
	err := s.loop(ctx)
	cancel()
	wg.Wait()
	if s.cfg.Shadow {
		// Graceful: what the evaluated ticks produced reaches Kafka.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(parent), shadowFlushTimeout)
		if ferr := s.cl.Flush(fctx); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flushing twin output: %w", ferr))
		} else if perr := s.producedErr(); perr != nil {
			err = errors.Join(err, perr)
		}
		fcancel()
	}
	select {
	case e := <-errs:
		err = errors.Join(err, e)
	default:
	}
	return err
}

// HoldsDecisions reports whether the service holds a complete decision
// batch of layer l for interval i that it has not applied yet (tests and
// diagnostics of shadow mode use it).
func (s *Service) HoldsDecisions(l schemas.Layer, i int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches[batchKey{l, i}].complete()
}

func (s *Service) onDecision(data []byte) error {
	b, err := schemas.DecodeDecisions(data)
	if err != nil {
		s.log.Warn("skipping a decision batch that does not decode", "err", err)
		return nil
	}
	h := b.Header
	if h.RunID != s.cfg.RunID {
		return nil
	}
	s.mu.Lock()
	k := batchKey{h.Layer, h.Tick}
	p := s.batches[k]
	if p == nil {
		p = &pendingBatch{n: h.NShards, shards: map[int]bool{}, merged: &schemas.DecisionBatch{Header: h}}
		p.merged.Header.Shard, p.merged.Header.NShards = 0, 1
		s.batches[k] = p
	}
	if !p.shards[h.Shard] { // a redelivered shard is dropped
		p.shards[h.Shard] = true
		p.merged.Rows = append(p.merged.Rows, b.Rows...)
		if len(p.shards) == p.n { // just completed
			s.stats.DecisionBatches++
		}
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// onState keeps the state vectors of a transition layer's batch.
func (s *Service) onState(data []byte) error {
	b, err := schemas.DecodeState(data)
	if err != nil {
		s.log.Warn("skipping a state batch that does not decode", "err", err)
		return nil
	}
	h := b.Header
	if h.RunID != s.cfg.RunID {
		return nil
	}
	// Only the operational layer's follower calls this with operational
	// batches: the sequences are its own.
	s.opSeq.Fill(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := batchKey{h.Layer, h.Tick}
	a := s.states[k]
	if a == nil {
		a = &stateAcc{n: h.NShards, shards: map[int]bool{}, vec: map[FuncID][]float32{}}
		s.states[k] = a
	}
	if a.shards[h.Shard] {
		return nil // a redelivered shard
	}
	a.shards[h.Shard] = true
	for i := range b.Strategic {
		a.vec[FuncID{App: b.Strategic[i].App}] = b.Strategic[i].Vector()
	}
	for i := range b.Tactical {
		a.vec[FuncID{b.Tactical[i].App, b.Tactical[i].Func}] = b.Tactical[i].Vector()
	}
	for i := range b.Operational {
		a.vec[FuncID{b.Operational[i].App, b.Operational[i].Func}] = b.Operational[i].Vector()
	}
	s.poke()
	return nil
}

// interval returns the interval of layer l that tick k starts, or false
// when k starts none.
func interval(l schemas.Layer, k int64) (int64, bool) {
	per := l.OperationalTicks()
	return k / per, k%per == 0
}

// completeTransitions writes the transitions of layer l's interval i−1,
// now that interval i's state (next, nil at the end of the run) is known.
//
// It runs once per interval: the first call for interval i−1 writes its
// transitions and then an end-of-interval marker (stratapb.Transition with
// EndOfInterval and the count written), later calls do nothing.
func (s *Service) completeTransitions(ctx context.Context, l schemas.Layer, i int64, end bool) error {
	s.mu.Lock()
	if d, ok := s.trDone[l]; ok && d >= i-1 {
		s.mu.Unlock()
		return nil
	}
	s.trDone[l] = i - 1
	prev, next := s.states[batchKey{l, i - 1}], s.states[batchKey{l, i}]
	trs := s.pendingTr[l]
	delete(s.pendingTr, l)
	for k := range s.states {
		if k.layer == l && k.tick < i {
			delete(s.states, k)
		}
	}
	s.mu.Unlock()
	// In shadow mode nothing waits for the next state: without it (not
	// every shard in) the transitions cannot be completed.
	noNext := s.cfg.Shadow && !end && !next.complete()
	var written int64
	for _, tr := range trs {
		id := FuncID{tr.App, tr.Func}
		var st []float32
		if prev != nil {
			st = prev.vec[id]
		}
		if next != nil && !end {
			tr.NextState = next.vec[id]
		}
		tr.State, tr.Done = st, tr.NextState == nil
		if noNext || st == nil || !schemas.Finite(tr.State) || !schemas.Finite(tr.NextState) {
			s.mu.Lock()
			s.stats.TransitionsDropped++
			s.mu.Unlock()
			continue
		}
		if err := s.produce(ctx, schemas.TopicTransitions, tr.App, tr); err != nil {
			return err
		}
		s.mu.Lock()
		s.stats.Transitions++
		s.mu.Unlock()
		written++
	}
	mark := &stratapb.Transition{RunId: s.cfg.RunID, Layer: string(l), Tick: i - 1, EndOfInterval: true, Count: written}
	if err := s.produce(ctx, schemas.TopicTransitions, string(l), mark); err != nil {
		return err
	}
	s.mu.Lock()
	if s.stats.TransitionIntervals == nil {
		s.stats.TransitionIntervals = map[string]int64{}
	}
	s.stats.TransitionIntervals[string(l)]++
	s.mu.Unlock()
	return nil
}

// stateMissing reports whether tick k starts an interval of a transition
// layer whose state batch is not complete yet.
func (s *Service) stateMissing(k int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateMissingLocked(k)
}

// stateMissingLocked is stateMissing with s.mu held.
func (s *Service) stateMissingLocked(k int64) bool {
	for _, l := range s.cfg.Transitions {
		if i, start := interval(l, k); start && i > 0 && !s.states[batchKey{l, i}].complete() {
			return true
		}
	}
	return false
}

// completeReady writes the transitions of each transition layer's interval
// that ended at tick k (the engine's next tick) as soon as the next
// interval's state batch is complete — before that interval's decisions
// arrive — so that a learner whose checkpoint is to be in force from the
// next interval can train on them while the workers wait for it
// (agents/learner). covered says the arrivals reach past tick k's start,
// so the run does not end at k (at the end, the transitions are done).
func (s *Service) completeReady(ctx context.Context, k int64, covered bool) error {
	if !covered {
		return nil
	}
	for _, l := range s.cfg.Transitions {
		i, start := interval(l, k)
		if !start || i == 0 {
			continue
		}
		s.mu.Lock()
		a := s.states[batchKey{l, i}]
		full := a.complete()
		s.mu.Unlock()
		if full { // completeTransitions does nothing for an interval already written
			if err := s.completeTransitions(ctx, l, i, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// loop consumes arrivals and evaluates every tick that is ready.
func (s *Service) loop(ctx context.Context) error {
	// started says the engine's first tick is known: tick 0 in replay, the
	// first watermark's tick in shadow mode.
	started := !s.cfg.Shadow
	var startTick int64
	ids := dedup.New()                        // shadow: invocation ids of the ticks not evaluated
	lateDec := map[batchKey]map[FuncID]bool{} // shadow: entities whose decision was taken late
	// octx is the context records are produced under: in shadow mode a
	// tick evaluated when ctx ends still reaches Kafka (Run flushes it).
	octx := ctx
	if s.cfg.Shadow {
		octx = context.WithoutCancel(ctx)
	}
	arrivals := map[int64][]Arrival{}
	ahead := map[int32]int64{} // per partition, the latest tick read
	paused := map[int32]bool{}
	wm := map[int32]int64{}
	final := map[int32]bool{}
	horizon := int64(-1)
	nParts := -1
	lastTick, lastMove := int64(-1), time.Now()
	if !s.cfg.Shadow {
		if err := s.watermark(ctx, 0, false); err != nil {
			return err
		}
	}
	for {
		// Evaluate what is ready.
		for started && ctx.Err() == nil {
			k := s.eng.NextTick()
			if horizon >= 0 && k*grid.OperationalTickUS >= horizon {
				for _, l := range s.cfg.Transitions {
					i, _ := interval(l, k)
					if err := s.completeTransitions(octx, l, i, true); err != nil {
						return err
					}
				}
				if !s.cfg.Shadow {
					if err := s.watermark(ctx, horizon, true); err != nil {
						return err
					}
				}
				if err := s.cl.Flush(ctx); err != nil {
					return fmt.Errorf("flushing twin output: %w", err)
				}
				return nil
			}
			allFinal := len(final) == nParts && horizon >= 0
			if nParts <= 0 || len(wm) < nParts || (minWM(wm) < (s.eng.Lookahead(k)+1)*grid.OperationalTickUS && !allFinal) {
				break
			}
			var bs []*schemas.DecisionBatch
			if s.cfg.Shadow {
				// The one wait of shadow mode: an interval's first tick waits
				// for the interval's state (its transitions need it) for
				// one tick at most. The features publish that state when
				// the previous interval closes, a tick before this one can
				// be evaluated, so it is only missing when the watermark
				// jumped or the features lag; then the transitions are lost.
				if s.stateMissing(k) && minWM(wm) < (s.eng.Lookahead(k)+2)*grid.OperationalTickUS {
					break
				}
				bs = s.shadowDecisions(k, startTick, lateDec)
			} else {
				var ok bool
				if bs, ok = s.decisionsFor(k); !ok {
					break
				}
			}
			if err := s.evaluate(octx, k, bs, arrivals, lateDec); err != nil {
				return err
			}
			delete(arrivals, k)
			ids.Forget(k)
		}
		if k := s.eng.NextTick(); started && nParts > 0 && len(wm) == nParts {
			if err := s.completeReady(octx, k, minWM(wm) > k*grid.OperationalTickUS); err != nil {
				return err
			}
		}
		// Backpressure: a partition read more than ReadAheadTicks past the
		// next tick pauses until the twin catches up to half that. Only
		// partitions ahead pause, so the one the next tick waits for never
		// does.
		next := s.eng.NextTick()
		var pause, resume []int32
		for p, a := range ahead {
			if !started {
				break // the next tick is not known yet
			}
			switch {
			case !paused[p] && a-next > s.cfg.ReadAheadTicks:
				pause, paused[p] = append(pause, p), true
			case paused[p] && a-next <= s.cfg.ReadAheadTicks/2:
				resume, paused[p] = append(resume, p), false
			}
		}
		if len(pause) > 0 {
			s.cl.PauseFetchPartitions(map[string][]int32{s.topic: pause})
		}
		if len(resume) > 0 {
			s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: resume})
		}
		// Wait for input; say what is missing when nothing moves for long.
		if k := s.eng.NextTick(); k != lastTick {
			lastTick, lastMove = k, time.Now()
		} else if time.Since(lastMove) > stallAfter {
			lastMove = time.Now()
			s.mu.Lock()
			var waiting []string
			for bk, p := range s.batches {
				waiting = append(waiting, fmt.Sprintf("%s/%d:%d of %d shards", bk.layer, bk.tick, len(p.shards), p.n))
			}
			for bk, a := range s.states {
				waiting = append(waiting, fmt.Sprintf("state %s/%d:%d of %d shards", bk.layer, bk.tick, len(a.shards), a.n))
			}
			s.mu.Unlock()
			slices.Sort(waiting)
			s.log.Warn("twin waiting", "next_tick", k, "lookahead", s.eng.Lookahead(k), "partitions", nParts, "watermarks", wm,
				"final", len(final), "horizon_us", horizon, "paused", paused, "ahead", ahead, "batches", waiting)
		}
		fetches := s.pollOrWake(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches == nil {
			continue
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var derr error
		fetches.EachRecord(func(r *kgo.Record) {
			if nParts < 0 {
				n, err := kafka.PartitionCount(ctx, s.cl, s.topic)
				if err != nil {
					derr = err
					return
				}
				nParts = n
			}
			if kafka.IsWatermark(r) {
				var w stratapb.Watermark
				if err := proto.Unmarshal(r.Value, &w); err != nil || w.RunId != s.cfg.RunID {
					return
				}
				wm[r.Partition] = max(wm[r.Partition], w.WatermarkUs)
				if w.Final {
					final[r.Partition] = true
					horizon = max(horizon, w.WatermarkUs)
				}
				if !started {
					// Shadow mode starts at the first watermark's tick:
					// arrivals read before it for earlier ticks are late.
					started, startTick = true, grid.TickOf(w.WatermarkUs, grid.OperationalTickUS)
					if err := s.eng.StartAt(startTick); err != nil {
						derr = err
						return
					}
					s.log.Info("shadow twin starting", "run", s.cfg.RunID, "tick", startTick, "watermark_us", w.WatermarkUs)
					var dropped int64
					for k, as := range arrivals {
						if k < startTick {
							dropped += int64(len(as))
							delete(arrivals, k)
							ids.Forget(k)
						}
					}
					s.mu.Lock()
					s.stats.Arrivals -= dropped
					s.stats.LateArrivals += dropped
					s.mu.Unlock()
				}
				return
			}
			var a Arrival
			if s.cfg.Shadow {
				var ok bool
				var err error
				if a, ok, err = liveArrival(r.Value, s.cfg.RunID); err != nil {
					s.log.Warn("skipping a live observation", "partition", r.Partition, "offset", r.Offset, "err", err)
					s.mu.Lock()
					s.stats.InvalidArrivals++
					s.mu.Unlock()
					return
				} else if !ok {
					return
				}
			} else {
				var in stratapb.Arrival
				if err := proto.Unmarshal(r.Value, &in); err != nil || in.RunId != s.cfg.RunID {
					return
				}
				a = Arrival{ID: in.InvocationId, App: in.App, Func: in.Func, StartUS: in.StartUs, DurationUS: in.DurationUs, Row: in.Row}
			}
			k := grid.TickOf(a.StartUS, grid.OperationalTickUS)
			if started && k < s.eng.NextTick() {
				s.log.Warn("dropping an arrival for an evaluated tick", "id", a.ID, "tick", k)
				s.mu.Lock()
				s.stats.LateArrivals++
				s.mu.Unlock()
				return
			}
			if s.cfg.Shadow && isDuplicate(ids, a.ID, k) {
				s.log.Debug("dropping a duplicate arrival", "id", a.ID, "tick", k)
				s.mu.Lock()
				s.stats.DuplicateArrivals++
				s.mu.Unlock()
				return
			}
			arrivals[k] = append(arrivals[k], a)
			ahead[r.Partition] = max(ahead[r.Partition], k)
			s.mu.Lock()
			s.stats.Arrivals++
			s.mu.Unlock()
		})
		if derr != nil {
			return derr
		}
		if started && nParts > 0 && len(wm) == nParts {
			s.met.lag.Set(float64(grid.TickOf(minWM(wm), grid.OperationalTickUS) - s.eng.NextTick()))
		}
	}
}

// shadowFlushTimeout bounds how long a shadow twin whose ctx is done waits
// for its last records to reach Kafka.
const shadowFlushTimeout = 30 * time.Second

// isDuplicate records id in tick k of ids and reports whether it was there
// already.
func isDuplicate(ids *dedup.Set, id string, k int64) bool {
	_, added := ids.Add(id, k)
	return !added
}

// stallAfter is how long the twin waits without evaluating a tick before it
// logs what it is waiting for.
const stallAfter = 30 * time.Second

// pollOrWake returns the next Kafka fetches, or nil when a decision batch
// arrived first or nothing came for stallAfter.
func (s *Service) pollOrWake(ctx context.Context) kgo.Fetches {
	pctx, cancel := context.WithTimeout(ctx, stallAfter)
	defer cancel()
	go func() {
		select {
		case <-s.wake:
			cancel()
		case <-pctx.Done():
		}
	}()
	f := s.cl.PollFetches(pctx)
	if pctx.Err() != nil && ctx.Err() == nil {
		// Woken by a decision batch; records fetched meanwhile are kept by
		// the client for the next poll.
		if f.NumRecords() == 0 {
			return nil
		}
	}
	return f
}

func minWM(wm map[int32]int64) int64 {
	first := true
	var m int64
	for _, v := range wm {
		if first || v < m {
			m, first = v, false
		}
	}
	return m
}

// decisionsFor returns the complete decision batches that tick k needs, or
// false while one is incomplete.
func (s *Service) decisionsFor(k int64) ([]*schemas.DecisionBatch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*schemas.DecisionBatch
	for _, l := range s.cfg.Layers {
		var tick int64
		switch l {
		case schemas.Operational:
			tick = k
		case schemas.Tactical:
			if k%grid.TicksPerHour != 0 {
				continue
			}
			tick = k / grid.TicksPerHour
		case schemas.Strategic:
			if k%grid.TicksPerDay != 0 {
				continue
			}
			tick = k / grid.TicksPerDay
		}
		p := s.batches[batchKey{l, tick}]
		if !p.complete() {
			return nil, false
		}
		out = append(out, p.merged)
	}
	if s.stateMissingLocked(k) {
		return nil, false
	}
	for _, b := range out {
		delete(s.batches, batchKey{b.Header.Layer, b.Header.Tick})
	}
	return out, true
}

// evaluate runs tick k under bs and writes its output; lateDec (shadow
// mode) names the decisions taken late, whose transitions are dropped.
func (s *Service) evaluate(ctx context.Context, k int64, bs []*schemas.DecisionBatch, arrivals map[int64][]Arrival, lateDec map[batchKey]map[FuncID]bool) error {
	t0 := time.Now()
	if !s.evaluated.IsZero() && !s.cfg.Shadow {
		s.met.decisionWait.Observe(t0.Sub(s.evaluated).Seconds())
	}
	if s.cfg.Record != nil && !s.cfg.Shadow {
		s.cfg.Record(k, bs)
	}
	for _, b := range bs {
		if err := s.eng.Apply(b); err != nil {
			return err
		}
	}
	for _, l := range s.cfg.Transitions {
		if i, ok := interval(l, k); ok && i > 0 {
			if err := s.completeTransitions(ctx, l, i, false); err != nil {
				return err
			}
		}
	}
	out, err := s.eng.Simulate(k, arrivals[k], func(t int64) []Arrival { return arrivals[t] })
	if err != nil {
		return err
	}
	// Telemetry and the tick's watermark first: the features close the
	// tick and the agents decide the next one while the twin scores this
	// one (counterfactuals take most of a tick's work). A shadow twin
	// writes neither: the live telemetry is the features' input.
	if !s.cfg.Shadow {
		for _, o := range out.Telemetry {
			if err := s.produce(ctx, schemas.TopicTelemetry, o.GetArrival().GetApp(), o); err != nil {
				return err
			}
		}
		if err := s.watermark(ctx, (k+1)*grid.OperationalTickUS, false); err != nil {
			return err
		}
	}
	t1 := time.Now()
	s.met.evaluate.Observe(t1.Sub(t0).Seconds())
	if err := s.eng.Score(out); err != nil {
		return err
	}
	if s.cfg.Shadow {
		var dropped int64
		out.Transitions, dropped = dropLateTransitions(out.Transitions, lateDec, k)
		s.mu.Lock()
		s.stats.TransitionsDropped += dropped
		s.mu.Unlock()
	}
	if len(out.Transitions) > 0 {
		s.mu.Lock()
		for _, tr := range out.Transitions {
			l := schemas.Layer(tr.Layer)
			s.pendingTr[l] = append(s.pendingTr[l], tr)
		}
		s.mu.Unlock()
	}
	for _, d := range out.Decisions {
		if err := s.produce(ctx, schemas.TopicDecisions, d.GetApp(), d, s.digests.decisions); err != nil {
			return err
		}
	}
	for _, r := range out.Rewards {
		if err := s.produce(ctx, schemas.TopicRewards, r.GetApp(), r, s.digests.rewards); err != nil {
			return err
		}
	}
	for _, o := range out.Outcomes {
		if err := s.produce(ctx, schemas.TopicOutcomes, o.GetApp(), o); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.stats.Ticks++
	if !s.cfg.Shadow {
		s.stats.Telemetry += int64(len(out.Telemetry))
	}
	s.stats.Decisions += int64(len(out.Decisions))
	s.stats.Rewards += int64(len(out.Rewards))
	s.stats.Outcomes += int64(len(out.Outcomes))
	s.stats.HorizonTick = k
	if k >= s.cfg.ScoreFromTick {
		s.score(out)
	}
	s.mu.Unlock()
	s.met.ticks.Inc()
	addByLayer(s.met.decisions, out.Decisions)
	addByLayer(s.met.rewards, out.Rewards)
	s.evaluated = time.Now()
	s.met.score.Observe(s.evaluated.Sub(t1).Seconds())
	if s.cfg.OnTick != nil {
		s.cfg.OnTick(k)
	}
	return nil
}

// score adds a scored tick's output to the run's figures. Intervals are
// aligned, so every reward a scored tick emits is of a scored interval.
func (s *Service) score(out *Output) {
	s.stats.ScoredInvocations += int64(len(out.Telemetry))
	for _, o := range out.Telemetry {
		if s.cfg.Shadow {
			break // an endless run cannot keep every latency
		}
		s.latencies = append(s.latencies, o.GetLatencyMs())
	}
	for _, d := range out.Decisions {
		ls := s.stats.Layers[d.Layer]
		ls.Decisions++
		s.stats.Layers[d.Layer] = ls
	}
	for _, r := range out.Rewards {
		ls := s.stats.Layers[r.Layer]
		ls.Rewards++
		s.stats.Layers[r.Layer] = ls
		s.rewardSum[r.Layer] += r.Reward
		s.regretSum[r.Layer] += r.Regret
		if r.Layer == string(schemas.Operational) {
			// The engine scores every function-tick it evaluated (whatever
			// layers are enabled): their sums are the run's totals,
			// pre-warm cost and carbon included.
			s.stats.CostUSD += r.CostUsd
			s.stats.CarbonG += r.CarbonG
			s.stats.ColdStarts += r.ColdStarts
			s.stats.Violations += r.SlaViolations
		}
	}
}

// produce writes m to topic; digest, if given, also takes its bytes
// (deterministic encoding). topic is the base name (schemas.Topic…); the
// record goes to its prefixed topic.
func (s *Service) produce(ctx context.Context, topic, key string, m proto.Message, digest ...hash.Hash) error {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding a record for %s: %w", topic, err)
	}
	for _, h := range digest {
		s.mu.Lock()
		h.Write(v)
		s.mu.Unlock()
	}
	if s.cfg.TelemetryOnly && topic != schemas.TopicTelemetry && topic != schemas.TopicTransitions {
		return nil
	}
	s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Names.Topic(topic), Key: []byte(key), Value: v}, s.produced)
	return s.producedErr()
}

func (s *Service) produced(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prodErr == nil {
		s.prodErr = fmt.Errorf("producing to %s: %w", r.Topic, err)
	}
}

func (s *Service) producedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prodErr
}

// watermark writes the telemetry watermark w (the end of the tick just
// evaluated) to every telemetry partition.
func (s *Service) watermark(ctx context.Context, w int64, final bool) error {
	v, err := proto.Marshal(&stratapb.Watermark{RunId: s.cfg.RunID, WatermarkUs: w, Final: final})
	if err != nil {
		return fmt.Errorf("encoding watermark: %w", err)
	}
	for p := range s.cfg.TelemetryPartitions {
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Names.Topic(schemas.TopicTelemetry), Partition: int32(p), Value: v, Headers: kafka.WatermarkHeaders}, s.produced)
	}
	return s.producedErr()
}

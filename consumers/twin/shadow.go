package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ShadowConfig configures the live Shadow twin. A Shadow writes no
// telemetry, so it needs no telemetry partition count, and it scores every
// tick it evaluates.
type ShadowConfig struct {
	CommonConfig
}

// Shadow is the twin beside a live run (docs/shadow.md). It reads the run's
// observed invocations (stratapb.Observation of the run whose Source is not
// "twin") and watermarks from strata.telemetry.v1, drops duplicate
// invocation ids, starts at the tick of the first watermark it sees, and
// evaluates each tick as soon as the watermarks pass it, with the decision
// batches that are complete by then: a missing batch leaves the layer's
// decisions in force, a late one takes effect at the layer's next interval
// start (the next tick for the operational layer). It waits for no
// decision, and for a transition layer's state batch a tick at most. It
// writes decisions, rewards, outcomes and transitions but no telemetry and
// no watermarks (the features window the live telemetry), keeps no latency
// percentiles (an endless run would hold every latency), and runs until
// its context is done. It shares the engine and its plumbing with the
// replay-synchronous Service.
type Shadow struct {
	*core
	// applied is the newest interval per layer whose decision batch was
	// applied.
	applied map[schemas.Layer]int64
	// late holds, per layer and interval, the entities whose decision was
	// taken late (shadowDecisions): their transitions are dropped.
	late map[batchKey]map[FuncID]bool
}

// NewShadow returns a shadow service around eng.
func NewShadow(cfg ShadowConfig, eng *Engine, js jetstream.JetStream, logger *slog.Logger) (*Shadow, error) {
	if cfg.Group == "" {
		cfg.Group = cfg.Names.Group("strata-shadow-" + cfg.RunID)
	}
	c, err := newCore(cfg.CommonConfig, schemas.TopicTelemetry, eng, js, logger)
	if err != nil {
		return nil, err
	}
	s := &Shadow{core: c, applied: map[schemas.Layer]int64{}, late: map[batchKey]map[FuncID]bool{}}
	c.ckptName = "shadow"
	c.ckptExtra = func(in *input, snap *serviceSnap) {
		snap.Started, snap.StartTick, snap.Applied = in.started, in.startTick, s.applied
		for bk, ids := range s.late {
			ls := lateSnap{Layer: bk.layer, Tick: bk.tick}
			for id := range ids {
				ls.IDs = append(ls.IDs, id)
			}
			snap.Late = append(snap.Late, ls)
		}
	}
	return s, nil
}

// restore goes on from the run's checkpoint, if there is one (a live run
// restarted after a crash): the engine, figures and input it held, the
// decisions applied and those taken late.
func (s *Shadow) restore(ctx context.Context) (*input, error) {
	in, snap, err := s.core.restore(ctx, false)
	if err != nil || snap == nil {
		return in, err
	}
	s.applied = orEmpty(snap.Applied)
	for _, ls := range snap.Late {
		for _, id := range ls.IDs {
			s.markLate(batchKey{ls.Layer, ls.Tick}, id)
		}
	}
	return in, nil
}

// Stats returns a copy of the counters.
func (s *Shadow) Stats() Stats { return s.snapshot() }

// Run serves until ctx is done: a live run has no end (live ingest writes
// no final watermark; were every partition's final watermark read, Run
// would end there as a Service does). A tick being evaluated when ctx is
// done is finished, and what the evaluated ticks produced is flushed to
// Kafka (30 s at most) before Run returns. With checkpoints it first goes
// on from the run's checkpoint, if there is one.
func (s *Shadow) Run(ctx context.Context) error {
	in := newInput(false, dedup.New())
	if s.cfg.Checkpoints != nil {
		var err error
		if in, err = s.restore(ctx); err != nil {
			s.cl.Close()
			return err
		}
	}
	return s.serve(ctx, func(ctx context.Context) error {
		// Records are produced without ctx's cancellation: the tick being
		// evaluated when it ends still reaches Kafka (flush).
		return s.loop(ctx, context.WithoutCancel(ctx), s, in)
	}, s.flush)
}

// shadowFlushTimeout bounds how long a shadow twin whose ctx is done waits
// for its last records to reach Kafka.
const shadowFlushTimeout = 30 * time.Second

// flush waits, shadowFlushTimeout at most, until what the evaluated ticks
// produced is on Kafka, and returns the first error a record met.
func (s *Shadow) flush(parent context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), shadowFlushTimeout)
	defer cancel()
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing twin output: %w", err)
	}
	return s.producedErr()
}

// HoldsDecisions reports whether the service holds a complete decision
// batch of layer l for interval i that it has not applied yet (tests and
// diagnostics use it).
func (s *Shadow) HoldsDecisions(l schemas.Layer, i int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches[batchKey{l, i}].complete()
}

// arrival converts an observation of the run from strata.telemetry.v1; one
// that cannot be simulated is logged and counted.
func (s *Shadow) arrival(r *kgo.Record) (Arrival, bool) {
	a, ok, err := liveArrival(r.Value, s.cfg.RunID)
	if err != nil {
		s.log.Warn("skipping a live observation", "partition", r.Partition, "offset", r.Offset, "err", err)
		s.count(func(st *Stats) { st.InvalidArrivals++ })
		return Arrival{}, false
	}
	return a, ok
}

// decisions returns the decisions to apply at tick k (shadowDecisions).
// Its one wait: an interval's first tick waits for the interval's state
// (its transitions need it) for one tick at most. The features publish
// that state when the previous interval closes, a tick before this one can
// be evaluated, so it is only missing when the watermark jumped or the
// features lag; then the transitions are lost.
func (s *Shadow) decisions(k int64, in *input) ([]*schemas.DecisionBatch, bool) {
	if s.stateMissing(k) && !in.reached(s.eng.Lookahead(k)+1) {
		return nil, false
	}
	return s.shadowDecisions(k, in.startTick), true
}

// evaluate runs tick k under bs and writes its decisions, rewards,
// outcomes and transitions, less the transitions of decisions taken late.
func (s *Shadow) evaluate(ctx context.Context, k int64, bs []*schemas.DecisionBatch, in *input) error {
	t0 := time.Now()
	out, err := s.simulate(ctx, k, bs, in)
	if err != nil {
		return err
	}
	s.evaluatedSince(t0)
	if s.cfg.Fault != nil {
		s.cfg.Fault(FaultTick, k)
	}
	t1, err := s.scoreTick(k, out)
	if err != nil {
		return err
	}
	var dropped int64
	out.Transitions, dropped = dropLateTransitions(out.Transitions, s.late, k)
	s.count(func(st *Stats) { st.TransitionsDropped += dropped })
	return s.write(ctx, k, out, t1)
}

// end does nothing: a Shadow writes no watermarks.
func (s *Shadow) end(context.Context, int64) error { return nil }

// errInvalidArrival marks a live observation that cannot be simulated.
var errInvalidArrival = errors.New("invalid live observation")

// liveArrival converts an observation of the run from strata.telemetry.v1
// to an arrival; ok is false for a record of another run or one the twin
// wrote itself (Source "twin"). An observation without app or func, or with
// a negative duration, is an error wrapping errInvalidArrival.
func liveArrival(value []byte, runID string) (a Arrival, ok bool, err error) {
	var o stratapb.Observation
	if err := proto.Unmarshal(value, &o); err != nil {
		return Arrival{}, false, fmt.Errorf("%w: decoding: %w", errInvalidArrival, err)
	}
	in := o.GetArrival()
	if in.GetRunId() != runID || o.GetSource() == "twin" {
		return Arrival{}, false, nil
	}
	switch {
	case in.GetApp() == "" || in.GetFunc() == "":
		return Arrival{}, false, fmt.Errorf("%w: invocation %q has no app or func", errInvalidArrival, in.GetInvocationId())
	case in.GetDurationUs() < 0:
		return Arrival{}, false, fmt.Errorf("%w: invocation %q has a negative duration", errInvalidArrival, in.GetInvocationId())
	}
	return Arrival{ID: in.GetInvocationId(), App: in.GetApp(), Func: in.GetFunc(), StartUS: in.GetStartUs(),
		DurationUS: in.GetDurationUs(), Row: in.GetRow()}, true, nil
}

// shadowDecisions returns the decisions to apply at tick k, without
// waiting for any: for each layer whose interval i starts at k, the
// complete batches that have arrived for intervals ≤ i and newer than the
// last one applied, merged into one batch stamped with interval i (a newer
// batch's row wins over an older one's for the same entity). A batch for an
// earlier interval that completed after that interval's first tick was
// evaluated is late: it takes effect now, and is counted. A layer with no
// batch keeps its decisions in force. Incomplete batches of earlier
// intervals are dropped: their interval is over and a shard that never
// came would hold them forever. Slower layers take effect only at their
// interval's first tick, so a late tactical or strategic batch waits for
// the next hour or day: a switch within an interval would blur the
// interval's reward and transition.
//
// s.late receives, per layer and interval, the entities whose decision was
// taken late: their rewards are scored, but they yield no transition (the
// decision was made from an older state than the interval's).
func (s *Shadow) shadowDecisions(k, startTick int64) []*schemas.DecisionBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*schemas.DecisionBatch
	for _, l := range s.cfg.Layers {
		i, start := interval(l, k)
		if !start {
			continue
		}
		ready := s.readyBatches(l, i)
		if len(ready) == 0 {
			continue
		}
		out = append(out, s.merge(l, i, startTick, ready))
		s.applied[l] = ready[len(ready)-1].merged.Header.Tick
	}
	return out
}

// readyBatches takes out of s.batches layer l's batches for intervals up
// to i and returns those to apply at interval i, oldest first: complete,
// and newer than the last one applied. The others are dropped, except an
// incomplete batch of interval i itself, which may still complete (and
// then be late for the next interval). It runs with s.mu held.
func (s *Shadow) readyBatches(l schemas.Layer, i int64) []*pendingBatch {
	last, hasLast := s.applied[l]
	var ready []*pendingBatch
	for bk, p := range s.batches {
		if bk.layer != l || bk.tick > i {
			continue
		}
		complete := p.complete()
		if !complete && bk.tick == i {
			continue
		}
		delete(s.batches, bk)
		switch {
		case !complete:
			s.log.Debug("dropping an incomplete decision batch whose interval is over", "layer", l, "interval", bk.tick,
				"shards", len(p.shards), "of", p.n)
		case hasLast && bk.tick <= last:
			s.log.Debug("dropping a decision batch superseded by a newer one", "layer", l, "interval", bk.tick, "applied", last)
		default:
			ready = append(ready, p)
		}
	}
	slices.SortFunc(ready, func(a, b *pendingBatch) int { return cmpInt(a.merged.Header.Tick, b.merged.Header.Tick) })
	return ready
}

// merge merges layer l's ready batches (oldest first) into one batch of
// interval i, a newer batch's row winning over an older one's for the same
// entity; it counts the late batches of intervals since startTick and
// records the entities decided late in s.late. It runs with s.mu held.
func (s *Shadow) merge(l schemas.Layer, i, startTick int64, ready []*pendingBatch) *schemas.DecisionBatch {
	per := l.OperationalTicks()
	merged := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: s.cfg.RunID, Layer: l, Tick: i,
		TickStartUS: i * per * grid.OperationalTickUS, NShards: 1}}
	newer := map[FuncID]bool{}
	for j := len(ready) - 1; j >= 0; j-- {
		b := ready[j].merged
		isLate := b.Header.Tick < i
		if isLate && b.Header.Tick*per >= startTick {
			s.stats.LateDecisionBatches++
			s.log.Info("applying a late decision batch", "layer", l, "interval", b.Header.Tick, "at", i)
		}
		var taken []FuncID
		for _, r := range b.Rows {
			id := FuncID{r.App, r.Func}
			if newer[id] {
				continue
			}
			merged.Rows = append(merged.Rows, r)
			taken = append(taken, id)
			if isLate {
				s.markLate(batchKey{l, i}, id)
			}
		}
		for _, id := range taken {
			newer[id] = true
		}
	}
	return merged
}

// markLate records in s.late that entity id's decision for interval bk
// was taken late.
func (s *Shadow) markLate(bk batchKey, id FuncID) {
	if s.late[bk] == nil {
		s.late[bk] = map[FuncID]bool{}
	}
	s.late[bk][id] = true
}

// dropLateTransitions removes from trs the transitions of decisions taken
// late (shadowDecisions) and forgets the late entities of the intervals
// before tick k's; it returns how many it removed.
func dropLateTransitions(trs []*stratapb.Transition, late map[batchKey]map[FuncID]bool, k int64) ([]*stratapb.Transition, int64) {
	n := len(trs)
	trs = slices.DeleteFunc(trs, func(tr *stratapb.Transition) bool {
		return late[batchKey{schemas.Layer(tr.Layer), tr.Tick}][FuncID{tr.App, tr.Func}]
	})
	for bk := range late {
		if bk.tick < k/bk.layer.OperationalTicks() {
			delete(late, bk)
		}
	}
	return trs, int64(n - len(trs))
}

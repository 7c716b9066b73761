package twin

import (
	"context"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// stateAcc gathers one interval's state vectors of a layer over its shards.
type stateAcc struct {
	n      int
	shards map[int]bool
	vec    map[FuncID][]float32
}

// complete reports whether every shard of the interval's state is in.
func (a *stateAcc) complete() bool { return a != nil && len(a.shards) >= a.n }

// onState keeps the state vectors of a transition layer's batch.
func (c *core) onState(data []byte) error {
	b, err := schemas.DecodeState(data)
	if err != nil {
		c.log.Warn("skipping a state batch that does not decode", "err", err)
		return nil
	}
	h := b.Header
	if h.RunID != c.cfg.RunID || !c.owns(h.Shard) {
		return nil
	}
	// Only the operational layer's follower calls this with operational
	// batches: the sequences are its own. Every batch fills them, in the
	// stream's order, those of intervals done too: a restored service
	// reads the stream from its start again and so rebuilds them.
	c.opSeq.Fill(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	k := batchKey{h.Layer, h.Tick}
	if d, ok := c.trDone[h.Layer]; ok && k.tick <= d {
		return nil // its transitions are written (or it is read again after a restore)
	}
	a := c.states[k]
	if a == nil {
		a = &stateAcc{n: c.owned(h.NShards), shards: map[int]bool{}, vec: map[FuncID][]float32{}}
		c.states[k] = a
	}
	if a.shards[h.Shard] {
		return nil // a redelivered shard
	}
	a.shards[h.Shard] = true
	for i := range b.Strategic {
		a.vec[FuncID{App: b.Strategic[i].App}] = b.Strategic[i].AppendFeatures(nil, c.features(schemas.Strategic))
	}
	for i := range b.Tactical {
		a.vec[FuncID{b.Tactical[i].App, b.Tactical[i].Func}] = b.Tactical[i].AppendFeatures(nil, c.features(schemas.Tactical))
	}
	for i := range b.Operational {
		a.vec[FuncID{b.Operational[i].App, b.Operational[i].Func}] = b.Operational[i].Vector()
	}
	c.poke()
	return nil
}

// features returns the feature set of layer l's state vectors.
func (c *core) features(l schemas.Layer) schemas.FeatureSet {
	if f, ok := c.cfg.FeatureSets[l]; ok && f != "" {
		return f
	}
	return schemas.DefaultFeatureSet(l)
}

// interval returns the interval of layer l that tick k starts, or false
// when k starts none.
func interval(l schemas.Layer, k int64) (int64, bool) {
	per := l.OperationalTicks()
	return k / per, k%per == 0
}

// completeTransitions writes the transitions of layer l's interval i−1,
// now that interval i's state (next, nil at the end of the run) is known.
// Without interval i's complete state (a Shadow does not wait for it; a
// Service always has it) the transitions cannot be completed and are
// dropped.
//
// It runs once per interval: the first call for interval i−1 writes its
// transitions and then an end-of-interval marker (stratapb.Transition with
// EndOfInterval and the count written), later calls do nothing.
func (c *core) completeTransitions(ctx context.Context, l schemas.Layer, i int64, end bool) error {
	// Interval i−1's transitions come from the scoring of its last tick.
	if err := c.drainScoring(); err != nil {
		return err
	}
	return c.writeTransitions(ctx, l, i, end)
}

// askTransitions has layer l's interval i−1 completed (completeTransitions)
// once every tick before interval i is scored, without waiting for that
// here: on a Service the scorer does it in its queue's order — after the
// ticks handed to it so far, before the next — so that the loop goes on
// simulating while the scorer works through the interval's last tick (an
// hour's or day's close, the heaviest scoring); a loop that waited for it
// stood still at every interval's start. The records keep their order on
// every topic: the transitions were written between those ticks' rewards
// before too. Without a scorer (a Shadow) it completes them at once.
func (c *core) askTransitions(ctx context.Context, l schemas.Layer, i int64) error {
	if c.sc == nil {
		return c.completeTransitions(ctx, l, i, false)
	}
	if c.trAsked[l] >= i {
		return nil
	}
	c.trAsked[l] = i
	return c.sc.enqueueTransitions(ctx, l, i)
}

// writeTransitions is completeTransitions once every tick before interval
// i is scored.
func (c *core) writeTransitions(ctx context.Context, l schemas.Layer, i int64, end bool) error {
	c.mu.Lock()
	if d, ok := c.trDone[l]; ok && d >= i-1 {
		c.mu.Unlock()
		return nil
	}
	c.trDone[l] = i - 1
	prev, next := c.states[batchKey{l, i - 1}], c.states[batchKey{l, i}]
	trs := c.pendingTr[l]
	delete(c.pendingTr, l)
	for k := range c.states {
		if k.layer == l && k.tick < i {
			delete(c.states, k)
		}
	}
	c.mu.Unlock()
	noNext := !end && !next.complete()
	var written int64
	for _, tr := range trs {
		id := FuncID{tr.App, tr.Func}
		var state []float32
		if prev != nil {
			state = prev.vec[id]
		}
		if next != nil && !end {
			tr.NextState = next.vec[id]
		}
		tr.State, tr.Done, tr.FeatureSet = state, tr.NextState == nil, string(c.features(l))
		if noNext || state == nil || !schemas.Finite(tr.State) || !schemas.Finite(tr.NextState) {
			c.count(func(st *Stats) { st.TransitionsDropped++ })
			continue
		}
		if err := c.produce(ctx, schemas.TopicTransitions, tr.App, tr, nil, true); err != nil {
			return err
		}
		c.count(func(st *Stats) { st.Transitions++ })
		written++
	}
	mark := &stratapb.Transition{RunId: c.cfg.RunID, Layer: string(l), Tick: i - 1, EndOfInterval: true, Count: written}
	if err := c.produce(ctx, schemas.TopicTransitions, string(l), mark, nil, true); err != nil {
		return err
	}
	c.count(func(st *Stats) {
		if st.TransitionIntervals == nil {
			st.TransitionIntervals = map[string]int64{}
		}
		st.TransitionIntervals[string(l)]++
	})
	return nil
}

// completeLast writes the transitions of every transition layer's last
// interval, at the end of the run (next tick k, at the horizon).
func (c *core) completeLast(ctx context.Context, k int64) error {
	for _, l := range c.cfg.Transitions {
		i, _ := interval(l, k)
		if err := c.completeTransitions(ctx, l, i, true); err != nil {
			return err
		}
	}
	return nil
}

// stateMissing reports whether tick k starts an interval of a transition
// layer whose state batch is not complete yet.
func (c *core) stateMissing(k int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateMissingLocked(k)
}

// stateMissingLocked is stateMissing with c.mu held.
func (c *core) stateMissingLocked(k int64) bool {
	for _, l := range c.cfg.Transitions {
		if i, start := interval(l, k); start && i > 0 && !c.states[batchKey{l, i}].complete() {
			return true
		}
	}
	return false
}

// completeReady has the transitions of each transition layer's interval
// that ended at tick k (the engine's next tick) written (askTransitions) as
// soon as the next interval's state batch is complete — before that
// interval's decisions arrive — so that a learner whose checkpoint is to be
// in force from the next interval can train on them while the workers wait
// for it (agents/learner). It waits until the arrivals reach past tick k's start,
// so that the run does not end at k (at the end, the transitions are done).
func (c *core) completeReady(ctx context.Context, in *input) error {
	k := c.eng.NextTick()
	if !in.started || !in.watermarked() || minWM(in.wm) <= k*grid.OperationalTickUS {
		return nil
	}
	for _, l := range c.cfg.Transitions {
		i, start := interval(l, k)
		if !start || i == 0 {
			continue
		}
		c.mu.Lock()
		full := c.states[batchKey{l, i}].complete()
		c.mu.Unlock()
		if full { // nothing is written twice for an interval
			if err := c.askTransitions(ctx, l, i); err != nil {
				return err
			}
		}
	}
	return nil
}

package twin

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// mode is what the replay-synchronous Service and the live Shadow do their
// own way inside the loop they share (core.loop).
type mode interface {
	// arrival decodes a record of the input topic that is not a
	// watermark; false skips it.
	arrival(r *kgo.Record) (Arrival, bool)
	// decisions returns the decision batches tick k is evaluated under,
	// or false while tick k waits for them.
	decisions(k int64, in *input) ([]*schemas.DecisionBatch, bool)
	// evaluate runs tick k under bs and writes what it produced.
	evaluate(ctx context.Context, k int64, bs []*schemas.DecisionBatch, in *input) error
	// end writes what follows the run's last tick, horizon its final
	// watermark.
	end(ctx context.Context, horizon int64) error
}

// input is what a service has read of its input topic and not evaluated
// yet: the arrivals by tick and, per partition, the watermark, whether it
// was final and how far ahead the partition has been read.
type input struct {
	// started says the engine's first tick is known: from the start in
	// replay, the first watermark's tick (startTick) in a Shadow.
	started   bool
	startTick int64
	// ids, if not nil, holds the invocation ids of the ticks not evaluated
	// yet, to drop duplicates (a Shadow).
	ids      *dedup.Set
	arrivals map[int64][]Arrival
	ahead    map[int32]int64 // per partition, the latest tick read
	paused   map[int32]bool
	wm       map[int32]int64
	// writers aligns, per partition, the watermarks of several writers
	// (ingest instances; schemas.Watermarks): wm is their minimum.
	writers map[int32]*schemas.Watermarks
	final   map[int32]bool
	// horizon is the latest final watermark, −1 before any.
	horizon int64
	// nParts is how many of the input topic's partitions the service
	// reads (all but a sharded twin's others), −1 until the first record.
	nParts int
	// offsets holds, per partition, the offset after the last record
	// read: a record below it (read again after a restart from a
	// checkpoint or a rejoin of the consumer group) is skipped.
	offsets map[int32]int64
}

// newInput returns an empty input; started says whether the first tick is
// known, ids (nil for none) drops duplicate invocation ids.
func newInput(started bool, ids *dedup.Set) *input {
	return &input{started: started, ids: ids, arrivals: map[int64][]Arrival{}, ahead: map[int32]int64{},
		paused: map[int32]bool{}, wm: map[int32]int64{}, writers: map[int32]*schemas.Watermarks{}, final: map[int32]bool{}, horizon: -1, nParts: -1,
		offsets: map[int32]int64{}}
}

// watermarked reports whether every partition has sent a watermark.
func (in *input) watermarked() bool { return in.nParts > 0 && len(in.wm) >= in.nParts }

// ended reports whether tick k is at or past the horizon.
func (in *input) ended(k int64) bool {
	return in.horizon >= 0 && k*grid.OperationalTickUS >= in.horizon
}

// reached reports whether every partition's watermark has reached the end
// of tick k.
func (in *input) reached(k int64) bool {
	return in.watermarked() && minWM(in.wm) >= (k+1)*grid.OperationalTickUS
}

// covers reports whether every arrival up to the end of tick k is in: the
// watermarks reached it, or every partition sent its final watermark.
func (in *input) covers(k int64) bool {
	allFinal := len(in.final) == in.nParts && in.horizon >= 0
	return in.reached(k) || (in.watermarked() && allFinal)
}

// forget drops tick k's arrivals and ids once it is evaluated.
func (in *input) forget(k int64) {
	delete(in.arrivals, k)
	if in.ids != nil {
		in.ids.Forget(k)
	}
}

// loop reads the input and evaluates every tick that is ready until the
// run's horizon or until ctx is done. Records are produced under out (a
// Shadow finishes the tick being evaluated when ctx ends).
func (c *core) loop(ctx, out context.Context, m mode, in *input) error {
	var stall stallWatch
	for {
		if ended, err := c.evaluateReady(ctx, out, m, in); ended || err != nil {
			return err
		}
		if err := c.completeReady(out, in); err != nil {
			return err
		}
		c.backpressure(in)
		if k := c.eng.NextTick(); stall.stalled(k) {
			c.logStall(k, in)
		}
		fetches := c.pollOrWake(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches == nil {
			continue
		}
		if err := c.read(ctx, in, fetches, m); err != nil {
			return err
		}
		if in.started && in.watermarked() {
			c.met.lag.Set(float64(grid.TickOf(minWM(in.wm), grid.OperationalTickUS) - c.eng.NextTick()))
		}
	}
}

// evaluateReady evaluates, in order, every tick whose arrivals are in and
// for which m has the decisions. It reports true once the run reached its
// horizon and its last records are written.
func (c *core) evaluateReady(ctx, out context.Context, m mode, in *input) (bool, error) {
	for in.started && ctx.Err() == nil {
		k := c.eng.NextTick()
		if in.ended(k) {
			return true, c.finish(ctx, out, m, in.horizon)
		}
		if !in.covers(c.eng.Lookahead(k)) {
			return false, nil
		}
		bs, ok := m.decisions(k, in)
		if !ok {
			return false, nil
		}
		if err := m.evaluate(out, k, bs, in); err != nil {
			return false, err
		}
		in.forget(k)
		if c.checkpointDue(k) {
			if err := c.checkpoint(out, in); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// finish ends the run at its horizon: it waits for the last ticks'
// scoring, writes the last transitions and what m writes at the end, and
// flushes the output to Kafka.
func (c *core) finish(ctx, out context.Context, m mode, horizon int64) error {
	if err := c.drainScoring(); err != nil {
		return err
	}
	if err := c.completeLast(out, c.eng.NextTick()); err != nil {
		return err
	}
	if err := m.end(ctx, horizon); err != nil {
		return err
	}
	if err := c.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing twin output: %w", err)
	}
	return nil
}

// backpressure pauses a partition read more than ReadAheadTicks past the
// next tick until the twin catches up to half that. Only partitions ahead
// pause, so the one the next tick waits for never does.
func (c *core) backpressure(in *input) {
	if !in.started {
		return // the next tick is not known yet
	}
	next := c.eng.NextTick()
	var pause, resume []int32
	for p, a := range in.ahead {
		switch {
		case !in.paused[p] && a-next > c.cfg.ReadAheadTicks:
			pause, in.paused[p] = append(pause, p), true
		case in.paused[p] && a-next <= c.cfg.ReadAheadTicks/2:
			resume, in.paused[p] = append(resume, p), false
		}
	}
	if len(pause) > 0 {
		c.cl.PauseFetchPartitions(map[string][]int32{c.topic: pause})
	}
	if len(resume) > 0 {
		c.cl.ResumeFetchPartitions(map[string][]int32{c.topic: resume})
	}
}

// stallAfter is how long the twin waits without evaluating a tick before it
// logs what it is waiting for.
const stallAfter = 30 * time.Second

// stallWatch tells when the next tick has not moved for stallAfter.
type stallWatch struct {
	tick  int64
	since time.Time
}

// stalled reports whether next, the next tick to evaluate, has stayed the
// same for stallAfter since it was last seen to move or reported.
func (w *stallWatch) stalled(next int64) bool {
	if w.since.IsZero() || next != w.tick {
		w.tick, w.since = next, time.Now()
		return false
	}
	if time.Since(w.since) <= stallAfter {
		return false
	}
	w.since = time.Now()
	return true
}

// logStall says what tick k waits for: watermarks and batches.
func (c *core) logStall(k int64, in *input) {
	c.mu.Lock()
	var waiting []string
	for bk, p := range c.batches {
		waiting = append(waiting, fmt.Sprintf("%s/%d:%d of %d shards", bk.layer, bk.tick, len(p.shards), p.n))
	}
	for bk, a := range c.states {
		waiting = append(waiting, fmt.Sprintf("state %s/%d:%d of %d shards", bk.layer, bk.tick, len(a.shards), a.n))
	}
	c.mu.Unlock()
	slices.Sort(waiting)
	c.log.Warn("twin waiting", "next_tick", k, "lookahead", c.eng.Lookahead(k), "partitions", in.nParts, "watermarks", in.wm,
		"final", len(in.final), "horizon_us", in.horizon, "paused", in.paused, "ahead", in.ahead, "batches", waiting)
}

// pollOrWake returns the next Kafka fetches, or nil when a decision batch
// arrived first or nothing came for stallAfter.
func (c *core) pollOrWake(ctx context.Context) kgo.Fetches {
	pctx, cancel := context.WithTimeout(ctx, stallAfter)
	defer cancel()
	go c.cancelOnWake(pctx, cancel)
	f := c.cl.PollFetches(pctx)
	if pctx.Err() != nil && ctx.Err() == nil {
		// Woken by a decision batch; records fetched meanwhile are kept by
		// the client for the next poll.
		if f.NumRecords() == 0 {
			return nil
		}
	}
	return f
}

// cancelOnWake cancels the poll of pctx when a decision batch arrives
// (c.wake) and returns once either happened.
func (c *core) cancelOnWake(pctx context.Context, cancel context.CancelFunc) {
	select {
	case <-c.wake:
		if pctx.Err() != nil {
			// The poll already returned (records came first) and the batch
			// may have come after the loop last looked: the token belongs
			// to the next poll. Taken here and dropped, it was lost, and
			// the next poll waited stallAfter for a batch that was already
			// in (30 s stalls at random in about one closed-loop run in
			// two).
			c.poke()
		}
		cancel()
	case <-pctx.Done():
	}
}

// read applies fetched records to in: the run's watermarks, and the
// arrivals m decodes.
func (c *core) read(ctx context.Context, in *input, fetches kgo.Fetches, m mode) error {
	if err := c.outage.After(ctx, fetches); err != nil {
		return err
	}
	for r := range fetches.RecordsAll() {
		if !c.owns(int(r.Partition)) {
			continue // another shard's
		}
		if o, ok := in.offsets[r.Partition]; ok && r.Offset < o {
			continue // read before, and held or evaluated
		}
		in.offsets[r.Partition] = r.Offset + 1
		if in.nParts < 0 {
			n, err := kafka.PartitionCount(ctx, c.cl, c.topic)
			if err != nil {
				return err
			}
			if c.cfg.Shards > 1 && c.shardParts > 0 && n != c.shardParts {
				return fmt.Errorf("twin shard %d of %d: %s has %d partitions, the telemetry topic %d: a sharded twin needs them equal", c.cfg.Shard, c.cfg.Shards, c.topic, n, c.shardParts)
			}
			in.nParts = c.owned(n) // the partitions this service reads
		}
		if kafka.IsWatermark(r) {
			if err := c.watermarkRead(in, r); err != nil {
				return err
			}
			continue
		}
		if a, ok := m.arrival(r); ok {
			c.admit(in, r.Partition, a)
		}
	}
	return nil
}

// watermarkRead applies a watermark record of the run to in; the first one
// starts a service whose first tick was not known.
func (c *core) watermarkRead(in *input, r *kgo.Record) error {
	var w stratapb.Watermark
	if err := proto.Unmarshal(r.Value, &w); err != nil || w.RunId != c.cfg.RunID {
		return nil
	}
	ws := in.writers[r.Partition]
	if ws == nil {
		ws = &schemas.Watermarks{}
		in.writers[r.Partition] = ws
	}
	ws.IdleUS = c.cfg.WatermarkIdle.Microseconds()
	in.wm[r.Partition] = max(in.wm[r.Partition], ws.Advance(kafka.Writer(r), w.WatermarkUs))
	if w.Final {
		in.final[r.Partition] = true
		in.horizon = max(in.horizon, w.WatermarkUs)
	}
	if in.started {
		return nil
	}
	// A Shadow starts at the first watermark's tick: arrivals read before
	// it for earlier ticks are late.
	in.started, in.startTick = true, grid.TickOf(w.WatermarkUs, grid.OperationalTickUS)
	if err := c.eng.StartAt(in.startTick); err != nil {
		return fmt.Errorf("starting the twin at the first watermark's tick %d: %w", in.startTick, err)
	}
	c.log.Info("shadow twin starting", "run", c.cfg.RunID, "tick", in.startTick, "watermark_us", w.WatermarkUs)
	var dropped int64
	for k, as := range in.arrivals {
		if k < in.startTick {
			dropped += int64(len(as))
			in.forget(k)
		}
	}
	c.count(func(st *Stats) {
		st.Arrivals -= dropped
		st.LateArrivals += dropped
	})
	return nil
}

// admit adds arrival a, read from partition p, to its tick, unless the
// tick is evaluated already (late) or in.ids holds its id (a duplicate).
func (c *core) admit(in *input, p int32, a Arrival) {
	k := grid.TickOf(a.StartUS, grid.OperationalTickUS)
	if in.started && k < c.eng.NextTick() {
		c.log.Warn("dropping an arrival for an evaluated tick", "id", a.ID, "tick", k)
		c.count(func(st *Stats) { st.LateArrivals++ })
		return
	}
	if in.ids != nil && isDuplicate(in.ids, a.ID, k) {
		c.log.Debug("dropping a duplicate arrival", "id", a.ID, "tick", k)
		c.count(func(st *Stats) { st.DuplicateArrivals++ })
		return
	}
	in.arrivals[k] = append(in.arrivals[k], a)
	in.ahead[p] = max(in.ahead[p], k)
	c.count(func(st *Stats) { st.Arrivals++ })
}

// isDuplicate records id in tick k of ids and reports whether it was there
// already.
func isDuplicate(ids *dedup.Set, id string, k int64) bool {
	_, added := ids.Add(id, k)
	return !added
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

package twin

import (
	"bytes"
	"context"
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/consumers/internal/gobsafe"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Checkpoints stores the replay twin's checkpoints, one per run;
// ObjectCheckpoints keeps them in a JetStream object store. Put must
// replace the stored value atomically: a reader sees the old checkpoint or
// the new one, whole, even when the writer dies half way.
type Checkpoints interface {
	// Get returns the checkpoint stored under key, or ErrNoCheckpoint.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores what r holds under key.
	Put(ctx context.Context, key string, r io.Reader) error
	// Delete removes key's checkpoint, if any.
	Delete(ctx context.Context, key string) error
}

// ErrNoCheckpoint is returned by Checkpoints.Get when there is none.
var ErrNoCheckpoint = errors.New("no twin checkpoint")

// ObjectCheckpoints keeps checkpoints in a JetStream object store (bucket
// schemas.BucketTwin). An object's chunks are written first and its
// metadata last, so a put cut short leaves the previous object readable.
type ObjectCheckpoints struct{ Obj jetstream.ObjectStore }

// OpenObjectCheckpoints opens the twin's checkpoint store of a deployment
// (names' schemas.BucketTwin, which natsbus.EnsureStreams creates).
func OpenObjectCheckpoints(ctx context.Context, js jetstream.JetStream, names schemas.Names) (ObjectCheckpoints, error) {
	obj, err := js.ObjectStore(ctx, names.Bucket(schemas.BucketTwin))
	if err != nil {
		return ObjectCheckpoints{}, fmt.Errorf("opening the twin's checkpoint store: %w", err)
	}
	return ObjectCheckpoints{Obj: obj}, nil
}

// Get returns the object key, or ErrNoCheckpoint.
func (o ObjectCheckpoints) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := o.Obj.GetBytes(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("reading twin checkpoint %s: %w", key, err)
	}
	return b, nil
}

// Put stores what r holds as the object key.
func (o ObjectCheckpoints) Put(ctx context.Context, key string, r io.Reader) error {
	if _, err := o.Obj.Put(ctx, jetstream.ObjectMeta{Name: key}, r); err != nil {
		return fmt.Errorf("writing twin checkpoint %s: %w", key, err)
	}
	return nil
}

// Delete removes the object key, if it exists.
func (o ObjectCheckpoints) Delete(ctx context.Context, key string) error {
	if err := o.Obj.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("deleting twin checkpoint %s: %w", key, err)
	}
	return nil
}

// serviceSnapshotVersion is the version of a Service's checkpoint.
const serviceSnapshotVersion = 1

// serviceSnap is a replay twin's checkpoint, taken between two ticks once
// every tick before is scored and its records acknowledged by Kafka: the
// engine, the run's figures and digests, and the input read but not
// evaluated with the offset to read on from (docs/twin.md, "Checkpoint and
// restart"). Decision batches are not in it: the service follows their
// stream from its start again and keeps those of the ticks not evaluated.
type serviceSnap struct {
	Version int
	RunID   string
	Next    int64
	Engine  []byte

	Stats                              Stats
	DecisionsDigest, RewardsDigest     []byte
	Latencies                          []float64
	LatencyDays                        map[int64]*schemas.LatencyHistogram
	RewardSum, RegretSum               map[string]float64
	InvokedRewardSum, InvokedRegretSum map[string]float64
	Published                          int64

	// PendingTr holds the transitions waiting for their next state
	// (encoded), TrDone the last interval whose transitions are written,
	// States the state vectors of the intervals still needed, per layer.
	PendingTr map[schemas.Layer][][]byte
	TrDone    map[schemas.Layer]int64
	States    []stateSnap

	Arrivals map[int64][]Arrival
	Ahead    map[int32]int64
	WM       map[int32]int64
	Writers  map[int32]*schemas.Watermarks
	Final    map[int32]bool
	Horizon  int64
	NParts   int
	Offsets  map[int32]int64
	Written  time.Time

	// A Shadow's own: whether and where it started, the newest interval
	// applied per layer, the entities decided late per interval.
	Started   bool
	StartTick int64
	Applied   map[schemas.Layer]int64
	Late      []lateSnap
}

// lateSnap is a Shadow's entities decided late for one interval.
type lateSnap struct {
	Layer schemas.Layer
	Tick  int64
	IDs   []FuncID
}

// stateSnap is one interval's state vectors of a transition layer.
type stateSnap struct {
	Layer  schemas.Layer
	Tick   int64
	N      int
	Shards []int
	Vec    map[FuncID][]float32
}

// checkpointDue reports whether a checkpoint follows tick k, just
// evaluated.
func (c *core) checkpointDue(k int64) bool {
	return c.cfg.Checkpoints != nil && (k+1)%c.cfg.CheckpointEvery == 0
}

// checkpoint waits until every evaluated tick is scored and its records
// are acknowledged, then stores the service's state (serviceSnap, with
// what ckptExtra adds) and commits the input offsets it holds to the
// consumer group.
func (c *core) checkpoint(ctx context.Context, in *input) error {
	t0 := time.Now()
	if err := c.drainScoring(); err != nil {
		return err
	}
	if err := c.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing the twin's output before a checkpoint: %w", err)
	}
	if err := c.producedErr(); err != nil {
		return err
	}
	next := c.eng.NextTick()
	eng, err := c.eng.Snapshot()
	if err != nil {
		return err
	}
	snap := serviceSnap{Version: serviceSnapshotVersion, RunID: c.cfg.RunID, Next: next, Engine: eng,
		Arrivals: in.arrivals, Ahead: in.ahead, WM: in.wm, Writers: in.writers, Final: in.final, Horizon: in.horizon, NParts: in.nParts,
		Offsets: in.offsets, Written: time.Now().UTC()}
	c.mu.Lock()
	snap.Stats = c.stats
	// Decision batches completed ahead of the checkpoint are counted
	// again when the restarted service reads them again.
	for k, p := range c.batches {
		if p.complete() && firstTick(k) >= next {
			snap.Stats.DecisionBatches--
		}
	}
	snap.DecisionsDigest, err = marshalHash(c.digests.decisions)
	if err == nil {
		snap.RewardsDigest, err = marshalHash(c.digests.rewards)
	}
	snap.Latencies, snap.LatencyDays = c.latencies, c.latencyDays
	snap.RewardSum, snap.RegretSum = c.rewardSum, c.regretSum
	snap.InvokedRewardSum, snap.InvokedRegretSum = c.invokedRewardSum, c.invokedRegretSum
	snap.Published = c.published.Load()
	if c.ckptExtra != nil {
		c.ckptExtra(in, &snap)
	}
	snap.TrDone = c.trDone
	if err == nil {
		snap.PendingTr, err = encodeTransitions(c.pendingTr)
	}
	for k, a := range c.states {
		st := stateSnap{Layer: k.layer, Tick: k.tick, N: a.n, Vec: a.vec}
		for sh := range a.shards {
			st.Shards = append(st.Shards, sh)
		}
		snap.States = append(snap.States, st)
	}
	var buf bytes.Buffer
	if err == nil {
		err = gob.NewEncoder(&buf).Encode(&snap)
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding the twin's checkpoint at tick %d: %w", next, err)
	}
	size := buf.Len()
	var r io.Reader = &buf
	if c.cfg.Fault != nil {
		r = &faultReader{r: r, at: int64(buf.Len() / 2), hit: func() { c.cfg.Fault(FaultCheckpointWrite, next) }}
	}
	if err := c.cfg.Checkpoints.Put(ctx, c.ckptKey(), r); err != nil {
		return fmt.Errorf("checkpointing the twin at tick %d: %w", next, err)
	}
	// The group's offsets only save the restarted service reading what
	// the checkpoint holds again (it skips records below its offsets), so
	// a failed commit is logged, not fatal.
	if len(in.offsets) > 0 {
		offs := map[int32]kgo.EpochOffset{}
		for p, o := range in.offsets {
			offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
		c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.topic: offs}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				c.log.Warn("committing the twin's input offsets after a checkpoint", "tick", next, "err", err)
			}
		})
	}
	c.met.checkpoint.Observe(time.Since(t0).Seconds())
	c.met.checkpointBytes.Set(float64(size))
	c.log.Info("twin checkpoint", "run", c.cfg.RunID, "next_tick", next, "bytes", size, "seconds", time.Since(t0).Seconds())
	if c.cfg.OnCheckpoint != nil {
		c.cfg.OnCheckpoint(next)
	}
	return nil
}

// ckptKey is the run's checkpoint object: twin.RUN for a Service,
// shadow.RUN for a Shadow.
func (c *core) ckptKey() string { return c.ckptName + "." + c.cfg.RunID }

// Restore makes the service go on from the run's checkpoint, if there is
// one: its engine, figures, digests and the input it held; call it before
// Run, on a service whose engine is fresh. It also reads the tail of the
// telemetry topic for the run's last watermark: what the service wrote
// there after the checkpoint, before it stopped, is not written again
// (its decisions, rewards and outcomes are: the store keeps one row per
// key). It returns the first tick the service will evaluate (0 without a
// checkpoint). Without Restore, Run starts the run afresh.
func (s *Service) Restore(ctx context.Context) (next int64, err error) {
	if s.cfg.Checkpoints == nil {
		return 0, errors.New("restoring the twin: no checkpoint store configured")
	}
	in, _, err := s.restore(ctx, true)
	if err != nil {
		return 0, err
	}
	if err := s.findSent(ctx); err != nil {
		return 0, err
	}
	s.in = in
	return s.eng.NextTick(), nil
}

// restore loads the run's checkpoint, if there is one, into the service
// and returns the input it held and the checkpoint (nil without one);
// without one the input is fresh, started as given.
func (c *core) restore(ctx context.Context, started bool) (*input, *serviceSnap, error) {
	in := newInput(started, dedup.New())
	data, err := c.cfg.Checkpoints.Get(ctx, c.ckptKey())
	if errors.Is(err, ErrNoCheckpoint) {
		c.log.Info("no twin checkpoint: the run starts from its beginning", "run", c.cfg.RunID)
		return in, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	snap, err := decodeCheckpoint(data, c.cfg.RunID)
	if err != nil {
		return nil, nil, err
	}
	if c.eng.started {
		return nil, nil, errors.New("restoring the twin: its engine has evaluated ticks already")
	}
	if err := c.eng.restore(snap.Engine); err != nil {
		return nil, nil, err
	}
	if err := unmarshalHash(c.digests.decisions, snap.DecisionsDigest); err != nil {
		return nil, nil, err
	}
	if err := unmarshalHash(c.digests.rewards, snap.RewardsDigest); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.stats = snap.Stats
	c.stats.Layers = orEmpty(c.stats.Layers)
	c.latencies, c.latencyDays = snap.Latencies, snap.LatencyDays
	c.rewardSum, c.regretSum = orEmpty(snap.RewardSum), orEmpty(snap.RegretSum)
	c.invokedRewardSum, c.invokedRegretSum = orEmpty(snap.InvokedRewardSum), orEmpty(snap.InvokedRegretSum)
	c.trDone = orEmpty(snap.TrDone)
	c.pendingTr, err = decodeTransitions(snap.PendingTr)
	if err != nil {
		c.mu.Unlock()
		return nil, nil, err
	}
	for _, st := range snap.States {
		a := &stateAcc{n: st.N, shards: map[int]bool{}, vec: orEmpty(st.Vec)}
		for _, sh := range st.Shards {
			a.shards[sh] = true
		}
		c.states[batchKey{st.Layer, st.Tick}] = a
	}
	c.mu.Unlock()
	c.published.Store(snap.Published)
	c.floor.Store(snap.Next)
	in.arrivals = orEmpty(snap.Arrivals)
	for k, as := range in.arrivals {
		for _, a := range as {
			in.ids.Add(a.ID, k)
		}
	}
	in.ahead, in.wm, in.offsets, in.final = orEmpty(snap.Ahead), orEmpty(snap.WM), orEmpty(snap.Offsets), orEmpty(snap.Final)
	in.writers = orEmpty(snap.Writers)
	in.horizon, in.nParts = snap.Horizon, snap.NParts
	if snap.Started {
		in.started, in.startTick = true, snap.StartTick
	}
	c.log.Info("twin restored from its checkpoint", "run", c.cfg.RunID, "next_tick", snap.Next, "written", snap.Written, "bytes", len(data))
	c.met.restores.Inc()
	return in, snap, nil
}

// decodeCheckpoint decodes a checkpoint of run runID (serviceSnap).
func decodeCheckpoint(data []byte, runID string) (*serviceSnap, error) {
	var snap serviceSnap
	if err := gobsafe.Decode(data, &snap, "Version"); err != nil {
		return nil, fmt.Errorf("decoding the twin's checkpoint of run %s: %w", runID, err)
	}
	if snap.Version != serviceSnapshotVersion || snap.RunID != runID {
		return nil, fmt.Errorf("restoring the twin: checkpoint version %d of run %q, want version %d of run %q",
			snap.Version, snap.RunID, serviceSnapshotVersion, runID)
	}
	return &snap, nil
}

// findSent reads the tail of the telemetry topic for the run's newest
// watermark on every partition: the telemetry of the ticks before it
// reached Kafka before the service stopped, and is not written again.
func (s *Service) findSent(ctx context.Context) error {
	newest, err := kafka.LastWatermarks(ctx, s.cfg.Brokers, s.log, s.cfg.Names.Topic(schemas.TopicTelemetry), s.cfg.RunID, kafka.WatermarkTail)
	if err != nil {
		return err
	}
	for p := range newest {
		if !s.owns(int(p)) {
			delete(newest, p) // another shard's
		}
	}
	if len(newest) < s.owned(s.partitions) {
		return nil // a partition without one: write everything again
	}
	s.sentUS = minWM(newest)
	s.log.Info("twin telemetry already written", "run", s.cfg.RunID, "until_tick", grid.TickOf(s.sentUS, grid.OperationalTickUS))
	return nil
}

// firstTick returns the first operational tick of batch key k's interval.
func firstTick(k batchKey) int64 { return k.tick * k.layer.OperationalTicks() }

// restore sets a fresh engine (from NewEngine, no tick evaluated) to the
// state data, from Snapshot, holds.
func (e *Engine) restore(data []byte) error {
	r, err := RestoreEngine(e.m, e.cfg, e.profile, data)
	if err != nil {
		return err
	}
	*e = *r
	return nil
}

func marshalHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("the digest's hash cannot be saved")
	}
	return m.MarshalBinary()
}

func unmarshalHash(h hash.Hash, b []byte) error {
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return errors.New("the digest's hash cannot be restored")
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("restoring the twin's digests: %w", err)
	}
	return nil
}

// orEmpty returns m, or an empty map for nil (gob decodes an empty map
// as nil).
func orEmpty[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// encodeTransitions encodes the pending transitions per layer.
func encodeTransitions(m map[schemas.Layer][]*stratapb.Transition) (map[schemas.Layer][][]byte, error) {
	out := map[schemas.Layer][][]byte{}
	for l, trs := range m {
		for _, tr := range trs {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tr)
			if err != nil {
				return nil, fmt.Errorf("encoding a pending transition: %w", err)
			}
			out[l] = append(out[l], b)
		}
	}
	return out, nil
}

// decodeTransitions decodes encodeTransitions' output.
func decodeTransitions(m map[schemas.Layer][][]byte) (map[schemas.Layer][]*stratapb.Transition, error) {
	out := map[schemas.Layer][]*stratapb.Transition{}
	for l, bs := range m {
		for _, b := range bs {
			tr := &stratapb.Transition{}
			if err := proto.Unmarshal(b, tr); err != nil {
				return nil, fmt.Errorf("restoring the twin: a pending transition does not decode: %w", err)
			}
			out[l] = append(out[l], tr)
		}
	}
	return out, nil
}

// Fault points: where CommonConfig.Fault is called, for tests that kill
// the twin or the shadow there (docs/twin.md, "Checkpoint and restart").
const (
	// FaultTick follows a tick's simulation: in the replay twin after
	// its telemetry is written, before its scoring is queued; in the
	// shadow before the tick is scored.
	FaultTick = "twin-tick"
	// FaultScoring comes inside a tick's scoring: its rewards computed,
	// not yet written.
	FaultScoring = "twin-scoring"
	// FaultCheckpointWrite comes half way through a checkpoint's bytes
	// handed to the store (tick: the checkpoint's next tick).
	FaultCheckpointWrite = "twin-checkpoint-write"
)

// faultReader calls hit once, when the bytes read reach at.
type faultReader struct {
	r    io.Reader
	at   int64
	read int64
	hit  func()
}

func (f *faultReader) Read(p []byte) (int, error) {
	if f.hit != nil && f.read >= f.at {
		hit := f.hit
		f.hit = nil
		hit()
	}
	if f.hit != nil && f.read+int64(len(p)) > f.at {
		p = p[:f.at-f.read] // stop at the fault point
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

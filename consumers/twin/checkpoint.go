package twin

import (
	"bytes"
	"context"
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
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
// what extra adds) and commits the input offsets it holds to the consumer
// group.
func (s *core) checkpoint(ctx context.Context, in *input, extra func(*serviceSnap)) error {
	t0 := time.Now()
	if err := s.drainScoring(); err != nil {
		return err
	}
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing the twin's output before a checkpoint: %w", err)
	}
	if err := s.producedErr(); err != nil {
		return err
	}
	next := s.eng.NextTick()
	eng, err := s.eng.Snapshot()
	if err != nil {
		return err
	}
	snap := serviceSnap{Version: serviceSnapshotVersion, RunID: s.cfg.RunID, Next: next, Engine: eng,
		Arrivals: in.arrivals, Ahead: in.ahead, WM: in.wm, Final: in.final, Horizon: in.horizon, NParts: in.nParts,
		Offsets: in.offsets, Written: time.Now().UTC()}
	s.mu.Lock()
	snap.Stats = s.stats
	// Decision batches completed ahead of the checkpoint are counted
	// again when the restarted service reads them again.
	for k, p := range s.batches {
		if p.complete() && firstTick(k) >= next {
			snap.Stats.DecisionBatches--
		}
	}
	snap.DecisionsDigest, err = marshalHash(s.digests.decisions)
	if err == nil {
		snap.RewardsDigest, err = marshalHash(s.digests.rewards)
	}
	snap.Latencies, snap.LatencyDays = s.latencies, s.latencyDays
	snap.RewardSum, snap.RegretSum = s.rewardSum, s.regretSum
	snap.InvokedRewardSum, snap.InvokedRegretSum = s.invokedRewardSum, s.invokedRegretSum
	snap.Published = s.published.Load()
	if extra != nil {
		extra(&snap)
	}
	snap.TrDone = s.trDone
	if err == nil {
		snap.PendingTr, err = encodeTransitions(s.pendingTr)
	}
	for k, a := range s.states {
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
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding the twin's checkpoint at tick %d: %w", next, err)
	}
	size := buf.Len()
	var r io.Reader = &buf
	if s.cfg.Fault != nil {
		r = &faultReader{r: r, at: int64(buf.Len() / 2), hit: func() { s.cfg.Fault(FaultCheckpointWrite, next) }}
	}
	if err := s.cfg.Checkpoints.Put(ctx, s.ckptKey(), r); err != nil {
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
		s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: offs}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				s.log.Warn("committing the twin's input offsets after a checkpoint", "tick", next, "err", err)
			}
		})
	}
	s.met.checkpoint.Observe(time.Since(t0).Seconds())
	s.met.checkpointBytes.Set(float64(size))
	s.log.Info("twin checkpoint", "run", s.cfg.RunID, "next_tick", next, "bytes", size, "seconds", time.Since(t0).Seconds())
	if s.cfg.OnCheckpoint != nil {
		s.cfg.OnCheckpoint(next)
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
func (s *core) restore(ctx context.Context, started bool) (*input, *serviceSnap, error) {
	in := newInput(started, dedup.New())
	data, err := s.cfg.Checkpoints.Get(ctx, s.ckptKey())
	if errors.Is(err, ErrNoCheckpoint) {
		s.log.Info("no twin checkpoint: the run starts from its beginning", "run", s.cfg.RunID)
		return in, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	snap, err := decodeCheckpoint(data, s.cfg.RunID)
	if err != nil {
		return nil, nil, err
	}
	if s.eng.started {
		return nil, nil, errors.New("restoring the twin: its engine has evaluated ticks already")
	}
	if err := s.eng.restore(snap.Engine); err != nil {
		return nil, nil, err
	}
	if err := unmarshalHash(s.digests.decisions, snap.DecisionsDigest); err != nil {
		return nil, nil, err
	}
	if err := unmarshalHash(s.digests.rewards, snap.RewardsDigest); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.stats = snap.Stats
	if s.stats.Layers == nil {
		s.stats.Layers = map[string]LayerStats{}
	}
	s.latencies, s.latencyDays = snap.Latencies, snap.LatencyDays
	s.rewardSum, s.regretSum = orEmpty(snap.RewardSum), orEmpty(snap.RegretSum)
	s.invokedRewardSum, s.invokedRegretSum = orEmpty(snap.InvokedRewardSum), orEmpty(snap.InvokedRegretSum)
	if snap.TrDone != nil {
		s.trDone = snap.TrDone
	}
	s.pendingTr, err = decodeTransitions(snap.PendingTr)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	for _, st := range snap.States {
		a := &stateAcc{n: st.N, shards: map[int]bool{}, vec: st.Vec}
		if a.vec == nil {
			a.vec = map[FuncID][]float32{}
		}
		for _, sh := range st.Shards {
			a.shards[sh] = true
		}
		s.states[batchKey{st.Layer, st.Tick}] = a
	}
	s.mu.Unlock()
	s.published.Store(snap.Published)
	s.floor.Store(snap.Next)
	if snap.Arrivals != nil {
		in.arrivals = snap.Arrivals
	}
	for k, as := range in.arrivals {
		for _, a := range as {
			in.ids.Add(a.ID, k)
		}
	}
	in.ahead, in.wm, in.offsets = orEmpty32(snap.Ahead), orEmpty32(snap.WM), orEmpty32(snap.Offsets)
	if snap.Final != nil {
		in.final = snap.Final
	}
	in.horizon, in.nParts = snap.Horizon, snap.NParts
	if snap.Started {
		in.started, in.startTick = true, snap.StartTick
	}
	s.log.Info("twin restored from its checkpoint", "run", s.cfg.RunID, "next_tick", snap.Next, "written", snap.Written, "bytes", len(data))
	s.met.restores.Inc()
	return in, snap, nil
}

// decodeCheckpoint decodes a checkpoint of run runID (serviceSnap).
func decodeCheckpoint(data []byte, runID string) (*serviceSnap, error) {
	var snap serviceSnap
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&snap); err != nil {
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
	newest, _, err := kafka.LastWatermarks(ctx, s.cfg.Brokers, s.log, s.cfg.Names.Topic(schemas.TopicTelemetry), s.cfg.RunID, telemetryTail)
	if err != nil {
		return err
	}
	if len(newest) < s.partitions {
		return nil // a partition without one: write everything again
	}
	s.sentUS = minWM(newest)
	s.log.Info("twin telemetry already written", "run", s.cfg.RunID, "until_tick", grid.TickOf(s.sentUS, grid.OperationalTickUS))
	return nil
}

// telemetryTail is how many of the newest records of each telemetry
// partition a restarting twin reads for its last watermark: a tick's
// records and one watermark per tick come between two of them.
const telemetryTail = 50_000

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

func marshalHash(h interface{ Sum([]byte) []byte }) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("the digest's hash cannot be saved")
	}
	return m.MarshalBinary()
}

func unmarshalHash(h interface{ Sum([]byte) []byte }, b []byte) error {
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return errors.New("the digest's hash cannot be restored")
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("restoring the twin's digests: %w", err)
	}
	return nil
}

func orEmpty(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return maps.Clone(m)
}

func orEmpty32(m map[int32]int64) map[int32]int64 {
	if m == nil {
		return map[int32]int64{}
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

// Fault points: where ServiceConfig.Fault is called, for tests that kill
// the twin there (docs/twin.md, "Checkpoint and restart").
const (
	// FaultTick follows the writing of a tick's telemetry, before its
	// scoring is queued.
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

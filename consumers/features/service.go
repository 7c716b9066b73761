package features

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Publisher sends one encoded tick batch to a subject with a message id.
// Flush returns once every batch sent so far is durable.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
	Flush(ctx context.Context) error
}

// Checkpoints stores partition snapshots; *jetstream.KeyValue satisfies it
// through KVCheckpoints.
type Checkpoints interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
}

// ErrNoCheckpoint is returned by Checkpoints.Get when there is none.
var ErrNoCheckpoint = errors.New("no checkpoint")

// KVCheckpoints adapts a JetStream key-value bucket to Checkpoints. A
// partition's checkpoint grows with its functions, and NATS refuses a
// message over its maximum payload (1 MiB by default): one was measured
// over it with 10× the trace's apps on 4 partitions (docs/capacity.md).
// With Obj set, a value over SpillBytes is stored as an object of Obj
// under a name of its own, and the entry holds only that name; the object
// is written whole before the entry points to it, and the one before is
// deleted after, so a crash between leaves the previous checkpoint.
type KVCheckpoints struct {
	KV jetstream.KeyValue
	// Obj, if set, holds the values over SpillBytes
	// (schemas.BucketFeatures).
	Obj jetstream.ObjectStore
	// SpillBytes is the largest value kept in the entry itself (default
	// DefaultSpillBytes).
	SpillBytes int
}

// DefaultSpillBytes is KVCheckpoints.SpillBytes's default: half of NATS's
// default maximum payload.
const DefaultSpillBytes = 512 << 10

// objectRef marks an entry that names the object holding the checkpoint.
// A snapshot envelope never starts with a zero byte.
const objectRef = "\x00strata-object\x00"

// Get returns the value of key or ErrNoCheckpoint.
func (c KVCheckpoints) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := c.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %s: %w", key, err)
	}
	v := e.Value()
	name, isRef := strings.CutPrefix(string(v), objectRef)
	if !isRef {
		return v, nil
	}
	if c.Obj == nil {
		return nil, fmt.Errorf("reading checkpoint %s: it is in object %s, and no object store was given", key, name)
	}
	b, err := c.Obj.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %s from object %s: %w", key, name, err)
	}
	return b, nil
}

// Put stores value under key: in the entry itself, or, over SpillBytes
// with Obj set, as an object the entry names.
func (c KVCheckpoints) Put(ctx context.Context, key string, value []byte) error {
	limit := c.SpillBytes
	if limit <= 0 {
		limit = DefaultSpillBytes
	}
	prev := c.ref(ctx, key) // the object the entry names now, if any
	if c.Obj == nil || len(value) <= limit {
		if _, err := c.KV.Put(ctx, key, value); err != nil {
			return fmt.Errorf("writing checkpoint %s: %w", key, err)
		}
		c.dropObject(ctx, prev)
		return nil
	}
	sum := sha256.Sum256(value)
	name := key + "." + hex.EncodeToString(sum[:8])
	if _, err := c.Obj.PutBytes(ctx, name, value); err != nil {
		return fmt.Errorf("writing checkpoint %s as object %s: %w", key, name, err)
	}
	if _, err := c.KV.Put(ctx, key, []byte(objectRef+name)); err != nil {
		return fmt.Errorf("writing checkpoint %s (object %s): %w", key, name, err)
	}
	if prev != name {
		c.dropObject(ctx, prev)
	}
	return nil
}

// ref returns the object key's entry names, "" when it names none.
func (c KVCheckpoints) ref(ctx context.Context, key string) string {
	if c.Obj == nil {
		return ""
	}
	e, err := c.KV.Get(ctx, key)
	if err != nil {
		return ""
	}
	name, isRef := strings.CutPrefix(string(e.Value()), objectRef)
	if !isRef {
		return ""
	}
	return name
}

// dropObject deletes a checkpoint object no entry names any more; a
// failure leaves it behind, harmless.
func (c KVCheckpoints) dropObject(ctx context.Context, name string) {
	if name != "" {
		_ = c.Obj.Delete(ctx, name)
	}
}

// Config configures the feature service.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Topic is the telemetry topic (default strata.telemetry.v1).
	Topic string
	// Group is the consumer group (default strata-features).
	Group string
	// InstanceID, if set, makes the service a static member of its group:
	// restarted with the same id after a crash, it takes its partitions
	// back at once instead of after the dead member's session times out.
	InstanceID string
	// OutageBound is how long the service polls through a Kafka outage
	// before it gives up (kafka.Outage; 0 is kafka.DefaultOutageBound).
	OutageBound time.Duration
	// Epoch maps trace time 0 to the wall clock.
	Epoch time.Time
	// CheckpointEvery is the wall-clock interval between checkpoints
	// (default 5 s); checkpoints are also written on revocation, at the end
	// of a run and on shutdown.
	CheckpointEvery time.Duration
	// StopAfterFinal makes Run return once every partition the service
	// holds has seen the final watermark of a run and its batches are
	// durable (in a group of several processes, each once its own are).
	StopAfterFinal bool
	// RunID, if set, restricts the service to one run: records of other
	// runs are skipped and counted.
	RunID string
	// OnBatch, if set, is called with every encoded batch after it is
	// published (tests and the summary use it).
	OnBatch func(h schemas.BatchHeader, rows int, data []byte)
	// Names prefixes the default topic and group, the state subjects and
	// the dead-letter topic (see schemas.Names).
	Names schemas.Names
	// WatermarkIdle is how far, in event time, a watermark writer (an
	// ingest instance) may fall behind the most advanced one on a
	// partition before it leaves the set whose minimum closes ticks
	// (schemas.Watermarks; 0: never). A replay has one writer.
	WatermarkIdle time.Duration
}

// Stats counts what the service did.
type Stats struct {
	Invocations int64 `json:"invocations"`
	Late        int64 `json:"late"`
	// Duplicates counts the observations dropped because their invocation
	// id was already windowed in an open tick (retried ingest requests);
	// they are not dead-lettered.
	Duplicates      int64 `json:"duplicates"`
	Malformed       int64 `json:"malformed"`
	OtherRuns       int64 `json:"other_runs"`
	StatesPublished int64 `json:"states_published"`
	StateBytes      int64 `json:"state_bytes"`
	// Ticks counts the distinct ticks per layer that batches were
	// published for; Batches counts the batches (one per shard and tick).
	Ticks   map[string]int64 `json:"ticks"`
	Batches map[string]int64 `json:"batches"`
	// Watermarks counts the watermark records of the run applied (one per
	// partition each time a writer writes one).
	Watermarks int64 `json:"watermarks"`
}

type svcMetrics struct {
	records   prometheus.Counter
	rejected  *prometheus.CounterVec
	batches   *prometheus.CounterVec
	encodeDur prometheus.Histogram
	advance   prometheus.Histogram
	delay     prometheus.Histogram
	// ckptFailures counts periodic checkpoints that failed and were retried.
	ckptFailures prometheus.Counter
}

func newSvcMetrics(reg prometheus.Registerer) *svcMetrics {
	m := &svcMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "features",
			Name: "invocations_total", Help: "Observed invocations windowed."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "features",
			Name: "rejected_total", Help: "Telemetry records rejected, by reason; all but duplicates are dead-lettered."}, []string{"reason"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "features",
			Name: "state_batches_total", Help: "State batches published, by layer."}, []string{"layer"}),
		encodeDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "features",
			Name: "batch_encode_seconds", Help: "Time to encode one state batch.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
		advance: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "features",
			Name: "watermark_seconds", Help: "Per watermark of a partition: closing the ticks it passes and publishing their state batches (the features' hop of the loop).",
			Buckets: prometheus.ExponentialBuckets(1e-5, 2, 19)}),
	}
	m.ckptFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "features",
		Name: "checkpoint_failures_total", Help: "Periodic checkpoints that failed to be stored or committed (retried at the next interval)."})
	m.delay = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "features",
		Name: "watermark_delay_seconds", Help: "Per watermark: from when it was produced (its strata-produced-us header, else its Kafka timestamp, in milliseconds) until the service reads it (the Kafka hop; clocks of two hosts when remote).",
		Buckets: prometheus.ExponentialBuckets(1e-5, 2, 19)})
	if reg != nil {
		reg.MustRegister(m.records, m.rejected, m.batches, m.encodeDur, m.advance, m.delay, m.ckptFailures)
	}
	return m
}

type owned struct {
	part       *Partition
	nextOffset int64 // offset after the last record applied
	skipBelow  int64 // records below this offset are already in part
}

// Service windows strata.telemetry.v1 into state batches.
type Service struct {
	cfg Config
	log *slog.Logger
	m   *svcMetrics
	// outage tolerates the fetch errors of a Kafka outage up to its bound.
	outage  kafka.Outage
	pub     Publisher
	ckpt    Checkpoints
	cl      *kgo.Client
	nShards int

	mu sync.Mutex
	// obsDec decodes the telemetry's observations (apply, under mu).
	obsDec    schemas.ObservationDecoder
	parts     map[int32]*owned
	stats     Stats
	lastCkpt  time.Time
	finalSeen map[int32]bool
	assignErr error
	// ckptFailures counts periodic checkpoints failed in a row (loop only).
	ckptFailures int
	seenTicks    map[schemas.Layer]map[int64]struct{}
}

// NewService connects to Kafka and prepares the service; Run starts it.
func NewService(ctx context.Context, cfg Config, pub Publisher, ckpt Checkpoints, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if cfg.Topic == "" {
		cfg.Topic = cfg.Names.Topic(schemas.TopicTelemetry)
	}
	if cfg.Group == "" {
		cfg.Group = cfg.Names.Group("strata-features")
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 5 * time.Second
	}
	s := &Service{cfg: cfg, log: logger, m: newSvcMetrics(reg), pub: pub, ckpt: ckpt, outage: kafka.Outage{Bound: cfg.OutageBound, Log: logger, What: cfg.Topic},
		parts: map[int32]*owned{}, finalSeen: map[int32]bool{},
		stats:     Stats{Ticks: map[string]int64{}, Batches: map[string]int64{}},
		seenTicks: map[schemas.Layer]map[int64]struct{}{}}
	opts := append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(16<<20),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating features kafka client: %w", err)
	}
	// A feature process may start before the run that writes its input:
	// it waits for the topic.
	n, err := kafka.AwaitPartitionCount(ctx, cl, cfg.Topic, logger)
	if err != nil {
		cl.Close()
		return nil, err
	}
	s.cl, s.nShards = cl, n
	return s, nil
}

func (s *Service) ckptKey(p int32) string {
	return "features." + s.cfg.Group + "." + s.cfg.Topic + "." + strconv.Itoa(int(p))
}

type snapshotEnvelope struct {
	NextOffset int64
	State      []byte
}

func (s *Service) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range assigned[s.cfg.Topic] {
		o := &owned{}
		data, err := s.readCheckpoint(ctx, p)
		switch {
		case errors.Is(err, ErrNoCheckpoint):
		case err != nil:
			s.assignErr = err
			continue
		default:
			env, err := decodeEnvelope(data)
			if err == nil {
				o.part, err = RestorePartition(env.State)
				if err == nil {
					o.part.SetWatermarkIdle(s.cfg.WatermarkIdle.Microseconds())
				}
			}
			if err != nil {
				s.assignErr = fmt.Errorf("restoring partition %d: %w", p, err)
				continue
			}
			o.nextOffset, o.skipBelow = env.NextOffset, env.NextOffset
			s.finalSeen[p] = o.part.Final()
			s.log.Info("restored features checkpoint", "partition", p, "offset", env.NextOffset, "run", o.part.RunID(), "next_tick", o.part.NextTick())
		}
		s.parts[p] = o
	}
}

// readCheckpoint reads partition p's checkpoint, trying three times a
// second apart: a store that is slow to answer once (a loaded machine, a
// leader election) must not end the service at a rebalance.
func (s *Service) readCheckpoint(ctx context.Context, p int32) ([]byte, error) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			s.log.Warn("reading a features checkpoint failed; retrying", "partition", p, "err", err)
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(time.Second):
			}
		}
		var data []byte
		data, err = s.ckpt.Get(ctx, s.ckptKey(p))
		if err == nil || errors.Is(err, ErrNoCheckpoint) {
			return data, err
		}
	}
	return nil, err
}

func (s *Service) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if err := s.checkpoint(ctx, true); err != nil {
		s.log.Error("checkpointing on revocation", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range revoked[s.cfg.Topic] {
		delete(s.parts, p)
	}
}

func (s *Service) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range lost[s.cfg.Topic] {
		delete(s.parts, p)
	}
}

// Stats returns a copy of the service's counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Ticks, out.Batches = maps.Clone(s.stats.Ticks), maps.Clone(s.stats.Batches)
	return out
}

// Run consumes until ctx is done (or, with StopAfterFinal, until every
// partition finished its run), then checkpoints, commits and leaves the
// group.
func (s *Service) Run(ctx context.Context) error {
	defer s.cl.Close()
	runErr := s.loop(ctx)
	// Ordered shutdown: stop polling (loop returned), flush publishes,
	// checkpoint and commit, leave the group.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.checkpoint(sctx, true); err != nil && runErr == nil {
		runErr = err
	}
	if err := s.cl.LeaveGroupContext(sctx); err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("leaving consumer group: %w", err)
	}
	return runErr
}

func (s *Service) loop(ctx context.Context) error {
	for {
		// With StopAfterFinal a poll gives up after a second without
		// records: partitions handed over done by a process that left the
		// group bring no record, and the service must see that it is done.
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if s.cfg.StopAfterFinal {
			pctx, cancel = context.WithTimeout(ctx, time.Second)
		}
		fetches := s.cl.PollFetches(pctx)
		idle := pctx.Err() != nil && fetches.NumRecords() == 0
		cancel()
		if ctx.Err() != nil {
			s.cl.AllowRebalance()
			return nil
		}
		if fetches.IsClientClosed() {
			return nil
		}
		if idle {
			fetches = nil // the poll's own deadline, not an outage
		}
		if err := s.outage.After(ctx, fetches); err != nil {
			s.cl.AllowRebalance()
			return err
		}
		s.mu.Lock()
		err := s.assignErr
		if err == nil {
			fetches.EachRecord(func(r *kgo.Record) {
				if err == nil {
					err = s.apply(ctx, r)
				}
			})
		}
		done := s.cfg.StopAfterFinal && s.ownFinal()
		s.mu.Unlock()
		if err != nil {
			s.cl.AllowRebalance()
			return err
		}
		if time.Since(s.lastCkpt) >= s.cfg.CheckpointEvery || done {
			if err := s.periodicCheckpoint(ctx, done); err != nil {
				s.cl.AllowRebalance()
				return err
			}
		}
		s.cl.AllowRebalance()
		if done {
			return nil
		}
	}
}

// ownFinal reports whether every partition the service holds has seen its
// run's final watermark (s.mu held). In a group of several processes each
// stops once its own partitions are done; one that leaves hands them,
// done, to the others, which restore them from their checkpoints. A
// service that holds no partition is not done.
func (s *Service) ownFinal() bool {
	if len(s.parts) == 0 {
		return false
	}
	for p := range s.parts {
		if !s.finalSeen[p] {
			return false
		}
	}
	return true
}

// apply handles one record; s.mu is held.
func (s *Service) apply(ctx context.Context, r *kgo.Record) error {
	o, ok := s.parts[r.Partition]
	if !ok {
		o = &owned{}
		s.parts[r.Partition] = o
	}
	if r.Offset < o.skipBelow {
		return nil
	}
	o.nextOffset = r.Offset + 1
	// Formatted only for a record that is rejected: formatting it for
	// every record cost as much as a fifth of decoding it.
	loc := func() string { return fmt.Sprintf("partition %d offset %d", r.Partition, r.Offset) }
	if kafka.IsWatermark(r) {
		var wm stratapb.Watermark
		if err := proto.Unmarshal(r.Value, &wm); err != nil {
			s.reject(ctx, r, loc(), "malformed watermark: "+err.Error(), "malformed")
			return nil
		}
		if s.cfg.RunID != "" && wm.RunId != s.cfg.RunID {
			s.stats.OtherRuns++
			return nil
		}
		part := s.partitionFor(o, r.Partition, wm.RunId)
		s.stats.Watermarks++
		t0 := time.Now()
		s.m.delay.Observe(max(t0.Sub(kafka.ProducedAt(r)), 0).Seconds())
		if err := part.AdvanceFrom(kafka.Writer(r), wm.WatermarkUs, wm.Final, func(b *schemas.StateBatch) error {
			return s.publish(ctx, b)
		}); err != nil {
			return err
		}
		s.m.advance.Observe(time.Since(t0).Seconds())
		if wm.Final {
			s.finalSeen[r.Partition] = true
		}
		return nil
	}
	obs, err := s.obsDec.Decode(r.Value)
	if err != nil {
		s.reject(ctx, r, loc(), "malformed observation: "+err.Error(), "malformed")
		return nil
	}
	if s.cfg.RunID != "" && obs.GetArrival().GetRunId() != s.cfg.RunID {
		s.stats.OtherRuns++
		return nil
	}
	ev, err := EventFromObservation(obs)
	if err != nil {
		s.reject(ctx, r, loc(), err.Error(), "invalid")
		return nil
	}
	part := s.partitionFor(o, r.Partition, obs.GetArrival().GetRunId())
	if err := part.Add(&ev); err != nil {
		if errors.Is(err, ErrDuplicate) {
			// A retried ingest request: harmless, so counted but not
			// dead-lettered.
			s.stats.Duplicates++
			s.m.rejected.WithLabelValues("duplicate").Inc()
			s.log.Debug("dropping a duplicate observation", "location", loc(), "reason", err)
			return nil
		}
		s.stats.Late++
		s.reject(ctx, r, loc(), err.Error(), "late")
		return nil
	}
	s.stats.Invocations++
	s.m.records.Inc()
	return nil
}

// partitionFor returns the windows of run runID on partition p, starting new
// ones when a new run begins. A producer writes a run's records after the
// previous run's, so a new run id on a partition means the old run is over
// there; two runs replayed into one topic at once must be told apart with
// Config.RunID (one service per run).
func (s *Service) partitionFor(o *owned, p int32, runID string) *Partition {
	if o.part == nil || o.part.RunID() != runID {
		if o.part != nil {
			lvl := slog.LevelInfo
			if !o.part.Final() {
				lvl = slog.LevelWarn
			}
			s.log.Log(context.Background(), lvl, "new run on partition", "partition", p, "run", runID,
				"previous", o.part.RunID(), "previous_finished", o.part.Final())
		}
		o.part = NewPartition(runID, int(p), s.nShards, s.cfg.Epoch)
		o.part.SetWatermarkIdle(s.cfg.WatermarkIdle.Microseconds())
		s.finalSeen[p] = false
	}
	return o.part
}

func (s *Service) publish(ctx context.Context, b *schemas.StateBatch) error {
	t0 := time.Now()
	data, err := schemas.EncodeState(b)
	if err != nil {
		return err
	}
	s.m.encodeDur.Observe(time.Since(t0).Seconds())
	h := b.Header
	if err := s.pub.Publish(ctx, s.cfg.Names.StateSubject(h.Layer), schemas.BatchMsgID(h.RunID, h.Layer, h.Tick, h.Shard, h.NShards), data); err != nil {
		return err
	}
	s.stats.StatesPublished++
	s.stats.StateBytes += int64(len(data))
	s.stats.Batches[string(h.Layer)]++
	seen := s.seenTicks[h.Layer]
	if seen == nil {
		seen = map[int64]struct{}{}
		s.seenTicks[h.Layer] = seen
	}
	if _, ok := seen[h.Tick]; !ok {
		seen[h.Tick] = struct{}{}
		s.stats.Ticks[string(h.Layer)]++
	}
	s.m.batches.WithLabelValues(string(h.Layer)).Inc()
	if s.cfg.OnBatch != nil {
		s.cfg.OnBatch(h, b.Len(), data)
	}
	return nil
}

func (s *Service) reject(ctx context.Context, r *kgo.Record, loc, reason, kind string) {
	if kind == "malformed" || kind == "invalid" {
		s.stats.Malformed++
	}
	s.m.rejected.WithLabelValues(kind).Inc()
	s.log.Warn("dead-lettering telemetry", "location", loc, "reason", reason)
	val, err := proto.Marshal(&stratapb.DeadLetter{Source: r.Topic, Location: loc, Reason: reason,
		Payload: truncate(r.Value, 64<<10), Component: "features"})
	if err != nil {
		return
	}
	s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Names.Topic(schemas.TopicDeadLetter), Key: r.Key, Value: val}, nil)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// maxCheckpointFailures is how many periodic checkpoints in a row may fail
// to be stored or committed before the service gives up.
const maxCheckpointFailures = 6

// periodicCheckpoint runs a checkpoint between polls. Failing to flush the
// published batches ends the service (a batch may be lost otherwise); failing
// to store the state or commit the offsets does not, up to
// maxCheckpointFailures in a row: the previous checkpoint and its offsets
// stay consistent, so a restart only replays further back, and the next
// interval tries again. The last checkpoint of a run (final) must succeed.
func (s *Service) periodicCheckpoint(ctx context.Context, final bool) error {
	err := s.checkpoint(ctx, false)
	var stored *checkpointStoreError
	switch {
	case err == nil:
		s.ckptFailures = 0
		return nil
	case final || !errors.As(err, &stored) || ctx.Err() != nil:
		return err
	}
	s.ckptFailures++
	s.m.ckptFailures.Inc()
	if s.ckptFailures >= maxCheckpointFailures {
		return fmt.Errorf("%d checkpoints in a row failed, the last: %w", s.ckptFailures, err)
	}
	s.log.Warn("checkpoint failed; retrying at the next interval", "failures", s.ckptFailures, "err", err)
	s.mu.Lock()
	s.lastCkpt = time.Now()
	s.mu.Unlock()
	return nil
}

// checkpointStoreError is a checkpoint that failed after the published
// batches were flushed: storing the state or committing the offsets.
type checkpointStoreError struct{ err error }

func (e *checkpointStoreError) Error() string { return e.err.Error() }
func (e *checkpointStoreError) Unwrap() error { return e.err }

// checkpoint makes published batches durable, then stores every owned
// partition's state with its next offset and commits those offsets.
func (s *Service) checkpoint(ctx context.Context, force bool) error {
	if err := s.pub.Flush(ctx); err != nil {
		return fmt.Errorf("flushing state batches: %w", err)
	}
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing dead letters: %w", err)
	}
	s.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for p, o := range s.parts {
		if o.part == nil || o.nextOffset == 0 {
			continue
		}
		state, err := o.part.MarshalBinary()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if err := s.ckpt.Put(ctx, s.ckptKey(p), encodeEnvelope(snapshotEnvelope{NextOffset: o.nextOffset, State: state})); err != nil {
			s.mu.Unlock()
			return &checkpointStoreError{err}
		}
		offsets[p] = kgo.EpochOffset{Epoch: -1, Offset: o.nextOffset}
	}
	s.lastCkpt = time.Now()
	s.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	var cerr error
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, pt := range t.Partitions {
					if e := kerr.ErrorForCode(pt.ErrorCode); e != nil && cerr == nil {
						cerr = fmt.Errorf("partition %d: %w", pt.Partition, e)
					}
				}
			}
		})
	if cerr != nil && !force {
		return &checkpointStoreError{fmt.Errorf("committing offsets: %w", cerr)}
	}
	return nil
}

func encodeEnvelope(e snapshotEnvelope) []byte {
	out := make([]byte, 8, 8+len(e.State))
	binary.BigEndian.PutUint64(out, uint64(e.NextOffset))
	return append(out, e.State...)
}

func decodeEnvelope(b []byte) (snapshotEnvelope, error) {
	if len(b) < 8 {
		return snapshotEnvelope{}, fmt.Errorf("decoding checkpoint: %d bytes, want at least 8", len(b))
	}
	return snapshotEnvelope{NextOffset: int64(binary.BigEndian.Uint64(b)), State: b[8:]}, nil
}

// EventFromObservation validates an observed invocation with
// schemas.CheckObservation and converts it to an Event.
func EventFromObservation(o *stratapb.Observation) (Event, error) {
	if err := schemas.CheckObservation(o); err != nil {
		return Event{}, err
	}
	a := o.GetArrival()
	e := Event{ID: a.GetInvocationId(), App: a.GetApp(), Func: a.GetFunc(), StartUS: a.GetStartUs(), DurationUS: a.GetDurationUs(),
		Provider: o.GetProvider(), Region: o.GetRegion(), MemoryMB: o.GetMemoryMb(), Instances: o.GetTotalInstances()}
	opt := []struct {
		has  bool
		v    float64
		dst  *float64
		flag *bool
	}{
		{o.LatencyMs != nil, o.GetLatencyMs(), &e.LatencyMS, &e.HasLatency},
		{o.CpuBusyMs != nil, o.GetCpuBusyMs(), &e.CPUBusyMS, &e.HasCPU},
		{o.QueueWaitMs != nil, o.GetQueueWaitMs(), &e.QueueWaitMS, &e.HasQueue},
		{o.MemoryUsedMb != nil, o.GetMemoryUsedMb(), &e.MemoryUsed, &e.HasMemory},
		{o.CostUsd != nil, o.GetCostUsd(), &e.CostUSD, &e.HasCost},
		{o.CarbonG != nil, o.GetCarbonG(), &e.CarbonG, &e.HasCarbon},
	}
	for _, f := range opt {
		if !f.has {
			continue
		}
		*f.dst, *f.flag = f.v, true
	}
	if o.ColdStart != nil {
		e.HasCold, e.Cold = true, o.GetColdStart()
	}
	return e, nil
}

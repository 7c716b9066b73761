// Package sink consumes the twin's records (runs, decisions, rewards and
// optionally outcomes) from Kafka and writes them as table rows to a store
// (ClickHouse or DuckDB, see infra/store). It commits a record's offset only
// after the batch holding it was written, and the tables are keyed by the
// records' natural keys, so a crash, a rebalance or a restart can replay
// records but never loses or double-counts one.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/notify"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// TopicRuns carries stratapb.Run records (one per run, keyed by run id) for
// the runs table. It lives here until it moves to package schemas.
const TopicRuns = "strata.runs.v1"

// Writer is what the sink needs from a store; every store.Store is one.
// A Write returns once its rows are durable.
type Writer interface {
	WriteRuns(ctx context.Context, rows []*stratapb.Run) error
	WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error
	WriteRewards(ctx context.Context, rows []*stratapb.Reward) error
	WriteOutcomes(ctx context.Context, rows []*stratapb.Outcome) error
}

// Expirer is what the sink needs from a store for a retention; every
// store.Store is one. Expire deletes (or starts deleting) the rows of the
// decision tables written before before; more reports rows left for
// another call.
type Expirer interface {
	Expire(ctx context.Context, before time.Time) (deleted int64, more bool, err error)
}

// SweepInterval is how often a sink with the given retention sweeps: a
// 24th of it, at least a minute and at most an hour. A row thus lives at
// most retention + SweepInterval(retention) (plus, on ClickHouse, the
// time its mutation takes).
func SweepInterval(retention time.Duration) time.Duration {
	return min(max(retention/24, time.Minute), time.Hour)
}

// DefaultWriteTimeout is the default of Config.WriteTimeout.
const DefaultWriteTimeout = 10 * time.Second

// DefaultWriteOutage is the default of Config.WriteOutage: as long as the
// sink polls through a Kafka outage (kafka.DefaultOutageBound).
const DefaultWriteOutage = 2 * time.Minute

// ErrNoBrokers is returned by New without seed brokers.
var ErrNoBrokers = errors.New("sink: no kafka brokers")

// Topics names the topics the sink reads; empty fields take the defaults.
type Topics struct {
	// Runs defaults to TopicRuns.
	Runs string
	// Decisions defaults to strata.decisions.v1.
	Decisions string
	// Rewards defaults to strata.rewards.v1.
	Rewards string
	// Outcomes defaults to strata.outcomes.v1 (read only with
	// Config.Outcomes).
	Outcomes string
	// DeadLetter defaults to strata.deadletter.v1.
	DeadLetter string
}

// Config configures a Sink.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Group is the consumer group (default strata-sink).
	Group string
	// OutageBound is how long the sink polls through a Kafka outage
	// before it gives up (kafka.Outage; 0 is kafka.DefaultOutageBound).
	OutageBound time.Duration
	// Topics overrides topic names (default: the strata topics under
	// Names).
	Topics Topics
	// Names prefixes the default topics and group (see schemas.Names).
	Names schemas.Names
	// Outcomes makes the sink read the outcomes topic too (default off).
	Outcomes bool
	// Partitions, if positive, is the partition count the topics must have:
	// an existing topic with another count is refused. 0 adopts the
	// existing topics' count; missing topics are created with it (or
	// kafka.DefaultPartitions when none exists).
	Partitions int
	// BatchRows is the most records written in one batch (default 10000).
	BatchRows int
	// FlushInterval is the longest a record waits for its batch to fill
	// before it is written (default 500 ms).
	FlushInterval time.Duration
	// StopAfterIdle, if positive, makes Run return once no record arrived
	// for that long since the last record, the end of the last write or
	// the last partition assignment, whichever is latest (joining the group
	// does not count).
	StopAfterIdle time.Duration
	// RunID, if set, keeps the rows of that run only: records of other runs
	// on the topics are skipped (and counted in Stats.OtherRuns), so the
	// counters say what this run wrote.
	RunID string
	// InstanceID, if set, makes the sink a static member of its group
	// (KIP-345): a sink restarted with the same id after a crash takes its
	// partitions back at once instead of waiting for the dead member's
	// session to expire. At most one running sink may use an id.
	InstanceID string
	// SessionTimeout is the group session timeout (default franz-go's,
	// 45 s): how long a crashed member without an instance id holds its
	// partitions.
	SessionTimeout time.Duration
	// WriteTimeout bounds one attempt to write a table's batch (default
	// DefaultWriteTimeout): a store that stops answering (a stopped
	// ClickHouse, a cut connection) costs an attempt, not the sink.
	WriteTimeout time.Duration
	// WriteOutage is how long a failing batch write is retried, with
	// backoff (100 ms doubling to 5 s), before Run returns one error that
	// names the bound (default DefaultWriteOutage; negative: no retry).
	// Meanwhile the sink polls nothing from Kafka: the records wait there,
	// and the sink holds one batch (at most BatchRows records). Retrying
	// is safe: writes are idempotent.
	WriteOutage time.Duration
	// Retention, if positive, bounds how long the rows of decisions,
	// rewards and outcomes are kept, by their written column (the wall
	// clock of their write): the sink sweeps at its start and then every
	// SweepInterval(Retention), between batches, and the store must be an
	// Expirer. 0 keeps every row.
	Retention time.Duration
	// Now is the wall clock of the retention (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Group == "" {
		c.Group = c.Names.Group("strata-sink")
	}
	t, n := &c.Topics, c.Names
	t.Runs = orDefault(t.Runs, n.Topic(TopicRuns))
	t.Decisions = orDefault(t.Decisions, n.Topic(schemas.TopicDecisions))
	t.Rewards = orDefault(t.Rewards, n.Topic(schemas.TopicRewards))
	t.Outcomes = orDefault(t.Outcomes, n.Topic(schemas.TopicOutcomes))
	t.DeadLetter = orDefault(t.DeadLetter, n.Topic(schemas.TopicDeadLetter))
	if c.Partitions < 0 {
		c.Partitions = 0
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 10000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 500 * time.Millisecond
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.WriteOutage == 0 {
		c.WriteOutage = DefaultWriteOutage
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Stats counts what a sink did.
type Stats struct {
	// Records is every record polled, including skipped and rejected ones.
	Records int64 `json:"records"`
	// Rows is the rows handed to the store per table, in batches that
	// were written (a replayed record counts again).
	Rows map[string]int64 `json:"rows"`
	// Rejected is the malformed or invalid records sent to the dead-letter
	// topic.
	Rejected int64 `json:"rejected"`
	// Skipped is records that are not rows (watermarks).
	Skipped int64 `json:"skipped"`
	// OtherRuns is records of runs other than Config.RunID, not written.
	OtherRuns int64 `json:"other_runs"`
	// Batches is the batches written; Committed the records whose offsets
	// were committed after their batch.
	Batches   int64 `json:"batches"`
	Committed int64 `json:"committed"`
	// Expired is the rows the retention sweeps deleted (on ClickHouse:
	// started deleting), in every run's rows.
	Expired int64 `json:"expired,omitempty"`
}

type metrics struct {
	records      *prometheus.CounterVec
	rows         *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	writeSeconds *prometheus.HistogramVec
	writeRetries prometheus.Counter
	commitErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "strata", "sink"
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_total", Help: "Kafka records polled, by topic."}, []string{"topic"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rows_written_total", Help: "Rows written to the store, by table."}, []string{"table"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejected_total", Help: "Records dead-lettered, by reason."}, []string{"reason"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "write_seconds", Help: "Time to write one batch of a table to the store.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)}, []string{"table"}),
		writeRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "write_retries_total", Help: "Batch writes retried after an error."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "commit_errors_total", Help: "Offset commits that failed (the records are replayed later)."}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.rows, m.rejected, m.writeSeconds, m.writeRetries, m.commitErrors)
	}
	return m
}

// batch is the records polled since the last write.
type batch struct {
	recs      []*kgo.Record
	runs      []*stratapb.Run
	decisions []*stratapb.Decision
	rewards   []*stratapb.Reward
	outcomes  []*stratapb.Outcome
	since     time.Time // when the first record arrived
}

func (b *batch) reset() {
	clear(b.recs)
	b.recs, b.runs, b.decisions, b.rewards, b.outcomes = b.recs[:0], nil, nil, nil, nil
}

// Sink is a consumer-group member that writes records to a store.
type Sink struct {
	cfg Config
	w   Writer
	log *slog.Logger
	// outage tolerates the fetch errors of a Kafka outage up to its bound.
	outage kafka.Outage
	m      *metrics
	cl     *kgo.Client

	// mu guards b, stats and dlErr; flushes hold it, so the revocation
	// callback and the poll loop never write at the same time.
	mu sync.Mutex
	// changed is notified after every batch written and committed.
	changed notify.Signal
	// written counts the decision, reward and outcome rows written
	// (WrittenRows, which must not wait for mu while a batch is written).
	written atomic.Int64
	// topics are the topics the sink reads; read holds, per partition,
	// the offset after the last record read (guarded by mu).
	topics []string
	read   map[topicPartition]int64
	// done holds, per partition, the offset after the last record whose
	// batch is written (guarded by mu): Reached compares it with a Mark.
	done   map[topicPartition]int64
	b      batch
	stats  Stats
	dlErr  error
	failed bool
	// assignedAt is when partitions were last assigned; the idle clock
	// does not run before the first assignment.
	assignedAt time.Time
	// exp deletes expired rows when cfg.Retention is set; nextSweep is
	// when the loop sweeps next (zero: at once).
	exp       Expirer
	nextSweep time.Time
}

// New connects to Kafka, creates the sink's topics if they are missing and
// joins the consumer group on the first poll of Run. The sink does not own
// w: the caller closes it after Run returns.
func New(ctx context.Context, cfg Config, w Writer, logger *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, ErrNoBrokers
	}
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, w: w, log: logger, m: newMetrics(reg), stats: Stats{Rows: map[string]int64{}},
		outage: kafka.Outage{Bound: cfg.OutageBound, Log: logger, What: "strata's output topics"}}
	if cfg.Retention > 0 {
		exp, ok := w.(Expirer)
		if !ok {
			return nil, fmt.Errorf("sink: a retention of %s needs a store that can delete old rows; %T cannot", cfg.Retention, w)
		}
		s.exp = exp
	}
	topics := []string{cfg.Topics.Runs, cfg.Topics.Decisions, cfg.Topics.Rewards}
	if cfg.Outcomes {
		topics = append(topics, cfg.Topics.Outcomes)
	}
	s.topics, s.read, s.done = topics, map[topicPartition]int64{}, map[topicPartition]int64{}
	opts := append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
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
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating sink kafka client: %w", err)
	}
	if _, err := kafka.ResolvePartitions(ctx, cl, cfg.Partitions, append(topics, cfg.Topics.DeadLetter)...); err != nil {
		cl.Close()
		return nil, err
	}
	s.cl = cl
	return s, nil
}

// WrittenRows returns the decision, reward and outcome rows written so far
// — the tables a closed loop's twin publishes — without waiting for a batch
// being written: a gate compares it with what the twin published.
func (s *Sink) WrittenRows() int64 { return s.written.Load() }

// Changed returns a channel closed the next time the sink has written a
// batch of rows (its Stats count them), for waiting on its progress with
// notify.Until instead of polling.
func (s *Sink) Changed() <-chan struct{} { return s.changed.Changed() }

// Stats returns a copy of the sink's counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Rows = maps.Clone(s.stats.Rows)
	return out
}

// Run consumes until ctx is done, a write fails for good, or (with
// StopAfterIdle) the topics stay idle. Then it shuts down in order: stop
// polling, write the last batch, commit its offsets, leave the group,
// close the client. A cancelled ctx is a normal stop and returns nil.
func (s *Sink) Run(ctx context.Context) error {
	defer s.cl.Close()
	runErr := s.loop(ctx)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if runErr == nil {
		runErr = s.flush(sctx)
	}
	if runErr != nil {
		// Drop what could not be written: its offsets stay uncommitted, so
		// the next member reads it again. The revocation on leaving must
		// not try again.
		s.mu.Lock()
		s.failed = true
		s.b.reset()
		s.mu.Unlock()
	}
	s.cl.AllowRebalance()
	if err := s.cl.LeaveGroupContext(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("leaving consumer group %s: %w", s.cfg.Group, err)
	}
	return runErr
}

func (s *Sink) loop(ctx context.Context) error {
	var lastRecord time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		n, since, assigned := len(s.b.recs), s.b.since, s.assignedAt
		s.mu.Unlock()
		idleSince := assigned
		if lastRecord.After(idleSince) {
			idleSince = lastRecord
		}
		// Poll until the batch is due, or until the sink counts as idle.
		var deadline time.Time
		switch {
		case n > 0:
			deadline = since.Add(s.cfg.FlushInterval)
		case s.cfg.StopAfterIdle > 0 && !assigned.IsZero():
			deadline = idleSince.Add(s.cfg.StopAfterIdle)
		case s.cfg.StopAfterIdle > 0:
			deadline = time.Now().Add(s.cfg.StopAfterIdle) // look again for an assignment
		}
		if s.exp != nil {
			if now := time.Now(); !now.Before(s.nextSweep) {
				s.Sweep(ctx)
			}
			// An idle sink wakes up for its next sweep.
			if deadline.IsZero() || s.nextSweep.Before(deadline) {
				deadline = s.nextSweep
			}
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := s.cl.PollRecords(pctx, s.cfg.BatchRows-n)
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		if err := s.outage.After(ctx, fetches); err != nil {
			return err
		}
		got := 0
		s.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			s.add(r)
		})
		n = len(s.b.recs)
		s.mu.Unlock()
		now := time.Now()
		if got > 0 {
			lastRecord, idleSince = now, now
		}
		if ctx.Err() != nil {
			return nil // Run writes the last batch
		}
		if n > 0 && (n >= s.cfg.BatchRows || !now.Before(s.b.since.Add(s.cfg.FlushInterval))) {
			// A stop does not interrupt a write under way.
			if err := s.flush(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			n = 0
			// Writing is not idling: the idle clock starts again when the
			// write ends. (Counting a slow write — seconds on a loaded
			// machine — as idle time stopped the sink with records
			// waiting, after an expired poll that could not read them.)
			now = time.Now()
			lastRecord, idleSince = now, now
		}
		if n == 0 {
			// Nothing polled is unwritten: let a rebalance through.
			s.cl.AllowRebalance()
			if s.cfg.StopAfterIdle > 0 && !idleSince.IsZero() && now.Sub(idleSince) >= s.cfg.StopAfterIdle {
				if s.unread(ctx) {
					// Slow, not idle: records wait that the sink has not
					// read yet (a loaded machine, the first fetch after an
					// assignment). The idle clock starts again.
					lastRecord = time.Now()
					continue
				}
				s.log.Info("sink idle, stopping", "idle", s.cfg.StopAfterIdle)
				return nil
			}
		}
	}
}

// Sweep deletes the rows older than the retention (see Config.Retention)
// once, between batches, and schedules the next sweep: after the next poll
// when the store left rows for another call (DuckDB deletes a bounded
// chunk per call, so writes wait for one chunk, not the whole backlog),
// else SweepInterval later. A failed sweep is logged and tried again at
// the next interval: it does not stop the sink. The loop calls it; a test
// may call it instead of waiting.
func (s *Sink) Sweep(ctx context.Context) {
	if s.exp == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	before := now.Add(-s.cfg.Retention)
	deleted, more, err := s.exp.Expire(context.WithoutCancel(ctx), before)
	s.nextSweep = time.Now().Add(SweepInterval(s.cfg.Retention))
	switch {
	case err != nil:
		s.log.Warn("retention sweep failed; trying again later", "written_before", before, "err", err)
	case more:
		s.nextSweep = time.Now()
	}
	if deleted > 0 {
		s.stats.Expired += deleted
		s.log.Info("retention sweep", "written_before", before, "rows", deleted, "more", more)
	}
}

// topicPartition names a partition of a topic.
type topicPartition struct {
	topic string
	part  int32
}

// Mark is the end of every partition of the sink's topics at one moment
// (Sink.Mark): what a producer that has flushed wrote before it.
type Mark map[topicPartition]int64

// Mark returns the end offset of every partition of the sink's topics,
// less what the sink need not write there (before the partition's start
// or its group's committed offset).
func (s *Sink) Mark(ctx context.Context) (Mark, error) {
	m := Mark{}
	err := s.eachEnd(ctx, func(tp topicPartition, end, from int64) {
		if end > from {
			m[tp] = end
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing the sink's partitions' ends: %w", err)
	}
	return m, nil
}

// Reached reports whether the sink has written every record below m: a
// caller whose producer flushed before Mark knows its rows are in the
// store, even when some records came twice (a restarted producer sends
// again what it sent before), which row counts cannot tell.
func (s *Sink) Reached(m Mark) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp, end := range m {
		if s.done[tp] < end {
			return false
		}
	}
	return true
}

// eachEnd calls fn with every partition of the sink's topics, its end
// offset, and the further of its start offset and the group's committed
// one.
func (s *Sink) eachEnd(ctx context.Context, fn func(tp topicPartition, end, from int64)) error {
	adm := kadm.NewClient(s.cl)
	starts, err := adm.ListStartOffsets(ctx, s.topics...)
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, s.topics...)
	if err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, s.cfg.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a group that has committed nothing yet
	}
	if err != nil {
		return err
	}
	var failed error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			failed = e.Err
			return
		}
		at := int64(0)
		if st, ok := starts.Lookup(e.Topic, e.Partition); ok && st.Err == nil {
			at = st.Offset
		}
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At > at {
			at = c.At
		}
		fn(topicPartition{e.Topic, e.Partition}, e.Offset, at)
	})
	return failed
}

// unread reports whether the sink's topics hold records past the last one
// it read, its group committed, or each partition starts at, whichever is
// furthest: records waiting that this sink (or another member of its
// group) has not read yet. An error in asking counts as nothing unread:
// the idle stop proceeds as configured.
func (s *Sink) unread(ctx context.Context) bool {
	unread := false
	if err := s.eachEnd(ctx, func(tp topicPartition, end, from int64) {
		s.mu.Lock()
		at := max(from, s.read[tp])
		s.mu.Unlock()
		if end > at {
			unread = true
		}
	}); err != nil {
		return false
	}
	return unread
}

// add decodes r into the batch; s.mu is held.
func (s *Sink) add(r *kgo.Record) {
	if len(s.b.recs) == 0 {
		s.b.since = time.Now()
	}
	s.b.recs = append(s.b.recs, r)
	s.read[topicPartition{r.Topic, r.Partition}] = r.Offset + 1
	s.stats.Records++
	s.m.records.WithLabelValues(r.Topic).Inc()
	if kafka.IsWatermark(r) {
		s.stats.Skipped++
		return
	}
	v, run, err := decodeRecord(s.cfg.Topics, r.Topic, r.Value)
	switch {
	case err != nil:
		s.reject(r, err)
	case s.cfg.RunID != "" && run != s.cfg.RunID:
		s.stats.OtherRuns++
	default:
		switch v := v.(type) {
		case *stratapb.Run:
			s.b.runs = append(s.b.runs, v)
		case *stratapb.Decision:
			s.b.decisions = append(s.b.decisions, v)
		case *stratapb.Reward:
			s.b.rewards = append(s.b.rewards, v)
		case *stratapb.Outcome:
			s.b.outcomes = append(s.b.outcomes, v)
		}
	}
}

// decodeRecord decodes the value of a record of topic (one of t's runs,
// decisions, rewards and outcomes topics) and checks its key columns. It
// returns the message (*stratapb.Run, Decision, Reward or Outcome) and its
// run id, or an error: a value that does not decode, or an invalidError for
// one that cannot be a row.
func decodeRecord(t Topics, topic string, value []byte) (proto.Message, string, error) {
	switch topic {
	case t.Runs:
		v := &stratapb.Run{}
		if err := unmarshal(value, v); err != nil {
			return nil, "", err
		}
		return v, v.GetRunId(), validate(v.GetRunId(), "-", "-")
	case t.Decisions:
		v := &stratapb.Decision{}
		if err := unmarshal(value, v); err != nil {
			return nil, "", err
		}
		return v, v.GetRunId(), validate(v.GetRunId(), v.GetLayer(), v.GetApp())
	case t.Rewards:
		v := &stratapb.Reward{}
		if err := unmarshal(value, v); err != nil {
			return nil, "", err
		}
		return v, v.GetRunId(), validate(v.GetRunId(), v.GetLayer(), v.GetApp())
	case t.Outcomes:
		v := &stratapb.Outcome{}
		if err := unmarshal(value, v); err != nil {
			return nil, "", err
		}
		err := validate(v.GetRunId(), "-", v.GetApp())
		if err == nil && v.GetInvocationId() == "" {
			err = invalidError("invocation_id is empty")
		}
		return v, v.GetRunId(), err
	}
	return nil, "", invalidError("unexpected topic " + topic)
}

// invalidError marks a record that decoded but cannot be a row.
type invalidError string

func (e invalidError) Error() string { return string(e) }

func unmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decoding %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// validate checks the key columns of a record: the run id always, the layer
// and the app unless they are "-" (for records without them).
func validate(runID, layer, app string) error {
	if runID == "" {
		return invalidError("run_id is empty")
	}
	if layer != "-" {
		if _, err := schemas.ParseLayer(layer); err != nil {
			return invalidError(err.Error())
		}
	}
	if app == "" {
		return invalidError("app is empty")
	}
	return nil
}

// reject dead-letters r; s.mu is held. The record stays in the batch, so
// its offset is committed once the dead letter is flushed with the batch.
func (s *Sink) reject(r *kgo.Record, cause error) {
	reason := "malformed"
	var inv invalidError
	if errors.As(cause, &inv) {
		reason = "invalid"
	}
	s.stats.Rejected++
	s.m.rejected.WithLabelValues(reason).Inc()
	loc := fmt.Sprintf("partition %d offset %d", r.Partition, r.Offset)
	s.log.Warn("dead-lettering record", "topic", r.Topic, "location", loc, "reason", cause.Error())
	payload := r.Value
	if len(payload) > 64<<10 {
		payload = payload[:64<<10]
	}
	val, err := proto.Marshal(&stratapb.DeadLetter{Source: r.Topic, Location: loc, Reason: reason + ": " + cause.Error(),
		Payload: payload, Component: "sink", AtUnixMs: time.Now().UnixMilli()})
	if err != nil {
		s.dlErr = fmt.Errorf("encoding dead letter of %s %s: %w", r.Topic, loc, err)
		return
	}
	s.cl.Produce(context.Background(), &kgo.Record{Topic: s.cfg.Topics.DeadLetter, Key: r.Key, Value: val},
		func(_ *kgo.Record, err error) {
			if err != nil {
				s.mu.Lock()
				if s.dlErr == nil {
					s.dlErr = fmt.Errorf("producing dead letter of %s %s: %w", r.Topic, loc, err)
				}
				s.mu.Unlock()
			}
		})
}

// flush writes the batch, waits for its dead letters, then commits the
// offsets of exactly the records in it.
func (s *Sink) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &s.b
	if len(b.recs) == 0 || s.failed {
		return nil
	}
	steps := []struct {
		table string
		n     int
		write func(context.Context) error
	}{
		{schemas.TableRuns, len(b.runs), func(ctx context.Context) error { return s.w.WriteRuns(ctx, b.runs) }},
		{schemas.TableDecisions, len(b.decisions), func(ctx context.Context) error { return s.w.WriteDecisions(ctx, b.decisions) }},
		{schemas.TableRewards, len(b.rewards), func(ctx context.Context) error { return s.w.WriteRewards(ctx, b.rewards) }},
		{schemas.TableOutcomes, len(b.outcomes), func(ctx context.Context) error { return s.w.WriteOutcomes(ctx, b.outcomes) }},
	}
	for _, st := range steps {
		if st.n == 0 {
			continue
		}
		if err := s.retry(ctx, st.table, st.n, st.write); err != nil {
			return err
		}
	}
	// Unlock while waiting for dead letters: their callbacks take s.mu.
	s.mu.Unlock()
	err := s.cl.Flush(ctx)
	s.mu.Lock()
	if err != nil {
		return fmt.Errorf("flushing dead letters: %w", err)
	}
	if s.dlErr != nil {
		return s.dlErr
	}
	for _, st := range steps {
		s.stats.Rows[st.table] += int64(st.n)
		s.m.rows.WithLabelValues(st.table).Add(float64(st.n))
		switch st.table {
		case schemas.TableDecisions, schemas.TableRewards, schemas.TableOutcomes:
			s.written.Add(int64(st.n))
		}
	}
	s.stats.Batches++
	for _, r := range b.recs {
		tp := topicPartition{r.Topic, r.Partition}
		s.done[tp] = max(s.done[tp], r.Offset+1)
	}
	if err := s.cl.CommitRecords(ctx, b.recs...); err != nil {
		// The rows are written; their records will be read and written
		// again after a restart, which changes nothing.
		s.m.commitErrors.Inc()
		s.log.Warn("committing sink offsets", "records", len(b.recs), "err", err)
	} else {
		s.stats.Committed += int64(len(b.recs))
	}
	s.changed.Notify()
	b.reset()
	return nil
}

// retry writes a batch, each attempt bounded by the write timeout, again
// with backoff after a failure until the batch has failed for longer than
// the write outage bound.
func (s *Sink) retry(ctx context.Context, table string, n int, write func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	var first time.Time
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		actx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
		err := write(actx)
		cancel()
		if err == nil {
			s.m.writeSeconds.WithLabelValues(table).Observe(time.Since(t0).Seconds())
			if attempt > 0 {
				s.log.Info("sink batch written after retries", "table", table, "rows", n, "attempts", attempt+1, "failing_for", time.Since(first).Round(time.Millisecond))
			}
			return nil
		}
		if first.IsZero() {
			first = t0
		}
		switch d := time.Since(first); {
		case ctx.Err() != nil:
			return fmt.Errorf("writing a batch of %d %s (attempt %d): %w", n, table, attempt+1, err)
		case s.cfg.WriteOutage < 0:
			return fmt.Errorf("writing a batch of %d %s: %w", n, table, err)
		case d > s.cfg.WriteOutage:
			return fmt.Errorf("writing a batch of %d %s: failing for %s (%d attempts), longer than the write outage bound %s: %w",
				n, table, d.Round(100*time.Millisecond), attempt+1, s.cfg.WriteOutage, err)
		}
		s.m.writeRetries.Inc()
		s.log.Warn("writing sink batch, retrying", "table", table, "rows", n, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("writing a batch of %d %s: %w", n, table, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Sink) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	s.assignedAt = time.Now()
	s.mu.Unlock()
	s.log.Info("sink partitions assigned", "assigned", assigned)
}

// onRevoked writes and commits what was polled from the partitions before
// they go. With BlockRebalanceOnPoll the loop writes its batch before it
// allows a rebalance, so this is a safety net (and runs on leaving).
func (s *Sink) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if err := s.flush(ctx); err != nil {
		s.log.Error("writing sink batch on revocation", "err", err, "revoked", revoked)
	}
}

// onLost drops nothing: the batch's rows may still be written, and its
// commit will fail harmlessly; another member replays the records.
func (s *Sink) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.log.Warn("sink partitions lost", "lost", lost)
}

package twin

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// CommonConfig is the configuration the replay-synchronous Service and the
// live Shadow share: where they read and write, which run, which layers,
// and how they report.
type CommonConfig struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RunID selects the run: arrivals, observations, watermarks and
	// decision and state batches of other runs are ignored.
	RunID string
	// Group is the consumer group on the input topic: by default
	// "strata-twin-"+RunID on strata.invocations.v1 for a Service,
	// "strata-shadow-"+RunID on strata.telemetry.v1 for a Shadow.
	Group string
	// InstanceID, if set, makes the service a static member of its group:
	// restarted with the same id after a crash, it takes its partitions
	// back at once instead of after the dead member's session times out.
	// A service with Checkpoints is one by default, with its group's name.
	InstanceID string
	// Names prefixes the topics, default groups, streams and subjects (see
	// schemas.Names).
	Names schemas.Names
	// Layers are the enabled decision layers, whose batches (every shard)
	// the service follows: a Service waits for each one's batch before it
	// evaluates a tick, a Shadow applies those complete in time.
	Layers []schemas.Layer
	// Transitions are the layers whose transitions the service writes to
	// strata.transitions.v1; it follows their state batches for the state
	// vectors. A Service waits, at each interval boundary, for the
	// interval's state batch (every shard) before it evaluates the
	// interval's first tick; a Shadow waits a tick at most. The engine's
	// Config.Transitions must name the same layers.
	Transitions []schemas.Layer
	// FeatureSets are the feature sets the transitions' state vectors are
	// written in, per layer; a layer not named gets its seed set
	// (schemas.DefaultFeatureSet). The learner refuses transitions of
	// another set than its network reads.
	FeatureSets map[schemas.Layer]schemas.FeatureSet
	// ReadAheadTicks bounds how far past the next tick to evaluate the twin
	// reads its input before it pauses fetching (default 240, one hour; at
	// least two of the engine's oracle intervals): replay at full speed
	// must not pull the whole trace into memory.
	ReadAheadTicks int64
	// OutageBound is how long the service polls through a Kafka outage
	// before it gives up (kafka.Outage; 0 is kafka.DefaultOutageBound).
	OutageBound time.Duration
	// Shard and Shards split a replay twin across processes (Shards > 1;
	// 0 or 1: one twin): this service owns the input partitions p with
	// p % Shards == Shard — the apps keyed to them and their pools — and
	// takes the decision and state batches of those shards only, waits
	// for those partitions' watermarks only (the tick barrier per shard),
	// and writes its telemetry watermarks to those partitions only. The
	// input topic, the telemetry topic and the features' shards must have
	// the same partition count, so that an app's arrivals, telemetry and
	// rows share a number. Each shard reads the input topic in a group of
	// its own and skips the partitions it does not own. The shards'
	// outputs together are a single twin's (docs/twin.md, "Sharding").
	Shard, Shards int
	// WatermarkIdle is how far, in event time, one of several watermark
	// writers on a partition (ingest instances) may fall behind the most
	// advanced one before it leaves the set whose minimum closes ticks
	// (schemas.Watermarks; 0: never). A replay has one writer.
	WatermarkIdle time.Duration
	// OnTick, if set, is called after each evaluated tick.
	OnTick func(tick int64)
	// Checkpoints, if set, keeps the service's checkpoints: every
	// CheckpointEvery ticks it waits for the ticks' scoring and Kafka's
	// acknowledgements and stores its state; a Service given Restore, or
	// a Shadow started on a run with a checkpoint, goes on from it
	// (docs/twin.md, "Checkpoint and restart"). Operational transitions
	// are restored exactly while the state stream still holds the run's
	// first batch: their sequences are rebuilt by reading it from there.
	Checkpoints Checkpoints
	// CheckpointEvery is the ticks between two checkpoints (default
	// grid.TicksPerHour × 6: six hours of trace time in a replay, of wall
	// time in a Shadow).
	CheckpointEvery int64
	// OnCheckpoint, if set, is called after each checkpoint is stored,
	// with the first tick it has not evaluated.
	OnCheckpoint func(next int64)
	// Fault, if set, is called at each fault point (FaultTick,
	// FaultScoring, FaultCheckpointWrite) with its tick: a test kills the
	// process there to check the restart.
	Fault func(point string, tick int64)
	// Registerer, if set, receives the service's metrics (doc.go).
	Registerer prometheus.Registerer
}

// core is what the two services share around the Engine: the Kafka client
// and the decision and state intake, the loop that reads the input and
// evaluates the ready ticks, the records produced with their digests, the
// transitions and the run's figures. Service and Shadow embed it and add
// what they do their own way (mode).
type core struct {
	cfg CommonConfig
	// topic is the (prefixed) topic the input comes from.
	topic string
	eng   *Engine
	cl    *kgo.Client
	js    jetstream.JetStream
	log   *slog.Logger
	met   *serviceMetrics
	// scoreFrom, telemetryOnly and keepLatencies are the replay's
	// ServiceConfig.ScoreFromTick, ServiceConfig.TelemetryOnly and its
	// latency percentiles (an endless Shadow keeps no latencies).
	scoreFrom     int64
	telemetryOnly bool
	keepLatencies bool
	// publishFrom and noDecisions are ServiceConfig.PublishFromTick and
	// ServiceConfig.NoDecisions.
	publishFrom int64
	noDecisions map[schemas.Layer]bool

	mu        sync.Mutex
	prodErr   error
	batches   map[batchKey]*pendingBatch
	wake      chan struct{}
	stats     Stats
	digests   *Digests
	latencies []float64
	// latencyDays holds the scored latencies' histogram per day of the
	// run (tick ÷ grid.TicksPerDay).
	latencyDays          map[int64]*schemas.LatencyHistogram
	rewardSum, regretSum map[string]float64
	// invokedRewardSum and invokedRegretSum sum the rows with invocations.
	invokedRewardSum, invokedRegretSum map[string]float64
	// states holds the state vectors of the transition layers by interval;
	// pendingTr the transitions waiting for their next state.
	states    map[batchKey]*stateAcc
	pendingTr map[schemas.Layer][]*stratapb.Transition
	// trDone is, per transition layer, the last interval whose
	// transitions and end-of-interval marker are written.
	trDone map[schemas.Layer]int64
	// trAsked is, per transition layer, the last interval i whose
	// predecessor's transitions were handed to the scorer
	// (askTransitions); only the loop's goroutine uses it.
	trAsked map[schemas.Layer]int64
	// opSeq rebuilds the operational state's sequences (transitions).
	opSeq schemas.Sequences
	// evaluated is when the last tick's evaluation ended (the start of
	// the next tick's decision wait).
	evaluated time.Time
	// sc, if not nil, scores and writes the simulated ticks on a goroutine
	// of its own (a Service).
	sc *scorer
	// outage tolerates the fetch errors of a Kafka outage up to its bound.
	outage kafka.Outage
	// published counts what Stats.Published counts, summed, for
	// PublishedRows (which must not wait for mu).
	published atomic.Int64
	// shardParts is, for a sharded Service, the telemetry topic's
	// partition count, which the input topic's must equal.
	shardParts int
	// floor is the first tick a restored service evaluates: decision
	// batches of intervals starting before it, read again from the
	// stream, are dropped.
	floor atomic.Int64
	// ckptName names the service's checkpoint object (ckptKey);
	// ckptExtra, if set, adds a mode's own state to its checkpoints.
	ckptName  string
	ckptExtra func(in *input, snap *serviceSnap)
}

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

// owns reports whether partition (or batch shard) p is this service's:
// every one unless the twin is sharded (CommonConfig.Shards).
func (c *core) owns(p int) bool { return c.cfg.Shards <= 1 || p%c.cfg.Shards == c.cfg.Shard }

// owned returns how many of n partitions (or batch shards) are this
// service's.
func (c *core) owned(n int) int {
	if c.cfg.Shards <= 1 {
		return n
	}
	k := 0
	for p := range n {
		if c.owns(p) {
			k++
		}
	}
	return k
}

// newCore returns the shared part of a service around eng that reads
// topic (a base name, schemas.Topic…) in consumer group cfg.Group.
func newCore(cfg CommonConfig, topic string, eng *Engine, js jetstream.JetStream, logger *slog.Logger) (*core, error) {
	for l, f := range cfg.FeatureSets {
		if err := f.Validate(l); err != nil {
			return nil, fmt.Errorf("creating the twin: %w", err)
		}
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
	c := &core{cfg: cfg, topic: cfg.Names.Topic(topic), eng: eng, js: js, log: logger, met: newServiceMetrics(cfg.Registerer),
		batches: map[batchKey]*pendingBatch{}, wake: make(chan struct{}, 1), digests: NewDigests(),
		rewardSum: map[string]float64{}, regretSum: map[string]float64{},
		invokedRewardSum: map[string]float64{}, invokedRegretSum: map[string]float64{},
		states: map[batchKey]*stateAcc{}, pendingTr: map[schemas.Layer][]*stratapb.Transition{}, trDone: map[schemas.Layer]int64{},
		trAsked: map[schemas.Layer]int64{}}
	c.stats.Layers = map[string]LayerStats{}
	c.outage = kafka.Outage{Bound: cfg.OutageBound, Log: logger, What: c.topic}
	if cfg.Shards > 1 {
		if cfg.Shard < 0 || cfg.Shard >= cfg.Shards {
			return nil, fmt.Errorf("configuring twin: shard %d of %d: want 0 … %d", cfg.Shard, cfg.Shards, cfg.Shards-1)
		}
		// Each shard reads every partition and keeps its own: in one
		// group, the shards would split the partitions among themselves.
		cfg.Group = fmt.Sprintf("%s-shard-%d-of-%d", cfg.Group, cfg.Shard, cfg.Shards)
		c.cfg.Group = cfg.Group
	}
	var opts []kgo.Opt
	if cfg.Checkpoints != nil {
		if cfg.CheckpointEvery <= 0 {
			c.cfg.CheckpointEvery = 6 * grid.TicksPerHour
		}
		// The group's offsets move with the checkpoints only: committed
		// as they are read, they could pass records that a restarted
		// service, going on from its last checkpoint, never saw.
		opts = append(opts, kgo.DisableAutoCommit())
		if cfg.InstanceID == "" {
			// A service that checkpoints expects to be restarted: as a
			// static member it takes its partitions back at once.
			c.cfg.InstanceID = cfg.Group
		}
	}
	if c.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(0), kafka.DeliveryTimeout(cfg.OutageBound)), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("creating twin kafka client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// serve runs loop while it follows the decision subject of every enabled
// layer and the state subject of every transition layer. Once loop
// returns and the followers are stopped it calls stopped, if set, with
// Run's own ctx. It returns loop's error joined with stopped's and a
// follower's.
func (c *core) serve(ctx context.Context, loop func(context.Context) error, stopped func(parent context.Context) error) error {
	defer c.cl.Close()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.cfg.Layers)+len(c.cfg.Transitions))
	follow := func(stream, subject string, fn func([]byte) error) {
		wg.Go(func() {
			if err := natsbus.Follow(ctx, c.js, stream, subject, fn); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	for _, l := range c.cfg.Layers {
		follow(c.cfg.Names.Stream(schemas.StreamDecision), c.cfg.Names.DecisionSubject(l), c.onDecision)
	}
	for _, l := range c.cfg.Transitions {
		follow(c.cfg.Names.Stream(schemas.StreamState), c.cfg.Names.StateSubject(l), c.onState)
	}
	err := loop(ctx)
	cancel()
	wg.Wait()
	if stopped != nil {
		if serr := stopped(parent); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	select {
	case e := <-errs:
		err = errors.Join(err, e)
	default:
	}
	return err
}

// poke wakes the loop when it waits for input.
func (c *core) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// onDecision merges a shard of a decision batch of the run into its
// pending batch; a redelivered shard is dropped.
func (c *core) onDecision(data []byte) error {
	b, err := schemas.DecodeDecisions(data)
	if err != nil {
		c.log.Warn("skipping a decision batch that does not decode", "err", err)
		return nil
	}
	h := b.Header
	if h.RunID != c.cfg.RunID {
		return nil
	}
	k := batchKey{h.Layer, h.Tick}
	if firstTick(k) < c.floor.Load() {
		return nil // evaluated before the checkpoint this service restarted from
	}
	if !c.owns(h.Shard) {
		return nil // another shard's apps
	}
	c.mu.Lock()
	p := c.batches[k]
	if p == nil {
		p = &pendingBatch{n: c.owned(h.NShards), shards: map[int]bool{}, merged: &schemas.DecisionBatch{Header: h}}
		p.merged.Header.Shard, p.merged.Header.NShards = 0, 1
		c.batches[k] = p
	}
	if !p.shards[h.Shard] { // a redelivered shard is dropped
		p.shards[h.Shard] = true
		p.merged.Rows = append(p.merged.Rows, b.Rows...)
		if len(p.shards) == p.n { // just completed
			c.stats.DecisionBatches++
		}
	}
	c.mu.Unlock()
	c.poke()
	return nil
}

// simulate applies bs, completes the transitions of the intervals that end
// before tick k, and runs tick k's arrivals on the engine (Engine.Simulate:
// the output before scoring).
func (c *core) simulate(ctx context.Context, k int64, bs []*schemas.DecisionBatch, in *input) (*Output, error) {
	for _, b := range bs {
		if err := c.eng.Apply(b); err != nil {
			return nil, err
		}
	}
	for _, l := range c.cfg.Transitions {
		if i, ok := interval(l, k); ok && i > 0 {
			if err := c.askTransitions(ctx, l, i); err != nil {
				return nil, err
			}
		}
	}
	return c.eng.Simulate(k, in.arrivals[k], func(t int64) []Arrival { return in.arrivals[t] })
}

// evaluatedSince ends the tick's evaluation that began at t0 (the evaluate
// histogram).
func (c *core) evaluatedSince(t0 time.Time) {
	c.met.evaluate.Observe(time.Since(t0).Seconds())
}

// scoreTick scores out; it returns when scoring began.
func (c *core) scoreTick(k int64, out *Output) (time.Time, error) {
	t1 := time.Now()
	if err := c.eng.Score(out); err != nil {
		return t1, err
	}
	if c.cfg.Fault != nil {
		c.cfg.Fault(FaultScoring, k)
	}
	return t1, nil
}

// drainScoring waits until every tick handed to the scorer, if any, is
// scored and written — their transitions queued, their figures counted —
// and returns the scorer's first error.
func (c *core) drainScoring() error {
	if c.sc == nil {
		return nil
	}
	return c.sc.drain()
}

// write queues tick k's transitions for their next state, writes its
// decisions (digested), rewards (digested) and outcomes, counts them, and
// calls OnTick; t1 is when the tick's scoring began.
func (c *core) write(ctx context.Context, k int64, out *Output, t1 time.Time) error {
	if len(out.Transitions) > 0 {
		c.mu.Lock()
		for _, tr := range out.Transitions {
			l := schemas.Layer(tr.Layer)
			c.pendingTr[l] = append(c.pendingTr[l], tr)
		}
		c.mu.Unlock()
	}
	nd, err := produceEach(ctx, c, schemas.TopicDecisions, out.Decisions, c.digests.decisions, func(d *stratapb.Decision) bool {
		// Decisions of the warm-up stay: a decision in force on a scored
		// day may have been made before it (operational rows are changes
		// only, static-best decides once), and it is the newest row
		// before the tick.
		return !c.noDecisions[schemas.Layer(d.GetLayer())]
	})
	if err != nil {
		return err
	}
	nr, err := produceEach(ctx, c, schemas.TopicRewards, out.Rewards, c.digests.rewards, func(r *stratapb.Reward) bool {
		return r.GetTick()*schemas.Layer(r.GetLayer()).OperationalTicks() >= c.publishFrom
	})
	if err != nil {
		return err
	}
	no, err := produceEach(ctx, c, schemas.TopicOutcomes, out.Outcomes, nil, func(o *stratapb.Outcome) bool {
		return grid.TickOf(o.GetStartUs(), grid.OperationalTickUS) >= c.publishFrom
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.stats.Published.Decisions += nd
	c.stats.Published.Rewards += nr
	c.stats.Published.Outcomes += no
	c.published.Add(nd + nr + no)
	c.stats.Ticks++
	c.stats.Decisions += int64(len(out.Decisions))
	c.stats.Rewards += int64(len(out.Rewards))
	c.stats.Outcomes += int64(len(out.Outcomes))
	c.stats.HorizonTick = k
	if k >= c.scoreFrom {
		c.tally(k, out)
	}
	c.mu.Unlock()
	c.met.ticks.Inc()
	addByLayer(c.met.decisions, out.Decisions)
	addByLayer(c.met.rewards, out.Rewards)
	c.met.score.Observe(time.Since(t1).Seconds())
	if c.cfg.OnTick != nil {
		c.cfg.OnTick(k)
	}
	return nil
}

// produceEach writes each of ms to topic keyed by its app; digest, if not
// nil, also takes each one's bytes.
func produceEach[M interface {
	proto.Message
	GetApp() string
}](ctx context.Context, c *core, topic string, ms []M, digest hash.Hash, keep func(M) bool) (published int64, err error) {
	for _, m := range ms {
		pub := keep(m)
		if err := c.produce(ctx, topic, m.GetApp(), m, digest, pub); err != nil {
			return published, err
		}
		if pub && !c.telemetryOnly {
			published++
		}
	}
	return published, nil
}

// produce writes m to topic; digest, if not nil, also takes its bytes
// (deterministic encoding). topic is the base name (schemas.Topic…); the
// record goes to its prefixed topic. Rewards and observations, most of the
// twin's records, are encoded by schemas.AppendReward and
// AppendObservation (the same bytes, without reflection).
func (c *core) produce(ctx context.Context, topic, key string, m proto.Message, digest hash.Hash, publish bool) error {
	var v []byte
	var err error
	switch m := m.(type) {
	case *stratapb.Reward:
		v, err = schemas.AppendReward(nil, m)
	case *stratapb.Observation:
		v, err = schemas.AppendObservation(nil, m)
	default:
		v, err = proto.MarshalOptions{Deterministic: true}.Marshal(m)
	}
	if err != nil {
		return fmt.Errorf("encoding a record for %s: %w", topic, err)
	}
	if digest != nil {
		c.mu.Lock()
		digest.Write(v)
		c.mu.Unlock()
	}
	if !publish || c.telemetryOnly && topic != schemas.TopicTelemetry && topic != schemas.TopicTransitions {
		return nil
	}
	c.cl.Produce(ctx, &kgo.Record{Topic: c.cfg.Names.Topic(topic), Key: []byte(key), Value: v}, c.produced)
	return c.producedErr()
}

// PublishedRows returns the decisions, rewards and outcomes written to
// Kafka so far (Stats.Published, summed), without waiting for a tick's
// bookkeeping: a gate compares it with what a reader has consumed.
func (c *core) PublishedRows() int64 { return c.published.Load() }

// produced keeps the first error a produced record met.
func (c *core) produced(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prodErr == nil {
		c.prodErr = fmt.Errorf("producing to %s: %w", r.Topic, err)
	}
}

// producedErr returns the first error a produced record met.
func (c *core) producedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prodErr
}

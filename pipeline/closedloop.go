package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/notify"
	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LoopConfig configures a closed-loop run on top of Config.
type LoopConfig struct {
	Config
	// Model is the cloud model the twin evaluates under.
	Model *cloud.Model
	// Policies are the policies of the layers the workers decide; a layer
	// without one is decided inside the twin (Engine.Internal) or not at
	// all.
	Policies map[schemas.Layer]worker.Policy
	// Engine configures the twin.
	Engine twin.Config
	// Profile gives each function's modelled properties.
	Profile func(app, fn string) cloud.Function
	// Store, if set, receives the run's decisions and rewards through the
	// sink, and Run describes the run for its runs table.
	Store sink.Writer
	Run   *stratapb.Run
	// Retention is the sink's (sink.Config.Retention); 0 keeps every row.
	// Store must then be a sink.Expirer.
	Retention time.Duration
	// SinkMaxLag bounds, in rows, how far the sink may fall behind the
	// twin: past it the twin holds its next tick until the sink has
	// written enough (backpressure, so a slow store slows the loop down
	// instead of filling the broker). 0 is DefaultSinkMaxLag; negative:
	// no bound.
	SinkMaxLag int64
	// ScoreFromTick is the twin's first scored tick (warm-up before it).
	ScoreFromTick int64
	// StoreFromTick, if positive, keeps the rewards and outcomes of
	// intervals before it out of the store (and off Kafka); decisions are
	// all stored, but those of the layers in StoreNoDecisions
	// (twin.ServiceConfig.PublishFromTick, NoDecisions).
	StoreFromTick    int64
	StoreNoDecisions map[schemas.Layer]bool
	// Learn, if set, trains in the loop: an in-process learner reads the
	// run's transitions, and the layers it trains are served by followers
	// of its checkpoints (exploring) instead of policies.
	Learn *Learn
	// Record, if set, is handed the decision batches each tick was
	// evaluated under (twin.ServiceConfig.Record).
	Record func(tick int64, batches []*schemas.DecisionBatch)
	// FeatureSets are the feature sets the twin writes the transitions'
	// states in, per layer (twin.CommonConfig.FeatureSets); the layers
	// Learn trains get the sets its networks read.
	FeatureSets map[schemas.Layer]schemas.FeatureSet
	// Serving, if it holds guardrails, has every worker project its
	// decisions onto them (worker.Worker.Guard).
	Serving *Serving
	// Checkpoint configures the twin's checkpoints and a run's resumption
	// from them, on external Kafka and NATS only.
	Checkpoint TwinCheckpoint
	// Shard, with Count > 1, makes this process one shard of a twin split
	// across processes on external Kafka and NATS (twin.CommonConfig.Shard):
	// shard 0 runs the replay, the features and the agents beside its twin
	// shard; every other shard runs its twin shard alone.
	Shard TwinShard
	// ExternalFeatures leaves the feature service to `strata features`
	// processes outside this one (a group of them, on external Kafka and
	// NATS): the twin's telemetry becomes state there.
	ExternalFeatures bool
}

// TwinShard is one shard of a twin split across processes: Index of Count.
type TwinShard struct {
	Index, Count int
}

// sharded reports whether the twin is split across processes.
func (s TwinShard) sharded() bool { return s.Count > 1 }

// twinOnly reports whether this process runs its twin shard alone.
func (s TwinShard) twinOnly() bool { return s.sharded() && s.Index > 0 }

// ParseTwinShard parses "I/N" (shard I of N, 0 ≤ I < N); "" is no shard.
func ParseTwinShard(v string) (TwinShard, error) {
	if v == "" {
		return TwinShard{}, nil
	}
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return TwinShard{}, fmt.Errorf("--twin-shard %q: want I/N, shard I of N, 0 ≤ I < N", v)
	}
	return TwinShard{Index: i, Count: n}, nil
}

// TwinCheckpoint configures the replay twin's checkpoints
// (twin.ServiceConfig.Checkpoints) in a closed loop on external Kafka and
// NATS; on the embedded ones a crash takes the brokers with it, and they
// are off.
type TwinCheckpoint struct {
	// Every is the ticks between two checkpoints; 0 takes none.
	Every int64
	// Resume goes on from the run's checkpoint, if there is one: the
	// twin restores it and the replay leaves out the invocations before
	// its tick (docs/twin.md, "Checkpoint and restart").
	Resume bool
	// Fault, if set, is the twin's fault hook (twin.ServiceConfig.Fault).
	Fault func(point string, tick int64)
}

// Learn is a training episode's learner.
type Learn struct {
	// Learner trains; it begins an episode per run.
	Learner *learner.Learner
	// Episode is the run's episode number.
	Episode int
	// AgentOpts builds the followers' policies (seed, cloud model).
	AgentOpts agents.Options
}

// LoopResult is what a closed-loop run did.
type LoopResult struct {
	Replay   producers.ReplayResult
	Features features.Stats
	Twin     twin.Stats
	Sink     sink.Stats
	Wall     time.Duration
}

// EmbeddedLoopPartitions is the partition count of a closed loop on its own
// embedded broker when none is asked for. Partitions shard the features and
// the agents across processes; in one process they only multiply each
// tick's batches and the shards the twin waits for. Measured with `strata
// bench loop --days 1 --apps 30` on 2 cores: 196 ticks/s with 4
// partitions, 574 with 1, same digests (TestEmbeddedClosedLoopPartitions).
const EmbeddedLoopPartitions = 1

// DefaultSinkMaxLag is LoopConfig.SinkMaxLag's default: a million rows
// (decisions, rewards and outcomes the twin published and the sink has not
// written) — about 200 MB of records held by an embedded broker, 50 of the
// sink's batches of 10,000 rows, and about 8 minutes of a 14-day run's
// trace time at its busiest.
const DefaultSinkMaxLag = 1_000_000

// LoopStateRetention is the closed loop's default StateRetention. Its
// readers cannot fall behind the features by more than a few ticks — the
// state of tick k+1 needs the twin's telemetry of tick k, and the twin waits
// for the decisions of tick k+1 — so the streams need not keep hours of
// batches; on the embedded nats-server they are memory.
const LoopStateRetention = 32 << 20

// ResumableStateRetention is the closed loop's StateRetention when the run
// can be resumed (twin checkpoints on external Kafka and NATS): a policy
// worker restarted with the run follows the state stream from its first
// batch again and rebuilds what it keeps between ticks (hybrid-histogram's
// idle times, the LSTM's sequences), which it can only do exactly if the
// stream still holds the run's first batch. A 14-day synthetic run's
// operational state is about 530 MB (state contract v6).
const ResumableStateRetention = 4 << 30

// ClosedLoop replays src as arrivals through the twin, the feature
// service and the policy workers: the twin runs each tick under the
// decisions in force and writes telemetry, decisions and rewards; the
// features turn the telemetry into state; the workers turn state into the
// next decisions. It returns when the twin has evaluated the last tick and
// the features have published the last state.
func ClosedLoop(ctx context.Context, o LoopConfig, src replay.Source, srcName string, traceLenUS int64) (LoopResult, error) {
	var res LoopResult
	if len(o.Brokers) == 0 && o.Env == nil && o.Partitions == 0 {
		o.Partitions = EmbeddedLoopPartitions
	}
	if o.StateRetention == 0 {
		o.StateRetention = LoopStateRetention
		if o.Checkpoint.Every > 0 && len(o.Brokers) > 0 && o.NATSURL != "" {
			// A resumable run: restarted workers rebuild their state
			// from the stream's first batch.
			o.StateRetention = ResumableStateRetention
		}
	}
	if o.Shard.sharded() {
		switch {
		case len(o.Brokers) == 0 || o.NATSURL == "":
			return res, errors.New("a twin split into shards (--twin-shard) needs external Kafka and NATS (--kafka, --nats)")
		case o.Store != nil:
			return res, errors.New("a twin split into shards (--twin-shard) writes no tables itself: run `strata sink` for them and give --store \"\"")
		case o.Learn != nil:
			return res, errors.New("training runs one twin: a twin split into shards does not train")
		}
	}
	if o.ExternalFeatures && (len(o.Brokers) == 0 || o.NATSURL == "") {
		return res, errors.New("features outside the process (--external-features) need external Kafka and NATS (--kafka, --nats)")
	}
	// This process windows the telemetry unless it is a twin shard of its
	// own or `strata features` processes do.
	ownFeatures := !o.Shard.twinOnly() && !o.ExternalFeatures
	e, closeEnv, err := o.Prepare(ctx)
	if err != nil {
		return res, err
	}
	defer closeEnv()
	nm := o.Names
	groups := GroupsOf(nm, o.RunID)
	if o.Run != nil {
		// The run record says which partition count and names were used.
		o.Run = proto.CloneOf(o.Run)
		o.Run.ConfigJson = RunConfigJSON(o.Run.GetConfigJson(), o.Partitions, nm)
	}
	ckpts, err := OpenFeatureCheckpoints(ctx, e.JS, nm)
	if err != nil {
		return res, err
	}
	// A resumable run's group members are static (their instance id the
	// group's name): restarted after a crash, each takes its partitions
	// back at once instead of after the dead member's session times out.
	resumable := o.Checkpoint.Every > 0 && !e.EmbeddedKafka && o.NATSURL != ""
	static := func(group string) string {
		if resumable {
			return group
		}
		return ""
	}
	var fsvc *features.Service
	if ownFeatures {
		if fsvc, err = features.NewService(ctx, features.Config{Brokers: e.Brokers, Group: groups.Features, InstanceID: static(groups.Features),
			Epoch: o.Epoch, StopAfterFinal: true, RunID: o.RunID, OnBatch: o.OnBatch, Names: nm, OutageBound: o.KafkaOutage},
			o.publisher(e.JS), ckpts, o.Logger.With("role", "features"), o.Registerer); err != nil {
			return res, err
		}
	}
	if o.Learn != nil {
		ms, err := natsbus.OpenModelStore(ctx, e.JS, nm)
		if err != nil {
			return res, err
		}
		if err := o.Learn.Learner.Begin(ctx, o.RunID, o.Learn.Episode, ms); err != nil {
			return res, err
		}
		pol := maps.Clone(o.Policies)
		o.Engine.Transitions = maps.Clone(o.Engine.Transitions)
		o.FeatureSets = maps.Clone(o.FeatureSets)
		if o.FeatureSets == nil {
			o.FeatureSets = map[schemas.Layer]schemas.FeatureSet{}
		}
		for _, l := range schemas.Layers {
			if o.Learn.Learner.Trains(l) {
				pol[l] = learner.NewFollower(agents.LearnedName(l), l, o.RunID, ms, FollowerLoader(l, o.Learn.AgentOpts, true), false)
				o.Engine.Transitions[l] = true
				o.FeatureSets[l] = o.Learn.Learner.FeatureSet(l)
			}
		}
		o.Policies = pol
	}
	o.Engine.RunID = o.RunID
	eng, err := twin.NewEngine(o.Model, o.Engine, o.Profile)
	if err != nil {
		return res, err
	}
	var layers []schemas.Layer
	for _, l := range schemas.Layers {
		if o.Policies[l] != nil {
			layers = append(layers, l)
		}
	}
	// The progress bar follows the twin's ticks: the replay runs ahead.
	var rcfgBar producers.ReplayConfig
	bar := NewProgress(o.Progress, traceLenUS, &rcfgBar)
	// Flow control: the replay runs at most this far ahead of the twin's
	// evaluated ticks — past the Orderer's lateness and what the twin's
	// oracles look ahead, with two hours to spare — so that the broker
	// holds hours of invocations, not the trace.
	lead := producers.NewLead(o.LatenessUS + (eng.MaxLookahead()+1+2*grid.TicksPerHour)*grid.OperationalTickUS)
	onTick := func(k int64) {
		lead.Advance((k + 1) * grid.OperationalTickUS)
		if bar != nil {
			rcfgBar.Progress((k+1)*grid.OperationalTickUS, 0)
		}
	}
	var trLayers []schemas.Layer
	for _, l := range schemas.Layers {
		if o.Engine.Transitions[l] {
			trLayers = append(trLayers, l)
		}
	}
	// Backpressure: the twin holds its next tick while the sink is more
	// than maxLag rows behind what the twin published (sk is set below).
	var sk *sink.Sink
	var gate func(context.Context) (bool, error)
	maxLag := o.SinkMaxLag
	if maxLag == 0 {
		maxLag = DefaultSinkMaxLag
	}
	sinkExited := make(chan struct{})
	var published func() int64
	if o.Store != nil && maxLag > 0 {
		lag := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "loop", Name: "sink_lag_rows",
			Help: "Closed loop: decision, reward and outcome rows the twin published that the sink had not written, before each tick (the twin holds past --sink-max-lag)."})
		if o.Registerer != nil {
			if err := o.Registerer.Register(lag); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return res, fmt.Errorf("registering the sink lag gauge: %w", err)
				}
				lag = are.ExistingCollector.(prometheus.Gauge) // a registry shared by runs one after another
			}
		}
		gate = func(ctx context.Context) (bool, error) {
			p := published()
			lag.Set(float64(p - sk.WrittenRows()))
			return SinkGate(ctx, sk, p, maxLag, sinkExited)
		}
	}
	tcfg := twin.ServiceConfig{
		CommonConfig: twin.CommonConfig{Brokers: e.Brokers, Group: groups.Twin, RunID: o.RunID, Names: nm, Layers: layers, Transitions: trLayers,
			FeatureSets: o.FeatureSets, OnTick: onTick, Registerer: o.Registerer, OutageBound: o.KafkaOutage, Fault: o.Checkpoint.Fault,
			Shard: o.Shard.Index, Shards: o.Shard.Count},
		TelemetryPartitions: o.Partitions, ScoreFromTick: o.ScoreFromTick, Record: o.Record, TelemetryOnly: o.Store == nil && e.EmbeddedKafka,
		PublishFromTick: o.StoreFromTick, NoDecisions: o.StoreNoDecisions, Gate: gate}
	if o.Checkpoint.Resume && !resumable {
		return res, errors.New("resuming a run needs external Kafka and NATS (--kafka, --nats) and twin checkpoints (--twin-checkpoint-every)")
	}
	if resumable {
		// The twin is a static member of its group too (it checkpoints).
		ckpt, err := twin.OpenObjectCheckpoints(ctx, e.JS, nm)
		if err != nil {
			return res, err
		}
		tcfg.Checkpoints, tcfg.CheckpointEvery = ckpt, o.Checkpoint.Every
	}
	tsvc, err := twin.NewService(tcfg, eng, e.JS, o.Logger.With("role", "twin"))
	if err != nil {
		return res, err
	}
	var fromUS int64
	if o.Checkpoint.Resume {
		next, err := tsvc.Restore(ctx)
		if err != nil {
			return res, err
		}
		// The replay goes on after what it wrote before it stopped (the
		// newest watermark of the run on every partition): the twin has
		// those invocations, or reads them from the topic.
		wms, err := kafka.LastWatermarks(ctx, e.Brokers, o.Logger, nm.Topic(schemas.TopicInvocations), o.RunID, kafka.WatermarkTail)
		if err != nil {
			return res, err
		}
		fromUS = next * grid.OperationalTickUS
		if len(wms) == o.Partitions {
			fromUS = max(fromUS, slices.Min(slices.Collect(maps.Values(wms))))
		}
		o.Logger.Info("resuming the run", "run", o.RunID, "twin_next_tick", next, "replay_from_us", fromUS)
		if next > 0 {
			onTick(next - 1)
		}
	}
	published = tsvc.PublishedRows
	pcl, err := kgo.NewClient(append(kafka.CommonOpts(e.Brokers, o.Logger), kgo.ProducerLinger(2*time.Millisecond), kafka.DeliveryTimeout(o.KafkaOutage))...)
	if err != nil {
		return res, fmt.Errorf("creating replay kafka client: %w", err)
	}
	defer pcl.Close()
	var rep *producers.Replayer
	if !o.Shard.twinOnly() { // a twin shard's own process replays nothing
		rcfg := producers.ReplayConfig{RunID: o.RunID, AllowedLatenessUS: o.LatenessUS,
			Speed: o.Speed, Clock: o.Clock, Partitions: o.Partitions, SourceName: srcName, HorizonUS: traceLenUS, Names: nm, Gate: lead.Wait,
			FromUS: fromUS}
		if rep, err = producers.NewReplayer(rcfg, pcl, o.Logger.With("role", "replay"), o.Registerer); err != nil {
			return res, err
		}
	}
	if o.Store != nil {
		if sk, err = sink.New(ctx, sink.Config{Brokers: e.Brokers, Group: groups.Sink, InstanceID: static(groups.Sink), Partitions: o.Partitions, Outcomes: o.Engine.Outcomes,
			RunID: o.RunID, Names: nm, Retention: o.Retention, OutageBound: o.KafkaOutage},
			o.Store, o.Logger.With("role", "sink"), o.Registerer); err != nil {
			return res, err
		}
	}
	// The run record goes wherever a sink may read it: to the in-process
	// one, or on an external broker to a `strata sink` of its own.
	if o.Run != nil && (o.Store != nil || !e.EmbeddedKafka) && !o.Shard.twinOnly() {
		v, err := proto.Marshal(o.Run)
		if err != nil {
			return res, fmt.Errorf("encoding the run record: %w", err)
		}
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: nm.Topic(sink.TopicRuns), Key: []byte(o.RunID), Value: v}).FirstErr(); err != nil {
			return res, fmt.Errorf("writing the run record: %w", err)
		}
	}
	// The run group, stopped in this order: the drivers end on their own
	// (the replay runs out, the twin evaluates the last tick, the features
	// publish the last state); the agents and the learner stop once the
	// learner has trained on the last interval; the sink once it has
	// written what the twin produced; the embedded broker's trimmer last.
	t0 := time.Now()
	run := NewActors(ctx, o.Logger)
	drivers := run.Stage("drivers", nil)
	learnerExited := make(chan struct{})
	agentStage := run.Stage("agents", func(ctx context.Context) error {
		if o.Learn == nil {
			return nil
		}
		// The episode ends when the learner has trained on its last
		// interval.
		return waitLearner(ctx, o.Learn.Learner, tsvc.Stats().TransitionIntervals, learnerExited)
	})
	sinkStage := run.Stage("sink", func(ctx context.Context) error {
		if sk == nil {
			return nil
		}
		// The sink has caught up once it wrote as many decisions and
		// rewards as the twin produced; then it is stopped (it flushes
		// and commits on the way out).
		return WaitSink(ctx, sk, sinkExited)
	})
	if sk != nil {
		sinkStage.Go("sink", func(ctx context.Context) error {
			defer close(sinkExited)
			return sk.Run(ctx)
		})
	}
	if e.EmbeddedKafka {
		// The twin's client commits what it polled (it keeps the arrivals
		// of open ticks in memory and does not resume after a restart
		// yet); the learner's, what it polled after handling it.
		var trReaders []string
		if o.Learn != nil {
			trReaders = []string{groups.Learner}
		}
		rules := []Retention{
			{Readers: []string{groups.Features}, Topics: []string{nm.Topic(schemas.TopicTelemetry)}},
			{Readers: []string{groups.Twin}, Topics: []string{nm.Topic(schemas.TopicInvocations)}},
			{Readers: []string{groups.Sink}, Topics: []string{nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}},
			{Readers: trReaders, Topics: []string{nm.Topic(schemas.TopicTransitions)}},
		}
		run.Stage("trim", nil).Go("trim", func(ctx context.Context) error {
			TrimConsumed(ctx, pcl, rules, 2*time.Second, o.Logger)
			return nil
		})
	}
	if o.NATSURL != "" {
		// A nats-server of its own can go away: past the outage bound the
		// run ends, instead of its followers waiting on for batches.
		run.Stage("nats", nil).Go("nats", func(ctx context.Context) error { return natsbus.WatchOutage(ctx, e.NC, o.NATSOutage) })
	}
	var external []schemas.Layer
	for _, l := range layers {
		if o.Shard.twinOnly() {
			break // shard 0's process runs the agents
		}
		if _, ok := o.Policies[l].(ExternalPolicy); ok {
			external = append(external, l)
			continue
		}
		w := worker.New(e.JS, o.publisher(e.JS), l, o.RunID, o.Policies[l], o.Logger.With("role", "agent", "layer", l))
		w.Names, w.Registerer = nm, o.Registerer
		if w.Guard, err = o.Serving.Enforcer(l, o.Model); err != nil {
			return res, err
		}
		agentStage.Go("agent "+string(l), w.Run)
	}
	if len(external) > 0 {
		// Warn level: the run stands still until a worker connects here.
		o.Logger.Warn("waiting for the decision batches of layers served outside this process",
			"layers", external, "nats", secret.Redact(e.NATSURL), "run_id", o.RunID, "prefix", nm.Prefix)
	}
	if o.Learn != nil {
		lrn := o.Learn.Learner
		agentStage.Go("learner", func(ctx context.Context) error {
			defer close(learnerExited)
			return ConsumeTransitions(ctx, e.Brokers, nm, groups.Learner, o.RunID, o.Logger.With("role", "learner"),
				func(tr *stratapb.Transition) error { return lrn.Handle(ctx, tr) })
		})
	}
	drivers.Go("twin", tsvc.Run)
	if fsvc != nil {
		drivers.Go("features", fsvc.Run)
	}
	if !o.Shard.twinOnly() {
		drivers.Go("replay", func(ctx context.Context) error {
			r, err := rep.Run(ctx, src)
			res.Replay = r
			return err
		})
	}
	err = run.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	res.Twin = tsvc.Stats()
	if fsvc != nil {
		res.Features = fsvc.Stats()
	}
	if sk != nil {
		res.Sink = sk.Stats()
	}
	res.Wall = time.Since(t0)
	return res, err
}

// SinkGate returns once sk has written all but maxLag of the published
// decision, reward and outcome rows, or an error if it stops (exited) or
// ctx ends first: the twin's gate in a closed loop with a store
// (LoopConfig.SinkMaxLag). It returns at once, held false, while the sink
// keeps up.
func SinkGate(ctx context.Context, sk *sink.Sink, published, maxLag int64, exited <-chan struct{}) (held bool, err error) {
	within := func() bool { return published-sk.WrittenRows() <= maxLag }
	if within() {
		return false, nil
	}
	if err := notify.Until(ctx, sk.Changed, within, exited); err != nil {
		return true, fmt.Errorf("waiting for the sink to come within %d rows of the twin: %w", maxLag, err)
	}
	return true, nil
}

// WaitSink waits until the sink has written every record its topics held
// when the wait began (Sink.Mark, Sink.Reached), woken by the sink after
// each batch it writes. It is called once the twin has flushed its last
// records, so they are all below the mark. Row counts would not do: a
// redelivered record counts twice, a restarted twin sends again what it
// sent after its checkpoint, and a resumed run's sink writes only what
// its group had not committed.
func WaitSink(ctx context.Context, sk *sink.Sink, exited <-chan struct{}) error {
	mark, err := sk.Mark(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the sink to write the run's rows: %w", err)
	}
	caughtUp := func() bool { return sk.Reached(mark) }
	if err := notify.Until(ctx, sk.Changed, caughtUp, exited); err != nil {
		return fmt.Errorf("waiting for the sink to write the run's rows: %w", err)
	}
	return nil
}

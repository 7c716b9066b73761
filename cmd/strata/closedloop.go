package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
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
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// loopOpts configures a closed-loop run on top of pipelineOpts.
type loopOpts struct {
	pipelineOpts
	model    *cloud.Model
	policies map[schemas.Layer]worker.Policy // enabled layers
	engine   twin.Config
	// profile gives each function's modelled properties.
	profile func(app, fn string) cloud.Function
	// store, if set, receives the run's decisions and rewards through the
	// sink, and run describes the run for its runs table.
	store sink.Writer
	run   *stratapb.Run
	// scoreFromTick is the twin's first scored tick (warm-up before it).
	scoreFromTick int64
	// learn, if set, trains in the loop: an in-process learner reads the
	// run's transitions, and the layers it trains are served by followers
	// of its checkpoints (exploring) instead of policies.
	learn *learnOpts
	// record, if set, is handed the decision batches each tick was
	// evaluated under (twin.ServiceConfig.Record).
	record func(tick int64, batches []*schemas.DecisionBatch)
}

// learnOpts is a training episode's learner.
type learnOpts struct {
	learner *learner.Learner
	episode int
	// agentOpts builds the followers' policies (seed, cloud model).
	agentOpts agents.Options
}

type loopResult struct {
	Replay   producers.ReplayResult
	Features features.Stats
	Twin     twin.Stats
	Sink     sink.Stats
	Wall     time.Duration
}

// embeddedLoopPartitions is the partition count of a closed loop on its own
// embedded broker when none is asked for. Partitions shard the features and
// the agents across processes; in one process they only multiply each
// tick's batches and the shards the twin waits for. Measured with `strata
// bench loop --days 1 --apps 30` on 2 cores: 196 ticks/s with 4
// partitions, 574 with 1, same digests (TestEmbeddedClosedLoopPartitions).
const embeddedLoopPartitions = 1

// runClosedLoop replays src as arrivals through the twin, the feature
// service and the policy workers: the twin runs each tick under the
// decisions in force and writes telemetry, decisions and rewards; the
// features turn the telemetry into state; the workers turn state into the
// next decisions. It returns when the twin has evaluated the last tick and
// the features have published the last state.
func runClosedLoop(ctx context.Context, o loopOpts, src replay.Source, srcName string, traceLenUS int64) (loopResult, error) {
	var res loopResult
	if len(o.brokers) == 0 && o.env == nil && o.partitions == 0 {
		o.partitions = embeddedLoopPartitions
	}
	e, closeEnv, err := o.prepare(ctx)
	if err != nil {
		return res, err
	}
	defer closeEnv()
	nm := o.names
	if o.run != nil {
		// The run record says which partition count and names were used.
		o.run = proto.CloneOf(o.run)
		o.run.ConfigJson = runConfigJSON(o.run.GetConfigJson(), o.partitions, nm)
	}
	kv, err := e.js.KeyValue(ctx, nm.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		return res, fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	fsvc, err := features.NewService(ctx, features.Config{Brokers: e.brokers, Group: nm.Group("strata-features-" + o.runID),
		Epoch: o.epoch, StopAfterFinal: true, RunID: o.runID, OnBatch: o.onBatch, Names: nm},
		natsbus.NewBatchPublisher(e.js, 0), features.KVCheckpoints{KV: kv}, o.logger.With("role", "features"), o.reg)
	if err != nil {
		return res, err
	}
	if o.learn != nil {
		ms, err := natsbus.OpenModelStore(ctx, e.js, nm)
		if err != nil {
			return res, err
		}
		if err := o.learn.learner.Begin(ctx, o.runID, o.learn.episode, ms); err != nil {
			return res, err
		}
		pol := maps.Clone(o.policies)
		o.engine.Transitions = maps.Clone(o.engine.Transitions)
		for _, l := range schemas.Layers {
			if o.learn.learner.Trains(l) {
				pol[l] = learner.NewFollower(agents.LearnedName(l), l, o.runID, ms, followerLoader(l, o.learn.agentOpts, true), false)
				o.engine.Transitions[l] = true
			}
		}
		o.policies = pol
	}
	o.engine.RunID = o.runID
	eng, err := twin.NewEngine(o.model, o.engine, o.profile)
	if err != nil {
		return res, err
	}
	var layers []schemas.Layer
	for _, l := range schemas.Layers {
		if o.policies[l] != nil {
			layers = append(layers, l)
		}
	}
	// The progress bar follows the twin's ticks: the replay runs ahead.
	var rcfgBar producers.ReplayConfig
	bar := newProgress(o.progress, traceLenUS, &rcfgBar)
	// Flow control: the replay runs at most this far ahead of the twin's
	// evaluated ticks — past the Orderer's lateness and what the twin's
	// oracles look ahead, with two hours to spare — so that the broker
	// holds hours of invocations, not the trace.
	lead := producers.NewLead(o.latenessUS + (eng.MaxLookahead()+1+2*grid.TicksPerHour)*grid.OperationalTickUS)
	onTick := func(k int64) { lead.Advance((k + 1) * grid.OperationalTickUS) }
	if bar != nil {
		onTick = func(k int64) {
			lead.Advance((k + 1) * grid.OperationalTickUS)
			rcfgBar.Progress((k+1)*grid.OperationalTickUS, 0)
		}
	}
	var trLayers []schemas.Layer
	for _, l := range schemas.Layers {
		if o.engine.Transitions[l] {
			trLayers = append(trLayers, l)
		}
	}
	tsvc, err := twin.NewService(twin.ServiceConfig{Brokers: e.brokers, RunID: o.runID, Names: nm, Layers: layers, Transitions: trLayers, ScoreFromTick: o.scoreFromTick,
		TelemetryPartitions: o.partitions, OnTick: onTick, Record: o.record, Registerer: o.reg, TelemetryOnly: o.store == nil && e.embeddedKafka},
		eng, e.js, o.logger.With("role", "twin"))
	if err != nil {
		return res, err
	}
	pcl, err := kgo.NewClient(append(kafka.CommonOpts(e.brokers, o.logger), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return res, fmt.Errorf("creating replay kafka client: %w", err)
	}
	defer pcl.Close()
	rcfg := producers.ReplayConfig{RunID: o.runID, AllowedLatenessUS: o.latenessUS,
		Speed: o.speed, Clock: o.clock, Partitions: o.partitions, SourceName: srcName, HorizonUS: traceLenUS, Names: nm, Gate: lead.Wait}
	rep, err := producers.NewReplayer(rcfg, pcl, o.logger.With("role", "replay"), o.reg)
	if err != nil {
		return res, err
	}
	var sk *sink.Sink
	if o.store != nil {
		if sk, err = sink.New(ctx, sink.Config{Brokers: e.brokers, Group: nm.Group("strata-sink-" + o.runID), Partitions: o.partitions, Outcomes: o.engine.Outcomes,
			RunID: o.runID, Names: nm},
			o.store, o.logger.With("role", "sink"), o.reg); err != nil {
			return res, err
		}
	}
	// The run record goes wherever a sink may read it: to the in-process
	// one, or on an external broker to a `strata sink` of its own.
	if o.run != nil && (o.store != nil || !e.embeddedKafka) {
		v, err := proto.Marshal(o.run)
		if err != nil {
			return res, fmt.Errorf("encoding the run record: %w", err)
		}
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: nm.Topic(sink.TopicRuns), Key: []byte(o.runID), Value: v}).FirstErr(); err != nil {
			return res, fmt.Errorf("writing the run record: %w", err)
		}
	}
	t0 := time.Now()
	sctx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSink()
	sinkExited := make(chan struct{})
	var sinkErr error
	if sk != nil {
		go func() {
			defer close(sinkExited)
			sinkErr = sk.Run(sctx)
		}()
	}
	if e.embeddedKafka {
		tctx, stopTrim := context.WithCancel(ctx)
		defer stopTrim()
		go trimConsumed(tctx, pcl, []string{nm.Group("strata-features-" + o.runID)}, []string{nm.Topic(schemas.TopicTelemetry)}, 2*time.Second, o.logger)
		// The twin's client commits what it polled (it keeps the arrivals
		// of open ticks in memory and does not resume after a restart yet).
		go trimConsumed(tctx, pcl, []string{nm.Group("strata-twin-" + o.runID)}, []string{nm.Topic(schemas.TopicInvocations)}, 2*time.Second, o.logger)
		go trimConsumed(tctx, pcl, []string{nm.Group("strata-sink-" + o.runID)}, []string{nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}, 2*time.Second, o.logger)
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var workers errgroup.Group
	var external []schemas.Layer
	for _, l := range layers {
		if _, ok := o.policies[l].(externalPolicy); ok {
			external = append(external, l)
			continue
		}
		w := worker.New(e.js, natsbus.NewBatchPublisher(e.js, 0), l, o.runID, o.policies[l], o.logger.With("role", "agent", "layer", l))
		w.Names, w.Registerer = nm, o.reg
		workers.Go(func() error { return w.Run(wctx) })
	}
	if len(external) > 0 {
		// Warn level: the run stands still until a worker connects here.
		o.logger.Warn("waiting for the decision batches of layers served outside this process",
			"layers", external, "nats", e.natsURL, "run_id", o.runID, "prefix", nm.Prefix)
	}
	learnerExited := make(chan struct{})
	if o.learn != nil {
		lrn := o.learn.learner
		workers.Go(func() error {
			defer close(learnerExited)
			return consumeTransitions(wctx, e.brokers, nm, nm.Group("strata-learner-"+o.runID), o.runID, o.logger.With("role", "learner"),
				func(tr *stratapb.Transition) error { return lrn.Handle(wctx, tr) })
		})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fsvc.Run(gctx) })
	g.Go(func() error { return tsvc.Run(gctx) })
	g.Go(func() error {
		r, err := rep.Run(gctx, src)
		res.Replay = r
		return err
	})
	err = g.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	if err == nil && o.learn != nil {
		// The episode ends when the learner has trained on its last
		// interval.
		err = waitLearner(ctx, o.learn.learner, tsvc.Stats().TransitionIntervals, learnerExited)
	}
	stopWorkers()
	if werr := workers.Wait(); err == nil {
		err = werr
	}
	res.Features, res.Twin = fsvc.Stats(), tsvc.Stats()
	if sk != nil {
		// The sink has caught up once it wrote as many decisions and
		// rewards as the twin produced; then stop it (it flushes and
		// commits on the way out).
		if err == nil {
			err = waitSink(ctx, sk, res.Twin, sinkExited)
		}
		stopSink()
		<-sinkExited
		if err == nil && sinkErr != nil && !errors.Is(sinkErr, context.Canceled) {
			err = sinkErr
		}
		if err != nil && sinkErr != nil {
			err = errors.Join(err, sinkErr)
		}
		res.Sink = sk.Stats()
	}
	res.Wall = time.Since(t0)
	return res, err
}

// waitSink waits until the sink has written the twin's decisions and
// rewards (a redelivered record counts again, so "at least").
func waitSink(ctx context.Context, sk *sink.Sink, ts twin.Stats, exited <-chan struct{}) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		st := sk.Stats()
		if st.Rows[schemas.TableDecisions] >= ts.Decisions && st.Rows[schemas.TableRewards] >= ts.Rewards &&
			st.Rows[schemas.TableOutcomes] >= ts.Outcomes && st.Rows[schemas.TableRuns] >= 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("sink stopped before it caught up")
		case <-t.C:
		}
	}
}

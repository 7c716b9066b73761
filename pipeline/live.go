package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/decisions"
	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/notify"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LiveEpoch is trace time 0 in live mode: live times are Unix
// microseconds, so ticks, hours and days are the wall clock's (UTC).
var LiveEpoch = time.Unix(0, 0).UTC()

// NewDecisionView returns live mode's view of the decisions in force, served by the decisions API.
func NewDecisionView(runID string, names schemas.Names, pl cloud.Placement, logger *slog.Logger, reg prometheus.Registerer) *decisions.View {
	return decisions.NewView(decisions.Config{RunID: runID, Epoch: LiveEpoch, Names: names, Default: decisions.Placement{
		Provider: pl.Provider.String(), Region: pl.Metro.String(), MemoryMB: int32(pl.Tier.MB())}},
		logger.With("role", "decisions"), reg)
}

// LiveConfig configures live mode on top of Config (whose Epoch live mode
// sets to LiveEpoch).
type LiveConfig struct {
	Config
	// Ingest configures the HTTP ingest service; Live fills in its
	// Brokers, RunID, Names and Gatherer.
	Ingest ingest.Config
	// Listen is the HTTP listen address; TLSCert and TLSKey, if set, make
	// it serve HTTPS.
	Listen, TLSCert, TLSKey string
	// Policies names each layer's policy ("none" or "": the layer is not
	// decided).
	Policies map[schemas.Layer]string
	// Models is the directory of the learned policies' checkpoints.
	Models string
	// Placement is the placement before any decision.
	Placement cloud.Placement
	// Seed seeds the policies' random choices.
	Seed int64
	// Act also answers single decisions on strata.act.<layer>; Shadow runs
	// the twin in shadow.
	Act, Shadow bool
	// Store is a DuckDB file or a ClickHouse DSN; "" writes no tables.
	Store string
	// Retention is the sink's (sink.Config.Retention); 0 keeps every row.
	Retention time.Duration
	// Transitions are the layers whose transitions the shadow twin writes.
	Transitions []schemas.Layer
	// ShadowCheckpointEvery is the ticks between two of the shadow twin's
	// checkpoints on external Kafka and NATS (0: none); a shadow started
	// on a run with a checkpoint goes on from it (docs/twin.md).
	ShadowCheckpointEvery int64
	// ShadowFault, if set, is the shadow twin's fault hook
	// (twin.CommonConfig.Fault; FaultFromEnv).
	ShadowFault func(point string, tick int64)
	// WatermarkIdle is how far, in event time, one of several ingest
	// instances writing watermarks may fall behind the most advanced one
	// before the features and the shadow leave it out of the minimum that
	// closes ticks (schemas.Watermarks; 0: never).
	WatermarkIdle time.Duration
	// DrainTimeout bounds the drain at a stop on the embedded broker
	// (default 30 s).
	DrainTimeout time.Duration
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// RunJSON is the run's config_json before RunConfigJSON completes it.
	RunJSON string
	// Serving, if set, holds the guardrails the agents and act servers
	// project every decision onto and the layers' fallbacks.
	Serving *Serving
	// Deployment, if set, serves the layers that run their learned policy
	// from the models promoted for this deployment (strata models
	// --promote; from Models until one is), swapping between two ticks
	// when another is promoted or rolled back to (Deployment).
	Deployment string
	// OnSwap, if set, is called after each such swap.
	OnSwap func(schemas.Layer, natsbus.Served)
}

// deployments returns, with LiveConfig.Deployment, the deployment of each
// layer that runs its learned policy.
func (lo LiveConfig) deployments(ctx context.Context, e *Env, opts agents.Options) (map[schemas.Layer]*Deployment, error) {
	if lo.Deployment == "" {
		return nil, nil
	}
	ms, err := natsbus.OpenModelStore(ctx, e.JS, lo.Names)
	if err != nil {
		return nil, err
	}
	deps := map[schemas.Layer]*Deployment{}
	for _, l := range schemas.Layers {
		n := lo.Policies[l]
		if !agents.IsLearned(n, l) {
			continue
		}
		var start func() (agents.Policy, error)
		if lo.Models != "" {
			start = func() (agents.Policy, error) { return agents.New(n, l, opts) }
		}
		if deps[l], err = NewDeployment(ctx, ms, lo.Deployment, l, opts, start); err != nil {
			return nil, fmt.Errorf("strata live --deployment: %w", err)
		}
	}
	if len(deps) == 0 {
		return nil, fmt.Errorf("strata live --deployment %s serves promoted checkpoints of the learned policies (--strategic %s, --tactical %s, --operational %s); no layer runs one",
			lo.Deployment, agents.LearnedName(schemas.Strategic), agents.LearnedName(schemas.Tactical), agents.LearnedName(schemas.Operational))
	}
	return deps, nil
}

// LiveRun is a running live process, handed to Live's ready callback.
type LiveRun struct {
	// Addr is the HTTP service's address.
	Addr string
	// Env is the Kafka + NATS pair it runs on.
	Env      *Env
	Ingest   *ingest.Server
	Features *features.Service
	// Shadow is nil without LiveConfig.Shadow, Sink without a store.
	Shadow *twin.Shadow
	Sink   *sink.Sink
}

// Live runs live mode until ctx is done, then shuts down in order: the
// HTTP service first (every record it acknowledged is on Kafka when it
// returns), then, on the embedded broker, the drain (every acknowledged
// record processed by the back end, within lo.DrainTimeout), then the back
// end and last the sink. ready, if set, is called once it serves.
func Live(ctx context.Context, lo LiveConfig, stdout io.Writer, ready func(*LiveRun)) error {
	logger, reg := lo.Logger, lo.Registerer
	e, closeEnv, err := lo.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	icfg := lo.Ingest
	icfg.Brokers, icfg.RunID, icfg.Names = e.Brokers, lo.RunID, lo.Names
	if e.EmbeddedKafka {
		// The records die with the process: at a stop, ingest's last
		// watermark closes the tick of every record it accepted, and the
		// drain waits for the back end to process them.
		icfg.DrainWindow = tickTime
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		icfg.Gatherer = g
	}
	model, err := ModelAt(lo.NewModel, LiveEpoch)
	if err != nil {
		return err
	}
	aopts := agents.Options{Seed: lo.Seed, Model: model, Epoch: LiveEpoch, Models: lo.Models}
	if err := lo.Serving.CheckLayers(lo.Policies); err != nil {
		return err
	}
	deps, err := lo.deployments(ctx, e, aopts)
	if err != nil {
		return err
	}
	newPolicy := func(n string, l schemas.Layer) (agents.Policy, error) {
		var p agents.Policy
		var err error
		if d := deps[l]; d != nil {
			p, err = d.New()
		} else {
			p, err = agents.New(n, l, aopts)
		}
		if err != nil {
			return nil, err
		}
		return lo.Serving.Wrap(p, l, aopts)
	}
	var layers []schemas.Layer
	tickPol, actPol := map[schemas.Layer]worker.Policy{}, map[schemas.Layer]worker.Policy{}
	for _, l := range schemas.Layers {
		n := lo.Policies[l]
		if n == "none" || n == "" {
			continue
		}
		if _, internal := twin.ParseInternalPolicy(n); internal {
			return fmt.Errorf("strata live --%s %s: this policy runs inside the twin on a replayed trace; live decisions need an agent policy", l, n)
		}
		p, err := newPolicy(n, l)
		if err != nil {
			return err
		}
		tickPol[l] = p
		layers = append(layers, l)
		if lo.Act {
			if actPol[l], err = newPolicy(n, l); err != nil {
				return err
			}
		}
	}
	run := &LiveRun{Env: e}

	// The back end (stops after ingest): features, agents, the decisions
	// view and the shadow twin, then the sink, which writes what the twin
	// flushed as it stopped.
	bctx, cancelBack := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBack()
	sctx, cancelSink := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSink()
	var back, sinkGroup errgroup.Group
	stopBack := func() error {
		cancelBack()
		return back.Wait()
	}
	stop := func() error {
		err := stopBack()
		cancelSink()
		return errors.Join(err, sinkGroup.Wait())
	}
	prog := newLiveProgress()
	nm := lo.Names
	ckpts, err := OpenFeatureCheckpoints(ctx, e.JS, nm)
	if err != nil {
		return err
	}
	runID := lo.RunID
	groups := GroupsOf(nm, runID)
	// On external Kafka the features and the sink are static members of
	// their groups (one live process per run): restarted after a crash,
	// each takes its partitions back at once instead of waiting out the
	// dead member's session.
	static := func(group string) string {
		if e.EmbeddedKafka {
			return ""
		}
		return group
	}
	if run.Features, err = features.NewService(ctx, features.Config{Brokers: e.Brokers, Group: groups.Features, InstanceID: static(groups.Features),
		Epoch: LiveEpoch, RunID: runID, Names: nm, OnBatch: prog.onBatch, OutageBound: lo.KafkaOutage, WatermarkIdle: lo.WatermarkIdle}, lo.publisher(e.JS), ckpts,
		logger.With("role", "features"), reg); err != nil {
		return err
	}
	view := NewDecisionView(runID, nm, lo.Placement, logger, reg)
	icfg.Decisions = view.Handler()
	back.Go(func() error { return run.Features.Run(bctx) })
	back.Go(func() error { return view.Follow(bctx, e.JS) })
	for _, l := range layers {
		w := worker.New(e.JS, lo.publisher(e.JS), l, runID, tickPol[l], logger.With("role", "agent", "layer", l))
		w.Names, w.Registerer = nm, reg
		if w.Guard, err = lo.Serving.Enforcer(l, model); err != nil {
			return errors.Join(err, stop())
		}
		back.Go(func() error { return w.Run(bctx) })
		if p := actPol[l]; p != nil {
			nc := e.NC
			srv := worker.NewActServer(nc, l, p, logger.With("role", "act", "layer", l))
			srv.Names = nm
			if srv.Guard, err = lo.Serving.Enforcer(l, model); err != nil {
				return errors.Join(err, stop())
			}
			if err := srv.Listen(); err != nil {
				return errors.Join(err, stop())
			}
			back.Go(func() error { return srv.Serve(bctx) })
		}
	}
	for l, d := range deps {
		back.Go(func() error {
			return d.Follow(bctx, logger.With("role", "agent", "layer", l), func(s natsbus.Served) {
				if lo.OnSwap != nil {
					lo.OnSwap(l, s)
				}
			})
		})
	}
	if lo.Shadow {
		if run.Shadow, err = newLiveShadow(ctx, e, lo.Config, model, liveShadow{Placement: lo.Placement, Layers: layers, Transitions: lo.Transitions,
			CheckpointEvery: lo.ShadowCheckpointEvery, Fault: lo.ShadowFault, WatermarkIdle: lo.WatermarkIdle, OnTick: prog.onTick}); err != nil {
			return errors.Join(err, stop())
		}
		back.Go(func() error { return run.Shadow.Run(bctx) })
	}
	if lo.Store != "" {
		st, err := store.Open(ctx, lo.Store, store.WithLogger(logger.With("role", "store")))
		if err != nil {
			return errors.Join(err, stop())
		}
		defer func() { _ = st.Close() }()
		if err := st.EnsureSchema(ctx); err != nil {
			return errors.Join(err, stop())
		}
		if run.Sink, err = sink.New(ctx, sink.Config{Brokers: e.Brokers, Group: groups.Sink, InstanceID: static(groups.Sink), Partitions: lo.Partitions,
			Outcomes: true, RunID: runID, Names: nm, Retention: lo.Retention, OutageBound: lo.KafkaOutage}, st, logger.With("role", "sink"), reg); err != nil {
			return errors.Join(err, stop())
		}
		sinkGroup.Go(func() error { return run.Sink.Run(sctx) })
	}

	if run.Sink != nil || !e.EmbeddedKafka {
		// The live run's row in the runs table (a restart replaces it).
		if err := writeLiveRun(ctx, e.Brokers, lo, layers); err != nil {
			return errors.Join(err, stop())
		}
	}
	if e.EmbeddedKafka {
		// The in-process broker keeps every record in memory: drop what
		// every reader has committed.
		tcl, err := kgo.NewClient(kafka.CommonOpts(e.Brokers, logger)...)
		if err != nil {
			return errors.Join(fmt.Errorf("creating the trimming client: %w", err), stop())
		}
		defer tcl.Close()
		telemetryReaders := []string{groups.Features}
		if lo.Shadow {
			telemetryReaders = append(telemetryReaders, groups.Shadow)
		}
		back.Go(func() error {
			TrimConsumed(bctx, tcl, []Retention{{Readers: telemetryReaders, Topics: []string{nm.Topic(schemas.TopicTelemetry)}}}, 5*time.Second, logger)
			return nil
		})
		if run.Sink != nil {
			sinkGroup.Go(func() error {
				TrimConsumed(sctx, tcl, []Retention{{Readers: []string{groups.Sink}, Topics: []string{nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}}}, 5*time.Second, logger)
				return nil
			})
		}
	}

	// The front: the HTTP service.
	if run.Ingest, err = ingest.New(ctx, icfg, logger.With("role", "ingest"), reg); err != nil {
		return errors.Join(err, stop())
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", lo.Listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening on %s: %w", lo.Listen, err), stop())
	}
	run.Addr = ln.Addr().String()
	where := lo.Store
	if where == "" {
		where = "none"
	}
	fmt.Fprintf(stdout, "live: ingest on %s (run %s, lateness %v), layers %v, tables %s\n", run.Addr, runID, icfg.Lateness, layers, where)
	if ready != nil {
		ready(run)
	}
	serveErr := run.Ingest.Serve(ctx, ln, lo.TLSCert, lo.TLSKey)
	st := run.Ingest.Stats()
	var drainErr error
	if e.EmbeddedKafka {
		drainErr = run.drain(ctx, lo, st, prog, stopBack, stdout, logger)
	} else {
		// The back end commits only what it has durably handled: what it
		// has not reached yet stays on Kafka for its next start.
		fmt.Fprintf(stdout, "live: the %d records acknowledged are durable on Kafka; the back end resumes from its committed offsets on the next start\n", st.Accepted)
		logger.Info("stopping: acknowledged records are durable on Kafka", "accepted", st.Accepted)
	}
	backErr := stop()
	fmt.Fprintf(stdout, "live: %d requests, %d records accepted, %d rejected, %d refused\n", st.Requests, st.Accepted, st.Rejected, st.Refused)
	fst := run.Features.Stats()
	fmt.Fprintf(stdout, "features: %d invocations windowed, %d late, %d duplicates, %d state batches\n", fst.Invocations, fst.Late, fst.Duplicates, fst.StatesPublished)
	if run.Shadow != nil {
		ts := run.Shadow.Stats()
		fmt.Fprintf(stdout, "shadow: %d ticks, %d arrivals, %d decisions, %d rewards\n", ts.Ticks, ts.Arrivals, ts.Decisions, ts.Rewards)
	}
	if serveErr != nil {
		return serveErr
	}
	if drainErr != nil {
		return drainErr
	}
	if backErr != nil && !errors.Is(backErr, context.Canceled) {
		return backErr
	}
	return nil
}

// liveProgress follows the back end for the drain: the operational ticks
// each features shard has closed and the latest tick the shadow twin has
// evaluated.
type liveProgress struct {
	// changed wakes the drain after every batch and tick counted.
	changed notify.Signal
	mu      sync.Mutex
	shards  int
	closed  map[int]int64 // per shard: every tick before this one is closed
	twin    int64
}

func newLiveProgress() *liveProgress {
	return &liveProgress{closed: map[int]int64{}, twin: math.MinInt64}
}

// onBatch is the features' OnBatch: an operational state batch for tick k
// is published once tick k−1 closed (the first one, for the first
// watermark's tick, once the ticks before it are out of reach).
func (p *liveProgress) onBatch(h schemas.BatchHeader, _ int, _ []byte) {
	if h.Layer != schemas.Operational {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shards = h.NShards
	if c, ok := p.closed[h.Shard]; !ok || h.Tick > c {
		p.closed[h.Shard] = h.Tick
	}
	p.changed.Notify()
}

// onTick is the shadow twin's OnTick.
func (p *liveProgress) onTick(k int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.twin = max(p.twin, k)
	p.changed.Notify()
}

// featuresClosed returns the first tick that is not closed on every shard
// (math.MinInt64 before every shard published).
func (p *liveProgress) featuresClosed() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shards == 0 || len(p.closed) < p.shards {
		return math.MinInt64
	}
	first := int64(math.MaxInt64)
	for _, c := range p.closed {
		first = min(first, c)
	}
	return first
}

// twinEvaluated returns the latest tick the shadow twin evaluated.
func (p *liveProgress) twinEvaluated() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.twin
}

// drain runs at a stop on the embedded broker, whose records die with the
// process, once ingest has answered its last request (st) and written its
// last watermark past the tick of every record it accepted. It waits until
// the features have closed that tick on every shard and the shadow twin (if
// it runs) has evaluated it, stops the back end but the sink with stopBack
// (the twin flushes its output to Kafka as it stops), and waits until the
// sink (if it runs) has written and committed every record on its topics.
// lo.DrainTimeout bounds the whole wait; the error then says how many
// acknowledged records were left unprocessed. The back end's own errors are
// Live's to report.
func (run *LiveRun) drain(ctx context.Context, lo LiveConfig, st ingest.Stats, prog *liveProgress, stopBack func() error,
	stdout io.Writer, logger *slog.Logger) error {
	timeout := cmp.Or(lo.DrainTimeout, 30*time.Second)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	t0 := time.Now()
	last := int64(math.MinInt64) // the tick of the latest record accepted
	if st.Accepted > 0 {
		last = grid.TickOf(st.MaxStartUS, grid.OperationalTickUS)
	}
	processed := func() bool {
		return prog.featuresClosed() > last && (run.Shadow == nil || prog.twinEvaluated() >= last)
	}
	// Until ends with dctx: what was left is reported below.
	_ = notify.Until(dctx, prog.changed.Changed, processed, nil)
	done := processed()
	_ = stopBack() // Live's last stop returns its error
	var sinkBehind int64
	var sinkErr error
	if run.Sink != nil {
		nm := lo.Names
		sinkBehind, sinkErr = waitCommitted(dctx, run.Env.Brokers, GroupsOf(nm, lo.RunID).Sink,
			[]string{nm.Topic(sink.TopicRuns), nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}, run.Sink.Changed, logger)
	}
	if done && sinkBehind == 0 && sinkErr == nil {
		var parts []string
		for _, r := range []struct {
			name string
			on   bool
		}{{"the features", true}, {"the shadow twin", run.Shadow != nil}, {"the sink", run.Sink != nil}} {
			if r.on {
				parts = append(parts, r.name)
			}
		}
		fmt.Fprintf(stdout, "live: drained in %v: %s processed every one of the %d records acknowledged\n",
			time.Since(t0).Round(time.Millisecond), strings.Join(parts, ", "), st.Accepted)
		return nil
	}
	// What was left: the shadow twin counts what it scored or dropped; the
	// features only say which ticks they closed.
	var where []string
	if !done {
		if run.Shadow != nil {
			ts := run.Shadow.Stats()
			left := st.Accepted - (ts.Outcomes + ts.DuplicateArrivals + ts.LateArrivals + ts.InvalidArrivals)
			where = append(where, fmt.Sprintf("%d of the %d records acknowledged not scored by the shadow twin (it evaluated the ticks through %d, the last record accepted starts in tick %d)",
				max(left, 0), st.Accepted, prog.twinEvaluated(), last))
		} else if c := prog.featuresClosed(); c == math.MinInt64 {
			where = append(where, fmt.Sprintf("the features have closed no tick; the %d records acknowledged are not processed", st.Accepted))
		} else {
			where = append(where, fmt.Sprintf("the features have not closed the ticks from %d to %d, which hold records among the %d acknowledged",
				c, last, st.Accepted))
		}
	}
	switch {
	case sinkBehind > 0:
		where = append(where, fmt.Sprintf("the sink is %d records behind on its topics (rows of decisions, rewards and outcomes not written)", sinkBehind))
	case sinkErr != nil:
		where = append(where, "the sink's progress is unknown")
	}
	err := fmt.Errorf("draining strata live: not done within --drain-timeout %v: %s; the embedded broker keeps records in memory only, so these are lost",
		timeout, strings.Join(where, "; "))
	if sinkErr != nil {
		err = errors.Join(err, sinkErr)
	}
	logger.Error("drain incomplete", "err", err)
	return err
}

// waitCommitted waits until group has committed the end offsets that
// topics have now, and returns how many records it is still behind when
// ctx ends first. It reads the group's offsets again each time changed's
// channel closes (the sink's Changed: it commits, then signals).
func waitCommitted(ctx context.Context, brokers []string, group string, topics []string, changed func() <-chan struct{}, logger *slog.Logger) (int64, error) {
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, logger)...)
	if err != nil {
		return 0, fmt.Errorf("creating the drain's kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Each look gets a few seconds of its own, so that a wait already over
	// still says how far behind the group is.
	look := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	}
	lctx, lcancel := look()
	ends, err := adm.ListEndOffsets(lctx, topics...)
	lcancel()
	if err != nil {
		return 0, fmt.Errorf("listing the end offsets of %v: %w", topics, err)
	}
	behind := func() (int64, error) {
		lctx, lcancel := look()
		defer lcancel()
		offs, err := adm.FetchOffsets(lctx, group)
		if err != nil {
			return 0, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			var at int64
			if c, ok := offs.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
				at = max(c.At, 0)
			}
			n += max(o.Offset-at, 0)
		})
		return n, nil
	}
	n := int64(-1) // the last count taken
	var lastErr error
	_ = notify.Until(ctx, changed, func() bool {
		m, err := behind()
		if err != nil {
			lastErr = err
			return false
		}
		n, lastErr = m, nil
		return m == 0
	}, nil)
	switch {
	case n == 0:
		return 0, nil
	case n > 0:
		return n, nil // the deadline: n says how far behind
	case lastErr != nil:
		return 0, lastErr
	}
	return 0, fmt.Errorf("waiting for group %s: %w", group, ctx.Err())
}

// writeLiveRun writes the live run's record for the runs table.
func writeLiveRun(ctx context.Context, brokers []string, lo LiveConfig, layers []schemas.Layer) error {
	pol := map[schemas.Layer]string{}
	for _, l := range layers {
		pol[l] = lo.Policies[l]
	}
	v, err := proto.Marshal(&stratapb.Run{RunId: lo.RunID, StartedUnixMs: time.Now().UnixMilli(), Source: "live", Seed: lo.Seed,
		Speed: "wall-clock", StrategicPolicy: pol[schemas.Strategic], TacticalPolicy: pol[schemas.Tactical],
		OperationalPolicy: pol[schemas.Operational], DefaultPlacement: lo.Placement.String(), TraceEpoch: LiveEpoch.Format(time.RFC3339),
		ConfigJson: RunConfigJSON(WithServing(lo.RunJSON, lo.Serving), lo.Partitions, lo.Names)})
	if err != nil {
		return fmt.Errorf("encoding the live run record: %w", err)
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating a kafka client for the run record: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: lo.Names.Topic(sink.TopicRuns), Key: []byte(lo.RunID), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("writing the live run record: %w", err)
	}
	return nil
}

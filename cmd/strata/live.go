package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LiveEpoch is trace time 0 in live mode: live times are Unix
// microseconds, so ticks, hours and days are the wall clock's (UTC).
var liveEpoch = time.Unix(0, 0).UTC()

// ingestFlags are the flags of the HTTP ingest service, shared by
// `strata ingest` and `strata live`.
type ingestFlags struct {
	listen, runID      string
	lateness, wmEvery  time.Duration
	tokens, tokensFile string
	noAuth             bool
	maxBody            int64
	ratePerToken       float64
	rateBurst          int
	tlsCert, tlsKey    string
	noWatermarks       bool
	// The connection limits (ingest.Config).
	headerTimeout, bodyTimeout, readTimeout time.Duration
	writeTimeout, idleTimeout               time.Duration
	maxConns, maxInFlight                   int
	// topic is set by `strata ingest --topic` only: in `strata live` the
	// features and the shadow twin read the standard topic.
	topic string
}

func (f *ingestFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "HTTP listen `ADDR`")
	fs.StringVar(&f.runID, "run-id", ingest.DefaultRunID, "run id of the live telemetry")
	fs.DurationVar(&f.lateness, "lateness", time.Minute, "allowed lateness: the watermark is now minus this; records starting before it (invocations longer than it) are rejected as late, and decisions lag by about as much")
	fs.DurationVar(&f.wmEvery, "watermark-every", time.Second, "interval between watermarks")
	fs.StringVar(&f.tokens, "tokens", "", "accepted bearer `TOKENS`, comma-separated (or STRATA_INGEST_TOKENS)")
	fs.StringVar(&f.tokensFile, "tokens-file", "", "`FILE` of accepted bearer tokens, one per line")
	fs.BoolVar(&f.noAuth, "dev-no-auth", false, "accept requests without a bearer token (development only)")
	fs.Int64Var(&f.maxBody, "max-body", 8<<20, "largest request body in `BYTES` (after decompression)")
	fs.Float64Var(&f.ratePerToken, "rate-per-token", 0, "records per second per token (0: no limit)")
	fs.IntVar(&f.rateBurst, "rate-burst", 0, "rate limiter burst in records (default: one second's worth, at least 1000)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate `FILE` (with --tls-key: serve HTTPS)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key `FILE`")
	fs.BoolVar(&f.noWatermarks, "no-watermarks", false, "do not write watermarks (a second ingest instance; see docs/ingest.md)")
	fs.DurationVar(&f.headerTimeout, "header-timeout", ingest.DefaultReadHeaderTimeout, "close a connection that has not sent a request's complete headers within this")
	fs.DurationVar(&f.bodyTimeout, "body-timeout", ingest.DefaultBodyTimeout, "answer 408 and close the connection when a request's body is not in within this of its headers; nothing of it is written")
	fs.DurationVar(&f.readTimeout, "read-timeout", 0, "bound on reading a whole request, headers and body (default: --header-timeout plus --body-timeout); the telemetry and traces bodies have --body-timeout instead")
	fs.DurationVar(&f.writeTimeout, "write-timeout", ingest.DefaultWriteTimeout, "bound on a request from the end of its headers to the end of its reply, the wait for Kafka's acknowledgements included")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", ingest.DefaultIdleTimeout, "close a keep-alive connection idle for this long")
	fs.IntVar(&f.maxConns, "max-conns", ingest.DefaultMaxConns, "open connections at most; one more is answered 503 (Connection: close) and closed unread")
	fs.IntVar(&f.maxInFlight, "max-in-flight", ingest.DefaultMaxInFlight, "requests handled at once at most (each holds up to --max-body); one more is answered 503 with Retry-After: 1, its body unread")
}

// config builds the ingest configuration (tokens from the flag, the
// environment and the file).
func (f *ingestFlags) config(brokers []string) (ingest.Config, error) {
	var toks []string
	for _, src := range []string{f.tokens, os.Getenv("STRATA_INGEST_TOKENS")} {
		toks = append(toks, splitNonEmpty(src)...)
	}
	if f.tokensFile != "" {
		b, err := os.ReadFile(f.tokensFile)
		if err != nil {
			return ingest.Config{}, fmt.Errorf("reading --tokens-file: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				toks = append(toks, l)
			}
		}
	}
	if len(toks) == 0 && !f.noAuth {
		return ingest.Config{}, errors.New("no bearer tokens: give --tokens, --tokens-file or STRATA_INGEST_TOKENS, or --dev-no-auth for development")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return ingest.Config{}, errors.New("--tls-cert and --tls-key go together")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--header-timeout", f.headerTimeout}, {"--body-timeout", f.bodyTimeout}, {"--read-timeout", f.readTimeout},
		{"--write-timeout", f.writeTimeout}, {"--idle-timeout", f.idleTimeout}} {
		if d.v < 0 {
			return ingest.Config{}, fmt.Errorf("%s %v: a timeout cannot be negative", d.name, d.v)
		}
	}
	if f.maxConns < 1 || f.maxInFlight < 1 {
		return ingest.Config{}, fmt.Errorf("--max-conns %d, --max-in-flight %d: both must be at least 1", f.maxConns, f.maxInFlight)
	}
	return ingest.Config{Brokers: brokers, RunID: f.runID, Lateness: f.lateness, WatermarkEvery: f.wmEvery, Tokens: toks,
		NoAuth: f.noAuth, MaxBodyBytes: f.maxBody, RatePerToken: f.ratePerToken, RateBurst: f.rateBurst,
		NoWatermarks: f.noWatermarks, Topic: f.topic,
		ReadHeaderTimeout: f.headerTimeout, BodyTimeout: f.bodyTimeout, ReadTimeout: f.readTimeout,
		WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout, MaxConns: f.maxConns, MaxInFlight: f.maxInFlight}, nil
}

// ingestMain runs `strata ingest` (the HTTP service) or `strata ingest load`.
func ingestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := subcommand("ingest", args[0]); ok {
			return sub.main(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("strata ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata ingest --kafka HOST:PORT [--nats URL] [flags]
       strata ingest load --trace FILE --rate R [flags]

Serves live telemetry over HTTP into strata.telemetry.v1 (POST /v1/telemetry:
JSON; POST /v1/traces: OTLP/HTTP) with wall-clock watermarks, and, with
--nats, the decisions in force (GET /v1/decisions/{app}[/{func}]).
See docs/ingest.md.

`)
		fs.PrintDefaults()
	}
	var (
		inf      ingestFlags
		brokers  = fs.String("kafka", "", "Kafka seed brokers `host:port[,…]` (required)")
		natsURL  = fs.String("nats", "", "NATS `URL`: serve the decisions API from the decision streams")
		defPl    = fs.String("default-placement", "aws/us-east/1024", "placement the decisions API reports before any decision")
		logLevel = fs.String("log-level", "warn", "log level: debug, info, warn, error")
	)
	inf.register(fs)
	fs.StringVar(&inf.topic, "topic", "", "telemetry `TOPIC` (default strata.telemetry.v1 under --prefix; benchmarks use scratch topics, the other roles read strata.telemetry.v1)")
	var names schemas.Names
	registerPrefix(fs, &names)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := schemas.ValidatePrefix(names.Prefix); err != nil {
		return err
	}
	if *brokers == "" {
		return errors.New("strata ingest needs --kafka (strata live runs everything embedded)")
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := inf.config(kafka.ParseBrokers(*brokers))
	if err != nil {
		return err
	}
	cfg.Names = names
	pl, err := parsePlacement(*defPl)
	if err != nil {
		return err
	}
	reg := newRegistry()
	cfg.Gatherer = reg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g errgroup.Group
	if *natsURL != "" {
		nc, err := natsbus.Connect(*natsURL, "strata-ingest")
		if err != nil {
			return err
		}
		defer func() { _ = nc.Drain() }()
		js, err := jsFor(ctx, nc, names)
		if err != nil {
			return err
		}
		view := newDecisionView(inf.runID, names, pl, logger, reg)
		cfg.Decisions = view.Handler()
		g.Go(func() error { return view.Follow(ctx, js) })
	}
	srv, err := ingest.New(ctx, cfg, logger.With("role", "ingest"), reg)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", inf.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", inf.listen, err)
	}
	fmt.Fprintf(stdout, "ingest: serving on %s (run %s, lateness %v)\n", ln.Addr(), inf.runID, inf.lateness)
	err = srv.Serve(ctx, ln, inf.tlsCert, inf.tlsKey)
	cancel()
	if gerr := g.Wait(); err == nil && gerr != nil && !errors.Is(gerr, context.Canceled) {
		err = gerr
	}
	st := srv.Stats()
	fmt.Fprintf(stdout, "ingest: %d requests, %d records accepted, %d rejected, %d requests refused, %d watermarks\n",
		st.Requests, st.Accepted, st.Rejected, st.Refused, st.Watermarks)
	return err
}

func newDecisionView(runID string, names schemas.Names, pl cloud.Placement, logger *slog.Logger, reg prometheus.Registerer) *decisions.View {
	return decisions.NewView(decisions.Config{RunID: runID, Epoch: liveEpoch, Names: names, Default: decisions.Placement{
		Provider: pl.Provider.String(), Region: pl.Metro.String(), MemoryMB: int32(pl.Tier.MB())}},
		logger.With("role", "decisions"), reg)
}

// liveMain runs `strata live`: ingest, features, agents, the decisions API,
// the twin in shadow and the sink in one process, on embedded Kafka, NATS
// and DuckDB unless addresses are given.
func liveMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata live", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf       commonFlags
		inf      ingestFlags
		stf      storeFlags
		stratPol = fs.String("strategic", "greedy-cost", "strategic policy (daily, per app): "+strings.Join(agents.Names(schemas.Strategic), ", ")+", dqn (with --models), or none")
		tact     = fs.String("tactical", "greedy-cost", "tactical policy (hourly, per function): "+strings.Join(agents.Names(schemas.Tactical), ", ")+", ppo (with --models), or none")
		oper     = fs.String("operational", "hybrid-histogram", "operational policy (15 s, per active function): "+strings.Join(agents.Names(schemas.Operational), ", ")+", lstm (with --models), or none")
		models   = fs.String("models", "", "`DIR` of trained checkpoints for dqn, ppo and lstm")
		defPl    = fs.String("default-placement", "aws/us-east/1024", "placement before any decision: provider/metro/memory MB")
		polSeed  = fs.Int64("policy-seed", 1, "seed of the policies' random choices")
		act      = fs.Bool("act", true, "also answer single decisions on strata.act.<layer>")
		shadow   = fs.Bool("shadow", true, "run the twin in shadow: score every decision against the model's counterfactuals")
		noStore  = fs.Bool("no-store", false, "write no tables (the twin's records stay on Kafka)")
		trans    = fs.String("transitions", "auto", "layers whose transitions the shadow twin writes to strata.transitions.v1 for 'strata learner --run-id <run>': a list, none, or auto (the layers served by dqn or ppo)")
		drainT   = fs.Duration("drain-timeout", 30*time.Second, "on the embedded broker, how long a stop waits for the back end to process every acknowledged record before it gives up and reports how many were left (they are lost)")
	)
	cf.register(fs)
	inf.register(fs)
	stf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata live [flags]

Live mode in one process: the HTTP ingest service (JSON and OTLP telemetry),
the feature consumer on wall-clock ticks, one agent per layer (and its
strata.act.<layer> server), the decisions API, the twin in shadow and the
sink — on an embedded broker, nats-server and DuckDB file unless --kafka,
--nats or --clickhouse are given. See docs/ingest.md.

Stop it with Ctrl-C (SIGINT or SIGTERM): ingest stops accepting and answers
the requests in flight. On the embedded broker, which keeps records in
memory only, it then writes a last watermark past every acknowledged record
and waits, up to --drain-timeout, until the features have closed their
ticks, the shadow twin has scored them and the sink has written its rows;
if the wait runs out it exits with an error saying how many records were
left, and those are lost, as is everything not yet in the tables after a
crash, a second Ctrl-C or SIGKILL. With --kafka an acknowledged record is
durable on Kafka: the back end stops at what it has handled and resumes from
its committed offsets on the next start.

`)
		fs.PrintDefaults()
	}
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	pl, err := parsePlacement(*defPl)
	if err != nil {
		return err
	}
	icfg, err := inf.config(nil)
	if err != nil {
		return err
	}
	var trLayers []schemas.Layer
	switch *trans {
	case "auto":
		for l, n := range map[schemas.Layer]string{schemas.Strategic: *stratPol, schemas.Tactical: *tact} {
			if n == agents.LearnedName(l) {
				trLayers = append(trLayers, l)
			}
		}
	default:
		if trLayers, err = parseLayers(*trans); err != nil {
			return fmt.Errorf("strata live --transitions: %w", err)
		}
	}
	reg := newRegistry()
	if err := serveMetrics(ctx, cf.metricsAddr, reg); err != nil {
		return err
	}
	lo := liveOpts{
		pipe: pipeline.Config{Brokers: kafka.ParseBrokers(cf.kafka), NATSURL: cf.nats, Partitions: cf.partitions, Names: cf.names,
			Epoch: liveEpoch, RunID: inf.runID, Logger: logger, Registerer: reg},
		ingest: icfg, listen: inf.listen, tlsCert: inf.tlsCert, tlsKey: inf.tlsKey,
		policies: map[schemas.Layer]string{schemas.Strategic: *stratPol, schemas.Tactical: *tact, schemas.Operational: *oper},
		models:   *models, placement: pl, seed: *polSeed, act: *act, shadow: *shadow, transitions: trLayers,
		drainTimeout: *drainT, conf: conf,
	}
	if !*noStore {
		lo.store = stf.target()
	}
	return runLive(ctx, lo, stdout, nil)
}

// liveOpts configures runLive.
type liveOpts struct {
	pipe                    pipeline.Config
	ingest                  ingest.Config // Brokers and Gatherer are filled in
	listen, tlsCert, tlsKey string
	policies                map[schemas.Layer]string
	models                  string
	placement               cloud.Placement
	seed                    int64
	act, shadow             bool
	store                   string // DuckDB file or ClickHouse DSN; "" for none
	// transitions are the layers whose transitions the shadow twin writes.
	transitions []schemas.Layer
	// drainTimeout bounds the drain at a stop on the embedded broker
	// (default 30 s).
	drainTimeout time.Duration
	// conf is the --config file: the cloud model's overrides and what
	// the runs row records of it (nil: the defaults).
	conf *roleConfig
}

// liveRun is a running live process, for tests.
type liveRun struct {
	addr     string
	env      *pipeline.Env
	ingest   *ingest.Server
	features *features.Service
	shadow   *twin.Service
	sink     *sink.Sink
}

// runLive runs live mode until ctx is done, then shuts down in order: the
// HTTP service first (every record it acknowledged is on Kafka when it
// returns), then, on the embedded broker, the drain (every acknowledged
// record processed by the back end, within lo.drainTimeout), then the back
// end and last the sink. ready, if set, is called once it serves.
func runLive(ctx context.Context, lo liveOpts, stdout io.Writer, ready func(*liveRun)) error {
	logger, reg := lo.pipe.Logger, lo.pipe.Registerer
	e, closeEnv, err := lo.pipe.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	icfg := lo.ingest
	icfg.Brokers, icfg.RunID, icfg.Names = e.Brokers, lo.pipe.RunID, lo.pipe.Names
	if e.EmbeddedKafka {
		// The records die with the process: at a stop, ingest's last
		// watermark closes the tick of every record it accepted, and the
		// drain waits for the back end to process them.
		icfg.DrainWindow = time.Duration(grid.OperationalTickUS) * time.Microsecond
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		icfg.Gatherer = g
	}
	model, err := lo.conf.newModel(liveEpoch)
	if err != nil {
		return err
	}
	aopts := agents.Options{Seed: lo.seed, Model: model, Epoch: liveEpoch, Models: lo.models}
	var layers []schemas.Layer
	tickPol, actPol := map[schemas.Layer]worker.Policy{}, map[schemas.Layer]worker.Policy{}
	for _, l := range schemas.Layers {
		n := lo.policies[l]
		if n == "none" || n == "" {
			continue
		}
		if _, internal := twin.ParseInternalPolicy(n); internal {
			return fmt.Errorf("strata live --%s %s: this policy runs inside the twin on a replayed trace; live decisions need an agent policy", l, n)
		}
		p, err := agents.New(n, l, aopts)
		if err != nil {
			return err
		}
		tickPol[l] = p
		layers = append(layers, l)
		if lo.act {
			if actPol[l], err = agents.New(n, l, aopts); err != nil {
				return err
			}
		}
	}
	run := &liveRun{env: e}

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
	nm := lo.pipe.Names
	kv, err := e.JS.KeyValue(ctx, nm.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		return fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	runID := lo.pipe.RunID
	groups := pipeline.GroupsOf(nm, runID)
	if run.features, err = features.NewService(ctx, features.Config{Brokers: e.Brokers, Group: groups.Features,
		Epoch: liveEpoch, RunID: runID, Names: nm, OnBatch: prog.onBatch}, natsbus.NewBatchPublisher(e.JS, 0), features.KVCheckpoints{KV: kv},
		logger.With("role", "features"), reg); err != nil {
		return err
	}
	view := newDecisionView(runID, nm, lo.placement, logger, reg)
	icfg.Decisions = view.Handler()
	back.Go(func() error { return run.features.Run(bctx) })
	back.Go(func() error { return view.Follow(bctx, e.JS) })
	for _, l := range layers {
		w := worker.New(e.JS, natsbus.NewBatchPublisher(e.JS, 0), l, runID, tickPol[l], logger.With("role", "agent", "layer", l))
		w.Names, w.Registerer = nm, reg
		back.Go(func() error { return w.Run(bctx) })
		if p := actPol[l]; p != nil {
			nc := e.NC
			srv := worker.NewActServer(nc, l, p, logger.With("role", "act", "layer", l))
			srv.Names = nm
			if err := srv.Listen(); err != nil {
				return errors.Join(err, stop())
			}
			back.Go(func() error { return srv.Serve(bctx) })
		}
	}
	if lo.shadow {
		tr := map[schemas.Layer]bool{}
		for _, l := range lo.transitions {
			tr[l] = true
		}
		eng, err := twin.NewEngine(model, twin.Config{RunID: runID, DefaultPlacement: lo.placement, Reward: model.Config().Reward,
			Outcomes: true, Internal: map[schemas.Layer]twin.InternalPolicy{}, Transitions: tr},
			twin.NewProfileBuilder(liveEpoch).Build(model))
		if err != nil {
			return errors.Join(err, stop())
		}
		if run.shadow, err = twin.NewService(twin.ServiceConfig{Brokers: e.Brokers, RunID: runID, Names: nm, Layers: layers, Shadow: true,
			Transitions: lo.transitions, TelemetryPartitions: lo.pipe.Partitions, OnTick: prog.onTick, Registerer: reg}, eng, e.JS, logger.With("role", "shadow")); err != nil {
			return errors.Join(err, stop())
		}
		back.Go(func() error { return run.shadow.Run(bctx) })
	}
	if lo.store != "" {
		st, err := store.Open(ctx, lo.store)
		if err != nil {
			return errors.Join(err, stop())
		}
		defer func() { _ = st.Close() }()
		if err := st.EnsureSchema(ctx); err != nil {
			return errors.Join(err, stop())
		}
		if run.sink, err = sink.New(ctx, sink.Config{Brokers: e.Brokers, Group: groups.Sink, Partitions: lo.pipe.Partitions,
			Outcomes: true, RunID: runID, Names: nm}, st, logger.With("role", "sink"), reg); err != nil {
			return errors.Join(err, stop())
		}
		sinkGroup.Go(func() error { return run.sink.Run(sctx) })
	}

	if run.sink != nil || !e.EmbeddedKafka {
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
		if lo.shadow {
			telemetryReaders = append(telemetryReaders, groups.Shadow)
		}
		back.Go(func() error {
			pipeline.TrimConsumed(bctx, tcl, telemetryReaders, []string{nm.Topic(schemas.TopicTelemetry)}, 5*time.Second, logger)
			return nil
		})
		if run.sink != nil {
			sinkGroup.Go(func() error {
				pipeline.TrimConsumed(sctx, tcl, []string{groups.Sink}, []string{nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}, 5*time.Second, logger)
				return nil
			})
		}
	}

	// The front: the HTTP service.
	if run.ingest, err = ingest.New(ctx, icfg, logger.With("role", "ingest"), reg); err != nil {
		return errors.Join(err, stop())
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", lo.listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening on %s: %w", lo.listen, err), stop())
	}
	run.addr = ln.Addr().String()
	where := lo.store
	if where == "" {
		where = "none"
	}
	fmt.Fprintf(stdout, "live: ingest on %s (run %s, lateness %v), layers %v, tables %s\n", run.addr, runID, icfg.Lateness, layers, where)
	if ready != nil {
		ready(run)
	}
	serveErr := run.ingest.Serve(ctx, ln, lo.tlsCert, lo.tlsKey)
	st := run.ingest.Stats()
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
	fst := run.features.Stats()
	fmt.Fprintf(stdout, "features: %d invocations windowed, %d late, %d duplicates, %d state batches\n", fst.Invocations, fst.Late, fst.Duplicates, fst.StatesPublished)
	if run.shadow != nil {
		ts := run.shadow.Stats()
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
	mu     sync.Mutex
	shards int
	closed map[int]int64 // per shard: every tick before this one is closed
	twin   int64
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
}

// onTick is the shadow twin's OnTick.
func (p *liveProgress) onTick(k int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.twin = max(p.twin, k)
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
// lo.drainTimeout bounds the whole wait; the error then says how many
// acknowledged records were left unprocessed. The back end's own errors are
// runLive's to report.
func (run *liveRun) drain(ctx context.Context, lo liveOpts, st ingest.Stats, prog *liveProgress, stopBack func() error,
	stdout io.Writer, logger *slog.Logger) error {
	timeout := cmp.Or(lo.drainTimeout, 30*time.Second)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	t0 := time.Now()
	last := int64(math.MinInt64) // the tick of the latest record accepted
	if st.Accepted > 0 {
		last = grid.TickOf(st.MaxStartUS, grid.OperationalTickUS)
	}
	processed := func() bool {
		return prog.featuresClosed() > last && (run.shadow == nil || prog.twinEvaluated() >= last)
	}
	waitUntil(dctx, processed)
	done := processed()
	_ = stopBack() // runLive's last stop returns its error
	var sinkBehind int64
	var sinkErr error
	if run.sink != nil {
		nm := lo.pipe.Names
		sinkBehind, sinkErr = waitCommitted(dctx, run.env.Brokers, pipeline.GroupsOf(nm, lo.pipe.RunID).Sink,
			[]string{nm.Topic(sink.TopicRuns), nm.Topic(schemas.TopicDecisions), nm.Topic(schemas.TopicRewards), nm.Topic(schemas.TopicOutcomes)}, logger)
	}
	if done && sinkBehind == 0 && sinkErr == nil {
		var parts []string
		for _, r := range []struct {
			name string
			on   bool
		}{{"the features", true}, {"the shadow twin", run.shadow != nil}, {"the sink", run.sink != nil}} {
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
		if run.shadow != nil {
			ts := run.shadow.Stats()
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

// waitUntil polls ok until it holds or ctx is done.
func waitUntil(ctx context.Context, ok func() bool) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waitCommitted waits until group has committed the end offsets that
// topics have now, and returns how many records it is still behind when
// ctx ends first.
func waitCommitted(ctx context.Context, brokers []string, group string, topics []string, logger *slog.Logger) (int64, error) {
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
	waitUntil(ctx, func() bool {
		m, err := behind()
		if err != nil {
			lastErr = err
			return false
		}
		n, lastErr = m, nil
		return m == 0
	})
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
func writeLiveRun(ctx context.Context, brokers []string, lo liveOpts, layers []schemas.Layer) error {
	pol := map[schemas.Layer]string{}
	for _, l := range layers {
		pol[l] = lo.policies[l]
	}
	v, err := proto.Marshal(&stratapb.Run{RunId: lo.pipe.RunID, StartedUnixMs: time.Now().UnixMilli(), Source: "live", Seed: lo.seed,
		Speed: "wall-clock", StrategicPolicy: pol[schemas.Strategic], TacticalPolicy: pol[schemas.Tactical],
		OperationalPolicy: pol[schemas.Operational], DefaultPlacement: lo.placement.String(), TraceEpoch: liveEpoch.Format(time.RFC3339),
		ConfigJson: pipeline.RunConfigJSON(lo.conf.runJSON(nil), lo.pipe.Partitions, lo.pipe.Names)})
	if err != nil {
		return fmt.Errorf("encoding the live run record: %w", err)
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating a kafka client for the run record: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: lo.pipe.Names.Topic(sink.TopicRuns), Key: []byte(lo.pipe.RunID), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("writing the live run record: %w", err)
	}
	return nil
}

// jsFor opens JetStream on nc and makes sure strata's streams exist under
// names.
func jsFor(ctx context.Context, nc *nats.Conn, names schemas.Names) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{Names: names}); err != nil {
		return nil, err
	}
	return js, nil
}

// ingestLoadMain runs `strata ingest load`: a trace sent as live telemetry
// over HTTP at a target rate.
func ingestLoadMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata ingest load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sf          sourceFlags
		url         = fs.String("url", "http://127.0.0.1:8080", "base `URL` of strata ingest")
		token       = fs.String("token", "", "bearer `TOKEN` (or STRATA_INGEST_TOKEN)")
		format      = fs.String("format", "json", "request format: json, otlp-proto or otlp-json")
		rateF       = fs.Float64("rate", 1000, "target records per second (0: as fast as the service takes them)")
		batch       = fs.Int("batch", 100, "records per request")
		concurrency = fs.Int("concurrency", 4, "requests in flight")
		limit       = fs.Int64("limit", 0, "stop after this many records (0: the whole trace)")
		insecure    = fs.Bool("insecure-skip-verify", false, "do not verify the server's TLS certificate (self-signed development certificates)")
		logLevel    = fs.String("log-level", "warn", "log level: debug, info, warn, error")
	)
	sf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("STRATA_INGEST_TOKEN")
	}
	src, name, _, closeSrc, err := sf.open()
	if err != nil {
		return err
	}
	defer closeSrc()
	client := &http.Client{Timeout: 30 * time.Second}
	if *insecure {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // asked for by flag, for development certificates
	}
	res, err := loadgen.Run(ctx, loadgen.Config{URL: *url, Token: *token, Format: loadgen.Format(*format), Rate: *rateF,
		Batch: *batch, Concurrency: *concurrency, Limit: *limit, Client: client}, src, logger)
	fmt.Fprintf(stdout, "load %s → %s (%s): %d records in %d requests, %d accepted, %d rejected, %d failed, %d retries; %.0f records/s; latency p50 %v p90 %v p99 %v max %v\n",
		name, *url, *format, res.Records, res.Requests, res.Accepted, res.Rejected, res.Failed, res.Retries, res.RecordsPerSec,
		res.P50.Round(time.Microsecond), res.P90.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d records were never acknowledged", res.Failed)
	}
	return nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/strata-rl/strata/schemas"
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
	return ingest.Config{Brokers: brokers, RunID: f.runID, Lateness: f.lateness, WatermarkEvery: f.wmEvery, Tokens: toks,
		NoAuth: f.noAuth, MaxBodyBytes: f.maxBody, RatePerToken: f.ratePerToken, RateBurst: f.rateBurst,
		NoWatermarks: f.noWatermarks, Topic: f.topic}, nil
}

// ingestMain runs `strata ingest` (the HTTP service) or `strata ingest load`.
func ingestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "load" {
		return ingestLoadMain(ctx, args[1:], stdout, stderr)
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
	fs.StringVar(&inf.topic, "topic", schemas.TopicTelemetry, "telemetry `TOPIC` (tests use scratch topics; the other roles read strata.telemetry.v1)")
	if err := fs.Parse(args); err != nil {
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
		js, err := jsFor(ctx, nc)
		if err != nil {
			return err
		}
		view := newDecisionView(inf.runID, pl, logger, reg)
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

func newDecisionView(runID string, pl cloud.Placement, logger *slog.Logger, reg prometheus.Registerer) *decisions.View {
	return decisions.NewView(decisions.Config{RunID: runID, Epoch: liveEpoch, Default: decisions.Placement{
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
		trans    = fs.String("transitions", "auto", "layers whose transitions the shadow twin writes to strata.transitions.v1 for `strata learner --run-id <run>`: a list, none, or auto (the layers served by dqn or ppo)")
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
--nats or --clickhouse are given. Stop it with Ctrl-C: it shuts down in
order and loses no acknowledged record. See docs/ingest.md.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
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
	lo := liveOpts{
		pipe: pipelineOpts{brokers: kafka.ParseBrokers(cf.kafka), natsURL: cf.nats, partitions: cf.partitions,
			epoch: liveEpoch, runID: inf.runID, logger: logger, reg: newRegistry()},
		ingest: icfg, listen: inf.listen, tlsCert: inf.tlsCert, tlsKey: inf.tlsKey,
		policies: map[schemas.Layer]string{schemas.Strategic: *stratPol, schemas.Tactical: *tact, schemas.Operational: *oper},
		models:   *models, placement: pl, seed: *polSeed, act: *act, shadow: *shadow, transitions: trLayers,
	}
	if !*noStore {
		lo.store = stf.target()
	}
	return runLive(ctx, lo, stdout, nil)
}

// liveOpts configures runLive.
type liveOpts struct {
	pipe                    pipelineOpts
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
}

// liveRun is a running live process, for tests.
type liveRun struct {
	addr     string
	env      *env
	ingest   *ingest.Server
	features *features.Service
	shadow   *twin.Service
	sink     *sink.Sink
}

// runLive runs live mode until ctx is done, then shuts down in order: the
// HTTP service first (every record it acknowledged is on Kafka when it
// returns), then the back end. ready, if set, is called once it serves.
func runLive(ctx context.Context, lo liveOpts, stdout io.Writer, ready func(*liveRun)) error {
	logger, reg := lo.pipe.logger, lo.pipe.reg
	e, closeEnv, err := lo.pipe.prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	icfg := lo.ingest
	icfg.Brokers, icfg.RunID = e.brokers, lo.pipe.runID
	if g, ok := reg.(prometheus.Gatherer); ok {
		icfg.Gatherer = g
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return err
	}
	mcfg := cloud.DefaultConfig()
	mcfg.Epoch = liveEpoch
	model, err := cloud.NewModel(cat, mcfg)
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

	// The back end (stops last): features, agents, the decisions view, the
	// shadow twin and the sink.
	bctx, stopBack := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBack()
	var back errgroup.Group
	stop := func() error {
		stopBack()
		return back.Wait()
	}
	kv, err := e.js.KeyValue(ctx, schemas.BucketCheckpoints)
	if err != nil {
		return fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	runID := lo.pipe.runID
	if run.features, err = features.NewService(ctx, features.Config{Brokers: e.brokers, Group: "strata-features-" + runID,
		Epoch: liveEpoch, RunID: runID}, natsbus.NewBatchPublisher(e.js, 0), features.KVCheckpoints{KV: kv},
		logger.With("role", "features"), reg); err != nil {
		return err
	}
	view := newDecisionView(runID, lo.placement, logger, reg)
	icfg.Decisions = view.Handler()
	back.Go(func() error { return run.features.Run(bctx) })
	back.Go(func() error { return view.Follow(bctx, e.js) })
	for _, l := range layers {
		w := worker.New(e.js, natsbus.NewBatchPublisher(e.js, 0), l, runID, tickPol[l], logger.With("role", "agent", "layer", l))
		back.Go(func() error { return w.Run(bctx) })
		if p := actPol[l]; p != nil {
			nc, ok := e.nc.(*nats.Conn)
			if !ok {
				return errors.Join(errors.New("strata live: the NATS connection cannot serve act requests"), stop())
			}
			srv := worker.NewActServer(nc, l, p, logger.With("role", "act", "layer", l))
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
		eng, err := twin.NewEngine(model, twin.Config{RunID: runID, DefaultPlacement: lo.placement, Reward: cloud.DefaultRewardConfig(),
			Outcomes: true, Internal: map[schemas.Layer]twin.InternalPolicy{}, Transitions: tr},
			twin.NewProfileBuilder(liveEpoch).Build(model))
		if err != nil {
			return errors.Join(err, stop())
		}
		if run.shadow, err = twin.NewService(twin.ServiceConfig{Brokers: e.brokers, RunID: runID, Layers: layers, Shadow: true,
			Transitions: lo.transitions, TelemetryPartitions: lo.pipe.partitions}, eng, e.js, logger.With("role", "shadow")); err != nil {
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
		if run.sink, err = sink.New(ctx, sink.Config{Brokers: e.brokers, Group: "strata-sink-" + runID, Partitions: lo.pipe.partitions,
			Outcomes: true, RunID: runID}, st, logger.With("role", "sink"), reg); err != nil {
			return errors.Join(err, stop())
		}
		back.Go(func() error { return run.sink.Run(bctx) })
	}

	if run.sink != nil || !e.embeddedKafka {
		// The live run's row in the runs table (a restart replaces it).
		if err := writeLiveRun(ctx, e.brokers, lo, layers); err != nil {
			return errors.Join(err, stop())
		}
	}
	if e.embeddedKafka {
		// The in-process broker keeps every record in memory: drop what
		// every reader has committed.
		tcl, err := kgo.NewClient(kafka.CommonOpts(e.brokers, logger)...)
		if err != nil {
			return errors.Join(fmt.Errorf("creating the trimming client: %w", err), stop())
		}
		defer tcl.Close()
		telemetryReaders := []string{"strata-features-" + runID}
		if lo.shadow {
			telemetryReaders = append(telemetryReaders, "strata-shadow-"+runID)
		}
		back.Go(func() error {
			trimConsumed(bctx, tcl, telemetryReaders, []string{schemas.TopicTelemetry}, 5*time.Second, logger)
			return nil
		})
		if run.sink != nil {
			back.Go(func() error {
				trimConsumed(bctx, tcl, []string{"strata-sink-" + runID}, []string{schemas.TopicDecisions, schemas.TopicRewards, schemas.TopicOutcomes}, 5*time.Second, logger)
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
	// The back end commits only what it has durably handled: what it has
	// not reached yet stays on Kafka for its next start.
	backErr := stop()
	st := run.ingest.Stats()
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
	if backErr != nil && !errors.Is(backErr, context.Canceled) {
		return backErr
	}
	return nil
}

// writeLiveRun writes the live run's record for the runs table.
func writeLiveRun(ctx context.Context, brokers []string, lo liveOpts, layers []schemas.Layer) error {
	pol := map[schemas.Layer]string{}
	for _, l := range layers {
		pol[l] = lo.policies[l]
	}
	v, err := proto.Marshal(&stratapb.Run{RunId: lo.pipe.runID, StartedUnixMs: time.Now().UnixMilli(), Source: "live", Seed: lo.seed,
		Speed: "wall-clock", StrategicPolicy: pol[schemas.Strategic], TacticalPolicy: pol[schemas.Tactical],
		OperationalPolicy: pol[schemas.Operational], DefaultPlacement: lo.placement.String(), TraceEpoch: liveEpoch.Format(time.RFC3339)})
	if err != nil {
		return fmt.Errorf("encoding the live run record: %w", err)
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating a kafka client for the run record: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: sink.TopicRuns, Key: []byte(lo.pipe.runID), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("writing the live run record: %w", err)
	}
	return nil
}

// jsFor opens JetStream on nc and makes sure strata's streams exist.
func jsFor(ctx context.Context, nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{}); err != nil {
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
	if err := fs.Parse(args); err != nil {
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

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

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
		defPl    = fs.String("default-placement", pipeline.DefaultPlacement, "placement the decisions API reports before any decision")
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
		view := pipeline.NewDecisionView(inf.runID, names, pl, logger, reg)
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
		stratPol = fs.String("strategic", pipeline.DefaultStrategicPolicy, "strategic policy (daily, per app): "+strings.Join(agents.Names(schemas.Strategic), ", ")+", dqn (with --models), or none")
		tact     = fs.String("tactical", pipeline.DefaultTacticalPolicy, "tactical policy (hourly, per function): "+strings.Join(agents.Names(schemas.Tactical), ", ")+", ppo (with --models), or none")
		oper     = fs.String("operational", pipeline.DefaultOperationalPolicy, "operational policy (15 s, per active function): "+strings.Join(agents.Names(schemas.Operational), ", ")+", lstm (with --models), or none")
		models   = fs.String("models", "", "`DIR` of trained checkpoints for dqn, ppo and lstm")
		defPl    = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		polSeed  = fs.Int64("policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
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
	lo := pipeline.LiveConfig{
		Config: pipeline.Config{Brokers: cf.pipe.Brokers, NATSURL: cf.pipe.NATSURL, Partitions: cf.pipe.Partitions, Names: cf.pipe.Names,
			Epoch: pipeline.LiveEpoch, RunID: inf.runID, Logger: logger, Registerer: reg},
		Ingest: icfg, Listen: inf.listen, TLSCert: inf.tlsCert, TLSKey: inf.tlsKey,
		Policies: map[schemas.Layer]string{schemas.Strategic: *stratPol, schemas.Tactical: *tact, schemas.Operational: *oper},
		Models:   *models, Placement: pl, Seed: *polSeed, Act: *act, Shadow: *shadow, Transitions: trLayers,
		DrainTimeout: *drainT, NewModel: conf.newModel, RunJSON: conf.runJSON(nil),
	}
	if !*noStore {
		lo.Store = stf.target()
	}
	return pipeline.Live(ctx, lo, stdout, nil)
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

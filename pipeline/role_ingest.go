package pipeline

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
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/schemas"
)

// IngestFlags are the flags of the HTTP ingest service, shared by
// `strata ingest` and `strata live`, as the command line gave them.
type IngestFlags struct {
	Listen, RunID      string
	Lateness, WMEvery  time.Duration
	Tokens, TokensFile string
	// ReadTokensFile holds the read-only tokens (ingest.Config.ReadTokens).
	ReadTokensFile  string
	NoAuth          bool
	MaxBody         int64
	RatePerToken    float64
	RateBurst       int
	TLSCert, TLSKey string
	NoWatermarks    bool
	// Writer names the instance in its watermarks (ingest.Config.Writer).
	Writer string
	// The connection limits (ingest.Config).
	HeaderTimeout, BodyTimeout, ReadTimeout time.Duration
	WriteTimeout, IdleTimeout               time.Duration
	// ProduceTimeout bounds the wait for Kafka's acknowledgements of a
	// request (ingest.Config.ProduceTimeout).
	ProduceTimeout        time.Duration
	MaxConns, MaxInFlight int
	// Topic is set by `strata ingest --topic` only: in `strata live` the
	// features and the shadow twin read the standard topic.
	Topic string
}

// DefaultIngestFlags are the ingest service's defaults.
func DefaultIngestFlags() IngestFlags {
	return IngestFlags{Listen: "127.0.0.1:8080", RunID: ingest.DefaultRunID, Lateness: time.Minute, WMEvery: time.Second, MaxBody: 8 << 20,
		HeaderTimeout: ingest.DefaultReadHeaderTimeout, BodyTimeout: ingest.DefaultBodyTimeout, WriteTimeout: ingest.DefaultWriteTimeout, ProduceTimeout: ingest.DefaultProduceTimeout,
		IdleTimeout: ingest.DefaultIdleTimeout, MaxConns: ingest.DefaultMaxConns, MaxInFlight: ingest.DefaultMaxInFlight}
}

// RegisterFlags registers the flags (--topic apart), each name preceded
// by prefix; their defaults are f's values.
func (f *IngestFlags) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&f.Listen, prefix+"listen", f.Listen, "HTTP listen `ADDR`")
	fs.StringVar(&f.RunID, prefix+"run-id", f.RunID, "run id of the live telemetry")
	fs.DurationVar(&f.Lateness, prefix+"lateness", f.Lateness, "allowed lateness: the watermark is now minus this; records starting before it (invocations longer than it) are rejected as late, and decisions lag by about as much")
	fs.DurationVar(&f.WMEvery, prefix+"watermark-every", f.WMEvery, "interval between watermarks")
	fs.StringVar(&f.Tokens, prefix+"tokens", f.Tokens, "accepted bearer `TOKENS`, comma-separated (or STRATA_INGEST_TOKENS)")
	fs.StringVar(&f.TokensFile, prefix+"tokens-file", f.TokensFile, "`FILE` of accepted bearer tokens, one per line")
	fs.StringVar(&f.ReadTokensFile, prefix+"read-tokens-file", f.ReadTokensFile, "`FILE` of read-only bearer tokens, one per line (or STRATA_INGEST_READ_TOKENS): they may read /v1/decisions and /metrics, and a write with one is refused with 403; the --tokens may read and write")
	fs.BoolVar(&f.NoAuth, prefix+"dev-no-auth", f.NoAuth, "accept requests without a bearer token (development only)")
	fs.Int64Var(&f.MaxBody, prefix+"max-body", f.MaxBody, "largest request body in `BYTES` (after decompression)")
	fs.Float64Var(&f.RatePerToken, prefix+"rate-per-token", f.RatePerToken, "records per second per token (0: no limit)")
	fs.IntVar(&f.RateBurst, prefix+"rate-burst", f.RateBurst, "rate limiter burst in records (default: one second's worth, at least 1000)")
	fs.StringVar(&f.TLSCert, prefix+"tls-cert", f.TLSCert, "TLS certificate `FILE` (with --tls-key: serve HTTPS)")
	fs.StringVar(&f.TLSKey, prefix+"tls-key", f.TLSKey, "TLS key `FILE`")
	fs.BoolVar(&f.NoWatermarks, prefix+"no-watermarks", f.NoWatermarks, "do not write watermarks (this instance's records are then safe only within another instance's lateness; docs/ingest.md)")
	fs.StringVar(&f.Writer, prefix+"writer-id", f.Writer, "`ID` of this instance in its watermarks: behind a load balancer each instance writes its own and a tick closes at the minimum over the live ones (docs/ingest.md); a restarted instance with the same id takes its place back at once (default: host name and --listen address; with port 0, host name and process id)")
	fs.DurationVar(&f.HeaderTimeout, prefix+"header-timeout", f.HeaderTimeout, "close a connection that has not sent a request's complete headers within this")
	fs.DurationVar(&f.BodyTimeout, prefix+"body-timeout", f.BodyTimeout, "answer 408 and close the connection when a request's body is not in within this of its headers; nothing of it is written")
	fs.DurationVar(&f.ReadTimeout, prefix+"read-timeout", f.ReadTimeout, "bound on reading a whole request, headers and body (default: --header-timeout plus --body-timeout); the telemetry and traces bodies have --body-timeout instead")
	fs.DurationVar(&f.WriteTimeout, prefix+"write-timeout", f.WriteTimeout, "bound on a request from the end of its headers to the end of its reply, the wait for Kafka's acknowledgements included")
	fs.DurationVar(&f.ProduceTimeout, prefix+"produce-timeout", f.ProduceTimeout, "answer 503 with Retry-After: 1 when Kafka has not acknowledged a request's records within this (Kafka down or slow; at most half of --write-timeout)")
	fs.DurationVar(&f.IdleTimeout, prefix+"idle-timeout", f.IdleTimeout, "close a keep-alive connection idle for this long")
	fs.IntVar(&f.MaxConns, prefix+"max-conns", f.MaxConns, "open connections at most; one more is answered 503 (Connection: close) and closed unread")
	fs.IntVar(&f.MaxInFlight, prefix+"max-in-flight", f.MaxInFlight, "requests handled at once at most (each holds up to --max-body); one more is answered 503 with Retry-After: 1, its body unread")
}

// Validate reports what Config would refuse.
func (f *IngestFlags) Validate() error {
	_, err := f.Config(nil)
	return err
}

// Config builds the ingest configuration (tokens from the flag, the
// environment and the file).
func (f *IngestFlags) Config(brokers []string) (ingest.Config, error) {
	var toks []string
	for _, src := range []string{f.Tokens, os.Getenv("STRATA_INGEST_TOKENS")} {
		toks = append(toks, SplitList(src)...)
	}
	if f.TokensFile != "" {
		ft, err := ReadTokens(f.TokensFile)
		if err != nil {
			return ingest.Config{}, fmt.Errorf("reading --tokens-file: %w", err)
		}
		toks = append(toks, ft...)
	}
	readToks := SplitList(os.Getenv("STRATA_INGEST_READ_TOKENS"))
	if f.ReadTokensFile != "" {
		ft, err := ReadTokens(f.ReadTokensFile)
		if err != nil {
			return ingest.Config{}, fmt.Errorf("reading --read-tokens-file: %w", err)
		}
		readToks = append(readToks, ft...)
	}
	if len(toks) == 0 && !f.NoAuth {
		return ingest.Config{}, errors.New("no bearer tokens: give --tokens, --tokens-file or STRATA_INGEST_TOKENS, or --dev-no-auth for development")
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return ingest.Config{}, errors.New("--tls-cert and --tls-key go together")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--header-timeout", f.HeaderTimeout}, {"--body-timeout", f.BodyTimeout}, {"--read-timeout", f.ReadTimeout},
		{"--write-timeout", f.WriteTimeout}, {"--idle-timeout", f.IdleTimeout}, {"--produce-timeout", f.ProduceTimeout}} {
		if d.v < 0 {
			return ingest.Config{}, fmt.Errorf("%s %v: a timeout cannot be negative", d.name, d.v)
		}
	}
	if f.MaxConns < 1 || f.MaxInFlight < 1 {
		return ingest.Config{}, fmt.Errorf("--max-conns %d, --max-in-flight %d: both must be at least 1", f.MaxConns, f.MaxInFlight)
	}
	writer := f.Writer
	if writer == "" {
		writer = ingest.DefaultWriter(f.Listen)
	}
	return ingest.Config{Brokers: brokers, RunID: f.RunID, Lateness: f.Lateness, WatermarkEvery: f.WMEvery, Tokens: toks, ReadTokens: readToks,
		NoAuth: f.NoAuth, MaxBodyBytes: f.MaxBody, RatePerToken: f.RatePerToken, RateBurst: f.RateBurst,
		NoWatermarks: f.NoWatermarks, Writer: writer, Topic: f.Topic,
		ReadHeaderTimeout: f.HeaderTimeout, BodyTimeout: f.BodyTimeout, ReadTimeout: f.ReadTimeout,
		WriteTimeout: f.WriteTimeout, IdleTimeout: f.IdleTimeout, ProduceTimeout: f.ProduceTimeout, MaxConns: f.MaxConns, MaxInFlight: f.MaxInFlight}, nil
}

// IngestRole is `strata ingest`: the HTTP ingest service alone against an
// external Kafka and, with NATSURL, the decisions API.
type IngestRole struct {
	Ingest IngestFlags
	// Brokers are Kafka's seed brokers (required), comma-separated.
	Brokers string
	// NATSURL, if set, serves the decisions API from the decision streams.
	NATSURL string
	// Placement is the placement the decisions API reports before any
	// decision.
	Placement string
	LogLevel  string
	Names     schemas.Names
}

// DefaultIngestRole is the ingest role's defaults.
func DefaultIngestRole() IngestRole {
	return IngestRole{Ingest: DefaultIngestFlags(), Placement: DefaultPlacement, LogLevel: DefaultLogLevel}
}

// RegisterFlags registers the role's flags, --topic included, each name
// preceded by prefix; their defaults are r's values.
func (r *IngestRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Ingest.RegisterFlags(fs, prefix)
	fs.StringVar(&r.Ingest.Topic, prefix+"topic", r.Ingest.Topic, "telemetry `TOPIC` (default strata.telemetry.v1 under --prefix; benchmarks use scratch topics, the other roles read strata.telemetry.v1)")
	fs.StringVar(&r.Brokers, prefix+"kafka", r.Brokers, "Kafka seed brokers `host:port[,…]` (required)")
	fs.StringVar(&r.NATSURL, prefix+"nats", r.NATSURL, "NATS `URL`: serve the decisions API from the decision streams")
	fs.StringVar(&r.Placement, prefix+"default-placement", r.Placement, "placement the decisions API reports before any decision")
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
	RegisterPrefixFlag(fs, prefix+"prefix", &r.Names)
}

// Validate reports a name prefix that is not one and a missing --kafka.
func (r *IngestRole) Validate() error {
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	if r.Brokers == "" {
		return errors.New("strata ingest needs --kafka (strata live runs everything embedded)")
	}
	return nil
}

// Run serves until ctx is done and prints the service's counters to
// stdout.
func (r *IngestRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	cfg, err := r.Ingest.Config(kafka.ParseBrokers(r.Brokers))
	if err != nil {
		return err
	}
	cfg.Names = r.Names
	pl, err := ParsePlacement(r.Placement)
	if err != nil {
		return err
	}
	reg := NewRegistry()
	cfg.Gatherer = reg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g errgroup.Group
	if r.NATSURL != "" {
		nc, err := natsbus.Connect(r.NATSURL, "strata-ingest", natsbus.WithLogger(logger))
		if err != nil {
			return err
		}
		defer func() { _ = nc.Drain() }()
		js, err := OpenJetStream(ctx, nc, r.Names)
		if err != nil {
			return err
		}
		view := NewDecisionView(r.Ingest.RunID, r.Names, pl, logger, reg)
		cfg.Decisions = view.Handler()
		g.Go(func() error { return view.Follow(ctx, js) })
	}
	srv, err := ingest.New(ctx, cfg, logger.With("role", "ingest"), reg)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", r.Ingest.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", r.Ingest.Listen, err)
	}
	fmt.Fprintf(stdout, "ingest: serving on %s (run %s, lateness %v)\n", ln.Addr(), r.Ingest.RunID, r.Ingest.Lateness)
	err = srv.Serve(ctx, ln, r.Ingest.TLSCert, r.Ingest.TLSKey)
	cancel()
	if gerr := g.Wait(); err == nil && gerr != nil && !errors.Is(gerr, context.Canceled) {
		err = gerr
	}
	st := srv.Stats()
	fmt.Fprintf(stdout, "ingest: %d requests, %d records accepted, %d rejected, %d requests refused, %d watermarks\n",
		st.Requests, st.Accepted, st.Rejected, st.Refused, st.Watermarks)
	return err
}

// LoadRole is `strata ingest load`: a trace sent to strata ingest as live
// telemetry over HTTP at a target rate.
type LoadRole struct {
	Source Source
	// URL is strata ingest's base URL; Token the bearer token ("" reads
	// STRATA_INGEST_TOKEN).
	URL, Token string
	// Format is json, otlp-proto or otlp-json.
	Format string
	// Rate is the target records per second (0: as fast as taken).
	Rate float64
	// Batch is records per request, Concurrency requests in flight, Limit
	// the records to send (0: the whole trace).
	Batch, Concurrency int
	Limit              int64
	// Insecure skips verifying the server's TLS certificate.
	Insecure bool
	LogLevel string
}

// DefaultLoadRole is the load role's defaults.
func DefaultLoadRole() LoadRole {
	return LoadRole{Source: DefaultSource(), URL: "http://127.0.0.1:8080", Format: "json", Rate: 1000, Batch: 100, Concurrency: 4, LogLevel: DefaultLogLevel}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *LoadRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Source.RegisterFlags(fs, prefix)
	fs.StringVar(&r.URL, prefix+"url", r.URL, "base `URL` of strata ingest")
	fs.StringVar(&r.Token, prefix+"token", r.Token, "bearer `TOKEN` (or STRATA_INGEST_TOKEN)")
	fs.StringVar(&r.Format, prefix+"format", r.Format, "request format: json, otlp-proto or otlp-json")
	fs.Float64Var(&r.Rate, prefix+"rate", r.Rate, "target records per second (0: as fast as the service takes them)")
	fs.IntVar(&r.Batch, prefix+"batch", r.Batch, "records per request")
	fs.IntVar(&r.Concurrency, prefix+"concurrency", r.Concurrency, "requests in flight")
	fs.Int64Var(&r.Limit, prefix+"limit", r.Limit, "stop after this many records (0: the whole trace)")
	fs.BoolVar(&r.Insecure, prefix+"insecure-skip-verify", r.Insecure, "do not verify the server's TLS certificate (self-signed development certificates)")
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
}

// Validate reports a trace file given together with --synth-days.
func (r *LoadRole) Validate() error { return r.Source.Validate() }

// Run sends the trace and prints what the service answered to stdout.
func (r *LoadRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := NewLogger(stderr, r.LogLevel)
	if err != nil {
		return err
	}
	token := r.Token
	if token == "" {
		token = os.Getenv("STRATA_INGEST_TOKEN")
	}
	src, name, _, closeSrc, err := r.Source.Open()
	if err != nil {
		return err
	}
	defer closeSrc()
	client := &http.Client{Timeout: 30 * time.Second}
	if r.Insecure {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // asked for by flag, for development certificates
	}
	res, err := loadgen.Run(ctx, loadgen.Config{URL: r.URL, Token: token, Format: loadgen.Format(r.Format), Rate: r.Rate,
		Batch: r.Batch, Concurrency: r.Concurrency, Limit: r.Limit, Client: client}, src, logger)
	fmt.Fprintf(stdout, "load %s → %s (%s): %d records in %d requests, %d accepted, %d rejected, %d failed, %d retries; %.0f records/s; latency p50 %v p90 %v p99 %v max %v\n",
		name, r.URL, r.Format, res.Records, res.Requests, res.Accepted, res.Rejected, res.Failed, res.Retries, res.RecordsPerSec,
		res.P50.Round(time.Microsecond), res.P90.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d records were never acknowledged", res.Failed)
	}
	return nil
}

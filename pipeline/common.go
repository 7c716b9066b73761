package pipeline

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/bearer"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// Common are the settings the commands that run the pipeline share: where
// Kafka and NATS are and how names are prefixed (Config's flags), the log
// level, where metrics are served and the trace epoch, all as the command
// line gave them.
type Common struct {
	Config
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Metrics is where and how Prometheus metrics are served.
	Metrics MetricsFlags
	// Epoch is trace time 0 in RFC 3339.
	Epoch string
}

// DefaultCommon is the common settings' defaults: embedded Kafka and NATS,
// DefaultLogLevel, no metrics, grid.DefaultEpoch.
func DefaultCommon() Common {
	return Common{LogLevel: DefaultLogLevel, Epoch: grid.DefaultEpoch.Format(time.RFC3339)}
}

// RegisterFlags registers the common flags, each name preceded by prefix,
// --metrics-addr included; their defaults are c's values (DefaultCommon's
// where c's are empty).
func (c *Common) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.RegisterBatchFlags(fs, prefix)
	c.Metrics.RegisterFlags(fs, prefix, "serve Prometheus metrics on `ADDR` (e.g. :9464); off by default")
}

// MetricsFlags are where and how a command serves its Prometheus metrics:
// the address, the bearer tokens a scrape must present and the TLS
// certificate, as the command line gave them.
type MetricsFlags struct {
	// Addr serves the metrics; "" serves none.
	Addr string
	// TokensFile names a file of bearer tokens, one per line, of which a
	// scrape must present one ("": none needed).
	TokensFile string
	// TLSCert and TLSKey, both set, serve HTTPS.
	TLSCert, TLSKey string
}

// RegisterFlags registers --metrics-addr (with help addrHelp),
// --metrics-tokens-file, --metrics-tls-cert and --metrics-tls-key, each
// name preceded by prefix.
func (m *MetricsFlags) RegisterFlags(fs *flag.FlagSet, prefix, addrHelp string) {
	fs.StringVar(&m.Addr, prefix+"metrics-addr", m.Addr, addrHelp)
	fs.StringVar(&m.TokensFile, prefix+"metrics-tokens-file", m.TokensFile, "`FILE` of bearer tokens, one per line, of which a scrape of --metrics-addr must present one (Authorization: Bearer …); without it the metrics are open to whoever reaches the address")
	fs.StringVar(&m.TLSCert, prefix+"metrics-tls-cert", m.TLSCert, "serve --metrics-addr over HTTPS with this PEM certificate `FILE` (with --metrics-tls-key)")
	fs.StringVar(&m.TLSKey, prefix+"metrics-tls-key", m.TLSKey, "the PEM private key `FILE` of --metrics-tls-cert")
}

// RegisterBatchFlags registers the common flags except --metrics-addr, for
// the batch commands (eval, export, bench), which run one pipeline after
// another, each with a registry of its own, and serve no metrics.
func (c *Common) RegisterBatchFlags(fs *flag.FlagSet, prefix string) {
	c.Config.RegisterFlags(fs, prefix)
	def := DefaultCommon()
	if c.LogLevel == "" {
		c.LogLevel = def.LogLevel
	}
	if c.Epoch == "" {
		c.Epoch = def.Epoch
	}
	fs.StringVar(&c.LogLevel, prefix+"log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.Epoch, prefix+"trace-epoch", c.Epoch, "wall-clock instant of trace time 0 (sets hour of day)")
}

// Validate reports what Config.Validate reports and a log level or trace
// epoch that does not parse.
func (c *Common) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if _, err := NewLogger(io.Discard, c.LogLevel); err != nil {
		return err
	}
	_, err := ParseEpoch(c.Epoch)
	return err
}

// LoopBasics parses what every closed-loop command takes from its common
// flags: the logger (writing to w), the trace epoch and the default
// placement.
func (c *Common) LoopBasics(w io.Writer, placement string) (*slog.Logger, time.Time, cloud.Placement, error) {
	logger, err := NewLogger(w, c.LogLevel)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	epoch, err := ParseEpoch(c.Epoch)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	pl, err := ParsePlacement(placement)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	return logger, epoch, pl, nil
}

// NewLogger returns a text logger on w at level (debug, info, warn or
// error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("parsing --log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// prepare is the start of a role's Run: it validates the role's
// configuration and makes its logger on stderr at level.
func prepare(role interface{ Validate() error }, stderr io.Writer, level string) (*slog.Logger, error) {
	if err := role.Validate(); err != nil {
		return nil, err
	}
	return NewLogger(stderr, level)
}

// ParseEpoch parses --trace-epoch, an RFC 3339 instant, in UTC.
func ParseEpoch(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing --trace-epoch %q (want RFC 3339, e.g. 2022-01-30T00:00:00Z): %w", s, err)
	}
	return t.UTC(), nil
}

// ParsePlacement parses provider/metro/memoryMB, e.g. aws/us-east/1024.
func ParsePlacement(s string) (cloud.Placement, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: want provider/metro/memoryMB, e.g. aws/us-east/1024", s)
	}
	p, err := cloud.ParseProvider(parts[0])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	m, err := cloud.ParseMetro(parts[1])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	mb, err := strconv.Atoi(parts[2])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: memory %q is not a number", s, parts[2])
	}
	t, err := cloud.TierOf(mb)
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	return cloud.Placement{Provider: p, Metro: m, Tier: t}, nil
}

// FormatPlacement writes a placement as ParsePlacement reads it.
func FormatPlacement(p cloud.Placement) string {
	return fmt.Sprintf("%s/%s/%d", p.Provider, p.Metro, p.Tier.MB())
}

// ParseLayers parses a comma-separated list of layer names; "none" or ""
// is the empty list.
func ParseLayers(s string) ([]schemas.Layer, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []schemas.Layer
	for _, n := range strings.Split(s, ",") {
		l, err := schemas.ParseLayer(strings.TrimSpace(n))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// NewRegistry returns a metrics registry with the Go and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ServeMetrics serves reg as m says until ctx is done; no address serves
// nothing. It listens, and reads the tokens and the certificate, before it
// returns, so a taken or malformed address, an unreadable or empty tokens
// file or a bad certificate fails the command before its role starts. With
// tokens a scrape without one of them gets 401 and no metrics.
func ServeMetrics(ctx context.Context, m MetricsFlags, reg *prometheus.Registry) error {
	if m.Addr == "" {
		return nil
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if m.TokensFile != "" {
		toks, err := ReadTokens(m.TokensFile)
		if err != nil {
			return fmt.Errorf("serving metrics on %s: --metrics-tokens-file: %w", m.Addr, err)
		}
		h = bearer.Require(bearer.NewSet(toks), h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if (m.TLSCert == "") != (m.TLSKey == "") {
		return fmt.Errorf("serving metrics on %s: --metrics-tls-cert and --metrics-tls-key go together", m.Addr)
	}
	if m.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(m.TLSCert, m.TLSKey)
		if err != nil {
			return fmt.Errorf("serving metrics on %s: loading --metrics-tls-cert/--metrics-tls-key: %w", m.Addr, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("serving metrics on %s: %w", m.Addr, err)
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// ReadTokens reads a file of bearer tokens, one per line; blank lines and
// lines starting with # are skipped. A file without a token is an error.
func ReadTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var toks []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			toks = append(toks, l)
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s holds no token", path)
	}
	return toks, nil
}

// WriteJSON writes v to path as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// OpenJetStream opens JetStream on nc and makes sure strata's streams exist
// under names.
func OpenJetStream(ctx context.Context, nc *nats.Conn, names schemas.Names) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, natsbus.PublishAsyncTimeoutOpt())
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{Names: names}); err != nil {
		return nil, err
	}
	return js, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// StoreFlags select the store: a ClickHouse server or a DuckDB file.
type StoreFlags struct {
	// File is the DuckDB file, used unless ClickHouse is set.
	File string
	// ClickHouse is a ClickHouse DSN.
	ClickHouse string
	// Retention bounds how long the rows of decisions, rewards and
	// outcomes are kept (sink.Config.Retention); 0 keeps them. Only the
	// commands that write the store register it (RegisterRetentionFlag).
	Retention time.Duration
	// SinkMaxLag bounds how far the sink may fall behind a closed loop's
	// twin (LoopConfig.SinkMaxLag); RegisterSinkLagFlag registers it.
	SinkMaxLag int64
}

// RegisterFlags registers --store and --clickhouse, each name preceded by
// prefix; --store defaults to f.File, or store.DefaultDuckDBFile.
func (f *StoreFlags) RegisterFlags(fs *flag.FlagSet, prefix string) {
	if f.File == "" {
		f.File = store.DefaultDuckDBFile
	}
	fs.StringVar(&f.File, prefix+"store", f.File, "DuckDB `FILE` of the tables (used unless --clickhouse is given)")
	fs.StringVar(&f.ClickHouse, prefix+"clickhouse", f.ClickHouse, "ClickHouse `DSN` (clickhouse://host:9000/database); the database is created if missing")
}

// RegisterRetentionFlag registers --retention, preceded by prefix, for a
// command that writes the store.
func (f *StoreFlags) RegisterRetentionFlag(fs *flag.FlagSet, prefix string) {
	fs.DurationVar(&f.Retention, prefix+"retention", f.Retention, "delete rows of decisions, rewards and outcomes written more than this long ago (wall clock of the write; swept every retention/24, 1m..1h); 0 keeps every row")
}

// RegisterSinkLagFlag registers --sink-max-lag, preceded by prefix, for a
// command that runs a closed loop into a store.
func (f *StoreFlags) RegisterSinkLagFlag(fs *flag.FlagSet, prefix string) {
	if f.SinkMaxLag == 0 {
		f.SinkMaxLag = DefaultSinkMaxLag
	}
	fs.Int64Var(&f.SinkMaxLag, prefix+"sink-max-lag", f.SinkMaxLag, "closed loop with a store: the most decision, reward and outcome `ROWS` the sink may be behind the twin; past it the twin holds its next tick until the sink catches up (backpressure: a slow store slows the loop instead of filling the broker); negative: no bound")
}

// Target returns the store to open: the ClickHouse DSN if set, else the
// DuckDB file.
func (f *StoreFlags) Target() string {
	if f.ClickHouse != "" {
		return f.ClickHouse
	}
	return f.File
}

package ingest

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/bearer"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// DefaultRunID is the run id live telemetry is written under unless the
// configuration names another.
const DefaultRunID = "live"

// The defaults of the connection limits (Config).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultProduceTimeout    = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxConns          = 1024
	DefaultMaxInFlight       = 64
)

// Config configures the ingest service.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RunID is the run the telemetry belongs to (default DefaultRunID).
	RunID string
	// Topic is the telemetry topic (default strata.telemetry.v1 under
	// Names; benchmarks use scratch topics).
	Topic string
	// Names prefixes the default telemetry topic and the dead-letter topic
	// (see schemas.Names).
	Names schemas.Names
	// Lateness is how far behind the wall clock a record may start: the
	// watermark is now − Lateness, and a record that starts before the
	// watermark is rejected as late (default 1 min). Telemetry arrives when
	// an invocation ends, so an invocation longer than the lateness (less
	// its delivery delay) is always late: choose it above the functions'
	// longest durations. Decisions lag the wall clock by about as much.
	Lateness time.Duration
	// WatermarkEvery is the interval between watermarks (default 1 s).
	WatermarkEvery time.Duration
	// MaxFuture bounds how far past the wall clock a record may end
	// (clock skew; default 1 min).
	MaxFuture time.Duration
	// Tokens are the accepted bearer tokens: they may write telemetry and
	// read decisions and metrics. Without tokens every request is refused
	// unless NoAuth is set.
	Tokens []string
	// ReadTokens may only read: GET /v1/decisions/… and GET /metrics; a
	// write with one is refused with 403.
	ReadTokens []string
	// NoAuth accepts requests without a token: for development only.
	NoAuth bool
	// MaxBodyBytes bounds a request body, after decompression
	// (default 8 MiB).
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds the wait for a request's headers, on a new
	// connection and after an idle one's next request began (default
	// DefaultReadHeaderTimeout): a connection that has not sent complete
	// headers by then is closed without an answer.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, counted from the end of
	// its headers (default DefaultBodyTimeout): a body still arriving then
	// is answered 408, the connection is closed and nothing of the request
	// is written.
	BodyTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body
	// (default ReadHeaderTimeout + BodyTimeout); on the telemetry and
	// traces endpoints the body's own deadline, BodyTimeout, replaces it
	// once the headers are in.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its reply, the body and the wait for Kafka's acknowledgements
	// included (default DefaultWriteTimeout): a reply not written by then
	// is cut off and the connection closed (the client retries; the
	// invocation ids make that harmless).
	WriteTimeout time.Duration
	// ProduceTimeout bounds the wait for Kafka to acknowledge a request's
	// records (default DefaultProduceTimeout, at most half of
	// WriteTimeout): when Kafka is down or slower than that, the request
	// is answered 503 with Retry-After: 1 (the client retries; the
	// invocation ids make records written twice harmless).
	ProduceTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits longer than
	// this for its next request (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConns caps the open connections (default DefaultMaxConns): a
	// connection beyond it is answered 503 with Connection: close before
	// anything is read from it, and closed (over TLS it is closed without
	// an answer: nothing can be said before a handshake).
	MaxConns int
	// MaxInFlight caps the requests being handled at once, each holding
	// up to MaxBodyBytes and its decoded records (default
	// DefaultMaxInFlight): beyond it an authenticated request is answered
	// 503 with Retry-After: 1 before anything of its body is read.
	MaxInFlight int
	// DrainWindow, if positive, makes Serve write one last watermark when
	// it stops, after the last request: the end of the DrainWindow-wide
	// window (windows aligned on the Unix epoch) that holds the latest
	// start it accepted, when that is past the current watermark. A
	// consumer that windows by DrainWindow then closes every window an
	// accepted record is in, so a process that drains its consumers before
	// it exits processes every record it acknowledged: strata live sets it
	// to the 15 s operational tick on the embedded broker, whose records
	// do not outlive the process. Leave it 0 with a durable broker:
	// records of those windows that arrive after a restart would be late.
	DrainWindow time.Duration
	// RatePerToken bounds the records per second of each token (0: no
	// limit); RateBurst is the bucket size in records (default: one
	// second's worth, at least 1,000).
	RatePerToken float64
	RateBurst    int
	// Decisions, if set, serves GET /v1/decisions/ behind the same
	// authentication.
	Decisions http.Handler
	// Gatherer, if set, serves /metrics (without authentication).
	Gatherer prometheus.Gatherer
	// Now is the clock (default time.Now); tests move it by hand.
	Now func() time.Time
	// NoWatermarks stops this instance from writing watermarks (its
	// records are then safe only within another instance's lateness).
	NoWatermarks bool
	// Writer names this instance in its watermark records
	// (schemas.HeaderWriter): several instances behind a load balancer
	// each write their own watermarks, and the readers close a tick at the
	// minimum over the live writers' (docs/ingest.md). Default: the host
	// name and the process id; a stable one (`strata ingest` defaults to
	// the host name and listen address) lets a restarted instance take its
	// own place back at once.
	Writer string
}

// Stats counts what the service did.
type Stats struct {
	Requests int64 `json:"requests"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	Refused  int64 `json:"refused"` // requests refused whole (auth, size, rate, body, in-flight cap)
	// RefusedConns counts the connections answered 503 and closed at the
	// MaxConns cap.
	RefusedConns int64 `json:"refused_conns"`
	Watermarks   int64 `json:"watermarks"`
	// WatermarkUS is the latest watermark written, Unix microseconds.
	WatermarkUS int64 `json:"watermark_us"`
	// MaxStartUS is the latest start of an accepted record, Unix
	// microseconds (0 before the first).
	MaxStartUS int64 `json:"max_start_us"`
}

type metrics struct {
	requests  *prometheus.CounterVec
	records   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	watermark prometheus.Gauge
	inFlight  prometheus.Gauge
	conns     prometheus.Gauge
	limited   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "requests_total", Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "records_total", Help: "Telemetry records by endpoint and result (accepted, rejected)."}, []string{"endpoint", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "rejected_total", Help: "Rejected telemetry records by reason (invalid, late, future)."}, []string{"reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "request_seconds", Help: "Request latency, acknowledged by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"endpoint"}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "watermark_seconds", Help: "The latest watermark written, Unix seconds."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "in_flight_requests", Help: "Requests being handled."}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "open_connections", Help: "Open connections, under the --max-conns cap."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "ingest",
			Name: "limited_total", Help: "Connections and requests cut off by a limit: max_conns and max_in_flight (503), body_timeout (408)."}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.records, m.rejected, m.latency, m.watermark, m.inFlight, m.conns, m.limited)
	}
	return m
}

// Server accepts live invocation telemetry over HTTP and writes it to
// strata.telemetry.v1; see the package documentation.
type Server struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	cl     *kgo.Client
	nParts int
	// wmHeaders are the headers of this instance's watermark records.
	wmHeaders []kgo.RecordHeader
	// tokens and readTokens are Config.Tokens and Config.ReadTokens.
	tokens, readTokens bearer.Set

	// wmMu orders records before watermarks: a request checks its records
	// against the watermark and hands them to the client under the read
	// lock; a watermark is computed and handed over under the write lock.
	// The client keeps a partition's records in the order they were handed
	// over, so every record that starts before a watermark precedes it.
	wmMu sync.RWMutex
	wm   int64

	// maxStart is the latest start of an accepted record (math.MinInt64
	// before the first); it moves under wmMu's read lock, with the records.
	maxStart atomic.Int64

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	// slots holds a token per request being handled (MaxInFlight).
	slots chan struct{}
	// pool holds the buffers of ended requests (*request).
	pool sync.Pool
	// refusing counts the refused connections still being answered;
	// refusals waits for them.
	refusing  atomic.Int64
	refusals  sync.WaitGroup
	openConns atomic.Int64

	requests, accepted, rejected, refused, refusedConns, watermarks atomic.Int64
}

// DefaultWriter is the watermark writer id of an instance that names
// none: the host name and listen, when listen is an address with a fixed
// port (the same writer after a restart), else the host name and the
// process id.
func DefaultWriter(listen string) string {
	host, _ := os.Hostname()
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "0" {
		return host + "/" + listen
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// New connects to Kafka and returns the service; Serve runs it.
func New(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.RunID == "" {
		cfg.RunID = DefaultRunID
	}
	if cfg.Topic == "" {
		cfg.Topic = cfg.Names.Topic(schemas.TopicTelemetry)
	}
	if cfg.Lateness <= 0 {
		cfg.Lateness = time.Minute
	}
	if cfg.WatermarkEvery <= 0 {
		cfg.WatermarkEvery = time.Second
	}
	if cfg.Writer == "" {
		cfg.Writer = DefaultWriter("")
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = time.Minute
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = max(1000, int(math.Ceil(cfg.RatePerToken)))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.ReadHeaderTimeout = cmp.Or(max(cfg.ReadHeaderTimeout, 0), DefaultReadHeaderTimeout)
	cfg.BodyTimeout = cmp.Or(max(cfg.BodyTimeout, 0), DefaultBodyTimeout)
	cfg.ReadTimeout = cmp.Or(max(cfg.ReadTimeout, 0), cfg.ReadHeaderTimeout+cfg.BodyTimeout)
	cfg.WriteTimeout = cmp.Or(max(cfg.WriteTimeout, 0), DefaultWriteTimeout)
	cfg.ProduceTimeout = min(cmp.Or(max(cfg.ProduceTimeout, 0), DefaultProduceTimeout), cfg.WriteTimeout/2)
	cfg.IdleTimeout = cmp.Or(max(cfg.IdleTimeout, 0), DefaultIdleTimeout)
	cfg.MaxConns = cmp.Or(max(cfg.MaxConns, 0), DefaultMaxConns)
	cfg.MaxInFlight = cmp.Or(max(cfg.MaxInFlight, 0), DefaultMaxInFlight)
	if len(cfg.Tokens) == 0 && !cfg.NoAuth {
		return nil, errors.New("configuring ingest: no bearer tokens; give tokens, or allow unauthenticated requests explicitly for development")
	}
	s := &Server{cfg: cfg, log: logger, m: newMetrics(reg), limiters: map[string]*rate.Limiter{},
		slots: make(chan struct{}, cfg.MaxInFlight), wmHeaders: kafka.WriterHeaders(cfg.Writer)}
	s.pool.New = func() any { return &request{batch: telemetry.Batch{RunID: cfg.RunID}} }
	s.maxStart.Store(math.MinInt64)
	if slices.Contains(cfg.Tokens, "") {
		return nil, errors.New("configuring ingest: an empty bearer token")
	}
	for _, t := range cfg.ReadTokens {
		if t == "" {
			return nil, errors.New("configuring ingest: an empty read-only bearer token")
		}
		if slices.Contains(cfg.Tokens, t) {
			return nil, errors.New("configuring ingest: a token is both a write and a read-only token")
		}
	}
	s.tokens, s.readTokens = bearer.NewSet(cfg.Tokens), bearer.NewSet(cfg.ReadTokens)
	// franz-go's producer is idempotent by default (acks from all in-sync
	// replicas, sequence numbers per partition): a retried produce is
	// written once, and a record's invocation id makes a retried request
	// harmless downstream.
	cl, err := kgo.NewClient(append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(4<<20), kgo.RecordDeliveryTimeout(max(cfg.ProduceTimeout, time.Second)))...)
	if err != nil {
		return nil, fmt.Errorf("creating ingest kafka client: %w", err)
	}
	n, err := kafka.PartitionCount(ctx, cl, cfg.Topic)
	if err != nil {
		cl.Close()
		return nil, err
	}
	s.cl, s.nParts = cl, n
	return s, nil
}

// Stats returns the service's counters.
func (s *Server) Stats() Stats {
	s.wmMu.RLock()
	wm := s.wm
	s.wmMu.RUnlock()
	return Stats{Requests: s.requests.Load(), Accepted: s.accepted.Load(), Rejected: s.rejected.Load(),
		Refused: s.refused.Load(), RefusedConns: s.refusedConns.Load(), Watermarks: s.watermarks.Load(), WatermarkUS: wm,
		MaxStartUS: max(s.maxStart.Load(), 0)}
}

// Handler returns the service's HTTP routes: POST /v1/telemetry,
// POST /v1/traces, GET /v1/decisions/… (when configured), GET /healthz and
// GET /metrics (when configured).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/telemetry", s.auth("telemetry", true, s.limit("telemetry", http.HandlerFunc(s.handleTelemetry))))
	mux.Handle("POST /v1/traces", s.auth("traces", true, s.limit("traces", http.HandlerFunc(s.handleTraces))))
	if s.cfg.Decisions != nil {
		mux.Handle("/v1/decisions/", s.auth("decisions", false, s.limit("decisions", s.cfg.Decisions)))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", s.auth("metrics", false, promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))
	}
	return mux
}

// Serve writes an initial watermark, then serves HTTP on ln (TLS when
// certFile and keyFile are set) and writes watermarks until ctx is done.
// Connections and requests are bounded by the Config's timeouts and caps.
// Shutdown is ordered so that no accepted record is lost: stop accepting
// connections and wait for the requests in flight (each returns only once
// Kafka acknowledged its records; WriteTimeout bounds the wait), stop the
// watermarks, write the DrainWindow watermark if configured, flush the
// client, close it.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	defer s.cl.Close()
	if !s.cfg.NoWatermarks {
		if err := s.Watermark(ctx); err != nil {
			return err
		}
	}
	tlsOn := certFile != "" || keyFile != ""
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, ReadTimeout: s.cfg.ReadTimeout,
		WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	lim := &limitListener{Listener: ln, s: s, tls: tlsOn}
	served := make(chan error, 1)
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		var err error
		if tlsOn {
			err = hs.ServeTLS(lim, certFile, keyFile)
		} else {
			err = hs.Serve(lim)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		served <- err
	}()
	var runErr error
	if s.cfg.NoWatermarks {
		select {
		case <-ctx.Done():
		case runErr = <-served:
		}
	} else {
		runErr = s.watermarkLoop(ctx, served)
	}
	// A request in flight has WriteTimeout to finish; the last watermark
	// and the flush get as long again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout+5*time.Second)
	defer cancel()
	hctx, hcancel := context.WithTimeout(sctx, s.cfg.WriteTimeout)
	err := hs.Shutdown(hctx)
	hcancel()
	if err != nil {
		_ = hs.Close()
		if runErr == nil {
			runErr = fmt.Errorf("shutting down the ingest http server: %w", err)
		}
	}
	// No connection is refused once Serve returned; the last refusals end
	// within refuseLinger.
	<-serveDone
	s.refusals.Wait()
	if s.cfg.DrainWindow > 0 && !s.cfg.NoWatermarks {
		if err := s.drainWatermark(sctx); err != nil && runErr == nil {
			runErr = err
		}
	}
	if err := s.cl.Flush(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("flushing ingest records: %w", err)
	}
	return runErr
}

// drainWatermark writes the last watermark of DrainWindow: the end of the
// window that holds the latest start accepted.
func (s *Server) drainWatermark(ctx context.Context) error {
	win := s.cfg.DrainWindow.Microseconds()
	return s.advance(ctx, func() int64 {
		m := s.maxStart.Load()
		if m == math.MinInt64 {
			return m // nothing accepted: nothing to close
		}
		return (grid.TickOf(m, win) + 1) * win
	})
}

// watermarkLoop writes a watermark every WatermarkEvery until ctx is done or
// the HTTP server stops.
func (s *Server) watermarkLoop(ctx context.Context, served <-chan error) error {
	t := time.NewTicker(s.cfg.WatermarkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return err
		case <-t.C:
			if err := s.Watermark(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("writing a watermark", "err", err)
			}
		}
	}
}

// Watermark advances the watermark to now − Lateness (it never moves back)
// and writes it to every telemetry partition, after every record accepted
// before it. It returns once Kafka acknowledged it.
func (s *Server) Watermark(ctx context.Context) error {
	return s.advance(ctx, func() int64 { return s.cfg.Now().Add(-s.cfg.Lateness).UnixMicro() })
}

// advance moves the watermark to target() (computed under the write lock)
// unless it is there already, and writes it to every telemetry partition.
func (s *Server) advance(ctx context.Context, target func() int64) error {
	s.wmMu.Lock()
	w := max(s.wm, target())
	s.wm = w
	v, err := proto.Marshal(&stratapb.Watermark{RunId: s.cfg.RunID, WatermarkUs: w, EmittedUnixMs: time.Now().UnixMilli()})
	if err != nil {
		s.wmMu.Unlock()
		return fmt.Errorf("encoding watermark: %w", err)
	}
	var wg sync.WaitGroup
	var perr error
	var pmu sync.Mutex
	wg.Add(s.nParts)
	for p := range s.nParts {
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Topic, Partition: int32(p), Value: v, Headers: s.wmHeaders},
			func(_ *kgo.Record, err error) {
				if err != nil {
					pmu.Lock()
					perr = errors.Join(perr, err)
					pmu.Unlock()
				}
				wg.Done()
			})
	}
	s.wmMu.Unlock()
	wg.Wait()
	if perr != nil {
		return fmt.Errorf("writing watermark %d: %w", w, perr)
	}
	s.watermarks.Add(1)
	s.m.watermark.Set(float64(w) / 1e6)
	return nil
}

// limit admits a request when fewer than MaxInFlight are being handled,
// and otherwise answers 503 with Retry-After before reading anything.
func (s *Server) limit(endpoint string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
			next.ServeHTTP(w, r)
		default:
			s.refused.Add(1)
			s.m.limited.WithLabelValues("max_in_flight").Inc()
			s.m.requests.WithLabelValues(endpoint, "503").Inc()
			w.Header().Set("Retry-After", "1")
			// The body stays unread: the connection cannot be reused.
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable,
				fmt.Sprintf("server busy: %d requests in flight (the --max-in-flight cap); retry the same body", s.cfg.MaxInFlight))
		}
	})
}

// busyReply is the answer on a connection over the MaxConns cap.
var busyReply = func() string {
	body := `{"error":"server busy: too many connections (the --max-conns cap); retry the same body"}` + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// refuseLinger bounds how long a refused connection is given to read the
// 503 before it is closed, and refuseMax how many are being answered at
// once (beyond it, a refused connection is closed without an answer).
const (
	refuseLinger = time.Second
	refuseMax    = 256
)

// limitListener caps the open connections of a Server at MaxConns.
type limitListener struct {
	net.Listener
	s   *Server
	tls bool
}

// Accept returns the next connection under the cap; one over it is
// answered and closed here.
func (l *limitListener) Accept() (net.Conn, error) {
	s := l.s
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if s.openConns.Add(1) <= int64(s.cfg.MaxConns) {
			s.m.conns.Inc()
			return &limitConn{Conn: c, s: s}, nil
		}
		s.openConns.Add(-1)
		s.refuseConn(c, l.tls)
	}
}

// refuseConn answers a connection over the cap with busyReply (plain HTTP
// only), half-closes it and gives the client refuseLinger to read the reply
// before it closes: closing a socket with unread input would reset it and
// could drop the reply.
func (s *Server) refuseConn(c net.Conn, tlsOn bool) {
	s.refusedConns.Add(1)
	s.m.limited.WithLabelValues("max_conns").Inc()
	if tlsOn {
		_ = c.Close()
		return
	}
	if s.refusing.Add(1) > refuseMax {
		s.refusing.Add(-1)
		_ = c.Close()
		return
	}
	s.refusals.Add(1)
	go func() {
		defer s.refusals.Done()
		defer s.refusing.Add(-1)
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := io.WriteString(c, busyReply); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, 64<<10)
	}()
}

// limitConn releases its place under the cap when it is closed.
type limitConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.openConns.Add(-1)
		c.s.m.conns.Dec()
	})
	return err
}

// CloseWrite half-closes a TCP connection; net/http uses it to let the
// client read a last reply before the connection closes.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// auth checks the bearer token before anything is read or written — a
// write endpoint takes a write token, a read endpoint either kind; the
// token's rate limiter key travels in the request's context (the budget is
// counted in records, once the body is decoded).
func (s *Server) auth(endpoint string, write bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "dev"
		if !s.cfg.NoAuth || r.Header.Get("Authorization") != "" {
			tok, ok := bearer.Parse(r.Header.Get("Authorization"))
			if !ok || (!s.validToken(tok) && !s.readTokens.Has(tok)) {
				s.refused.Add(1)
				s.m.requests.WithLabelValues(endpoint, "401").Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
				writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
				return
			}
			if write && !s.validToken(tok) {
				s.refused.Add(1)
				s.m.requests.WithLabelValues(endpoint, "403").Inc()
				writeError(w, http.StatusForbidden, "a read-only token cannot write telemetry")
				return
			}
			h := sha256.Sum256([]byte(tok))
			key = string(h[:8])
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, key)))
	})
}

type tokenKey struct{}

// validToken reports whether tok is a write token, comparing it with
// every configured one in constant time.
func (s *Server) validToken(tok string) bool {
	if s.cfg.NoAuth && len(s.tokens) == 0 {
		return true
	}
	return s.tokens.Has(tok)
}

// limiter returns the rate limiter of a token.
func (s *Server) limiter(key string) *rate.Limiter {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	l := s.limiters[key]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(s.cfg.RatePerToken), s.cfg.RateBurst)
		s.limiters[key] = l
	}
	return l
}

// readBody reads a request body of at most MaxBodyBytes, decompressing
// gzip (the OpenTelemetry Collector's default), within BodyTimeout of the
// end of the headers, into buf (reused from an earlier request: only its
// capacity counts).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, int, error) {
	// The body's own deadline: the server's ReadTimeout bounds headers and
	// body together, this one the body alone, whatever the headers took.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, http.StatusInternalServerError, fmt.Errorf("setting the body deadline: %w", err)
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	var rd io.Reader = body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := newGzipBody(body)
		if err != nil {
			return nil, s.bodyErrStatus(w, err), s.bodyErr(err)
		}
		defer func() { _ = zr.Close() }()
		rd = io.LimitReader(zr, s.cfg.MaxBodyBytes+1)
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (want gzip or none)", enc)
	}
	b, err := readAll(buf, rd, r.ContentLength, s.cfg.MaxBodyBytes)
	switch {
	case err != nil:
		return nil, s.bodyErrStatus(w, err), s.bodyErr(err)
	case int64(len(b)) > s.cfg.MaxBodyBytes:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request body exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	// The body is in. The server watches the connection for a close while
	// the request waits for Kafka (WriteTimeout bounds that): a read
	// deadline passing then would cancel the request.
	_ = rc.SetReadDeadline(time.Time{})
	return b, 0, nil
}

// readAll reads r to its end into buf[:0], as io.ReadAll does but
// without allocating when buf is large enough. A body that announces its
// length n (at most limit) gets room for it at once, up to maxBodyHint:
// beyond that, memory is only taken as the bytes arrive, so that a client
// cannot make the service hold memory it never sends.
func readAll(buf []byte, r io.Reader, n, limit int64) ([]byte, error) {
	b := buf[:0]
	if n >= 0 && n <= limit {
		b = slices.Grow(b, int(min(n, maxBodyHint))+1) // +1: room to read the EOF without growing
	}
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(512, cap(b)))
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// bodyErrStatus is the status of a failed body read: 408 at the deadline
// (the connection is closed: the rest of the body is not read), 413 over
// the size limit, else 400.
func (s *Server) bodyErrStatus(w http.ResponseWriter, err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.m.limited.WithLabelValues("body_timeout").Inc()
		w.Header().Set("Connection", "close")
		return http.StatusRequestTimeout
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// bodyErr says what went wrong reading the body.
func (s *Server) bodyErr(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("request body not received within %v (the --body-timeout)", s.cfg.BodyTimeout)
	case errors.As(err, &mbe):
		return fmt.Errorf("request body exceeds %d bytes", s.cfg.MaxBodyBytes)
	case errors.Is(err, errGzip):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("reading request body: truncated: the body ended before its Content-Length or final chunk")
	}
	return fmt.Errorf("reading request body: %w", err)
}

// errGzip marks the errors of a gzip body, which say what is wrong.
var errGzip = errors.New("reading gzip body")

// gzipBody decompresses a gzip body: one or more gzip members (RFC 1952
// allows several; Go and curl read them all) and nothing after them.
type gzipBody struct {
	src *bufio.Reader
	zr  *gzip.Reader
}

// newGzipBody reads the first member's header.
func newGzipBody(r io.Reader) (*gzipBody, error) {
	// A bufio.Reader is a flate.Reader: the gzip reader reads no byte past
	// a member's end, so the next member (or trailing bytes) is still in
	// src when it ends.
	g := &gzipBody{src: bufio.NewReader(r)}
	zr, err := gzip.NewReader(g.src)
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: empty body, not a gzip stream (Content-Encoding: gzip)", errGzip)
	case errors.Is(err, gzip.ErrHeader):
		return nil, fmt.Errorf("%w: not a gzip stream (Content-Encoding: gzip): %w", errGzip, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: gzip stream truncated in its header", errGzip)
	case err != nil:
		return nil, gzipErr(err)
	}
	zr.Multistream(false)
	g.zr = zr
	return g, nil
}

func (g *gzipBody) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if !errors.Is(err, io.EOF) {
			return n, gzipErr(err)
		}
		// The end of a member: the end of the body, or another member.
		if _, perr := g.src.Peek(1); errors.Is(perr, io.EOF) {
			return n, io.EOF
		} else if perr != nil {
			return n, gzipErr(perr)
		}
		if rerr := g.zr.Reset(g.src); rerr != nil {
			if errors.Is(rerr, gzip.ErrHeader) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				return n, fmt.Errorf("%w: trailing bytes after the gzip stream", errGzip)
			}
			return n, gzipErr(rerr)
		}
		g.zr.Multistream(false)
		if n > 0 {
			return n, nil
		}
	}
}

func (g *gzipBody) Close() error { return g.zr.Close() }

// gzipErr names what went wrong in a gzip stream; the transport's errors
// (deadline, size limit) pass through for their status.
func gzipErr(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, errGzip), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &mbe):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: gzip stream truncated: the body ends inside the compressed data", errGzip)
	case errors.Is(err, gzip.ErrChecksum):
		return fmt.Errorf("%w: gzip checksum mismatch: the stream is corrupt", errGzip)
	}
	return fmt.Errorf("%w: %w", errGzip, err)
}

// outcome is what became of one request's records.
type outcome struct {
	errs     []telemetry.RecordError // decoder and time-check rejections, in request order
	accepted int
}

// request is what handling one request needs besides its own state: the
// body, the decoded and encoded records, the Kafka records that carry
// them. The service keeps them in a pool: a request gets the buffers of
// one that ended, and hands them back once its reply is written, when
// Kafka has acknowledged (or failed) every record of it, so that franz-go
// holds none of them any more.
type request struct {
	body  []byte
	batch telemetry.Batch
	recs  []kgo.Record
	// abandoned marks a request answered before Kafka acknowledged or
	// failed its records: the client may still hold them, so its buffers
	// never go back to the pool.
	abandoned bool
}

// ingest checks the decoded records of req against the rate budget and
// the watermark, writes the valid ones and dead-letters the rest, and
// returns once Kafka acknowledged all of them. status is 0 on success.
func (s *Server) ingest(ctx context.Context, endpoint string, req *request) (outcome, int, error) {
	var out outcome
	res := &req.batch
	key, _ := ctx.Value(tokenKey{}).(string)
	if s.cfg.RatePerToken > 0 && res.Total > 0 {
		lim := s.limiter(key)
		now := s.cfg.Now()
		rv := lim.ReserveN(now, res.Total)
		if !rv.OK() {
			return out, http.StatusRequestEntityTooLarge, fmt.Errorf("request holds %d records, more than the rate burst of %d", res.Total, s.cfg.RateBurst)
		}
		if d := rv.DelayFrom(now); d > 0 {
			rv.CancelAt(now)
			return out, http.StatusTooManyRequests, &retryAfter{d: d}
		}
	}
	var (
		wg   sync.WaitGroup
		pmu  sync.Mutex
		perr error
	)
	// A record Kafka has not acknowledged within ProduceTimeout fails
	// (its context, and the client's delivery timeout as a backstop).
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			pmu.Lock()
			perr = errors.Join(perr, err)
			pmu.Unlock()
		}
		wg.Done()
	}
	errs := res.Errors
	now := s.cfg.Now()
	nowUS := now.UnixMicro()
	maxEnd := nowUS + s.cfg.MaxFuture.Microseconds()
	// Every record gets this timestamp: franz-go would read the clock for
	// each one. The records do not move while franz-go holds them: recs
	// has room for all of them before the first is handed over.
	ts := time.Now()
	recs := slices.Grow(req.recs[:0], res.Len())
	maxStart := int64(math.MinInt64)
	s.wmMu.RLock()
	wm := s.wm
	for i := range res.Len() {
		e := res.At(i)
		var reason, field, kind string
		switch {
		case e.StartUS < wm:
			field, kind = "start", "late"
			reason = fmt.Sprintf("starts at %s, before the watermark %s (allowed lateness %v): its tick is closed",
				time.UnixMicro(e.StartUS).UTC().Format(time.RFC3339Nano), time.UnixMicro(wm).UTC().Format(time.RFC3339Nano), s.cfg.Lateness)
		case e.EndUS > maxEnd:
			field, kind = "end", "future"
			reason = fmt.Sprintf("ends at %s, more than %v after the server's clock", time.UnixMicro(e.EndUS).UTC().Format(time.RFC3339Nano), s.cfg.MaxFuture)
		}
		if reason != "" {
			errs = append(errs, telemetry.RecordError{Index: e.Index, Field: field, Reason: reason, Raw: timeErrorRaw(e.Value)})
			s.m.rejected.WithLabelValues(kind).Inc()
			continue
		}
		recs = append(recs, kgo.Record{Topic: s.cfg.Topic, Key: e.Key, Value: e.Value, Timestamp: ts})
		wg.Add(1)
		s.cl.Produce(ctx, &recs[len(recs)-1], done)
		out.accepted++
		maxStart = max(maxStart, e.StartUS)
	}
	s.noteStart(maxStart)
	s.wmMu.RUnlock()
	req.recs = recs
	// The decoder's errors and the time checks' are each in request order.
	slices.SortStableFunc(errs, func(a, b telemetry.RecordError) int { return cmp.Compare(a.Index, b.Index) })
	out.errs = errs
	s.m.rejected.WithLabelValues("invalid").Add(float64(len(res.Errors)))
	for _, e := range errs {
		v, err := proto.Marshal(&stratapb.DeadLetter{Source: "POST /v1/" + endpoint, Location: fmt.Sprintf("record %d", e.Index),
			Reason: e.Error(), Payload: e.Raw, Component: "ingest", RunId: s.cfg.RunID, AtUnixMs: time.Now().UnixMilli()})
		if err != nil {
			continue
		}
		wg.Add(1)
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Names.Topic(schemas.TopicDeadLetter), Key: []byte(endpoint), Value: v}, done)
	}
	// The client fails records it cannot deliver in time only when it
	// gets to them (not while it cannot reach the broker at all): the
	// request waits ProduceTimeout at most.
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-ctx.Done():
		req.abandoned = true
		return out, http.StatusServiceUnavailable, &retryAfter{d: time.Second,
			err: fmt.Errorf("kafka did not acknowledge the records within %v (retry the request; ids make it harmless)", s.cfg.ProduceTimeout)}
	}
	pmu.Lock()
	defer pmu.Unlock()
	if perr != nil {
		return out, http.StatusServiceUnavailable, &retryAfter{d: time.Second,
			err: fmt.Errorf("kafka did not acknowledge the records within %v (retry the request; ids make it harmless): %w", s.cfg.ProduceTimeout, perr)}
	}
	s.accepted.Add(int64(out.accepted))
	s.rejected.Add(int64(len(errs)))
	s.m.records.WithLabelValues(endpoint, "accepted").Add(float64(out.accepted))
	s.m.records.WithLabelValues(endpoint, "rejected").Add(float64(len(errs)))
	return out, 0, nil
}

// timeErrorRaw is the dead letter's payload of a record refused as late
// or from the future: its id, app, func, start and end, as JSON, read back
// from its encoding.
func timeErrorRaw(value []byte) []byte {
	var o stratapb.Observation
	_ = proto.Unmarshal(value, &o) // the decoder's own encoding
	a := o.GetArrival()
	raw, _ := json.Marshal(map[string]any{"invocation_id": a.GetInvocationId(), "app": a.GetApp(), "func": a.GetFunc(), "start_us": a.GetStartUs(), "end_us": a.GetEndUs()})
	return raw
}

// noteStart raises maxStart to start. It is called under the read lock,
// with the records handed over: the drain watermark, computed under the
// write lock, covers every one of them.
func (s *Server) noteStart(start int64) {
	for m := s.maxStart.Load(); start > m; m = s.maxStart.Load() {
		if s.maxStart.CompareAndSwap(m, start) {
			return
		}
	}
}

// retryAfter is a refusal the client should retry after d: the token's
// rate limit, or err (Kafka not acknowledging in time).
type retryAfter struct {
	d   time.Duration
	err error
}

func (e *retryAfter) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("rate limit of the token exceeded: retry in %v", e.d.Round(time.Millisecond))
}

func (e *retryAfter) Unwrap() error { return e.err }

// telemetryResponse is the JSON reply of POST /v1/telemetry.
type telemetryResponse struct {
	Accepted int                     `json:"accepted"`
	Rejected int                     `json:"rejected"`
	Errors   []telemetry.RecordError `json:"errors,omitempty"`
}

func (s *Server) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	s.handle(w, r, "telemetry", func(b *telemetry.Batch, body []byte) error { return b.DecodeJSON(body) },
		func(w http.ResponseWriter, o outcome) int {
			code := http.StatusOK
			if o.accepted == 0 && len(o.errs) > 0 {
				code = http.StatusUnprocessableEntity
			}
			writeJSON(w, code, telemetryResponse{Accepted: o.accepted, Rejected: len(o.errs), Errors: o.errs})
			return code
		})
}

func (s *Server) handleTraces(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	asJSON := strings.HasPrefix(strings.ToLower(ct), "application/json")
	s.handle(w, r, "traces", func(b *telemetry.Batch, body []byte) error { return b.DecodeOTLP(body, ct) },
		func(w http.ResponseWriter, o outcome) int {
			var msg string
			if len(o.errs) > 0 {
				parts := make([]string, 0, 3)
				for i, e := range o.errs {
					if i == 3 {
						parts = append(parts, fmt.Sprintf("and %d more", len(o.errs)-3))
						break
					}
					parts = append(parts, e.Error())
				}
				msg = strings.Join(parts, "; ")
			}
			b, err := telemetry.PartialSuccess(len(o.errs), msg, asJSON)
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return http.StatusInternalServerError
			}
			if asJSON {
				w.Header().Set("Content-Type", "application/json")
			} else {
				w.Header().Set("Content-Type", "application/x-protobuf")
			}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
			return http.StatusOK
		})
}

// handle is the common path of both write endpoints.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, endpoint string,
	decode func(*telemetry.Batch, []byte) error, reply func(http.ResponseWriter, outcome) int) {
	t0 := time.Now()
	s.requests.Add(1)
	s.m.inFlight.Inc()
	defer s.m.inFlight.Dec()
	code := 0
	defer func() {
		s.m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
		s.m.latency.WithLabelValues(endpoint).Observe(time.Since(t0).Seconds())
	}()
	fail := func(c int, err error) {
		code = c
		s.refused.Add(1)
		var ra *retryAfter
		if errors.As(err, &ra) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.d.Seconds()))))
		}
		writeError(w, c, err.Error())
	}
	req := s.pool.Get().(*request)
	defer s.release(req)
	body, c, err := s.readBody(w, r, req.body)
	req.body = body
	if err != nil {
		fail(c, err)
		return
	}
	if err := decode(&req.batch, body); err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	o, c, err := s.ingest(r.Context(), endpoint, req)
	if err != nil {
		fail(c, err)
		return
	}
	code = reply(w, o)
}

// maxPooledBody bounds the body buffer a request hands back to the pool:
// a rare large request does not keep its memory for the small ones.
// maxBodyHint bounds the room readAll makes for a body before it arrives.
const (
	maxPooledBody = 4 << 20
	maxBodyHint   = 1 << 20
)

// release hands a request's buffers back to the pool once its reply is
// written: nothing of it is referenced any more (the reply is written,
// and ingest returns only after every promise fired).
func (s *Server) release(req *request) {
	if req.abandoned {
		return // the Kafka client may still read its records
	}
	if cap(req.body) > maxPooledBody {
		req.body = nil
	}
	clear(req.recs) // their contexts, keys and values
	req.recs = req.recs[:0]
	s.pool.Put(req)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

package ingest

import (
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
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

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// DefaultRunID is the run id live telemetry is written under unless the
// configuration names another.
const DefaultRunID = "live"

// Config configures the ingest service.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// RunID is the run the telemetry belongs to (default DefaultRunID).
	RunID string
	// Topic is the telemetry topic (default strata.telemetry.v1; tests and
	// benchmarks use scratch topics).
	Topic string
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
	// Tokens are the accepted bearer tokens. Without tokens every request is
	// refused unless NoAuth is set.
	Tokens []string
	// NoAuth accepts requests without a token: for development only.
	NoAuth bool
	// MaxBodyBytes bounds a request body, after decompression
	// (default 8 MiB).
	MaxBodyBytes int64
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
	// NoWatermarks stops this instance from writing watermarks: for a
	// second instance behind a load balancer (see docs/ingest.md).
	NoWatermarks bool
}

// Stats counts what the service did.
type Stats struct {
	Requests   int64 `json:"requests"`
	Accepted   int64 `json:"accepted"`
	Rejected   int64 `json:"rejected"`
	Refused    int64 `json:"refused"` // requests refused whole (auth, size, rate, body)
	Watermarks int64 `json:"watermarks"`
	// WatermarkUS is the latest watermark written, Unix microseconds.
	WatermarkUS int64 `json:"watermark_us"`
}

type metrics struct {
	requests  *prometheus.CounterVec
	records   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	watermark prometheus.Gauge
	inFlight  prometheus.Gauge
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.records, m.rejected, m.latency, m.watermark, m.inFlight)
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
	tokens [][32]byte

	// wmMu orders records before watermarks: a request checks its records
	// against the watermark and hands them to the client under the read
	// lock; a watermark is computed and handed over under the write lock.
	// The client keeps a partition's records in the order they were handed
	// over, so every record that starts before a watermark precedes it.
	wmMu sync.RWMutex
	wm   int64

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	requests, accepted, rejected, refused, watermarks atomic.Int64
}

// New connects to Kafka and returns the service; Serve runs it.
func New(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.RunID == "" {
		cfg.RunID = DefaultRunID
	}
	if cfg.Topic == "" {
		cfg.Topic = schemas.TopicTelemetry
	}
	if cfg.Lateness <= 0 {
		cfg.Lateness = time.Minute
	}
	if cfg.WatermarkEvery <= 0 {
		cfg.WatermarkEvery = time.Second
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
	if len(cfg.Tokens) == 0 && !cfg.NoAuth {
		return nil, errors.New("configuring ingest: no bearer tokens; give tokens, or allow unauthenticated requests explicitly for development")
	}
	s := &Server{cfg: cfg, log: logger, m: newMetrics(reg), limiters: map[string]*rate.Limiter{}}
	for _, t := range cfg.Tokens {
		if t == "" {
			return nil, errors.New("configuring ingest: an empty bearer token")
		}
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	// franz-go's producer is idempotent by default (acks from all in-sync
	// replicas, sequence numbers per partition): a retried produce is
	// written once, and a record's invocation id makes a retried request
	// harmless downstream.
	cl, err := kgo.NewClient(append(kafka.CommonOpts(cfg.Brokers, logger),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(4<<20))...)
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
		Refused: s.refused.Load(), Watermarks: s.watermarks.Load(), WatermarkUS: wm}
}

// Handler returns the service's HTTP routes: POST /v1/telemetry,
// POST /v1/traces, GET /v1/decisions/… (when configured), GET /healthz and
// GET /metrics (when configured).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/telemetry", s.auth("telemetry", http.HandlerFunc(s.handleTelemetry)))
	mux.Handle("POST /v1/traces", s.auth("traces", http.HandlerFunc(s.handleTraces)))
	if s.cfg.Decisions != nil {
		mux.Handle("/v1/decisions/", s.auth("decisions", s.cfg.Decisions))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// Serve writes an initial watermark, then serves HTTP on ln (TLS when
// certFile and keyFile are set) and writes watermarks until ctx is done.
// Shutdown is ordered so that no accepted record is lost: stop accepting
// connections and wait for the requests in flight (each returns only once
// Kafka acknowledged its records), stop the watermarks, flush the client,
// close it.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	defer s.cl.Close()
	if !s.cfg.NoWatermarks {
		if err := s.Watermark(ctx); err != nil {
			return err
		}
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() {
		var err error
		if certFile != "" || keyFile != "" {
			err = hs.ServeTLS(ln, certFile, keyFile)
		} else {
			err = hs.Serve(ln)
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
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("shutting down the ingest http server: %w", err)
	}
	if err := s.cl.Flush(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("flushing ingest records: %w", err)
	}
	return runErr
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
	s.wmMu.Lock()
	w := max(s.wm, s.cfg.Now().Add(-s.cfg.Lateness).UnixMicro())
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
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Topic, Partition: int32(p), Value: v, Headers: kafka.WatermarkHeaders},
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

// auth checks the bearer token before anything is read or written; the
// token's rate limiter key travels in the request's context (the budget is
// counted in records, once the body is decoded).
func (s *Server) auth(endpoint string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "dev"
		if !s.cfg.NoAuth || r.Header.Get("Authorization") != "" {
			tok, ok := bearer(r.Header.Get("Authorization"))
			if !ok || !s.validToken(tok) {
				s.refused.Add(1)
				s.m.requests.WithLabelValues(endpoint, "401").Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
				writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
				return
			}
			h := sha256.Sum256([]byte(tok))
			key = string(h[:8])
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, key)))
	})
}

type tokenKey struct{}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// validToken compares tok with every configured token in constant time.
func (s *Server) validToken(tok string) bool {
	if s.cfg.NoAuth && len(s.tokens) == 0 {
		return true
	}
	h := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range s.tokens {
		ok |= subtle.ConstantTimeCompare(h[:], s.tokens[i][:])
	}
	return ok == 1
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
// gzip (the OpenTelemetry Collector's default).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	var rd io.Reader = body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("reading gzip body: %w", err)
		}
		defer func() { _ = zr.Close() }()
		rd = io.LimitReader(zr, s.cfg.MaxBodyBytes+1)
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (want gzip or none)", enc)
	}
	b, err := io.ReadAll(rd)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds %d bytes", s.cfg.MaxBodyBytes)
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err)
	case int64(len(b)) > s.cfg.MaxBodyBytes:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request body exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	return b, 0, nil
}

// outcome is what became of one request's records.
type outcome struct {
	res      telemetry.Result
	errs     []telemetry.RecordError // decoder and time-check rejections, in request order
	accepted int
}

// ingest checks the decoded records against the rate budget and the
// watermark, writes the valid ones and dead-letters the rest, and returns
// once Kafka acknowledged all of them. status is 0 on success.
func (s *Server) ingest(ctx context.Context, endpoint string, res telemetry.Result) (outcome, int, error) {
	out := outcome{res: res}
	key, _ := ctx.Value(tokenKey{}).(string)
	if s.cfg.RatePerToken > 0 && res.Total > 0 {
		lim := s.limiter(key)
		now := time.Now()
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
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			pmu.Lock()
			perr = errors.Join(perr, err)
			pmu.Unlock()
		}
		wg.Done()
	}
	errs := append([]telemetry.RecordError(nil), res.Errors...)
	nowUS := s.cfg.Now().UnixMicro()
	maxEnd := nowUS + s.cfg.MaxFuture.Microseconds()
	buf := make([]byte, 0, 160*len(res.Observations))
	s.wmMu.RLock()
	wm := s.wm
	for i, o := range res.Observations {
		a := o.GetArrival()
		var reason, field, kind string
		switch {
		case a.GetStartUs() < wm:
			field, kind = "start", "late"
			reason = fmt.Sprintf("starts at %s, before the watermark %s (allowed lateness %v): its tick is closed",
				time.UnixMicro(a.GetStartUs()).UTC().Format(time.RFC3339Nano), time.UnixMicro(wm).UTC().Format(time.RFC3339Nano), s.cfg.Lateness)
		case a.GetEndUs() > maxEnd:
			field, kind = "end", "future"
			reason = fmt.Sprintf("ends at %s, more than %v after the server's clock", time.UnixMicro(a.GetEndUs()).UTC().Format(time.RFC3339Nano), s.cfg.MaxFuture)
		}
		if reason != "" {
			raw, _ := json.Marshal(map[string]any{"invocation_id": a.GetInvocationId(), "app": a.GetApp(), "func": a.GetFunc(), "start_us": a.GetStartUs(), "end_us": a.GetEndUs()})
			errs = append(errs, telemetry.RecordError{Index: res.Index[i], Field: field, Reason: reason, Raw: raw})
			s.m.rejected.WithLabelValues(kind).Inc()
			continue
		}
		a.RunId = s.cfg.RunID
		// One buffer for the request's records: each value is a capped
		// slice of it (a reallocation leaves earlier values where they are).
		at := len(buf)
		var err error
		if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf, o); err != nil {
			s.wmMu.RUnlock()
			wg.Wait()
			return out, http.StatusInternalServerError, fmt.Errorf("encoding record %d: %w", res.Index[i], err)
		}
		v := buf[at:len(buf):len(buf)]
		wg.Add(1)
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Topic, Key: []byte(a.GetApp()), Value: v}, done)
		out.accepted++
	}
	s.wmMu.RUnlock()
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
		s.cl.Produce(ctx, &kgo.Record{Topic: schemas.TopicDeadLetter, Key: []byte(endpoint), Value: v}, done)
	}
	wg.Wait()
	if perr != nil {
		return out, http.StatusServiceUnavailable, fmt.Errorf("kafka did not acknowledge the records (retry the request; ids make it harmless): %w", perr)
	}
	s.accepted.Add(int64(out.accepted))
	s.rejected.Add(int64(len(errs)))
	s.m.records.WithLabelValues(endpoint, "accepted").Add(float64(out.accepted))
	s.m.records.WithLabelValues(endpoint, "rejected").Add(float64(len(errs)))
	return out, 0, nil
}

type retryAfter struct{ d time.Duration }

func (e *retryAfter) Error() string {
	return fmt.Sprintf("rate limit of the token exceeded: retry in %v", e.d.Round(time.Millisecond))
}

// telemetryResponse is the JSON reply of POST /v1/telemetry.
type telemetryResponse struct {
	Accepted int                     `json:"accepted"`
	Rejected int                     `json:"rejected"`
	Errors   []telemetry.RecordError `json:"errors,omitempty"`
}

func (s *Server) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	s.handle(w, r, "telemetry", func(body []byte) (telemetry.Result, error) { return telemetry.DecodeJSON(body) },
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
	s.handle(w, r, "traces", func(body []byte) (telemetry.Result, error) { return telemetry.DecodeOTLP(body, ct) },
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
	decode func([]byte) (telemetry.Result, error), reply func(http.ResponseWriter, outcome) int) {
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
	body, c, err := s.readBody(w, r)
	if err != nil {
		fail(c, err)
		return
	}
	res, err := decode(body)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	o, c, err := s.ingest(r.Context(), endpoint, res)
	if err != nil {
		fail(c, err)
		return
	}
	code = reply(w, o)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

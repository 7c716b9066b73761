package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-rl/strata/replay"
)

// Format selects the wire format of the requests.
type Format string

// The formats Run can send.
const (
	// FormatJSON sends strata's JSON telemetry schema (a JSON array of
	// telemetry.Record) to POST /v1/telemetry.
	FormatJSON Format = "json"
	// FormatOTLPProto sends OTLP/HTTP ExportTraceServiceRequests in
	// protobuf (application/x-protobuf) to POST /v1/traces.
	FormatOTLPProto Format = "otlp-proto"
	// FormatOTLPJSON sends OTLP/HTTP ExportTraceServiceRequests in OTLP's
	// JSON encoding (application/json) to POST /v1/traces.
	FormatOTLPJSON Format = "otlp-json"
)

// Defaults that Config's zero values stand for.
const (
	// DefaultBatch is the number of records per request when Config.Batch
	// is 0.
	DefaultBatch = 100
	// DefaultConcurrency is the number of requests in flight when
	// Config.Concurrency is 0.
	DefaultConcurrency = 4
	// DefaultMaxRetries is the number of retries per request when
	// Config.MaxRetries is 0.
	DefaultMaxRetries = 10
	// DefaultAttemptTimeout bounds one attempt of a request when Run makes
	// its own HTTP client (Config.Client is nil).
	DefaultAttemptTimeout = 30 * time.Second
)

// Retry backoff: the n-th retry (0-based) waits a random time in [d/2, d]
// with d = baseBackoff·2ⁿ capped at maxBackoff, or the server's Retry-After
// when that is longer.
const (
	baseBackoff = 50 * time.Millisecond
	maxBackoff  = 2 * time.Second
)

// ErrConfig is returned (wrapped) by Run for an invalid Config.
var ErrConfig = errors.New("invalid load generator config")

// Config configures a load run. The zero value of every field but URL
// selects its documented default.
type Config struct {
	// URL is the base URL of the ingest service, e.g.
	// http://127.0.0.1:8080; the endpoint path (/v1/telemetry or
	// /v1/traces) is appended to it. Required.
	URL string
	// Token is the bearer token sent in the Authorization header; empty
	// sends no Authorization header.
	Token string
	// Format is the wire format; empty means FormatJSON.
	Format Format
	// Rate is the target rate in records per second; 0 sends as fast as the
	// server and Concurrency allow. Batches are paced by a token bucket
	// whose burst is one batch, so the first batch goes out at once.
	Rate float64
	// Batch is the number of records per request; 0 means DefaultBatch.
	// The last request of a run may hold fewer.
	Batch int
	// Concurrency bounds the requests in flight; 0 means
	// DefaultConcurrency.
	Concurrency int
	// MaxRetries bounds the retries of one request after its first attempt;
	// 0 means DefaultMaxRetries and a negative value disables retries.
	// Retries back off exponentially from 50 ms, capped at 2 s (with
	// jitter), and wait at least the Retry-After the server asked for.
	MaxRetries int
	// Limit stops the run after this many records of the source; 0 sends
	// the whole source.
	Limit int64
	// Now is the clock that stamps records: every record of a batch ends at
	// Now() when the batch is built. Nil means time.Now. Should two batches
	// be stamped with the same microsecond, the later one is moved 1 µs past
	// the earlier, so that end times, and with them invocation ids, never
	// repeat across batches of a run.
	Now func() time.Time
	// Prebuild reads the source and encodes every request before the clock
	// starts, so that Wall and RecordsPerSec measure sending alone (as a
	// benchmark's raw ceiling does not time encoding either). Records are
	// then stamped when built, not when sent; Rate still paces sending.
	Prebuild bool
	// OnStart, if set, is called once, when the clock starts (after
	// Prebuild's encoding): a benchmark starts its CPU profile there.
	OnStart func()
	// Client sends the requests. Nil makes a client of Run's own, with
	// DefaultAttemptTimeout per attempt and Concurrency idle connections,
	// whose connections are closed when Run returns.
	Client *http.Client
	// OnAck, when set, is called with the invocation ids of each
	// acknowledged (2xx) request, once per request, after its response was
	// read. Calls come from the sending goroutines one at a time; the slice
	// is the callee's to keep.
	OnAck func(ids []string)

	// wrapLimiter, when set (by tests), wraps the rate limiter Run made, so
	// that a test can inspect it and count its waits.
	wrapLimiter func(*rate.Limiter) waiter
}

// waiter is what Run needs of the rate limiter.
type waiter interface {
	WaitN(ctx context.Context, n int) error
}

// Result reports a load run.
type Result struct {
	// Records counts the records read from the source and sent (handed to a
	// request). Records not otherwise accounted for (Records − Accepted −
	// Rejected − Failed) were in flight when the run was cancelled.
	Records int64
	// Requests counts the requests sent, each once however often it was
	// attempted.
	Requests int64
	// Accepted counts the records the server accepted: the "accepted" of
	// the JSON response, or for OTLP the records sent less
	// partial_success.rejected_spans.
	Accepted int64
	// Rejected counts the records the server rejected as invalid, including
	// those of requests answered 422.
	Rejected int64
	// Retries counts the attempts beyond the first of every request.
	Retries int64
	// Failed counts the records of requests that were refused for good (400,
	// 401, 413, another non-retryable status) or exhausted their retries.
	Failed int64
	// BadLines counts the malformed lines of the source (replay.LineError)
	// that were skipped.
	BadLines int64
	// P50, P90, P99 and Max are percentiles (nearest rank) of the latency
	// of the successful (2xx) requests, each measured over the attempt that
	// succeeded; zero when none succeeded.
	P50, P90, P99, Max time.Duration
	// Wall is the duration of the run.
	Wall time.Duration
	// RecordsPerSec is Records divided by Wall in seconds.
	RecordsPerSec float64
}

// settings is a validated Config with its defaults applied.
type settings struct {
	Config
	endpoint    string
	contentType string
}

// resolve validates cfg and applies its defaults.
func resolve(cfg Config) (settings, error) {
	s := settings{Config: cfg}
	if s.URL == "" {
		return s, fmt.Errorf("checking url: empty: %w", ErrConfig)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return s, fmt.Errorf("checking url %q: %w: %w", s.URL, ErrConfig, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return s, fmt.Errorf("checking url %q: want http(s)://host[:port]: %w", s.URL, ErrConfig)
	}
	if s.Format == "" {
		s.Format = FormatJSON
	}
	path := "/v1/traces"
	switch s.Format {
	case FormatJSON:
		path, s.contentType = "/v1/telemetry", "application/json"
	case FormatOTLPProto:
		s.contentType = "application/x-protobuf"
	case FormatOTLPJSON:
		s.contentType = "application/json"
	default:
		return s, fmt.Errorf("checking format %q (want %s, %s or %s): %w",
			s.Format, FormatJSON, FormatOTLPProto, FormatOTLPJSON, ErrConfig)
	}
	s.endpoint = u.JoinPath(path).String()
	if math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0) || s.Rate < 0 {
		return s, fmt.Errorf("checking rate %v (want a finite value ≥ 0): %w", s.Rate, ErrConfig)
	}
	if s.Batch < 0 || s.Concurrency < 0 || s.Limit < 0 {
		return s, fmt.Errorf("checking batch %d, concurrency %d and limit %d (want ≥ 0): %w",
			s.Batch, s.Concurrency, s.Limit, ErrConfig)
	}
	if s.Batch == 0 {
		s.Batch = DefaultBatch
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	switch {
	case s.MaxRetries == 0:
		s.MaxRetries = DefaultMaxRetries
	case s.MaxRetries < 0:
		s.MaxRetries = 0
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s, nil
}

// Run replays src against the ingest service at cfg.URL until src ends,
// cfg.Limit records were sent or ctx is done, and returns what happened.
//
// Batches are read, paced and sent in source order, at most
// cfg.Concurrency at a time. A request that is refused for good or exhausts
// its retries counts its records in Result.Failed and the run goes on;
// malformed source lines (replay.LineError) are logged, counted in
// Result.BadLines and skipped. Run returns once every request it started is
// finished, with a non-nil error only when cfg is invalid (wrapping
// ErrConfig), the source fails (the error says after which record), or ctx
// is done (wrapping ctx's error); the Result is filled in either way. A nil
// logger discards the log.
func Run(ctx context.Context, cfg Config, src replay.Source, logger *slog.Logger) (Result, error) {
	var res Result
	s, err := resolve(cfg)
	if err != nil {
		return res, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := s.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = s.Concurrency
		client = &http.Client{Transport: tr, Timeout: DefaultAttemptTimeout}
		defer tr.CloseIdleConnections()
	}
	limit := rate.Inf
	if s.Rate > 0 {
		limit = rate.Limit(s.Rate)
	}
	var lim waiter = rate.NewLimiter(limit, s.Batch)
	if s.wrapLimiter != nil {
		lim = s.wrapLimiter(lim.(*rate.Limiter))
	}

	b := newBuilder(s.Format, s.Now)
	invs := make([]replay.Invocation, 0, s.Batch)
	var runErr error
	read := 0 // records read into requests so far
	// next reads the next batch of the source; it returns no records at
	// the end.
	next := func() ([]replay.Invocation, error) {
		invs = invs[:0]
		for len(invs) < s.Batch && (s.Limit == 0 || int64(read+len(invs)) < s.Limit) {
			in, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if le, ok := errors.AsType[*replay.LineError](err); ok {
				res.BadLines++
				logger.Warn("skipping malformed trace line", "file", le.File, "line", le.Line, "reason", le.Reason)
				continue
			}
			if err != nil {
				return invs, fmt.Errorf("reading the source after record %d: %w", read+len(invs), err)
			}
			invs = append(invs, in)
		}
		read += len(invs)
		return invs, nil
	}
	var pre []*request
	if s.Prebuild {
		for {
			batch, err := next()
			if err != nil {
				return res, err
			}
			if len(batch) == 0 {
				break
			}
			req, err := b.build(batch)
			if err != nil {
				return res, fmt.Errorf("building request %d: %w", len(pre)+1, err)
			}
			if s.OnAck == nil {
				req.ids = nil
			}
			pre = append(pre, req)
		}
	}

	logger.Info("starting load", "url", s.endpoint, "format", s.Format, "rate", s.Rate,
		"batch", s.Batch, "concurrency", s.Concurrency, "limit", s.Limit, "prebuilt", len(pre))
	if s.OnStart != nil {
		s.OnStart()
	}
	start := time.Now()
	snd := &sender{client: client, s: &s, log: logger}
	agg := &aggregate{onAck: s.OnAck}
	sem := make(chan struct{}, s.Concurrency)
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		var req *request
		if s.Prebuild {
			if i == len(pre) {
				break
			}
			req = pre[i]
			if err := waitTurn(ctx, lim, sem, req.n); err != nil {
				runErr = err
				break
			}
		} else {
			batch, err := next()
			if err != nil {
				runErr = err
			}
			if len(batch) == 0 {
				break
			}
			if err := waitTurn(ctx, lim, sem, len(batch)); err != nil {
				runErr = err
				break
			}
			if req, err = b.build(batch); err != nil {
				<-sem
				runErr = fmt.Errorf("building request %d: %w", res.Requests+1, err)
				break
			}
		}
		res.Records += int64(req.n)
		res.Requests++
		req.seq = res.Requests
		wg.Go(func() {
			defer func() { <-sem }()
			agg.add(req, snd.send(ctx, req))
		})
		if runErr != nil {
			break
		}
	}
	wg.Wait()
	agg.fill(&res)
	res.Wall = time.Since(start)
	if res.Wall > 0 {
		res.RecordsPerSec = float64(res.Records) / res.Wall.Seconds()
	}
	if runErr == nil && ctx.Err() != nil {
		runErr = fmt.Errorf("sending load: %w", context.Cause(ctx))
	}
	logger.Info("load finished", "records", res.Records, "requests", res.Requests,
		"accepted", res.Accepted, "rejected", res.Rejected, "failed", res.Failed,
		"retries", res.Retries, "bad_lines", res.BadLines, "wall", res.Wall,
		"records_per_sec", res.RecordsPerSec, "p50", res.P50, "p99", res.P99, "err", runErr)
	return res, runErr
}

// waitTurn waits until the rate limiter admits n records and a request slot
// is free, and takes the slot.
func waitTurn(ctx context.Context, lim waiter, sem chan struct{}, n int) error {
	if err := lim.WaitN(ctx, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the rate limiter: %w", context.Cause(ctx))
		}
		// WaitN gives up early when the wait would outlast ctx's deadline.
		return fmt.Errorf("waiting for the rate limiter: %w: %w", context.DeadlineExceeded, err)
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a request slot: %w", context.Cause(ctx))
	}
}

// aggregate collects the outcomes of the requests; it is safe for
// concurrent use.
type aggregate struct {
	mu        sync.Mutex
	onAck     func(ids []string)
	accepted  int64
	rejected  int64
	retries   int64
	failed    int64
	latencies []time.Duration
}

// add records the outcome of req and calls onAck for an acknowledged one.
func (a *aggregate) add(req *request, o outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accepted += o.accepted
	a.rejected += o.rejected
	a.retries += o.retries
	a.failed += o.failed
	if o.acked {
		a.latencies = append(a.latencies, o.latency)
		if a.onAck != nil {
			a.onAck(req.ids)
		}
	}
}

// fill copies the totals and latency percentiles into res.
func (a *aggregate) fill(res *Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res.Accepted, res.Rejected, res.Retries, res.Failed = a.accepted, a.rejected, a.retries, a.failed
	if len(a.latencies) == 0 {
		return
	}
	slices.Sort(a.latencies)
	res.P50 = percentile(a.latencies, 0.50)
	res.P90 = percentile(a.latencies, 0.90)
	res.P99 = percentile(a.latencies, 0.99)
	res.Max = a.latencies[len(a.latencies)-1]
}

// percentile returns the nearest-rank p-quantile of the sorted, non-empty
// sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

package loadgen

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/replay"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tracePath is the 998-row excerpt of the Azure Functions 2021 trace.
const tracePath = "../../testdata/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv"

const testToken = "s3cret"

var allFormats = []Format{FormatJSON, FormatOTLPProto, FormatOTLPJSON}

// loadTrace returns the invocations of the real trace excerpt.
func loadTrace(t testing.TB) []replay.Invocation {
	t.Helper()
	r, err := replay.OpenTrace(tracePath)
	if err != nil {
		t.Fatalf("opening trace: %v", err)
	}
	defer func() { _ = r.Close() }()
	var invs []replay.Invocation
	for {
		in, err := r.Next()
		if errors.Is(err, io.EOF) {
			return invs
		}
		if err != nil {
			t.Fatalf("reading trace: %v", err)
		}
		invs = append(invs, in)
	}
}

// sliceSource is a replay.Source over a slice; err, when set, is returned
// after the slice (instead of io.EOF).
type sliceSource struct {
	invs []replay.Invocation
	errs map[int]error // errors returned before the invocation at that index
	i    int
	err  error
}

func (s *sliceSource) Next() (replay.Invocation, error) {
	if e, ok := s.errs[s.i]; ok {
		delete(s.errs, s.i)
		return replay.Invocation{}, e
	}
	if s.i >= len(s.invs) {
		if s.err != nil {
			return replay.Invocation{}, s.err
		}
		return replay.Invocation{}, io.EOF
	}
	s.i++
	return s.invs[s.i-1], nil
}

// stepClock returns a clock that starts at base and advances by 1 ms on
// every call, and the number of calls made so far.
func stepClock(base time.Time) (now func() time.Time, calls func() int) {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			n++
			return base.Add(time.Duration(n-1) * time.Millisecond)
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

// fakeIngest is an ingest service double: it checks the bearer token,
// decodes requests with encoding/json or pdata, and remembers the records
// of every request it acknowledges.
type fakeIngest struct {
	t *testing.T
	// fail, when set, may fail an attempt: given the request's arrival
	// number (0-based, counted by first record id) and its attempt number
	// (1-based), a non-zero status is answered with that status and
	// retryAfter; status -1 drops the connection.
	fail func(req, attempt int) (status int, retryAfter string)
	// reject, when set, returns how many records of a request to reject.
	reject func(n int) int

	mu       sync.Mutex
	got      map[string]telemetry.Record
	dups     int
	order    map[string]int // first record id → arrival number
	attempts map[string]int // first record id → attempts
}

func newFakeIngest(t *testing.T) *fakeIngest {
	return &fakeIngest{t: t, got: map[string]telemetry.Record{}, order: map[string]int{}, attempts: map[string]int{}}
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		f.t.Errorf("method %s, want POST", r.Method)
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctype := r.Header.Get("Content-Type")
	var recs []telemetry.Record
	var otlp bool
	switch r.URL.Path {
	case "/v1/telemetry":
		if ctype != "application/json" {
			f.t.Errorf("content type %q for /v1/telemetry", ctype)
		}
		if err := json.Unmarshal(body, &recs); err != nil {
			f.t.Errorf("decoding telemetry body: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	case "/v1/traces":
		otlp = true
		recs, err = decodeOTLP(body, ctype)
		if err != nil {
			f.t.Errorf("decoding OTLP body: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	default:
		f.t.Errorf("path %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if len(recs) == 0 {
		f.t.Errorf("empty request")
		return
	}

	f.mu.Lock()
	key := recs[0].InvocationID
	if _, ok := f.order[key]; !ok {
		f.order[key] = len(f.order)
	}
	f.attempts[key]++
	seq, attempt := f.order[key], f.attempts[key]
	f.mu.Unlock()
	if f.fail != nil {
		status, retryAfter := f.fail(seq, attempt)
		switch {
		case status == -1:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				f.t.Errorf("hijacking: %v", err)
				return
			}
			_ = conn.Close()
			return
		case status != 0:
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, `{"error":"try again"}`, status)
			return
		}
	}

	rejected := 0
	if f.reject != nil {
		rejected = f.reject(len(recs))
	}
	f.mu.Lock()
	for _, rec := range recs[rejected:] {
		if _, dup := f.got[rec.InvocationID]; dup {
			f.dups++
		}
		f.got[rec.InvocationID] = rec
	}
	f.mu.Unlock()

	status := http.StatusOK
	if rejected == len(recs) {
		status = http.StatusUnprocessableEntity
	}
	if !otlp {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"accepted": len(recs) - rejected, "rejected": rejected, "errors": []any{}})
		return
	}
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(int64(rejected))
		resp.PartialSuccess().SetErrorMessage("rejected for the test")
	}
	var out []byte
	if ctype == "application/json" {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		f.t.Errorf("encoding OTLP response: %v", err)
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// decodeOTLP decodes an OTLP export request into records, checking what the
// records do not show: span kind, span name, trace and span ids.
func decodeOTLP(body []byte, ctype string) ([]telemetry.Record, error) {
	req := ptraceotlp.NewExportRequest()
	var err error
	switch ctype {
	case "application/json":
		err = req.UnmarshalJSON(body)
	case "application/x-protobuf":
		err = req.UnmarshalProto(body)
	default:
		err = fmt.Errorf("content type %q", ctype)
	}
	if err != nil {
		return nil, err
	}
	var recs []telemetry.Record
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		app, _ := rs.Resource().Attributes().Get(telemetry.AttrServiceName)
		prov, _ := rs.Resource().Attributes().Get(telemetry.AttrProvider)
		provider := prov.Str()
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				fn, _ := sp.Attributes().Get(telemetry.AttrFaaSName)
				id, _ := sp.Attributes().Get(telemetry.AttrInvocationID)
				if sp.Kind() != ptrace.SpanKindServer {
					return nil, fmt.Errorf("span %s: kind %v", id.Str(), sp.Kind())
				}
				if sp.Name() != fn.Str() {
					return nil, fmt.Errorf("span %s: name %q, faas.name %q", id.Str(), sp.Name(), fn.Str())
				}
				tid := sp.TraceID()
				if hex.EncodeToString(tid[:]) != id.Str() || sp.SpanID().IsEmpty() {
					return nil, fmt.Errorf("span %s: trace id %x, span id %x", id.Str(), tid, sp.SpanID())
				}
				start, end := int64(sp.StartTimestamp()), int64(sp.EndTimestamp())
				if start%1000 != 0 || end%1000 != 0 {
					return nil, fmt.Errorf("span %s: times %d..%d ns are not whole µs", id.Str(), start, end)
				}
				startUS := start / 1000
				recs = append(recs, telemetry.Record{
					InvocationID: id.Str(),
					App:          app.Str(),
					Func:         fn.Str(),
					EndUS:        end / 1000,
					DurationUS:   (end - start) / 1000,
					StartUS:      &startUS,
					Provider:     &provider,
				})
			}
		}
	}
	return recs, nil
}

// server starts f behind an httptest.Server, closed at the end of the test.
func (f *fakeIngest) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

// records returns what the server acknowledged, by id.
func (f *fakeIngest) records() map[string]telemetry.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

type invKey struct {
	app, fn string
	dur     int64
}

// checkDelivered checks that got holds exactly the invocations want, once
// each, with ends stamped by a stepClock from base that was called at
// most batches times, and returns how many ids were salted.
func checkDelivered(t *testing.T, got map[string]telemetry.Record, want []replay.Invocation, base time.Time, batches int) (salted int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("server holds %d records, want %d", len(got), len(want))
	}
	left := map[invKey]int{}
	for _, in := range want {
		left[invKey{in.App, in.Func, in.DurationUS}]++
	}
	b0 := base.UnixMicro()
	for id, r := range got {
		k := invKey{r.App, r.Func, r.DurationUS}
		if left[k] == 0 {
			t.Errorf("record %s: %+v is not in the source (or delivered too often)", id, k)
			continue
		}
		left[k]--
		if off := r.EndUS - b0; off < 0 || off%1000 != 0 || off/1000 >= int64(batches) {
			t.Errorf("record %s: end_us %d is not a clock reading (base %d, %d batches)", id, r.EndUS, b0, batches)
		}
		if r.StartUS == nil || *r.StartUS != r.EndUS-r.DurationUS {
			t.Errorf("record %s: start_us %v, want end − duration = %d", id, r.StartUS, r.EndUS-r.DurationUS)
		}
		if r.Provider == nil || *r.Provider != "azure" {
			t.Errorf("record %s: provider %v, want azure", id, r.Provider)
		}
		if len(id) != 32 {
			t.Errorf("record %s: id is not 32 hex digits", id)
		}
		if id != telemetry.InvocationID(r.App, r.Func, r.EndUS, r.DurationUS) {
			salted++
		}
	}
	return salted
}

// testLogger logs warnings and errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// acks collects the ids OnAck sees.
type acks struct {
	mu    sync.Mutex
	calls int
	ids   map[string]int
}

func (a *acks) onAck(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.ids == nil {
		a.ids = map[string]int{}
	}
	for _, id := range ids {
		a.ids[id]++
	}
}

// check verifies that the acknowledged ids are exactly those of got, each
// acknowledged once.
func (a *acks) check(t *testing.T, got map[string]telemetry.Record, requests int64) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if int64(a.calls) != requests {
		t.Errorf("OnAck called %d times, want %d", a.calls, requests)
	}
	if len(a.ids) != len(got) {
		t.Errorf("OnAck saw %d ids, server holds %d", len(a.ids), len(got))
	}
	for id, n := range a.ids {
		if n != 1 {
			t.Errorf("OnAck saw id %s %d times", id, n)
		}
		if _, ok := got[id]; !ok {
			t.Errorf("OnAck saw id %s that the server does not hold", id)
		}
	}
}

func TestRunDeliversEveryRecordOnce(t *testing.T) {
	invs := loadTrace(t)
	for _, tc := range []struct {
		format   Format
		prebuild bool
	}{{allFormats[0], false}, {allFormats[1], false}, {allFormats[2], false}, {FormatJSON, true}, {FormatOTLPProto, true}} {
		t.Run(fmt.Sprintf("%s/prebuild=%v", tc.format, tc.prebuild), func(t *testing.T) {
			format := tc.format
			f := newFakeIngest(t)
			srv := f.server(t)
			base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			now, calls := stepClock(base)
			var a acks
			res, err := Run(t.Context(), Config{
				URL: srv.URL, Token: testToken, Format: format, Client: srv.Client(),
				Now: now, OnAck: a.onAck, Prebuild: tc.prebuild,
			}, &sliceSource{invs: invs}, testLogger(t))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			want := Result{Records: 998, Requests: 10, Accepted: 998}
			if res.Records != want.Records || res.Requests != want.Requests || res.Accepted != want.Accepted ||
				res.Rejected != 0 || res.Failed != 0 || res.Retries != 0 {
				t.Errorf("result %+v, want counts %+v", res, want)
			}
			if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max {
				t.Errorf("latencies p50 %v p90 %v p99 %v max %v are not ordered and positive", res.P50, res.P90, res.P99, res.Max)
			}
			if res.Wall <= 0 || res.RecordsPerSec <= 0 {
				t.Errorf("wall %v, records/s %v", res.Wall, res.RecordsPerSec)
			}
			got := f.records()
			salted := checkDelivered(t, got, invs, base, calls())
			t.Logf("%d of %d ids salted against collisions within a batch", salted, len(got))
			if f.dups != 0 {
				t.Errorf("server saw %d duplicate ids", f.dups)
			}
			a.check(t, got, res.Requests)
		})
	}
}

func TestRunRetries(t *testing.T) {
	invs := loadTrace(t)
	for _, format := range []Format{FormatJSON, FormatOTLPProto} {
		t.Run(string(format), func(t *testing.T) {
			f := newFakeIngest(t)
			// The first attempt of every other request fails: 503, 429 with
			// Retry-After, a dropped connection or 500, in turn.
			f.fail = func(req, attempt int) (int, string) {
				if attempt > 1 || req%2 == 1 {
					return 0, ""
				}
				switch req % 8 {
				case 0:
					return http.StatusServiceUnavailable, ""
				case 2:
					return http.StatusTooManyRequests, "1"
				case 4:
					return -1, ""
				default:
					return http.StatusInternalServerError, ""
				}
			}
			srv := f.server(t)
			base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			now, calls := stepClock(base)
			var a acks
			res, err := Run(t.Context(), Config{
				URL: srv.URL, Token: testToken, Format: format, Client: srv.Client(),
				Now: now, OnAck: a.onAck, Batch: 50, Concurrency: 8,
			}, &sliceSource{invs: invs}, testLogger(t))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Records != 998 || res.Requests != 20 || res.Accepted != 998 || res.Failed != 0 || res.Rejected != 0 {
				t.Errorf("result %+v, want 998 records in 20 requests, all accepted", res)
			}
			if res.Retries != 10 {
				t.Errorf("%d retries, want 10 (the first attempt of every other request failed)", res.Retries)
			}
			got := f.records()
			checkDelivered(t, got, invs, base, calls())
			if f.dups != 0 {
				t.Errorf("server acknowledged %d ids twice", f.dups)
			}
			a.check(t, got, res.Requests)
		})
	}
}

func TestRunRefusedAndExhausted(t *testing.T) {
	invs := loadTrace(t)[:200]
	t.Run("wrong token", func(t *testing.T) {
		f := newFakeIngest(t)
		srv := f.server(t)
		var a acks
		res, err := Run(t.Context(), Config{URL: srv.URL, Token: "wrong", Client: srv.Client(), OnAck: a.onAck},
			&sliceSource{invs: invs}, testLogger(t))
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Failed != 200 || res.Accepted != 0 || res.Retries != 0 || res.P50 != 0 {
			t.Errorf("result %+v, want 200 failed without retries", res)
		}
		if a.calls != 0 {
			t.Errorf("OnAck called %d times for refused requests", a.calls)
		}
	})
	t.Run("retries exhausted", func(t *testing.T) {
		f := newFakeIngest(t)
		f.fail = func(req, attempt int) (int, string) {
			if req == 0 {
				return http.StatusServiceUnavailable, ""
			}
			return 0, ""
		}
		srv := f.server(t)
		res, err := Run(t.Context(), Config{URL: srv.URL, Token: testToken, Client: srv.Client(), MaxRetries: 2, Concurrency: 1},
			&sliceSource{invs: invs}, testLogger(t))
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Failed != 100 || res.Accepted != 100 || res.Retries != 2 || res.Requests != 2 {
			t.Errorf("result %+v, want request 1 failed after 2 retries and request 2 accepted", res)
		}
	})
}

func TestRunRejected(t *testing.T) {
	invs := loadTrace(t)[:300]
	for _, format := range allFormats {
		t.Run(string(format), func(t *testing.T) {
			f := newFakeIngest(t)
			var mu sync.Mutex
			calls := 0
			f.reject = func(n int) int {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == 3 {
					return n // 422
				}
				return 2
			}
			srv := f.server(t)
			var a acks
			res, err := Run(t.Context(), Config{URL: srv.URL, Token: testToken, Format: format, Client: srv.Client(),
				Concurrency: 1, OnAck: a.onAck}, &sliceSource{invs: invs}, testLogger(t))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Accepted != 196 || res.Rejected != 104 || res.Failed != 0 || res.Retries != 0 {
				t.Errorf("result %+v, want 196 accepted and 104 rejected", res)
			}
			if a.calls != 2 {
				t.Errorf("OnAck called %d times, want 2 (422 is no acknowledgement)", a.calls)
			}
		})
	}
}

// countingLimiter counts the waits Run asks of its rate limiter without
// waiting.
type countingLimiter struct {
	lim          *rate.Limiter
	calls, total int
	maxN         int
}

func (c *countingLimiter) WaitN(_ context.Context, n int) error {
	c.calls++
	c.total += n
	c.maxN = max(c.maxN, n)
	return nil
}

func TestRunConfiguresRateLimiter(t *testing.T) {
	invs := loadTrace(t)[:900]
	for _, tc := range []struct {
		name string
		rate float64
		want rate.Limit
	}{
		{"rate 2000", 2000, 2000},
		{"unlimited", 0, rate.Inf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeIngest(t)
			srv := f.server(t)
			var cl *countingLimiter
			cfg := Config{URL: srv.URL, Token: testToken, Client: srv.Client(), Rate: tc.rate, Batch: 64}
			cfg.wrapLimiter = func(l *rate.Limiter) waiter {
				cl = &countingLimiter{lim: l}
				return cl
			}
			res, err := Run(t.Context(), cfg, &sliceSource{invs: invs}, testLogger(t))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Accepted != 900 {
				t.Errorf("accepted %d, want 900", res.Accepted)
			}
			if cl.lim.Limit() != tc.want || cl.lim.Burst() < 64 {
				t.Errorf("limiter limit %v burst %d, want limit %v and burst ≥ the batch (64)", cl.lim.Limit(), cl.lim.Burst(), tc.want)
			}
			if cl.calls != 15 || cl.total != 900 || cl.maxN > cl.lim.Burst() {
				t.Errorf("WaitN called %d times for %d records (largest %d), want 15 calls for 900 records within the burst",
					cl.calls, cl.total, cl.maxN)
			}
		})
	}
}

// handlerTransport serves requests in-process with a handler, so that a
// test can run inside a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return rec.Result(), nil
}

func TestRunPacesInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 7, Apps: 20})
		if err != nil {
			t.Fatalf("making synthetic trace: %v", err)
		}
		f := newFakeIngest(t)
		res, err := Run(t.Context(), Config{
			URL: "http://ingest.test", Token: testToken, Rate: 2000, Limit: 1000,
			Client: &http.Client{Transport: handlerTransport{f}},
		}, src, testLogger(t))
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Accepted != 1000 || len(f.records()) != 1000 {
			t.Errorf("accepted %d, server holds %d, want 1000", res.Accepted, len(f.records()))
		}
		// The first batch of 100 is the burst; the other 900 records take
		// 900/2000 s of (virtual, hence exact) time.
		if want := 450 * time.Millisecond; res.Wall != want {
			t.Errorf("wall %v, want %v", res.Wall, want)
		}
		if math.Abs(res.RecordsPerSec-2000*1000/900.0) > 1e-6 {
			t.Errorf("records/s %v, want %v", res.RecordsPerSec, 2000*1000/900.0)
		}
	})
}

func TestRunLimit(t *testing.T) {
	invs := loadTrace(t)
	f := newFakeIngest(t)
	srv := f.server(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now, calls := stepClock(base)
	src := &sliceSource{invs: invs}
	res, err := Run(t.Context(), Config{URL: srv.URL, Token: testToken, Client: srv.Client(), Limit: 250, Now: now},
		src, testLogger(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Records != 250 || res.Requests != 3 || res.Accepted != 250 {
		t.Errorf("result %+v, want 250 records in 3 requests", res)
	}
	if src.i != 250 {
		t.Errorf("read %d invocations of the source, want 250", src.i)
	}
	checkDelivered(t, f.records(), invs[:250], base, calls())
}

// signalHandler is a slog handler that logs to the test and signals when a
// record with message msg is logged.
type signalHandler struct {
	slog.Handler
	msg string
	ch  chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

// TestRunCancel cancels Run while a request is in flight and while it waits
// to retry (Retry-After: 60 s). It runs in a synctest bubble, where time
// only moves when every goroutine waits: Run returns at the virtual instant
// of the cancel, or the test sees how long it waited, whatever the load on
// the machine.
func TestRunCancel(t *testing.T) {
	invs := loadTrace(t)
	for _, tc := range []struct {
		name     string
		waitRetr bool
	}{
		{"request in flight", false},
		{"waiting to retry", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				arrived := make(chan struct{}, 100)
				release := make(chan struct{})
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					arrived <- struct{}{}
					if tc.waitRetr {
						w.Header().Set("Retry-After", "60")
						http.Error(w, "slow down", http.StatusTooManyRequests)
						return
					}
					select { // hold the request until the client gives up
					case <-r.Context().Done():
					case <-release:
					}
				})
				defer close(release)
				retrying := make(chan struct{}, 1)
				logger := slog.New(signalHandler{Handler: testLogger(t).Handler(), msg: "retrying request", ch: retrying})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				type ret struct {
					res Result
					err error
				}
				done := make(chan ret, 1)
				go func() {
					res, err := Run(ctx, Config{URL: "http://ingest.test", Client: &http.Client{Transport: cancelTransport{h}}, Concurrency: 2},
						&sliceSource{invs: invs}, logger)
					done <- ret{res, err}
				}()
				if tc.waitRetr {
					<-retrying
				} else {
					<-arrived
				}
				t0 := time.Now()
				cancel()
				select {
				case r := <-done:
					if !errors.Is(r.err, context.Canceled) {
						t.Errorf("Run returned %v, want context.Canceled", r.err)
					}
					if r.res.Accepted != 0 || r.res.Failed != 0 || r.res.Records > 2*DefaultBatch {
						t.Errorf("result %+v, want nothing accepted or failed and at most two requests sent", r.res)
					}
					if d := time.Since(t0); d != 0 {
						t.Errorf("Run returned %v (virtual time) after the cancel, want at once", d)
					}
				case <-time.After(time.Hour):
					t.Fatal("Run did not return after cancel")
				}
			})
		})
	}
}

// cancelTransport serves requests in-process with a handler, like
// handlerTransport, and fails a request whose context ended as a real
// client does.
type cancelTransport struct{ h http.Handler }

func (ct cancelTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, _ := handlerTransport(ct).RoundTrip(r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return resp, nil
}

func TestRunSourceErrors(t *testing.T) {
	invs := loadTrace(t)[:150]
	f := newFakeIngest(t)
	srv := f.server(t)
	boom := errors.New("disk on fire")
	src := &sliceSource{
		invs: invs,
		errs: map[int]error{10: &replay.LineError{File: "t.csv", Line: 12, Reason: "got 3 fields"}},
		err:  boom,
	}
	res, err := Run(t.Context(), Config{URL: srv.URL, Token: testToken, Client: srv.Client()}, src, testLogger(t))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading the source after record 150") {
		t.Errorf("Run returned %v, want the source's error after record 150", err)
	}
	if res.BadLines != 1 || res.Records != 150 || res.Accepted != 150 {
		t.Errorf("result %+v, want 1 bad line skipped and the 150 records read delivered", res)
	}
}

func TestRunConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"empty url", Config{}},
		{"bad scheme", Config{URL: "ftp://example.com"}},
		{"no host", Config{URL: "http://"}},
		{"unknown format", Config{URL: "http://x", Format: "csv"}},
		{"negative rate", Config{URL: "http://x", Rate: -1}},
		{"NaN rate", Config{URL: "http://x", Rate: math.NaN()}},
		{"negative batch", Config{URL: "http://x", Batch: -1}},
		{"negative concurrency", Config{URL: "http://x", Concurrency: -1}},
		{"negative limit", Config{URL: "http://x", Limit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(t.Context(), tc.cfg, &sliceSource{}, nil)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("Run returned %v, want ErrConfig", err)
			}
		})
	}
}

func TestBuilderIDs(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := newBuilder(FormatJSON, func() time.Time { return base }) // a stopped clock
	in := replay.Invocation{App: "a", Func: "f", EndUS: 5_000_000, DurationUS: 1500, Row: 1}
	first, err := b.build([]replay.Invocation{in, in, in})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	end := base.UnixMicro()
	if first.ids[0] != telemetry.InvocationID("a", "f", end, 1500) {
		t.Errorf("id %s, want telemetry.InvocationID", first.ids[0])
	}
	if first.ids[0] == first.ids[1] || first.ids[1] == first.ids[2] || first.ids[0] == first.ids[2] {
		t.Errorf("ids %v collide within a batch", first.ids)
	}
	second, err := b.build([]replay.Invocation{in})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	var recs []telemetry.Record
	if err := json.Unmarshal(second.body, &recs); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if recs[0].EndUS != end+1 || second.ids[0] != telemetry.InvocationID("a", "f", end+1, 1500) {
		t.Errorf("second batch on a stopped clock: end %d id %s, want end %d and its own id", recs[0].EndUS, second.ids[0], end+1)
	}
	if !bytes.Contains(second.body, []byte(`"provider":"azure"`)) {
		t.Errorf("body %s lacks the provider", second.body)
	}
}

func BenchmarkBuild(b *testing.B) {
	invs := loadTrace(b)[:100]
	for _, format := range allFormats {
		b.Run(string(format), func(b *testing.B) {
			bl := newBuilder(format, time.Now)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				req, err := bl.build(invs)
				if err != nil {
					b.Fatal(err)
				}
				size = len(req.body)
			}
			b.ReportMetric(float64(size), "bytes/batch")
		})
	}
}

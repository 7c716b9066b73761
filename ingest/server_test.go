package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/tlstest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// harness is an ingest server on an embedded broker.
type harness struct {
	t       testing.TB
	addr    string
	url     string
	brokers []string
	srv     *Server
	clk     *clock
	reg     *prometheus.Registry
	stop    func() error
	// read counts the bytes the server read from its connections.
	read *atomic.Int64
	// kafka is the embedded broker (closed when the test ends).
	kafka *kafka.Embedded
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func start(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	k, err := kafka.StartEmbedded(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	clk := &clock{now: t0}
	reg := prometheus.NewRegistry()
	cfg := Config{Brokers: k.Brokers(), RunID: "r", Tokens: []string{"tok"}, Lateness: 5 * time.Second,
		WatermarkEvery: time.Hour, Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := countingListener{Listener: raw, n: new(atomic.Int64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, "", "") }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			serr = <-done
		})
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return &harness{t: t, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), brokers: k.Brokers(), srv: srv, clk: clk,
		reg: reg, stop: stop, read: ln.n, kafka: k}
}

// countingListener counts the bytes read from its connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// dial opens a raw connection to the server, closed at the end of the test.
func (h *harness) dial() net.Conn {
	h.t.Helper()
	c, err := (&net.Dialer{}).DialContext(h.t.Context(), "tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// ids returns the invocation ids on the telemetry topic, sorted.
func (h *harness) ids() []string {
	h.t.Helper()
	var ids []string
	for _, rs := range h.records() {
		for _, r := range rs {
			if !strings.HasPrefix(r, "wm:") {
				ids = append(ids, r)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) post(path, tok string, body []byte, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), http.MethodPost, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// records returns the telemetry topic's records in partition order: the
// observations' ids and "wm:<µs>" for watermarks.
func (h *harness) records() map[int32][]string {
	h.t.Helper()
	out := map[int32][]string{}
	h.readTopic(schemas.TopicTelemetry, func(r *kgo.Record) {
		if kafka.IsWatermark(r) {
			var w stratapb.Watermark
			_ = proto.Unmarshal(r.Value, &w)
			out[r.Partition] = append(out[r.Partition], fmt.Sprintf("wm:%d", w.WatermarkUs))
			return
		}
		var o stratapb.Observation
		_ = proto.Unmarshal(r.Value, &o)
		out[r.Partition] = append(out[r.Partition], o.GetArrival().GetInvocationId())
	})
	return out
}

// readTopic hands each record of topic to f, in partition order, until the
// end offsets it found when called.
func (h *harness) readTopic(topic string, f func(*kgo.Record)) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(h.t.Context(), topic)
	if err != nil {
		h.t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			f(r)
		})
	}
}

func rec(id string, end time.Time, durMS int) string {
	return fmt.Sprintf(`{"invocation_id":%q,"app":"a","func":"f","end_us":%d,"duration_us":%d}`, id, end.UnixMicro(), durMS*1000)
}

type reply struct {
	Accepted, Rejected int
	Errors             []struct {
		Index  int
		Field  string
		Reason string
	}
}

func TestTelemetryRequests(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	big := "[" + strings.Repeat(rec("x", t0, 1)+",", 20000) + rec("x", t0, 1) + "]"
	gz := gzipped([]byte(rec("gz-1", t0, 10)))
	twoMembers := append(gzipped([]byte(rec("gz-2", t0, 10)+"\n")), gzipped([]byte(rec("gz-3", t0, 10)))...)
	bomb := gzipped(bytes.Repeat([]byte(" "), 2<<20)) // 2 MiB of blanks in a few kB
	gzHdr := []string{"Content-Encoding", "gzip"}
	cases := []struct {
		name         string
		tok          string
		body         []byte
		hdr          []string
		code         int
		err          string // in the error reply
		accepted     int
		rejectField  string
		rejectReason string
	}{
		{name: "no token", body: []byte(rec("n-1", t0, 10)), code: 401},
		{name: "wrong token", tok: "nope", body: []byte(rec("n-2", t0, 10)), code: 401},
		{name: "valid", tok: "tok", body: []byte("[" + rec("v-1", t0, 10) + "," + rec("v-2", t0, 20) + "]"), code: 200, accepted: 2},
		{name: "gzip", tok: "tok", body: gz, hdr: gzHdr, code: 200, accepted: 1},
		{name: "gzip members", tok: "tok", body: twoMembers, hdr: gzHdr, code: 200, accepted: 2},
		{name: "gzip trailing bytes", tok: "tok", body: append(gzipped([]byte(rec("gz-t", t0, 10))), "xyz"...), hdr: gzHdr, code: 400,
			err: "reading gzip body: trailing bytes after the gzip stream"},
		{name: "gzip trailing garbage", tok: "tok", body: append(gzipped([]byte(rec("gz-g", t0, 10))), bytes.Repeat([]byte("garbage "), 8)...), hdr: gzHdr,
			code: 400, err: "reading gzip body: trailing bytes after the gzip stream"},
		{name: "gzip truncated", tok: "tok", body: gz[:len(gz)-6], hdr: gzHdr, code: 400, err: "reading gzip body: gzip stream truncated"},
		{name: "gzip header truncated", tok: "tok", body: gz[:5], hdr: gzHdr, code: 400, err: "reading gzip body: gzip stream truncated"},
		{name: "not gzip", tok: "tok", body: []byte(rec("gz-n", t0, 10)), hdr: gzHdr, code: 400, err: "reading gzip body: not a gzip stream"},
		{name: "empty gzip", tok: "tok", hdr: gzHdr, code: 400, err: "reading gzip body: empty body"},
		{name: "gzip bomb", tok: "tok", body: bomb, hdr: gzHdr, code: 413, err: "decompressed request body exceeds 1048576 bytes"},
		{name: "unknown encoding", tok: "tok", body: []byte(rec("e-1", t0, 10)), hdr: []string{"Content-Encoding", "br"}, code: 415},
		{name: "late", tok: "tok", body: []byte(rec("v-3", t0, 10) + "\n" + rec("l-1", t0.Add(-10*time.Second), 10)), code: 200, accepted: 1,
			rejectField: "start", rejectReason: "before the watermark"},
		{name: "future", tok: "tok", body: []byte(rec("f-1", t0.Add(2*time.Minute), 10)), code: 422, rejectField: "end", rejectReason: "after the server's clock"},
		{name: "invalid only", tok: "tok", body: []byte(`{"app":"a","func":"f","end_us":-1,"duration_us":0}`), code: 422, rejectField: "end_us"},
		{name: "unreadable", tok: "tok", body: []byte(`[{"app":`), code: 400},
		{name: "too large", tok: "tok", body: []byte(big), code: 413, err: "request body exceeds 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := h.post("/v1/telemetry", tc.tok, tc.body, tc.hdr...)
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, b, tc.code)
			}
			if !strings.Contains(string(b), tc.err) {
				t.Errorf("reply %s, want an error saying %q", b, tc.err)
			}
			if code != 200 && code != 422 {
				return
			}
			var r reply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("reply %s: %v", b, err)
			}
			if r.Accepted != tc.accepted {
				t.Errorf("accepted %d, want %d (%s)", r.Accepted, tc.accepted, b)
			}
			if tc.rejectField != "" && (len(r.Errors) != 1 || r.Errors[0].Field != tc.rejectField || !strings.Contains(r.Errors[0].Reason, tc.rejectReason)) {
				t.Errorf("errors %+v, want one on %s saying %q", r.Errors, tc.rejectField, tc.rejectReason)
			}
		})
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// Written: exactly the accepted records; refused requests wrote nothing.
	const want = "gz-1,gz-2,gz-3,v-1,v-2,v-3"
	if got := strings.Join(h.ids(), ","); got != want {
		t.Errorf("telemetry holds %s, want %s", got, want)
	}
	st := h.srv.Stats()
	if st.Accepted != 6 || st.Rejected != 3 || st.Refused != 12 {
		t.Errorf("stats %+v", st)
	}
	if n := testutil.ToFloat64(h.srv.m.rejected.WithLabelValues("late")); n != 1 {
		t.Errorf("late rejections metric %v, want 1", n)
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// TestRateLimitRefusesWholeRequest runs the limiter on the harness's
// clock, which only the test moves: the budget does not depend on how long
// the requests take.
func TestRateLimitRefusesWholeRequest(t *testing.T) {
	h := start(t, func(c *Config) { c.RatePerToken, c.RateBurst = 5, 5 })
	body := func(prefix string, n int) []byte {
		var lines []string
		for i := range n {
			lines = append(lines, rec(fmt.Sprintf("%s-%d", prefix, i), t0, 1))
		}
		return []byte(strings.Join(lines, "\n"))
	}
	if code, _, b := h.post("/v1/telemetry", "tok", body("a", 4)); code != 200 {
		t.Fatalf("first request: %d %s", code, b)
	}
	// One record left in the bucket: four more need 0.6 s.
	code, hdr, _ := h.post("/v1/telemetry", "tok", body("b", 4))
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d (Retry-After %q), want 429 with Retry-After 1", code, hdr.Get("Retry-After"))
	}
	if code, _, _ := h.post("/v1/telemetry", "tok", body("c", 6)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("request over the burst: %d, want 413", code)
	}
	// A second later the bucket is full again.
	h.clk.set(t0.Add(time.Second))
	if code, _, b := h.post("/v1/telemetry", "tok", body("d", 5)); code != 200 {
		t.Fatalf("request after a second: %d %s", code, b)
	}
	_ = h.stop()
	n := map[string]int{}
	for _, id := range h.ids() {
		p, _, _ := strings.Cut(id, "-")
		n[p]++
	}
	if n["a"] != 4 || n["d"] != 5 || n["b"] != 0 || n["c"] != 0 {
		t.Fatalf("records written per request %v, want a: 4, d: 5 and none of the refused b and c", n)
	}
}

// TestRecordsPrecedeWatermarks checks the watermark contract: in every
// partition, no record starts before a watermark that precedes it.
func TestRecordsPrecedeWatermarks(t *testing.T) {
	h := start(t, func(c *Config) { c.Lateness = time.Second })
	startUS := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				now := h.clk.Now()
				id := fmt.Sprintf("w%d-%d", w, i)
				code, _, b := h.post("/v1/telemetry", "tok", []byte(rec(id, now, 500)))
				var r reply
				_ = json.Unmarshal(b, &r)
				if code == 200 && r.Accepted == 1 {
					mu.Lock()
					startUS[id] = now.Add(-500 * time.Millisecond).UnixMicro()
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 50 {
		h.clk.set(t0.Add(time.Duration(i) * 100 * time.Millisecond))
		if err := h.srv.Watermark(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	_ = h.stop()
	for p, rs := range h.records() {
		var wm int64
		for _, r := range rs {
			if v, ok := strings.CutPrefix(r, "wm:"); ok {
				if _, err := fmt.Sscan(v, &wm); err != nil {
					t.Fatalf("partition %d: watermark %q: %v", p, v, err)
				}
				continue
			}
			if s := startUS[r]; s < wm {
				t.Fatalf("partition %d: %s starts at %d after watermark %d", p, r, s, wm)
			}
		}
	}
	if len(startUS) == 0 {
		t.Fatal("no record accepted")
	}
}

func TestNoTokensNeedsExplicitDevFlag(t *testing.T) {
	k, err := kafka.StartEmbedded(1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := New(t.Context(), Config{Brokers: k.Brokers()}, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Fatal("no tokens and no dev flag: started")
	}
	s, err := New(t.Context(), Config{Brokers: k.Brokers(), NoAuth: true}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.cl.Close()
}

// TestServeTLS serves HTTPS with a self-signed certificate: a client that
// trusts it is answered, a plain-HTTP request is not.
func TestServeTLS(t *testing.T) {
	cert := tlstest.SelfSigned(t)
	certFile, keyFile := cert.CertFile, cert.KeyFile
	k, err := kafka.StartEmbedded(1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	srv, err := New(t.Context(), Config{Brokers: k.Brokers(), Tokens: []string{"tok"}, WatermarkEvery: time.Hour, Now: func() time.Time { return t0 }},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, certFile, keyFile) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	client := cert.Client(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+ln.Addr().String()+"/v1/telemetry",
		strings.NewReader(rec("tls-1", t0, 10)))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"accepted":1`) {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, b)
	}
	plain, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
	if resp, err := http.DefaultClient.Do(plain); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a plain-HTTP request was served by the TLS listener")
		}
	}
}

// TestHostileNesting sends the bodies that crashed the service (a stack
// overflow in the JSON syntax check): deep and unclosed nesting is
// answered 400 naming the nesting (a record nested too deep inside a
// readable body is that record's rejection, 422), nothing is written and
// the service keeps serving.
func TestHostileNesting(t *testing.T) {
	h := start(t, nil)
	const deep = 2_000_000
	cases := []struct {
		name string
		path string
		body []byte
		code int
	}{
		{"nested arrays", "/v1/telemetry", []byte(strings.Repeat("[", deep) + strings.Repeat("]", deep)), http.StatusBadRequest},
		{"unclosed arrays", "/v1/telemetry", bytes.Repeat([]byte("["), 1<<20), http.StatusBadRequest},
		{"nested objects in a record", "/v1/telemetry", []byte(`{"app":"a","func":"f","x":` + strings.Repeat(`{"y":`, deep/4) + "1" + strings.Repeat("}", deep/4) + "}"),
			http.StatusUnprocessableEntity},
		{"OTLP JSON nested arrays", "/v1/traces", []byte(`{"resourceSpans":` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + "}"), http.StatusBadRequest},
		{"OTLP JSON unclosed", "/v1/traces", []byte(`{"resourceSpans":` + strings.Repeat("[", 1<<20)), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := h.post(tc.path, "tok", tc.body)
			if code != tc.code || !strings.Contains(string(b), "nesting deeper than") {
				t.Fatalf("status %d (%.300s), want %d naming the nesting", code, b, tc.code)
			}
			// The service is alive and serves the next request.
			if code, _, b := h.post("/v1/telemetry", "tok", []byte(rec("after-"+tc.name, t0, 1))); code != http.StatusOK {
				t.Fatalf("the next request: %d %s", code, b)
			}
		})
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if ids := h.ids(); len(ids) != len(cases) {
		t.Errorf("telemetry holds %v, want only the %d records sent after each hostile body", ids, len(cases))
	}
}

// TestSlowBodyCut drips a body byte by byte on a raw connection: the server
// answers 408 (or closes) at the body deadline, having read a few bytes of
// the megabyte announced, writes nothing and leaves no goroutine behind.
func TestSlowBodyCut(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const declared = 1 << 20
	for _, tc := range []struct {
		name string
		enc  string
		body []byte
	}{
		{"plain", "", []byte(rec("slow-1", t0, 1))},
		{"gzip", "gzip", gzipped([]byte(rec("slow-2", t0, 1)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, func(c *Config) { c.BodyTimeout = 200 * time.Millisecond })
			c := h.dial()
			hdr := "POST /v1/telemetry HTTP/1.1\r\nHost: ingest\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n" +
				fmt.Sprintf("Content-Length: %d\r\n", declared)
			if tc.enc != "" {
				hdr += "Content-Encoding: " + tc.enc + "\r\n"
			}
			if _, err := io.WriteString(c, hdr+"\r\n"); err != nil {
				t.Fatal(err)
			}
			// Drip the body until the server answers; nothing marks the
			// time but the server's own deadline.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					b := []byte{' '}
					if i < len(tc.body) {
						b = tc.body[i : i+1]
					}
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the test, not an assertion
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			close(stop)
			wg.Wait()
			switch {
			case err == nil:
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "not received within") {
					t.Fatalf("reply %d %s, want 408", resp.StatusCode, b)
				}
				if !resp.Close {
					t.Error("the 408 keeps the connection open")
				}
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatal("the server neither answered nor closed the connection")
			}
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			if n := h.read.Load(); n >= declared {
				t.Errorf("the server read %d bytes, want a few of the %d announced", n, declared)
			}
			if ids := h.ids(); len(ids) != 0 {
				t.Errorf("telemetry holds %v, want nothing", ids)
			}
			if n := testutil.ToFloat64(h.srv.m.limited.WithLabelValues("body_timeout")); n != 1 {
				t.Errorf("body timeouts counted %v, want 1", n)
			}
		})
	}
}

// TestIdleConnectionsClosed opens connections that send nothing, that
// dribble their headers, and keep-alive connections that sent one request:
// with small timeouts the server closes every one (a read returns EOF or a
// reset, never the test's own deadline).
func TestIdleConnectionsClosed(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	// The header timeout leaves the kept-alive connections' first request
	// time to arrive on a loaded machine; the idle timeout is short.
	h := start(t, func(c *Config) {
		c.ReadHeaderTimeout, c.IdleTimeout = time.Second, 200*time.Millisecond
	})
	const n = 20
	var conns []net.Conn
	for range n { // silent: no token, no request
		conns = append(conns, h.dial())
	}
	for range n { // keep-alive after one request
		c := h.dial()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		conns = append(conns, readerConn{Conn: c, r: br})
	}
	// One dribbling its headers, a byte at a time.
	drip := h.dial()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := io.WriteString(drip, "GET /healthz HTTP/1.1\r\nX-Slow: "); err != nil {
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(drip, "a"); err != nil {
				return
			}
		}
	}()
	conns = append(conns, drip)
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the test, not an assertion
		b, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d still open (read %q)", i, b)
		}
		if len(b) > 0 {
			t.Errorf("connection %d: the server wrote %q before closing, want nothing", i, b)
		}
	}
}

// readerConn reads through the buffered reader that holds what was read
// past a response.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestConnectionCap holds MaxConns connections open: the next one is
// answered 503 and closed without being read, and once one of them closes
// a new connection is served.
func TestConnectionCap(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const maxConns = 3
	h := start(t, func(c *Config) { c.MaxConns = maxConns })
	// healthz asks GET /healthz on c and returns the status code.
	healthz := func(c net.Conn) (int, error) {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n"); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the test
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	var held []net.Conn
	for range maxConns {
		c := h.dial()
		if code, err := healthz(c); err != nil || code != http.StatusOK {
			t.Fatalf("connection under the cap: %d %v", code, err)
		}
		held = append(held, c)
	}
	over := h.dial()
	_ = over.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("connection over the cap: %v, want a 503", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(string(b), "--max-conns") {
		t.Fatalf("over the cap: %d %v %s, want 503 with Retry-After and Connection: close", resp.StatusCode, resp.Header, b)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Error("the connection over the cap stays open")
	}
	// A place frees up when a held connection closes; the server notices
	// the close on its own time, so try until it does.
	_ = held[0].Close()
	for i := 0; ; i++ {
		c := h.dial()
		code, err := healthz(c)
		_ = c.Close()
		if err == nil && code == http.StatusOK {
			break
		}
		if i == 1000 {
			t.Fatalf("no connection served after one closed: %d %v", code, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.srv.Stats(); st.RefusedConns < 1 {
		t.Errorf("stats %+v, want the refused connection counted", st)
	}
	if n := testutil.ToFloat64(h.srv.m.limited.WithLabelValues("max_conns")); n < 1 {
		t.Errorf("max_conns refusals %v, want at least 1", n)
	}
}

// TestInFlightCap holds MaxInFlight requests in flight (their bodies half
// sent): the next request is answered 503 with Retry-After before its body
// is read, writes nothing, and the held requests complete.
func TestInFlightCap(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const maxInFlight = 2
	h := start(t, func(c *Config) { c.MaxInFlight = maxInFlight })
	type heldReq struct {
		c    net.Conn
		rest string
	}
	var held []heldReq
	for i := range maxInFlight {
		body := rec(fmt.Sprintf("held-%d", i), t0, 1)
		c := h.dial()
		req := "POST /v1/telemetry HTTP/1.1\r\nHost: ingest\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body[:10]
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		held = append(held, heldReq{c, body[10:]})
	}
	// Both handlers hold their place once they wait for the rest.
	for i := 0; len(h.srv.slots) < maxInFlight; i++ {
		if i == 3000 {
			t.Fatalf("%d requests in flight, want %d", len(h.srv.slots), maxInFlight)
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, hdr, b := h.post("/v1/telemetry", "tok", []byte(rec("over-1", t0, 1)))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" || !strings.Contains(string(b), "--max-in-flight") {
		t.Fatalf("over the cap: %d %v %s, want 503 with Retry-After 1", code, hdr, b)
	}
	for i, r := range held {
		if _, err := io.WriteString(r.c, r.rest); err != nil {
			t.Fatal(err)
		}
		_ = r.c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the test
		resp, err := http.ReadResponse(bufio.NewReader(r.c), nil)
		if err != nil {
			t.Fatalf("held request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"accepted":1`) {
			t.Fatalf("held request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if code, _, b := h.post("/v1/telemetry", "tok", []byte(rec("after-1", t0, 1))); code != http.StatusOK {
		t.Fatalf("after the held requests: %d %s", code, b)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.ids(), ","); got != "after-1,held-0,held-1" {
		t.Errorf("telemetry holds %s, want after-1,held-0,held-1", got)
	}
	if n := testutil.ToFloat64(h.srv.m.limited.WithLabelValues("max_in_flight")); n != 1 {
		t.Errorf("max_in_flight refusals %v, want 1", n)
	}
}

// TestDrainWatermark checks the last watermark of DrainWindow: the end of
// the window holding the latest start accepted, after every record, and
// none when nothing was accepted.
func TestDrainWatermark(t *testing.T) {
	const win = 15 * time.Second
	for _, tc := range []struct {
		name   string
		ends   []time.Duration // after t0, 1 s long
		wantWM time.Time       // the last watermark
	}{
		{"records", []time.Duration{3 * time.Second, 20 * time.Second, 10 * time.Second}, t0.Add(30 * time.Second)},
		{"a record on a window start", []time.Duration{16 * time.Second}, t0.Add(30 * time.Second)},
		{"nothing accepted", nil, t0.Add(-5 * time.Second)}, // the initial one: now − lateness
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, func(c *Config) { c.DrainWindow = win })
			// Served: the initial watermark is written.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+"/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			for i, e := range tc.ends {
				if code, _, b := h.post("/v1/telemetry", "tok", []byte(rec(fmt.Sprint("d-", i), t0.Add(e), 1000))); code != 200 {
					t.Fatalf("record %d: %d %s", i, code, b)
				}
			}
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint("wm:", tc.wantWM.UnixMicro())
			for p, rs := range h.records() {
				if rs[len(rs)-1] != want {
					t.Errorf("partition %d ends with %v, want %s", p, rs, want)
				}
			}
			if st := h.srv.Stats(); st.WatermarkUS != tc.wantWM.UnixMicro() {
				t.Errorf("stats %+v, want watermark %d", st, tc.wantWM.UnixMicro())
			}
		})
	}
}

// TestKafkaDownAnswers503 stops the broker under a running server: a
// request whose records Kafka does not acknowledge within ProduceTimeout
// is answered 503 with Retry-After: 1, saying why.
func TestKafkaDownAnswers503(t *testing.T) {
	h := start(t, func(c *Config) { c.ProduceTimeout, c.WriteTimeout = 300*time.Millisecond, 2*time.Second })
	if code, _, b := h.post("/v1/telemetry", "tok", []byte(rec("up-1", t0, 1))); code != http.StatusOK {
		t.Fatalf("request with Kafka up: %d %s", code, b)
	}
	h.kafka.Close()
	t1 := time.Now()
	code, hdr, b := h.post("/v1/telemetry", "tok", []byte(rec("down-1", t0, 1)))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" || !strings.Contains(string(b), "kafka did not acknowledge the records within 300ms") {
		t.Fatalf("request with Kafka down: %d (Retry-After %q) %s, want 503 with Retry-After 1 and the reason", code, hdr.Get("Retry-After"), b)
	}
	if d := time.Since(t1); d < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the produce timeout", d)
	}
}

// TestReadOnlyTokens checks the two token sets: a write token may post
// telemetry and read decisions and metrics; a read-only token may read but
// its writes are refused with 403 and write nothing; no token, or an
// unknown one, gets 401 everywhere, /metrics included. A token in both
// sets is refused at start.
func TestReadOnlyTokens(t *testing.T) {
	decisions := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") })
	h := start(t, func(c *Config) {
		c.ReadTokens = []string{"reader"}
		c.Decisions = decisions
		c.Gatherer = prometheus.NewRegistry()
	})
	get := func(path, tok string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, tok                 string
		write, decisions, metrics int
	}{
		{"write token", "tok", http.StatusOK, http.StatusOK, http.StatusOK},
		{"read-only token", "reader", http.StatusForbidden, http.StatusOK, http.StatusOK},
		{"no token", "", http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
		{"unknown token", "nobody", http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, b := h.post("/v1/telemetry", tc.tok, []byte(rec("ro-"+tc.name, t0, 10))); code != tc.write {
				t.Errorf("POST /v1/telemetry: %d %s, want %d", code, b, tc.write)
			}
			if code := get("/v1/decisions/a/f", tc.tok); code != tc.decisions {
				t.Errorf("GET /v1/decisions: %d, want %d", code, tc.decisions)
			}
			if code := get("/metrics", tc.tok); code != tc.metrics {
				t.Errorf("GET /metrics: %d, want %d", code, tc.metrics)
			}
		})
	}
	if ids := h.ids(); !slices.Equal(ids, []string{"ro-write token"}) {
		t.Errorf("telemetry holds %v, want only the write token's record", ids)
	}
	if _, err := New(t.Context(), Config{Brokers: h.brokers, Tokens: []string{"x"}, ReadTokens: []string{"x"}}, slog.New(slog.DiscardHandler), nil); err == nil ||
		!strings.Contains(err.Error(), "both a write and a read-only token") {
		t.Errorf("a token in both sets: %v", err)
	}
}

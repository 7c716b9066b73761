package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
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
	t       *testing.T
	url     string
	brokers []string
	srv     *Server
	clk     *clock
	reg     *prometheus.Registry
	stop    func() error
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func start(t *testing.T, mod func(*Config)) *harness {
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
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	return &harness{t: t, url: "http://" + ln.Addr().String(), brokers: k.Brokers(), srv: srv, clk: clk, reg: reg, stop: stop}
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(schemas.TopicTelemetry),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(h.t.Context(), schemas.TopicTelemetry)
	if err != nil {
		h.t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	out := map[int32][]string{}
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	for len(left) > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatal("reading telemetry: ", ctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
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
	}
	return out
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
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(rec("gz-1", t0, 10)))
	_ = zw.Close()
	cases := []struct {
		name         string
		tok          string
		body         []byte
		hdr          []string
		code         int
		accepted     int
		rejectField  string
		rejectReason string
	}{
		{name: "no token", body: []byte(rec("n-1", t0, 10)), code: 401},
		{name: "wrong token", tok: "nope", body: []byte(rec("n-2", t0, 10)), code: 401},
		{name: "valid", tok: "tok", body: []byte("[" + rec("v-1", t0, 10) + "," + rec("v-2", t0, 20) + "]"), code: 200, accepted: 2},
		{name: "gzip", tok: "tok", body: gz.Bytes(), hdr: []string{"Content-Encoding", "gzip"}, code: 200, accepted: 1},
		{name: "unknown encoding", tok: "tok", body: []byte(rec("e-1", t0, 10)), hdr: []string{"Content-Encoding", "br"}, code: 415},
		{name: "late", tok: "tok", body: []byte(rec("v-3", t0, 10) + "\n" + rec("l-1", t0.Add(-10*time.Second), 10)), code: 200, accepted: 1,
			rejectField: "start", rejectReason: "before the watermark"},
		{name: "future", tok: "tok", body: []byte(rec("f-1", t0.Add(2*time.Minute), 10)), code: 422, rejectField: "end", rejectReason: "after the server's clock"},
		{name: "invalid only", tok: "tok", body: []byte(`{"app":"a","func":"f","end_us":-1,"duration_us":0}`), code: 422, rejectField: "end_us"},
		{name: "unreadable", tok: "tok", body: []byte(`[{"app":`), code: 400},
		{name: "too large", tok: "tok", body: []byte(big), code: 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := h.post("/v1/telemetry", tc.tok, tc.body, tc.hdr...)
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, b, tc.code)
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
	var ids []string
	for _, rs := range h.records() {
		for _, r := range rs {
			if !strings.HasPrefix(r, "wm:") {
				ids = append(ids, r)
			}
		}
	}
	if got := strings.Join(slices.Sorted(slices.Values(ids)), ","); got != "gz-1,v-1,v-2,v-3" {
		t.Errorf("telemetry holds %s, want gz-1,v-1,v-2,v-3", got)
	}
	st := h.srv.Stats()
	if st.Accepted != 4 || st.Rejected != 3 || st.Refused != 5 {
		t.Errorf("stats %+v", st)
	}
	if n := testutil.ToFloat64(h.srv.m.rejected.WithLabelValues("late")); n != 1 {
		t.Errorf("late rejections metric %v, want 1", n)
	}
}

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
	code, hdr, _ := h.post("/v1/telemetry", "tok", body("b", 4))
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("second request: %d (Retry-After %q), want 429 with Retry-After", code, hdr.Get("Retry-After"))
	}
	if code, _, _ := h.post("/v1/telemetry", "tok", body("c", 6)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("request over the burst: %d, want 413", code)
	}
	_ = h.stop()
	n := 0
	for _, rs := range h.records() {
		for _, r := range rs {
			if strings.HasPrefix(r, "b-") || strings.HasPrefix(r, "c-") {
				t.Fatalf("a refused request wrote %s", r)
			}
			if strings.HasPrefix(r, "a-") {
				n++
			}
		}
	}
	if n != 4 {
		t.Fatalf("%d records of the accepted request written, want 4", n)
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
				_, _ = fmt.Sscan(v, &wm)
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
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
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
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, der))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
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

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

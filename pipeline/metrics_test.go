package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/infra/tlstest"
	"github.com/strata-rl/strata/pipeline"
)

// TestServeMetrics serves the metrics on a free port and refuses a taken
// one with the listener's error.
func TestServeMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := freeAddr(t)
	if err := pipeline.ServeMetrics(ctx, pipeline.MetricsFlags{Addr: addr}, pipeline.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Fatalf("GET /metrics: %v, status %d, %d bytes", err, resp.StatusCode, len(body))
	}
	// The port is now taken by the server above.
	err = pipeline.ServeMetrics(ctx, pipeline.MetricsFlags{Addr: addr}, pipeline.NewRegistry())
	want := "serving metrics on " + addr + ": listen tcp " + addr + ": bind: address already in use"
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || err.Error() != want {
		t.Fatalf("serving on a taken port: %v, want %q", err, want)
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestServeMetricsTokensAndTLS serves the metrics over HTTPS behind a
// tokens file: a scrape without a token, or with another, gets 401 and no
// metrics; one with a listed token gets them; a plain-HTTP scrape is not
// served. A tokens file without a token, a certificate without its key and
// an unreadable certificate fail before anything listens.
func TestServeMetricsTokensAndTLS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cert := tlstest.SelfSigned(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# scrapers\nprom-1\n\nprom-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	if err := pipeline.ServeMetrics(ctx, pipeline.MetricsFlags{Addr: addr, TokensFile: tokens, TLSCert: cert.CertFile, TLSKey: cert.KeyFile},
		pipeline.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	client := cert.Client(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"another token", "Bearer prom-3", http.StatusUnauthorized},
		{"not a bearer", "Basic cHJvbS0xOg==", http.StatusUnauthorized},
		{"first token", "Bearer prom-1", http.StatusOK},
		{"second token", "bearer prom-2", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want || bytes.Contains(body, []byte("go_goroutines")) != (tc.want == http.StatusOK) {
				t.Fatalf("status %d with %d bytes, want %d (metrics only with it)", resp.StatusCode, len(body), tc.want)
			}
		})
	}
	plain, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	plain.Header.Set("Authorization", "Bearer prom-1")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr}).Do(plain); err == nil {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if bytes.Contains(body, []byte("go_goroutines")) {
			t.Fatal("a plain-HTTP scrape got the metrics from the TLS listener")
		}
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nobody\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    pipeline.MetricsFlags
		want string
	}{
		{"tokens file without a token", pipeline.MetricsFlags{TokensFile: empty}, "holds no token"},
		{"missing tokens file", pipeline.MetricsFlags{TokensFile: filepath.Join(dir, "none")}, "no such file"},
		{"certificate without key", pipeline.MetricsFlags{TLSCert: cert.CertFile}, "go together"},
		{"key for certificate", pipeline.MetricsFlags{TLSCert: tokens, TLSKey: cert.KeyFile}, "loading --metrics-tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Addr = freeAddr(t)
			err := pipeline.ServeMetrics(ctx, tc.m, pipeline.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ServeMetrics = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// metricSum sums the counter and gauge samples of the metric name in reg.
func metricSum(reg *prometheus.Registry, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum, nil
}

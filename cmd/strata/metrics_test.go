package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServeMetrics serves the metrics on a free port and refuses a taken
// one with the listener's error.
func TestServeMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := serveMetrics(ctx, addr, newRegistry()); err != nil {
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
	err = serveMetrics(ctx, addr, newRegistry())
	want := "serving metrics on " + addr + ": listen tcp " + addr + ": bind: address already in use"
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || err.Error() != want {
		t.Fatalf("serving on a taken port: %v, want %q", err, want)
	}
}

// TestMetricsAddrTaken starts every role that serves metrics on a taken
// port: each fails at once with the listener's error, before it connects
// to anything.
func TestMetricsAddrTaken(t *testing.T) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	addr := ln.Addr().String()
	dead := "127.0.0.1:1" // nothing listens there; a role that got past the metrics would fail differently
	for _, args := range [][]string{
		{"run", "--progress=false"},
		{"run", "--observed", "--progress=false"},
		{"replay", "--kafka", dead},
		{"features", "--kafka", dead, "--nats", "nats://" + dead},
		{"sink", "--kafka", dead, "--store", filepath.Join(t.TempDir(), "s.duckdb")},
		{"learner", "--kafka", dead, "--nats", "nats://" + dead, "--run-id", "r"},
		{"live", "--no-store", "--dev-no-auth"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append(args, "--metrics-addr", addr), &out, &errOut)
			if err == nil || !strings.HasPrefix(err.Error(), "serving metrics on "+addr+": ") || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("strata %s --metrics-addr %s (taken): %v, want the listener's error", strings.Join(args, " "), addr, err)
			}
		})
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/strata-rl/strata/pipeline"
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
	if err := pipeline.ServeMetrics(ctx, addr, pipeline.NewRegistry()); err != nil {
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
	err = pipeline.ServeMetrics(ctx, addr, pipeline.NewRegistry())
	want := "serving metrics on " + addr + ": listen tcp " + addr + ": bind: address already in use"
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || err.Error() != want {
		t.Fatalf("serving on a taken port: %v, want %q", err, want)
	}
}

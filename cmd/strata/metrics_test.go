package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

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

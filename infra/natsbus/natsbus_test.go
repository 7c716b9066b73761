package natsbus_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// TestEnsureStreamsConcurrently starts several roles' stream setup at once
// against a fresh server, each on a connection of its own and with a
// retention of its own, as the roles of a deployment do: every one
// succeeds (a create that loses the race to another retries as an
// update).
func TestEnsureStreamsConcurrently(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const roles = 8
	var wg sync.WaitGroup
	errs := make([]error, roles)
	for i := range roles {
		wg.Go(func() {
			nc, err := natsbus.Connect(srv.URL(), "role")
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[i] = err
				return
			}
			// Roles differ in retention, as a run and a standalone agent
			// may: an identical create would be idempotent on the server.
			errs[i] = natsbus.EnsureStreams(t.Context(), js, natsbus.StreamConfig{Names: schemas.Names{Prefix: "race"}, Memory: true, MaxBytes: int64(64+i) << 20})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("role %d: %v", i, err)
		}
	}
}

// TestConnectInProcess publishes a state batch to JetStream over the
// in-memory connection and follows it back over the same connection, as
// the closed loop's roles do, while a client on the loopback port sees the
// same stream.
func TestConnectInProcess(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := srv.ConnectInProcess("in-process")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := mustJS(t, nc)
	names := schemas.Names{Prefix: "inproc"}
	if err := natsbus.EnsureStreams(t.Context(), js, natsbus.StreamConfig{Names: names, Memory: true}); err != nil {
		t.Fatal(err)
	}
	subject := names.StateSubject(schemas.Operational)
	pub := natsbus.NewBatchPublisher(js, 0)
	for _, m := range []string{"a", "b"} {
		if err := pub.Publish(t.Context(), subject, "id-"+m, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	tcp, err := natsbus.Connect(srv.URL(), "loopback")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	for _, c := range []struct {
		name string
		js   jetstream.JetStream
	}{{"in process", js}, {"loopback", mustJS(t, tcp)}} {
		ctx, cancel := context.WithCancel(t.Context())
		var got []string
		err := natsbus.Follow(ctx, c.js, names.Stream(schemas.StreamState), subject, func(data []byte) error {
			got = append(got, string(data))
			if len(got) == 2 {
				cancel()
			}
			return nil
		})
		cancel()
		if err != nil || strings.Join(got, ",") != "a,b" {
			t.Errorf("%s: followed %v (err %v), want a,b", c.name, got, err)
		}
	}
}

func mustJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// recordHandler keeps every log record's level, message and attributes.
type recordHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	h.recs = append(h.recs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}

// TestConnectLogsAsyncErrors checks that WithLogger routes a connection's
// asynchronous errors to the logger (a slow consumer here, as a warning
// naming the connection and the subject) instead of nats.go's default
// handler, which writes them unformatted to the process's stderr.
func TestConnectLogsAsyncErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := &recordHandler{}
	for _, c := range []struct {
		name    string
		connect func() (*nats.Conn, error)
	}{
		{"in process", func() (*nats.Conn, error) { return srv.ConnectInProcess("logged", natsbus.WithLogger(slog.New(h))) }},
		{"loopback", func() (*nats.Conn, error) {
			return natsbus.Connect(srv.URL(), "logged", natsbus.WithLogger(slog.New(h)))
		}},
	} {
		h.mu.Lock()
		h.recs = nil
		h.mu.Unlock()
		nc, err := c.connect()
		if err != nil {
			t.Fatal(err)
		}
		block := make(chan struct{})
		sub, err := nc.Subscribe("slow", func(*nats.Msg) { <-block })
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.SetPendingLimits(2, -1); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if err := nc.Publish("slow", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(h.lines()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		close(block)
		nc.Close()
		got := h.lines()
		if len(got) == 0 || !strings.HasPrefix(got[0], "WARN nats: asynchronous error") ||
			!strings.Contains(got[0], "slow consumer") || !strings.Contains(got[0], "subject=slow") || !strings.Contains(got[0], "connection=logged") {
			t.Errorf("%s: logged %q, want a warning about the slow consumer on subject slow", c.name, got)
		}
	}
}

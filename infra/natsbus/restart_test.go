package natsbus_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// restartable is an in-process nats-server with JetStream on a fixed port
// and store directory, so that it can be shut down and started again as
// the same server with the same streams.
type restartable struct {
	t    *testing.T
	port int
	dir  string
	s    *server.Server
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &restartable{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: r.port, JetStream: true, StoreDir: r.dir, NoLog: true, NoSigs: true})
	if err != nil {
		r.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		r.t.Fatal("nats-server not ready")
	}
	r.s = s
}

func (r *restartable) stop() {
	if r.s != nil {
		r.s.Shutdown()
		r.s.WaitForShutdown()
		r.s = nil
	}
}

func (r *restartable) url() string { return "nats://127.0.0.1:" + strconv.Itoa(r.port) }

// connect connects to r with strata's options and makes sure the streams
// exist.
func (r *restartable) connect(names schemas.Names) jetstream.JetStream {
	r.t.Helper()
	nc, err := natsbus.Connect(r.url(), "restart-test")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, natsbus.PublishAsyncTimeout())
	if err != nil {
		r.t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(r.t.Context(), js, natsbus.StreamConfig{Names: names}); err != nil {
		r.t.Fatal(err)
	}
	return js
}

// TestBatchPublisherAndFollowSurviveServerRestart publishes 200 batches
// while the server is shut down after the 60th and started again (same
// port, same store) a second later, with a follower reading throughout:
// Flush succeeds, the stream holds each batch once (the duplicate window
// drops those sent again), and the follower delivers all 200 once, in
// order.
func TestBatchPublisherAndFollowSurviveServerRestart(t *testing.T) {
	names := schemas.Names{Prefix: "rs"}
	srv := startRestartable(t)
	js := srv.connect(names)
	subject := names.StateSubject(schemas.Tactical)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	const n = 200
	got := make(chan string, n+10)
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		followed <- natsbus.Follow(fctx, js, names.Stream(schemas.StreamState), subject, func(data []byte) error {
			got <- string(data)
			return nil
		})
	}()

	p := natsbus.NewBatchPublisher(js, 16)
	restarted := make(chan struct{})
	for i := range n {
		if i == 60 {
			srv.stop()
			go func() {
				defer close(restarted)
				time.Sleep(time.Second)
				srv.start()
			}()
		}
		if err := p.Publish(ctx, subject, "b-"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush after the restart: %v", err)
	}
	<-restarted
	info, err := js.Stream(ctx, names.Stream(schemas.StreamState))
	if err != nil {
		t.Fatal(err)
	}
	if msgs := info.CachedInfo().State.Msgs; msgs != n {
		t.Fatalf("stream holds %d batches, want %d (each once)", msgs, n)
	}
	for i := range n {
		select {
		case d := <-got:
			if d != strconv.Itoa(i) {
				t.Fatalf("follower delivered %q as batch %d", d, i)
			}
		case <-ctx.Done():
			t.Fatalf("follower delivered %d of %d batches", i, n)
		}
	}
	stopFollow()
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
}

// TestBatchPublisherOutageBound shuts the server down for good: Flush
// returns one error naming the bound once a batch has failed for longer
// than it.
func TestBatchPublisherOutageBound(t *testing.T) {
	names := schemas.Names{Prefix: "rb"}
	srv := startRestartable(t)
	js := srv.connect(names)
	subject := names.StateSubject(schemas.Tactical)
	p := natsbus.NewBatchPublisher(js, 16)
	p.OutageBound = time.Second
	srv.stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	t0 := time.Now()
	err := p.Publish(ctx, subject, "b-0", []byte("0"))
	if err == nil {
		err = p.Flush(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "longer than the outage bound 1s") {
		t.Fatalf("publishing with the server gone: %v, want the outage bound's error", err)
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("gave up after %s", d)
	}
	t.Log(fmt.Sprint(err))
}

package natsbus_test

import (
	"context"
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

// restartable is an in-process nats-server with JetStream (file store) on
// a fixed port and store directory, so that it can be shut down and
// started again as the same server with the same streams.
type restartable struct {
	t    *testing.T
	port int
	dir  string
	s    *server.Server
}

func newRestartable(t *testing.T) *restartable {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &restartable{t: t, port: port, dir: t.TempDir()}
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

// connect connects to r as strata does and makes sure the streams exist.
func (r *restartable) connect(names schemas.Names) jetstream.JetStream {
	r.t.Helper()
	nc, err := natsbus.Connect(r.url(), "restart-test")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, natsbus.PublishAsyncTimeoutOpt())
	if err != nil {
		r.t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(r.t.Context(), js, natsbus.StreamConfig{Names: names}); err != nil {
		r.t.Fatal(err)
	}
	return js
}

// follow runs natsbus.Follow on subject of the state stream until the
// test ends, sending what it delivers to the returned channel; done
// receives Follow's result.
func follow(t *testing.T, ctx context.Context, js jetstream.JetStream, names schemas.Names, subject string, n int) (got <-chan string, done <-chan error) {
	t.Helper()
	ch, errc := make(chan string, n+10), make(chan error, 1)
	go func() {
		errc <- natsbus.Follow(ctx, js, names.Stream(schemas.StreamState), subject, func(data []byte) error {
			ch <- string(data)
			return nil
		})
	}()
	return ch, errc
}

// expectInOrder reads n batches "0" … "n-1" from got; a Follow that ends
// first fails the test with its error.
func expectInOrder(t *testing.T, ctx context.Context, got <-chan string, done <-chan error, n int) {
	t.Helper()
	for i := range n {
		select {
		case d := <-got:
			if d != strconv.Itoa(i) {
				t.Fatalf("follower delivered %q as batch %d", d, i)
			}
		case err := <-done:
			t.Fatalf("follower stopped after %d of %d batches: %v", i, n, err)
		case <-ctx.Done():
			t.Fatalf("follower delivered %d of %d batches", i, n)
		}
	}
}

// TestBatchPublisherAndFollowSurviveServerRestart publishes 200 batches
// while the server is shut down after the 60th and started again (same
// port, same store) a second later, with a follower reading throughout:
// Flush succeeds, the stream holds each batch once (the duplicate window
// drops those sent again), and the follower delivers all 200 once, in
// order.
func TestBatchPublisherAndFollowSurviveServerRestart(t *testing.T) {
	names := schemas.Names{Prefix: "rs"}
	srv := newRestartable(t)
	srv.start()
	js := srv.connect(names)
	subject := names.StateSubject(schemas.Tactical)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	const n = 200
	fctx, stopFollow := context.WithCancel(ctx)
	got, followed := follow(t, fctx, js, names, subject, n)
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
	expectInOrder(t, ctx, got, followed, n)
	stopFollow()
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
}

// TestFollowStartedWhileServerDown starts a follower while the server is
// shut down (as a role started during a restart would be): it waits for
// the server instead of failing, and once the server is back it delivers
// every batch. (A Follow that gave up at once, its consumer not created,
// is how TestBatchPublisherAndFollowSurviveServerRestart once saw 0 of 200
// batches: there the follower's goroutine can reach the server only after
// the shutdown at batch 60.)
func TestFollowStartedWhileServerDown(t *testing.T) {
	names := schemas.Names{Prefix: "rd"}
	srv := newRestartable(t)
	srv.start()
	js := srv.connect(names)
	subject := names.StateSubject(schemas.Tactical)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := natsbus.NewBatchPublisher(js, 16)
	const n = 50
	for i := range n / 2 {
		if err := p.Publish(ctx, subject, "b-"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	fctx, stopFollow := context.WithCancel(ctx)
	got, followed := follow(t, fctx, js, names, subject, n)
	time.Sleep(time.Second) // the follower tries while the server is down
	srv.start()
	for i := n / 2; i < n; i++ {
		if err := p.Publish(ctx, subject, "b-"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	expectInOrder(t, ctx, got, followed, n)
	stopFollow()
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
}

// TestBatchPublisherOutageBound shuts the server down for good: the
// publisher returns one error naming the bound once the connection has
// been down for longer than it.
func TestBatchPublisherOutageBound(t *testing.T) {
	names := schemas.Names{Prefix: "rb"}
	srv := newRestartable(t)
	srv.start()
	js := srv.connect(names)
	subject := names.StateSubject(schemas.Tactical)
	p := natsbus.NewBatchPublisher(js, 16).SetOutageBound(time.Second)
	srv.stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := p.Publish(ctx, subject, "b-0", []byte("0"))
	if err == nil {
		err = p.Flush(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "longer than the outage bound 1s") {
		t.Fatalf("publishing with the server gone: %v, want the outage bound's error", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the test's deadline passed before the bound's error: %v", err)
	}
	t.Log(err)
}

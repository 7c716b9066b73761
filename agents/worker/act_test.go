package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// testPolicy decides Prewarm = prewarm for every operational row; with
// block it waits until its context is done instead, with fail it fails.
type testPolicy struct {
	name, version string
	prewarm       int32
	block         bool
	fail          error
}

func (p *testPolicy) Name() string    { return p.name }
func (p *testPolicy) Version() string { return p.version }

func (p *testPolicy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if p.block {
		<-ctx.Done()
		return fmt.Errorf("%s blocked: %w", p.name, ctx.Err())
	}
	if p.fail != nil {
		return p.fail
	}
	for _, r := range state.Operational {
		out.Rows = append(out.Rows, schemas.DecisionRow{App: r.App, Func: r.Func, Action: p.prewarm, Prewarm: p.prewarm})
	}
	return nil
}

// startNATS starts an in-process nats-server and returns a connection to
// it; both close when the test ends.
func startNATS(t *testing.T) (url string, nc *nats.Conn) {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv.URL(), connect(t, srv.URL())
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := natsbus.Connect(url, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve runs an act server for the operational layer on its own
// connection until the test ends, and checks that it stops cleanly.
func serve(t *testing.T, url string, p Policy) *ActServer {
	t.Helper()
	s := NewActServer(connect(t, url), schemas.Operational, p, slog.New(slog.DiscardHandler))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("act server: %v", err)
		}
	})
	return s
}

// opState returns an operational state batch for tick with one row per
// function name, each with a last-step peak concurrency of 3.
func opState(tick int64, funcs ...string) *schemas.StateBatch {
	st := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "live", Layer: schemas.Operational, Tick: tick,
		TickStartUS: tick * 15_000_000, Shard: 0, NShards: 1}}
	for _, f := range funcs {
		r := schemas.OperationalRow{App: "app", Func: f, Invocations: 4}
		r.ConcurrencyPeak[schemas.SeqLen-1] = 3
		r.ConcurrencyMean[schemas.SeqLen-1] = 1.5
		r.RequestRate[schemas.SeqLen-1] = 0.2
		st.Operational = append(st.Operational, r)
	}
	return st
}

func newPolicy(t *testing.T, name string) agents.Policy {
	t.Helper()
	p, err := agents.New(name, schemas.Operational, agents.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAct(t *testing.T) {
	errBroken := errors.New("model weights missing")
	cases := []struct {
		name     string
		server   func(t *testing.T) Policy // nil: no server listens
		deadline time.Duration
		// wantPolicy and wantPrewarm describe every returned row.
		wantPolicy  string
		wantPrewarm int32
		// wantCause is nil when the server decided.
		wantCause error
		wantText  string
	}{
		{name: "answered", server: func(t *testing.T) Policy { return newPolicy(t, "reactive") },
			deadline: 5 * time.Second, wantPolicy: "reactive", wantPrewarm: 3},
		{name: "deadline exceeded", server: func(*testing.T) Policy { return &testPolicy{name: "slow", block: true} },
			deadline: 100 * time.Millisecond, wantPolicy: "static-2x", wantPrewarm: 6, wantCause: context.DeadlineExceeded},
		{name: "no responders", deadline: 5 * time.Second,
			wantPolicy: "static-2x", wantPrewarm: 6, wantCause: nats.ErrNoResponders},
		{name: "error reply", server: func(*testing.T) Policy { return &testPolicy{name: "broken", fail: errBroken} },
			deadline: 5 * time.Second, wantPolicy: "static-2x", wantPrewarm: 6, wantCause: ErrActRejected, wantText: errBroken.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, nc := startNATS(t)
			if tc.server != nil {
				serve(t, url, tc.server(t))
			}
			st := opState(7, "f1", "f2", "f3")
			out, res, err := Act(t.Context(), nc, st, tc.deadline, newPolicy(t, "static-2x"))
			if err != nil {
				t.Fatalf("Act: %v", err)
			}
			if res.Fallback != (tc.wantCause != nil) {
				t.Errorf("Fallback = %v (cause %v), want %v", res.Fallback, res.Cause, tc.wantCause != nil)
			}
			if tc.wantCause == nil && res.Cause != nil {
				t.Errorf("Cause = %v, want nil", res.Cause)
			}
			if tc.wantCause != nil && !errors.Is(res.Cause, tc.wantCause) {
				t.Errorf("Cause = %v, want it to wrap %v", res.Cause, tc.wantCause)
			}
			if res.Cause != nil && !strings.Contains(res.Cause.Error(), tc.wantText) {
				t.Errorf("Cause = %q, want it to contain %q", res.Cause, tc.wantText)
			}
			if out.Header != st.Header {
				t.Errorf("reply header = %+v, want %+v", out.Header, st.Header)
			}
			if len(out.Rows) != len(st.Operational) {
				t.Fatalf("%d rows, want %d", len(out.Rows), len(st.Operational))
			}
			for i, r := range out.Rows {
				if r.App != "app" || r.Func != st.Operational[i].Func || r.Policy != tc.wantPolicy || r.PolicyVersion == "" || r.Prewarm != tc.wantPrewarm {
					t.Errorf("row %d = %+v, want %s/%s decided by %s with prewarm %d", i, r, "app", st.Operational[i].Func, tc.wantPolicy, tc.wantPrewarm)
				}
			}
		})
	}
}

func TestActErrors(t *testing.T) {
	_, nc := startNATS(t)
	failing := &testPolicy{name: "failing-fallback", fail: errors.New("no model")}
	if _, res, err := Act(t.Context(), nc, opState(1, "f"), time.Second, failing); err == nil || !res.Fallback ||
		!errors.Is(err, failing.fail) || !strings.Contains(err.Error(), "failing-fallback") {
		t.Errorf("failing fallback with no server: err %v, result %+v; want an error naming the fallback", err, res)
	}
	if _, _, err := Act(t.Context(), nc, opState(1, "f"), time.Second, nil); err == nil || !strings.Contains(err.Error(), "no fallback") {
		t.Errorf("nil fallback with no server: err %v, want one saying there is no fallback", err)
	}
	if _, _, err := Act(t.Context(), nc, opState(1, "f"), 0, failing); err == nil {
		t.Error("zero deadline: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Act(ctx, nc, opState(1, "f"), time.Second, newPolicy(t, "reactive")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err %v, want context.Canceled", err)
	}
}

// TestActServerRejectsMalformedRequests sends requests that do not decode
// or do not fit the layer: each gets an error reply saying what was wrong,
// and the server answers the next good request.
func TestActServerRejectsMalformedRequests(t *testing.T) {
	url, nc := startNATS(t)
	s := serve(t, url, newPolicy(t, "reactive"))
	good, err := schemas.EncodeState(opState(3, "f"))
	if err != nil {
		t.Fatal(err)
	}
	tactical, err := schemas.EncodeState(&schemas.StateBatch{Header: schemas.BatchHeader{RunID: "live", Layer: schemas.Tactical, NShards: 1}})
	if err != nil {
		t.Fatal(err)
	}
	newestOnly := opState(3, "f")
	newestOnly.Operational[0].Steps = 1
	partial, err := schemas.EncodeState(newestOnly)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		data     []byte
		deadline string
		want     string
	}{
		{name: "garbage", data: []byte("{\"app\": \"a\"}"), want: "decoding act request"},
		{name: "empty", data: nil, want: "decoding act request"},
		{name: "truncated", data: good[:len(good)/2], want: "decoding act request"},
		{name: "other layer", data: tactical, want: "holds a tactical state batch, want operational"},
		{name: "bad deadline", data: good, deadline: "soon", want: HeaderActDeadline},
		{name: "newest step only", data: partial, want: "carries 1 of the 12 steps; act requests carry whole sequences"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := &nats.Msg{Subject: schemas.ActSubject(schemas.Operational), Data: tc.data, Header: nats.Header{}}
			if tc.deadline != "" {
				msg.Header.Set(HeaderActDeadline, tc.deadline)
			}
			reply, err := nc.RequestMsg(msg, 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if e := reply.Header.Get(HeaderActError); !strings.Contains(e, tc.want) {
				t.Errorf("error reply %q, want it to contain %q", e, tc.want)
			}
			if len(reply.Data) != 0 {
				t.Errorf("error reply carries %d bytes of data", len(reply.Data))
			}
			out, res, err := Act(t.Context(), nc, opState(4, "f", "g"), 5*time.Second, newPolicy(t, "static-2x"))
			if err != nil || res.Fallback || len(out.Rows) != 2 || out.Rows[0].Policy != "reactive" {
				t.Fatalf("good request after a malformed one: err %v, result %+v, decisions %+v", err, res, out)
			}
		})
	}
	if st := s.Stats(); st.Rejected != int64(len(cases)) || st.Answered != int64(len(cases)) {
		t.Errorf("stats %+v, want %d rejected and %d answered", st, len(cases), len(cases))
	}
}

// TestActQueueGroup runs two servers in the queue group: each request is
// answered once, and both servers answer some.
func TestActQueueGroup(t *testing.T) {
	url, nc := startNATS(t)
	servers := []*ActServer{
		serve(t, url, &testPolicy{name: "fixed", version: "a", prewarm: 1}),
		serve(t, url, &testPolicy{name: "fixed", version: "b", prewarm: 2}),
	}
	const n = 40
	seen := map[string]int{}
	for i := range n {
		out, res, err := Act(t.Context(), nc, opState(int64(i), "f"), 5*time.Second, newPolicy(t, "static-2x"))
		if err != nil || res.Fallback || len(out.Rows) != 1 {
			t.Fatalf("request %d: err %v, result %+v, decisions %+v", i, err, res, out)
		}
		seen[out.Rows[0].PolicyVersion]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != n {
		t.Errorf("replies by version %v, want both servers to answer %d in all", seen, n)
	}
	for i, s := range servers {
		if got := s.Stats().Answered; got != int64(seen[[]string{"a", "b"}[i]]) {
			t.Errorf("server %d answered %d, its replies counted %d", i, got, seen[[]string{"a", "b"}[i]])
		}
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// TestAgentServesActAndTickBatches runs `strata agent --act` against an
// in-process nats-server with JetStream: a live request is answered by the
// agent's policy, a state batch of its run gets a decision batch, and
// cancelling the context stops it cleanly.
func TestAgentServesActAndTickBatches(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const runID = "run-agent-test"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--layer", "operational", "--policy", "reactive", "--nats", srv.URL(),
			"--run-id", runID, "--act", "--seed", "3"}, &stdout, io.Discard)
	}()

	nc, err := natsbus.Connect(srv.URL(), "agent-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fallback, err := agents.New("static-2x", schemas.Operational, agents.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The agent answers once it has subscribed; until then requests find
	// no responders and fall back.
	var out *schemas.DecisionBatch
	for wait := time.Now().Add(30 * time.Second); ; {
		var res worker.ActResult
		out, res, err = worker.Act(ctx, nc, pipelinetest.OperationalState("live", 5, "f1", "f2"), 5*time.Second, fallback)
		if err != nil {
			t.Fatalf("act: %v", err)
		}
		if !res.Fallback {
			break
		}
		if !errors.Is(res.Cause, nats.ErrNoResponders) || time.Now().After(wait) {
			t.Fatalf("act fell back: %v", res.Cause)
		}
		select {
		case err := <-done:
			t.Fatalf("agent stopped before answering: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if len(out.Rows) != 2 {
		t.Fatalf("act reply has %d rows, want 2", len(out.Rows))
	}
	for _, r := range out.Rows {
		if r.Policy != "reactive" || r.Prewarm != 2 {
			t.Errorf("act decision %+v, want reactive with prewarm 2", r)
		}
	}

	// The tick loop: the agent created the streams before it subscribed
	// to act requests.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.EncodeState(pipelinetest.OperationalState(runID, 9, "f1", "f2", "f3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, schemas.StateSubject(schemas.Operational), enc); err != nil {
		t.Fatalf("publishing a state batch: %v", err)
	}
	cons, err := js.OrderedConsumer(ctx, schemas.StreamDecision, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.DecisionSubject(schemas.Operational)}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("waiting for the decision batch: %v", err)
	}
	dec, err := schemas.DecodeDecisions(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	if dec.Header.RunID != runID || dec.Header.Tick != 9 || len(dec.Rows) != 3 || dec.Rows[0].Policy != "reactive" {
		t.Errorf("decision batch %+v, want run %s tick 9 with 3 reactive rows", dec, runID)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop after cancel")
	}
	if got := stdout.String(); !strings.Contains(got, "1 tick batches decided") || !strings.Contains(got, "1 act requests answered, 0 rejected") {
		t.Errorf("agent printed %q", got)
	}
}

// TestAgentFlags checks that bad command lines are refused before anything
// connects.
func TestAgentFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no layer", []string{"--policy", "reactive", "--nats", "nats://127.0.0.1:1", "--act"}, "unknown layer"},
		{"no policy", []string{"--layer", "tactical", "--nats", "nats://127.0.0.1:1", "--act"}, "needs --policy"},
		{"unknown policy", []string{"--layer", "operational", "--policy", "psychic", "--nats", "nats://127.0.0.1:1", "--act"}, "valid names are"},
		{"no nats", []string{"--layer", "operational", "--policy", "reactive", "--act"}, "needs --nats"},
		{"nothing to serve", []string{"--layer", "operational", "--policy", "reactive", "--nats", "nats://127.0.0.1:1"}, "--run-id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), append([]string{"agent"}, tc.args...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestAgentFollowsLearner runs `strata agent --follow` for the tactical
// layer: it serves the learner's checkpoint in force (v0) and decides hour
// 1 only once the learner's progress has reached hour 0.
func TestAgentFollowsLearner(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const runID = "run-follow-test"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	js := jetStreamForTest(ctx, t, srv.URL(), schemas.Names{})
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	lrn, err := learner.New(learner.DefaultConfig(1, schemas.Tactical), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lrn.Close()
	if err := lrn.Begin(ctx, runID, 0, ms); err != nil { // v0 in force from hour 0
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--layer", "tactical", "--policy", "ppo", "--follow", "--nats", srv.URL(), "--run-id", runID}, io.Discard, io.Discard)
	}()
	cons, err := js.OrderedConsumer(ctx, schemas.StreamDecision, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.DecisionSubject(schemas.Tactical)}})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(hour int64) {
		st := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: runID, Layer: schemas.Tactical, Tick: hour, TickStartUS: hour * 3_600_000_000, NShards: 1},
			Tactical: []schemas.TacticalRow{{App: "app", Func: "f", Provider: "aws", Invocations: 3, RequestRate: 0.1}}}
		enc, err := schemas.EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, schemas.StateSubject(schemas.Tactical), enc); err != nil {
			t.Fatal(err)
		}
	}
	next := func(wait time.Duration) (*schemas.DecisionBatch, error) {
		msg, err := cons.Next(jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, err
		}
		return schemas.DecodeDecisions(msg.Data())
	}
	publish(0)
	dec, err := next(30 * time.Second)
	if err != nil {
		t.Fatalf("waiting for hour 0's decisions: %v", err)
	}
	if len(dec.Rows) != 1 || dec.Rows[0].Policy != "ppo" || dec.Rows[0].PolicyVersion != "v0" {
		t.Fatalf("hour 0 decisions %+v, want one ppo v0 row", dec.Rows)
	}
	publish(1)
	// Hour 1 must wait for the learner. Seeing no decision within some
	// hundred milliseconds would prove nothing on a slow machine (an agent
	// that did not wait could simply not have got there yet), so the test
	// waits for a positive sign that the agent has got past the point
	// where it would have decided hour 1: its follower watching the
	// learner's progress key. ModelStore.WaitProgress creates that watch
	// (a consumer on the bucket's stream) only after reading the progress
	// and finding it short of hour 0, and it does so inside Decide, before
	// the decision batch is published; nothing else watches the key, and
	// hour 0 did not wait. From then on, until the progress is written
	// below, the agent is blocked there, so the decision stream must hold
	// hour 0's batch alone.
	waitProgressWatch(ctx, t, js, runID)
	ds, err := js.Stream(ctx, schemas.StreamDecision)
	if err != nil {
		t.Fatal(err)
	}
	subj := schemas.DecisionSubject(schemas.Tactical)
	info, err := ds.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subj]; n != 1 {
		t.Fatalf("%d decision batches on %s while the agent waits for the learner's progress, want hour 0's alone", n, subj)
	}
	if err := ms.PutProgress(ctx, runID, schemas.Tactical, 0); err != nil {
		t.Fatal(err)
	}
	if dec, err = next(30 * time.Second); err != nil || dec.Header.Tick != 1 {
		t.Fatalf("hour 1 after the learner's progress: %+v %v", dec, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
}

// waitProgressWatch waits (up to 30 s) until a consumer on the stream of
// the learner's key-value bucket filters on runID's progress key: a
// follower blocked in natsbus.ModelStore.WaitProgress.
func waitProgressWatch(ctx context.Context, t *testing.T, js jetstream.JetStream, runID string) {
	t.Helper()
	// The key-value bucket B is stored in stream KV_B, its key K under
	// subject $KV.B.K; the progress key is "<run>.<layer>.progress".
	stream, err := js.Stream(ctx, "KV_"+schemas.BucketLearner)
	if err != nil {
		t.Fatal(err)
	}
	watching := func() bool {
		l := stream.ListConsumers(ctx)
		found := false
		for ci := range l.Info() {
			for _, f := range append([]string{ci.Config.FilterSubject}, ci.Config.FilterSubjects...) {
				if strings.Contains(f, runID) && strings.HasSuffix(f, ".progress") {
					found = true
				}
			}
		}
		if err := l.Err(); err != nil {
			t.Fatalf("listing the consumers of %s: %v", "KV_"+schemas.BucketLearner, err)
		}
		return found
	}
	for wait := time.Now().Add(30 * time.Second); !watching(); {
		if time.Now().After(wait) {
			t.Fatal("the agent did not start waiting for the learner's progress within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jetStreamForTest connects to the nats-server at url, opens JetStream and
// creates strata's streams and buckets under names; the connection closes
// with the test.
func jetStreamForTest(ctx context.Context, t *testing.T, url string, names schemas.Names) jetstream.JetStream {
	t.Helper()
	nc, err := natsbus.Connect(url, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	return js
}

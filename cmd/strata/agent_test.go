package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// agentState returns an operational state batch of run runID for tick with
// one row per function.
func agentState(runID string, tick int64, funcs ...string) *schemas.StateBatch {
	st := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: runID, Layer: schemas.Operational, Tick: tick,
		TickStartUS: tick * 15_000_000, NShards: 1}}
	for _, f := range funcs {
		r := schemas.OperationalRow{App: "app", Func: f, Invocations: 2}
		r.ConcurrencyPeak[schemas.SeqLen-1] = 2
		st.Operational = append(st.Operational, r)
	}
	return st
}

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
		out, res, err = worker.Act(ctx, nc, agentState("live", 5, "f1", "f2"), 5*time.Second, fallback)
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
	enc, err := schemas.EncodeState(agentState(runID, 9, "f1", "f2", "f3"))
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

package decisions_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/consumers/decisions"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
)

// startJetStream starts an in-process nats-server with the strata streams
// and returns a JetStream context on a connection closed at cleanup.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, _ := natstest.JetStream(t, "decisions-test", natsbus.StreamConfig{Memory: true})
	return js
}

func publish(t *testing.T, pub *natsbus.BatchPublisher, b *schemas.DecisionBatch) {
	t.Helper()
	data, err := schemas.EncodeDecisions(b)
	if err != nil {
		t.Fatal(err)
	}
	h := b.Header
	if err := pub.Publish(t.Context(), schemas.DecisionSubject(h.Layer), schemas.BatchMsgID(h.RunID, h.Layer, h.Tick, h.Shard, h.NShards), data); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFollow(t *testing.T) {
	js := startJetStream(t)
	pub := natsbus.NewBatchPublisher(js, 0)
	// Published before the view starts: read back from the stream.
	publish(t, pub, batch(run, schemas.Strategic, 0, 0, 1, strategic("shop", "azure", "dqn")))
	publish(t, pub, batch(run, schemas.Operational, 10, 0, 2, oper("shop", "checkout", 1, "reactive")))
	publish(t, pub, batch("replay-7", schemas.Operational, 11, 0, 1, oper("shop", "checkout", 9, "other-run")))
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	v := decisions.NewView(decisions.Config{RunID: run, Epoch: epoch, Default: defPl}, nil, reg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.Follow(ctx, js) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	}()

	waitFor(t, "the operational decision published before Follow", func() bool {
		fd, ok := v.Function("shop", "checkout")
		return ok && fd.Operational != nil && fd.Strategic != nil
	})

	// Published while following: a garbage message on the operational
	// subject, the other shard of tick 10, a late tick 9 and a tactical
	// decision.
	if _, err := js.Publish(t.Context(), schemas.DecisionSubject(schemas.Operational), []byte("not an arrow batch")); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, batch(run, schemas.Operational, 10, 1, 2, oper("shop", "cart", 2, "reactive")))
	publish(t, pub, batch(run, schemas.Operational, 9, 0, 1, oper("shop", "checkout", 5, "late")))
	publish(t, pub, batch(run, schemas.Tactical, 1, 0, 1, tact("shop", "checkout", "eu-west", 512, "ppo")))
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tactical decision and the second shard", func() bool {
		fd, ok := v.Function("shop", "checkout")
		_, cart := v.Function("shop", "cart")
		return ok && fd.Tactical != nil && cart
	})
	// Each subject is delivered in order, but the subjects are followed
	// apart: the late tick 9 may still be on its way. Wait until it is
	// counted as stale.
	waitFor(t, "the late batch", func() bool {
		return counterValue(t, reg, "strata_decisions_rows_skipped_total", "stale") == 1
	})
	fd, _ := v.Function("shop", "checkout")
	want := decisions.Placement{Provider: "azure", Region: "eu-west", MemoryMB: 512, Prewarm: 1}
	if fd.Placement.Placement != want || fd.Operational.Tick != 10 || fd.Operational.Row.Policy != "reactive" {
		t.Errorf("checkout: placement %+v operational %+v, want %+v from tick 10", fd.Placement, fd.Operational, want)
	}
	if got := counterValue(t, reg, "strata_decisions_decode_failures_total", ""); got != 1 {
		t.Errorf("decode failures %v, want 1", got)
	}
}

// counterValue returns the value of counter name, of its series whose
// only label has value label ("" for a counter without labels), gathered
// from reg; 0 when it has none.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && (label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label)) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestFollowStopsWithoutStreams(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := natsbus.Connect(srv.URL(), "decisions-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	v := decisions.NewView(decisions.Config{RunID: run, Epoch: epoch, Default: defPl}, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := v.Follow(ctx, js); err == nil {
		t.Error("Follow without the decision stream returned nil, want an error")
	}
}

package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
)

// TestPromoteAndRollback publishes two trained PPO checkpoints to the
// registry on an embedded nats-server and serves the tactical layer from
// a deployment: promoting a version swaps it in at the next batch without
// a restart, rolling back swaps the one before in again, and a promotion
// of a version the registry lacks is refused and changes nothing.
func TestPromoteAndRollback(t *testing.T) {
	// Registered first, so run last: after the server and the connection
	// have closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
	})
	js, _ := natstest.JetStream(t, t.Name(), natsbus.StreamConfig{})
	ms, err := natsbus.OpenModelStore(t.Context(), js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	for i, dir := range []string{modelDir("hierarchy-hh", "s1"), modelDir("hierarchy-hh", "s2")} {
		data, err := os.ReadFile(dir + "/ppo.ckpt")
		if err != nil {
			t.Fatal(err)
		}
		c := schemas.Checkpoint{Layer: schemas.Tactical, Version: []string{"v1", "v2"}[i], InForce: int64(i), Data: data}
		if err := ms.PutCheckpoint(t.Context(), "train-1", c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ms.Rollback(t.Context(), "prod", schemas.Tactical); !errors.Is(err, natsbus.ErrNothingServed) {
		t.Fatalf("rollback with nothing promoted: %v", err)
	}
	if _, err := ms.Promote(t.Context(), "prod", schemas.Tactical, natsbus.Served{Run: "train-1", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	opts := agents.Options{Seed: 1, Model: m}
	load := pipeline.ServedLoader(schemas.Tactical, opts)
	// The agent starts from the model served when it starts.
	start, ok, err := ms.ServedNow(t.Context(), "prod", schemas.Tactical)
	if err != nil || !ok || start.Version != "v1" {
		t.Fatalf("served now: %+v, %v, %v", start, ok, err)
	}
	c, err := ms.ServedCheckpoint(t.Context(), start, schemas.Tactical)
	if err != nil {
		t.Fatal(err)
	}
	p, err := load(c)
	if err != nil {
		t.Fatal(err)
	}
	sw := agents.NewSwappable(p)
	v1 := sw.Version()

	ctx, cancel := context.WithCancel(t.Context())
	swapped := make(chan natsbus.Served)
	done := make(chan error, 1)
	go func() {
		done <- pipeline.FollowServed(ctx, ms, "prod", schemas.Tactical, load, []*agents.Swappable{sw}, start, slog.New(slog.DiscardHandler),
			func(s natsbus.Served) { swapped <- s })
	}()
	decide := func() string {
		t.Helper()
		st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical, Tick: 1, NShards: 1},
			Tactical: []schemas.TacticalRow{{App: "a", Func: "f", Invocations: 10, RequestRate: 0.1, Provider: "aws"}}}
		out := &schemas.DecisionBatch{Header: st.Header}
		if err := sw.Decide(t.Context(), st, out); err != nil {
			t.Fatal(err)
		}
		return sw.Version()
	}
	if got := decide(); got != v1 {
		t.Fatalf("serving %s before any promotion, want %s", got, v1)
	}
	if _, err := ms.Promote(t.Context(), "prod", schemas.Tactical, natsbus.Served{Run: "train-1", Version: "v9"}); !errors.Is(err, natsbus.ErrNothingServed) {
		t.Fatalf("promoting a version the registry lacks: %v", err)
	}
	if _, err := ms.Promote(t.Context(), "prod", schemas.Tactical, natsbus.Served{Run: "train-1", Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	if s := <-swapped; s.Version != "v2" {
		t.Fatalf("swapped to %+v, want v2", s)
	}
	if sw.Version() != v1 {
		t.Errorf("switched to %s before the next batch", sw.Version())
	}
	v2 := decide()
	if v2 == v1 || sw.Switches() != 1 {
		t.Fatalf("after promoting v2: serving %s after %d switches (v1 is %s)", v2, sw.Switches(), v1)
	}
	back, err := ms.Rollback(t.Context(), "prod", schemas.Tactical)
	if err != nil || back.Version != "v1" {
		t.Fatalf("rollback: %+v, %v", back, err)
	}
	if s := <-swapped; s.Version != "v1" {
		t.Fatalf("swapped to %+v, want v1", s)
	}
	if got := decide(); got != v1 || sw.Switches() != 2 {
		t.Fatalf("after the rollback: serving %s after %d switches, want %s", got, sw.Switches(), v1)
	}
	if _, err := ms.Rollback(t.Context(), "prod", schemas.Tactical); !errors.Is(err, natsbus.ErrNothingServed) {
		t.Errorf("a second rollback past the first promotion: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

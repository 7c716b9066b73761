package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// TestAgentDeploymentUnderGuardrails runs `strata agent --act --deployment
// prod --guardrails FILE` on the tactical layer with two trained PPO
// checkpoints in the registry: its replies carry the promoted version and
// keep to the guardrails' region and memory bounds; after a promotion and
// a rollback (strata models) it serves the new version, then the old one
// again, without a restart.
func TestAgentDeploymentUnderGuardrails(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	nc, err := natsbus.Connect(srv.URL(), "deploy-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	for i, seed := range []string{"s1", "s2"} {
		data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "results", "models", "hierarchy-hh", seed, "ppo.ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.PutCheckpoint(ctx, "train-1", schemas.Checkpoint{Layer: schemas.Tactical, Version: []string{"v1", "v2"}[i], Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	models := func(args ...string) {
		t.Helper()
		if err := run(ctx, append([]string{"models", "--nats", srv.URL(), "--deployment", "prod", "--layer", "tactical"}, args...), io.Discard, io.Discard); err != nil {
			t.Fatalf("strata models %v: %v", args, err)
		}
	}
	models("--run", "train-1", "--promote", "v1")
	g := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(g, []byte("apps:\n  \"*\":\n    regions: [eu-west]\n    memory_mb: {max: 512}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--layer", "tactical", "--policy", "ppo", "--nats", srv.URL(), "--act",
			"--deployment", "prod", "--guardrails", g, "--fallback", "tactical=greedy-cost"}, io.Discard, io.Discard)
	}()
	fallback, err := agents.New("random", schemas.Tactical, agents.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	state := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical, Tick: 3, NShards: 1}}
	for _, fn := range []string{"f1", "f2", "f3", "f4"} {
		state.Tactical = append(state.Tactical, schemas.TacticalRow{App: "a", Func: fn, Invocations: 10, RequestRate: 0.1, Provider: "aws"})
	}
	// ask returns the version of the served reply once the agent answers
	// one; until it listens, requests find no responders.
	ask := func() string {
		t.Helper()
		for {
			out, res, err := worker.Act(ctx, nc, state, 5*time.Second, fallback)
			if err != nil {
				t.Fatalf("act: %v", err)
			}
			if res.Fallback {
				if !errors.Is(res.Cause, nats.ErrNoResponders) {
					t.Fatalf("act fell back: %v", res.Cause)
				}
				select {
				case err := <-done:
					t.Fatalf("agent stopped: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			for _, r := range out.Rows {
				if r.Region != "eu-west" || r.MemoryMB > 512 || r.Policy != "ppo" {
					t.Errorf("reply row %+v breaks the guardrails or is not ppo's", r)
				}
			}
			return out.Rows[0].PolicyVersion
		}
	}
	// until asks until the reply's version differs from not.
	until := func(not string) string {
		t.Helper()
		for {
			if v := ask(); v != not {
				return v
			}
			select {
			case err := <-done:
				t.Fatalf("agent stopped: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	v1 := ask()
	models("--run", "train-1", "--promote", "v2")
	v2 := until(v1)
	models("--rollback")
	if back := until(v2); back != v1 {
		t.Errorf("after the rollback the agent serves %s, want %s", back, v1)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent returned %v after cancel", err)
	}
}

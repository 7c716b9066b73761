package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// roleRun is the recorded run the learner-role test trains on: 16 hours
// of 40 functions (a 64-transition rollout fills every 2 hours), 4 days of
// 20 apps.
var roleRun = pipelinetest.LearnerRun{Hours: 16, Funcs: 40, HoursPerVersion: 2, Apps: 20}

// TestLearnerRoleKilledAndRestarted runs `strata learner` on a recorded
// run on the embedded Kafka and NATS, cancels it abruptly a few times
// while it trains (nothing is saved on the way out: what a restart finds
// is the state the role persisted after an interval) and restarts it each
// time; the checkpoints it publishes are, entry for entry and byte for
// byte, those of an uninterrupted learner on the same transitions under
// another run id, and the index holds each once.
func TestLearnerRoleKilledAndRestarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	names := schemas.Names{Prefix: "lr"}
	env, ms, stop := learnerEnv(t, ctx, names)
	defer stop()
	roleRun.ProduceTransitions(t, ctx, env.Brokers, names, "whole", "killed")

	// role starts `strata learner` for run; it returns the role's result
	// channel and its log.
	role := func(ctx context.Context, run string, fresh bool) (<-chan error, *pipelinetest.SyncBuffer) {
		r := pipeline.DefaultLearnerRole()
		r.Brokers, r.NATSURL, r.RunID, r.Names, r.Fresh, r.LogLevel = strings.Join(env.Brokers, ","), env.NATSURL, run, names, fresh, "info"
		pipeline.SetLearnerConfig(&r, func(c *learner.Config) {
			c.PPO.Rollout, c.PPO.Minibatch, c.PPO.Epochs = 64, 32, 2
			c.DQN.WarmUp, c.DQN.ScalerFit, c.DQN.BatchSize, c.DQN.UpdatesPerTransition = 16, 16, 8, 1
		})
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		var log pipelinetest.SyncBuffer
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, &bytes.Buffer{}, &log) }()
		return done, &log
	}
	// wait waits for run's progress of layer to reach i, failing if the
	// role ends first.
	wait := func(run string, layer schemas.Layer, i int64, done <-chan error, log *pipelinetest.SyncBuffer) {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		werr := make(chan error, 1)
		go func() { werr <- ms.WaitProgress(wctx, run, layer, i) }()
		select {
		case err := <-werr:
			if err != nil {
				t.Fatalf("waiting for %s's %s progress %d: %v\n%s", run, layer, i, err, log)
			}
		case err := <-done:
			t.Fatalf("the learner of %s ended before its %s progress reached %d: %v\n%s", run, layer, i, err, log)
		}
	}
	// finish waits for run's last interval of both layers, then stops
	// the role.
	finish := func(run string, fresh bool) string {
		rctx, stop := context.WithCancel(ctx)
		done, log := role(rctx, run, fresh)
		for _, w := range []struct {
			layer schemas.Layer
			last  int64
		}{{schemas.Tactical, int64(roleRun.Hours - 1)}, {schemas.Strategic, int64(roleRun.Hours/4 - 1)}} {
			wait(run, w.layer, w.last, done, log)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("learner of %s: %v\n%s", run, err, log)
		}
		return log.String()
	}
	finish("whole", true)

	// Kill the learner of "killed" as soon as it has processed hour k, for
	// a few k: the kill lands before or after that hour's save, while
	// later intervals are pending.
	for i, k := range []int64{2, 5, 6, 11} {
		rctx, kill := context.WithCancel(ctx)
		done, log := role(rctx, "killed", false)
		if i > 0 {
			// The progress may already be past k (the learner killed last
			// had gone on): wait for this learner's restore before it.
			waitRestored(t, log, done)
		}
		wait("killed", schemas.Tactical, k, done, log)
		kill()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("killed learner %d returned %v", i, err)
		}
		if i > 0 && !strings.Contains(log.String(), "learner state restored") {
			t.Fatalf("restart %d did not restore the persisted state:\n%s", i, log)
		}
		logRestore(t, log.String())
	}
	last := finish("killed", false)
	logRestore(t, last)
	// The restarts after the first kills had hours left to train (the
	// next kill waits for them); the last may find little or none.
	if !strings.Contains(last, "learner state restored") {
		t.Fatalf("the last restart did not restore the persisted state:\n%s", last)
	}

	if n := pipelinetest.SameCheckpoints(t, ctx, ms, "killed", "whole"); n < 8 {
		t.Fatalf("the learners published %d checkpoints: too few to compare", n)
	}
}

// learnerEnv starts what the learner role runs against: the embedded
// Kafka of StartEnv (3 partitions) and a nats-server of the test's own —
// StartEnv's embedded one keeps its streams in memory, and the role
// ensures them as a real deployment does, on file — with the model store
// under names. stop closes them (the caller defers it, so that a goleak
// check deferred earlier runs after).
func learnerEnv(tb testing.TB, ctx context.Context, names schemas.Names) (*pipeline.Env, *natsbus.ModelStore, func()) {
	tb.Helper()
	srv, err := natsbus.StartEmbedded(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	env, err := pipeline.StartEnv(ctx, &pipeline.Config{Partitions: 3, Names: names, NATSURL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	stop := func() {
		env.Close()
		srv.Close()
	}
	ms, err := natsbus.OpenModelStore(ctx, env.JS, names)
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	return env, ms, stop
}

// waitRestored waits until a learner's log says it restored its state,
// failing if the role ends first or it takes a minute.
func waitRestored(t *testing.T, log *pipelinetest.SyncBuffer, done <-chan error) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(log.String(), "learner state restored") {
		select {
		case err := <-done:
			t.Fatalf("the learner ended before restoring its state: %v\n%s", err, log)
		case <-deadline:
			t.Fatalf("the learner did not restore its state within a minute:\n%s", log)
		case <-tick.C:
		}
	}
}

// logRestore logs the restore line of a role's log.
func logRestore(t *testing.T, log string) {
	for line := range strings.Lines(log) {
		if strings.Contains(line, "learner state restored") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Sizes of the recorded run the learner-role tests train on.
const (
	roleHours, roleFuncs = 16, 40
	roleDays, roleApps   = 4, 20
)

// roleTransitions is a recorded two-layer run as the twin writes it:
// roleHours hours of roleFuncs tactical transitions each (the policy
// version in force under a 64-transition rollout: v0 for hours 0–1, v1 for
// 2–3, …) and, after every fourth hour, a day of roleApps strategic
// transitions, each interval closed by its marker.
func roleTransitions(run string) []*stratapb.Transition {
	var out []*stratapb.Transition
	lp := math.Log(1.0 / 24)
	for h := range roleHours {
		for f := range roleFuncs {
			st := make([]float32, schemas.TacticalDim)
			for i := range st {
				st[i] = float32((f*7+i*3+h)%11) / 10
			}
			st[7], st[8], st[9] = 1, 0, 0
			a := int32((f + h) % 24)
			r := -0.2
			if a == 3 {
				r = 1
			}
			next := append([]float32(nil), st...)
			next[0] += 0.1
			out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), App: "app" + strconv.Itoa(f%5),
				Func: "f" + strconv.Itoa(f), State: st, Action: a, Reward: r, NextState: next, PolicyVersion: ppo.FormatVersion(uint64(h / 2)),
				LogProb: &lp, Policy: ppo.Name})
		}
		out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), EndOfInterval: true, Count: roleFuncs})
		if d := h / 4; h%4 == 3 {
			for a := range roleApps {
				st := make([]float32, schemas.StrategicDim)
				for i := range st {
					st[i] = float32((a*5+i+d)%9) + 0.5
				}
				tr := &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), App: "app" + strconv.Itoa(a),
					State: st, Action: int32(a % 3), Reward: float64(a%3) - 1, Policy: "dqn"}
				if d < roleDays-1 {
					tr.NextState = st
				} else {
					tr.Done = true
				}
				out = append(out, tr)
			}
			out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), EndOfInterval: true, Count: roleApps})
		}
	}
	return out
}

// produceRuns writes the runs' transitions to the transitions topic,
// interleaved record by record, keyed as the twin keys them (by app, a
// marker by layer) so they spread over the partitions.
func produceRuns(t *testing.T, ctx context.Context, brokers []string, names schemas.Names, runs ...string) {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var all [][]*stratapb.Transition
	for _, run := range runs {
		all = append(all, roleTransitions(run))
	}
	var recs []*kgo.Record
	for i := range all[0] {
		for _, trs := range all {
			tr := trs[i]
			key := tr.GetApp()
			if tr.GetEndOfInterval() {
				key = tr.GetLayer()
			}
			v, err := proto.Marshal(tr)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: names.Topic(schemas.TopicTransitions), Key: []byte(key), Value: v})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a role's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

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
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	names := schemas.Names{Prefix: "lr"}
	// A nats-server of our own: StartEnv's embedded one keeps its streams
	// in memory, and the role ensures them as a real deployment does, on
	// file.
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	env, err := pipeline.StartEnv(ctx, &pipeline.Config{Partitions: 3, Names: names, NATSURL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ms, err := natsbus.OpenModelStore(ctx, env.JS, names)
	if err != nil {
		t.Fatal(err)
	}
	produceRuns(t, ctx, env.Brokers, names, "whole", "killed")

	// role starts `strata learner` for run; it returns the role's result
	// channel and its log.
	role := func(ctx context.Context, run string, fresh bool) (<-chan error, *syncBuffer) {
		r := pipeline.DefaultLearnerRole()
		r.Brokers, r.NATSURL, r.RunID, r.Names, r.Fresh, r.LogLevel = strings.Join(env.Brokers, ","), env.NATSURL, run, names, fresh, "info"
		pipeline.SetLearnerConfig(&r, func(c *learner.Config) {
			c.PPO.Rollout, c.PPO.Minibatch, c.PPO.Epochs = 64, 32, 2
			c.DQN.WarmUp, c.DQN.ScalerFit, c.DQN.BatchSize, c.DQN.UpdatesPerTransition = 16, 16, 8, 1
		})
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		var log syncBuffer
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, &bytes.Buffer{}, &log) }()
		return done, &log
	}
	// wait waits for run's progress of layer to reach i, failing if the
	// role ends first.
	wait := func(run string, layer schemas.Layer, i int64, done <-chan error, log *syncBuffer) {
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
		}{{schemas.Tactical, roleHours - 1}, {schemas.Strategic, roleDays - 1}} {
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
	if !strings.Contains(last, "learner state restored") || !strings.Contains(last, "checkpoint published") {
		t.Fatalf("the last restart did not restore the persisted state and train on:\n%s", last)
	}

	for _, layer := range []schemas.Layer{schemas.Strategic, schemas.Tactical} {
		want, err := ms.Index(ctx, "whole", layer)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ms.Index(ctx, "killed", layer)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 3 {
			t.Fatalf("the uninterrupted learner published %d %s checkpoints: too few to compare", len(want), layer)
		}
		if len(got) != len(want) {
			t.Fatalf("%s index of the killed learner %+v, uninterrupted %+v", layer, got, want)
		}
		for i := range want {
			if got[i].Version != want[i].Version || got[i].InForce != want[i].InForce {
				t.Fatalf("%s index entry %d: %+v, uninterrupted %+v", layer, i, got[i], want[i])
			}
			a, err := ms.Object(ctx, got[i].Object)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ms.Object(ctx, want[i].Object)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("%s checkpoint %s differs from the uninterrupted learner's", layer, want[i].Version)
			}
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

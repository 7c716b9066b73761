package learner_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// BenchmarkLearnerTacticalRatio trains PPO on one rollout of the seed's
// size (2048 transitions, 10 epochs of minibatches of 64) twice per
// iteration: through the learner (protobuf transitions held per hour,
// sorted, version-checked, masked, then the update and a checkpoint
// published to an in-process JetStream object store) and, as the ceiling,
// straight into ppo.Learner. It reports both in samples per second and
// learner ÷ direct, so one run prints the learner's overhead.
func BenchmarkLearnerTacticalRatio(b *testing.B) {
	ms := modelStore(b)
	const funcs, hours = 256, 8 // 2048 transitions of v0
	var viaLearner, direct time.Duration
	n := 0
	for b.Loop() {
		n++
		run := fmt.Sprintf("bench-%d", n)
		cfg := learner.DefaultConfig(1, schemas.Tactical)
		trs := allVersion(tacticalRun(run, hours, funcs), "v0")
		viaLearner += rolloutThroughLearner(b, ms, cfg, run, trs)

		p, err := ppo.NewLearner(cfg.PPO, cfg.PPOSeed)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for _, tr := range trs {
			if tr.EndOfInterval {
				continue
			}
			if err := p.Add(ppo.Transition{RunID: run, App: tr.App, Func: tr.Func, Tick: tr.Tick, State: tr.State, Action: int(tr.Action),
				Reward: float32(tr.Reward), NextState: tr.NextState, LogProb: float32(tr.GetLogProb()), PolicyVersion: tr.PolicyVersion}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.Update(); err != nil {
			b.Fatal(err)
		}
		direct += time.Since(t0)
		p.Close()
	}
	samples := float64(n * funcs * hours)
	b.ReportMetric(samples/viaLearner.Seconds(), "learner-samples/s")
	b.ReportMetric(samples/direct.Seconds(), "direct-samples/s")
	b.ReportMetric(direct.Seconds()/viaLearner.Seconds(), "learner/direct")
}

// rolloutThroughLearner hands one rollout's transitions to a new learner
// of cfg for run and returns the time Handle took over them; the rollout
// must make exactly one PPO update.
func rolloutThroughLearner(b *testing.B, ms *natsbus.ModelStore, cfg learner.Config, run string, trs []*stratapb.Transition) time.Duration {
	b.Helper()
	ctx := context.Background()
	l, err := learner.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.Begin(ctx, run, 0, ms); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for _, tr := range trs {
		if err := l.Handle(ctx, tr); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(t0)
	if st := l.Stats(); st.PPO.Updates != 1 {
		b.Fatalf("%d updates through the learner, want 1", st.PPO.Updates)
	}
	return d
}

// allVersion sets every transition's policy version.
func allVersion(trs []*stratapb.Transition, v string) []*stratapb.Transition {
	for _, tr := range trs {
		if !tr.EndOfInterval {
			tr.PolicyVersion = v
		}
	}
	return trs
}

// BenchmarkLearnerTacticalBackend trains PPO through the learner (the
// protobuf transitions as they come off the transitions topic, one
// rollout of 2048, 10 epochs of minibatches of 64, the checkpoint
// published) on each backend this binary and machine have: cpu always,
// cuda in a binary built with -tags strata_cuda on a machine with a GPU.
// transitions/s is the custom metric.
func BenchmarkLearnerTacticalBackend(b *testing.B) {
	backends := []nn.Backend{nn.BackendCPU}
	if _, err := nn.ParseBackend(string(nn.BackendCUDA)); err == nil {
		backends = append(backends, nn.BackendCUDA)
	}
	ms := modelStore(b)
	const funcs, hours = 256, 8
	for _, be := range backends {
		b.Run("backend="+string(be), func(b *testing.B) {
			n := 0
			var busy time.Duration
			for b.Loop() {
				n++
				run := fmt.Sprintf("bench-%s-%d", be, n)
				cfg := learner.DefaultConfig(1, schemas.Tactical)
				cfg.PPO.Backend = be
				busy += rolloutThroughLearner(b, ms, cfg, run, allVersion(tacticalRun(run, hours, funcs), "v0"))
			}
			b.ReportMetric(float64(n*funcs*hours)/busy.Seconds(), "transitions/s")
		})
	}
}

package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// BenchmarkLearnerRoleTopic runs `strata learner --layers tactical` end to
// end on the embedded Kafka and NATS: it reads a recorded run's 4,096
// tactical transitions from the transitions topic (16 hours of 256
// functions), trains PPO with the seed's settings (rollouts of 2,048, 10
// epochs of minibatches of 64) and publishes a checkpoint per rollout,
// until the run's last hour is done — once per --device the binary and the
// machine have (cpu; cuda in a binary built with -tags strata_cuda on a
// GPU). transitions/s counts from the role's start (connections and group
// join included) to the last hour's progress in the model store.
func BenchmarkLearnerRoleTopic(b *testing.B) {
	devices := []string{"cpu"}
	if _, err := pipeline.ParseDevice("cuda"); err == nil {
		devices = append(devices, "cuda")
	}
	run := pipelinetest.LearnerRun{Hours: 16, Funcs: 256, HoursPerVersion: 8}
	for _, dev := range devices {
		b.Run("device="+dev, func(b *testing.B) {
			ctx := b.Context()
			names := schemas.Names{Prefix: "lb"}
			env, ms, stop := learnerEnv(b, ctx, names)
			defer stop()
			n := 0
			var busy time.Duration
			for b.Loop() {
				n++
				id := fmt.Sprintf("bench-%s-%d", dev, n)
				run.ProduceTransitions(b, ctx, env.Brokers, names, id)
				r := pipeline.DefaultLearnerRole()
				r.Brokers, r.NATSURL, r.RunID, r.Names, r.Layers, r.Device, r.LogLevel = strings.Join(env.Brokers, ","), env.NATSURL, id, names, "tactical", dev, "error"
				rctx, stop := context.WithCancel(ctx)
				done := make(chan error, 1)
				t0 := time.Now()
				go func() { done <- r.Run(rctx, io.Discard, io.Discard) }()
				err := ms.WaitProgress(ctx, id, schemas.Tactical, int64(run.Hours-1))
				busy += time.Since(t0)
				stop()
				if rerr := <-done; rerr != nil && err == nil {
					err = rerr
				}
				if err != nil {
					b.Fatalf("learner on %s: %v", dev, err)
				}
			}
			b.ReportMetric(float64(n*run.Hours*run.Funcs)/busy.Seconds(), "transitions/s")
		})
	}
}

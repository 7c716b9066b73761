package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// OpenLoopResult is what an open-loop run did.
type OpenLoopResult struct {
	Replay   producers.ReplayResult
	Features features.Stats
	Wall     time.Duration
}

// OpenLoop replays src in the open loop (observed telemetry) through the
// feature service to the state streams and returns when the features have
// published the last batch of the run.
func OpenLoop(ctx context.Context, o Config, src replay.Source, srcName string, traceLenUS int64) (OpenLoopResult, error) {
	var res OpenLoopResult
	e, closeEnv, err := o.Prepare(ctx)
	if err != nil {
		return res, err
	}
	defer closeEnv()

	ckpts, err := OpenFeatureCheckpoints(ctx, e.JS, o.Names)
	if err != nil {
		return res, err
	}
	pub := o.publisher(e.JS)
	group := GroupsOf(o.Names, o.RunID).Features
	svc, err := features.NewService(ctx, features.Config{
		Brokers: e.Brokers, Group: group, Epoch: o.Epoch, Names: o.Names,
		StopAfterFinal: true, RunID: o.RunID, OnBatch: o.OnBatch, OutageBound: o.KafkaOutage,
	}, pub, ckpts, o.Logger.With("role", "features"), o.Registerer)
	if err != nil {
		return res, err
	}
	pcl, err := kgo.NewClient(append(kafka.CommonOpts(e.Brokers, o.Logger),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(200_000),
		kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return res, fmt.Errorf("creating replay kafka client: %w", err)
	}
	defer pcl.Close()
	rcfg := producers.ReplayConfig{RunID: o.RunID, Observed: true, AllowedLatenessUS: o.LatenessUS,
		Speed: o.Speed, Clock: o.Clock, Partitions: o.Partitions, SourceName: srcName, Names: o.Names}
	bar := NewProgress(o.Progress, traceLenUS, &rcfg)
	rep, err := producers.NewReplayer(rcfg, pcl, o.Logger.With("role", "replay"), o.Registerer)
	if err != nil {
		return res, err
	}
	// The drivers end on their own: the replay when the trace runs out,
	// the features once they published the last state; the embedded
	// broker's trimmer stops after them.
	t0 := time.Now()
	run := NewActors(ctx, o.Logger)
	drivers := run.Stage("drivers", nil)
	if e.EmbeddedKafka {
		rules := []Retention{{Readers: []string{group}, Topics: []string{o.Names.Topic(schemas.TopicTelemetry)}}}
		run.Stage("trim", nil).Go("trim", func(ctx context.Context) error {
			TrimConsumed(ctx, pcl, rules, 2*time.Second, o.Logger)
			return nil
		})
	}
	drivers.Go("features", svc.Run)
	drivers.Go("replay", func(ctx context.Context) error {
		r, err := rep.Run(ctx, src)
		res.Replay = r
		return err
	})
	err = run.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	res.Wall = time.Since(t0)
	res.Features = svc.Stats()
	return res, err
}

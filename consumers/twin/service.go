package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/internal/dedup"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ServiceConfig configures the replay-synchronous twin Service.
type ServiceConfig struct {
	CommonConfig
	// TelemetryPartitions is the partition count of strata.telemetry.v1:
	// every tick's watermark goes to each.
	TelemetryPartitions int
	// Record, if set, is handed the decision batches each tick is
	// evaluated under, before they are applied (the batches are not
	// changed afterwards): `strata bench loop` replays them through the
	// engine alone as its ceiling.
	Record func(tick int64, batches []*schemas.DecisionBatch)
	// ScoreFromTick is the first tick the run's figures (Stats.Layers,
	// costs, carbon, cold starts, violations, latencies,
	// ScoredInvocations) count: the ticks before it are warm-up. It should
	// start a day, so that every interval is scored whole or not at all.
	ScoreFromTick int64
	// TelemetryOnly skips writing decisions, rewards and outcomes to Kafka
	// (they are still counted and digested): for an embedded run without a
	// store, where nothing would ever read them.
	TelemetryOnly bool
	// PublishFromTick, if positive, keeps the rewards and outcomes of
	// intervals that start before it (the warm-up days) off Kafka, so a
	// store receives the scored days' only; they are still counted and
	// digested. Decisions are all written: one in force on a scored day
	// may have been made before it (operational rows are changes only,
	// static-best decides once). Stats.Published counts what was written.
	PublishFromTick int64
	// NoDecisions lists layers whose decisions are not written to Kafka
	// (counted and digested all the same): an evaluation keeps the
	// operational layer's out of its store unless asked.
	NoDecisions map[schemas.Layer]bool
	// Gate, if set, is called before each tick is evaluated: it holds the
	// twin — and so the whole closed loop — while a reader of its output
	// is too far behind (backpressure), reports whether it held, and
	// returns an error only to end the run. The ticks it held and for how
	// long are counted in Stats.Held, Stats.HeldSeconds and
	// strata_twin_backpressure_seconds_total.
	Gate func(ctx context.Context) (held bool, err error)
}

// Service is the replay-synchronous twin: in the closed loop it is the
// platform. It runs the Engine between Kafka and NATS: arrivals from
// strata.invocations.v1 and decision batches from strata.decision.<layer>
// in; telemetry with a watermark per tick, decisions, rewards, outcomes and
// transitions out. It evaluates tick k once every arrival of the tick is in
// (the arrivals' watermark passed its end) and every enabled layer's batch
// for it is complete (docs/tick-contract.md), so its output does not depend
// on timing. Shadow is its counterpart beside a live run.
type Service struct {
	*core
	partitions int
	record     func(tick int64, batches []*schemas.DecisionBatch)
	gate       func(ctx context.Context) (bool, error)
	// sentUS is the run's telemetry watermark found on Kafka by a
	// restarted service: the telemetry of the ticks before it is there
	// already and is not written again.
	sentUS int64
	// in is the input Restore returned, nil without it.
	in *input
}

// NewService returns a replay-synchronous service around eng.
func NewService(cfg ServiceConfig, eng *Engine, js jetstream.JetStream, logger *slog.Logger) (*Service, error) {
	if cfg.TelemetryPartitions <= 0 {
		return nil, errors.New("configuring twin: telemetry partition count must be positive")
	}
	if cfg.Group == "" {
		cfg.Group = cfg.Names.Group("strata-twin-" + cfg.RunID)
	}
	c, err := newCore(cfg.CommonConfig, schemas.TopicInvocations, eng, js, logger)
	if err != nil {
		return nil, err
	}
	c.scoreFrom, c.telemetryOnly, c.keepLatencies = cfg.ScoreFromTick, cfg.TelemetryOnly, true
	c.publishFrom, c.noDecisions = cfg.PublishFromTick, cfg.NoDecisions
	c.ckptName = "twin"
	if cfg.Shards > 1 {
		c.ckptName = fmt.Sprintf("twin-shard-%d-of-%d", cfg.Shard, cfg.Shards)
		c.shardParts = cfg.TelemetryPartitions
	}
	return &Service{core: c, partitions: cfg.TelemetryPartitions, record: cfg.Record, gate: cfg.Gate}, nil
}

// Stats returns a copy of the counters.
func (s *Service) Stats() Stats { return s.snapshot() }

// Run serves until the run's arrivals end and the last tick is evaluated,
// or ctx is done.
func (s *Service) Run(ctx context.Context) error {
	in := s.in // from Restore
	if in == nil {
		in = newInput(true, dedup.New())
	}
	return s.serve(ctx, func(ctx context.Context) error {
		if s.eng.NextTick() == 0 { // not restored
			if err := s.watermark(ctx, 0, false); err != nil {
				return err
			}
		}
		s.sc = startScorer(s.core)
		// Arrival ids are deduplicated as in a Shadow: after a broker
		// outage the consumer group may hand the twin its partitions again
		// from the last committed offset, and the arrivals read twice
		// must count once (kafka.Outage); records below the offsets read
		// are skipped before.
		err := s.loop(ctx, ctx, s, in)
		if err != nil || ctx.Err() != nil {
			s.sc.abandon() // what is still queued would be cut short anyway
		}
		s.sc.stop()
		if err == nil && ctx.Err() == nil && s.cfg.Checkpoints != nil {
			// The run is whole on Kafka: a restart would only redo its
			// last hours.
			if derr := s.cfg.Checkpoints.Delete(ctx, s.ckptKey()); derr != nil {
				s.log.Warn("deleting the finished run's twin checkpoint", "run", s.cfg.RunID, "err", derr)
			}
		}
		return err
	}, nil)
}

// arrival decodes an arrival of the run from strata.invocations.v1.
func (s *Service) arrival(r *kgo.Record) (Arrival, bool) {
	var in stratapb.Arrival
	if err := proto.Unmarshal(r.Value, &in); err != nil || in.RunId != s.cfg.RunID {
		return Arrival{}, false
	}
	return Arrival{ID: in.InvocationId, App: in.App, Func: in.Func, StartUS: in.StartUs, DurationUS: in.DurationUs, Row: in.Row}, true
}

// decisions returns the complete decision batches that tick k needs, or
// false while one is incomplete or, at an interval boundary of a
// transition layer, the interval's state batch is.
func (s *Service) decisions(k int64, _ *input) ([]*schemas.DecisionBatch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*schemas.DecisionBatch
	for _, l := range s.cfg.Layers {
		i, start := interval(l, k)
		if !start {
			continue
		}
		p := s.batches[batchKey{l, i}]
		if !p.complete() {
			return nil, false
		}
		out = append(out, p.merged)
	}
	if s.stateMissingLocked(k) {
		return nil, false
	}
	for _, b := range out {
		delete(s.batches, batchKey{b.Header.Layer, b.Header.Tick})
	}
	return out, true
}

// evaluate runs tick k under bs and writes its output: the telemetry and
// the tick's watermark first, then, once scored, the decisions, rewards,
// outcomes and transitions.
func (s *Service) evaluate(ctx context.Context, k int64, bs []*schemas.DecisionBatch, in *input) error {
	if s.gate != nil {
		if err := s.hold(ctx, k); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if !s.evaluated.IsZero() {
		s.met.decisionWait.Observe(t0.Sub(s.evaluated).Seconds())
	}
	if s.record != nil {
		s.record(k, bs)
	}
	out, err := s.simulate(ctx, k, bs, in)
	if err != nil {
		return err
	}
	// Telemetry and the tick's watermark first: the features close the
	// tick and the agents decide the next one while the twin scores this
	// one (counterfactuals take most of a tick's work) on its scorer.
	if err := s.writeTelemetry(ctx, k, out); err != nil {
		return err
	}
	s.evaluatedSince(t0)
	s.evaluated = time.Now()
	if s.cfg.Fault != nil {
		s.cfg.Fault(FaultTick, k)
	}
	return s.sc.enqueue(ctx, k, out)
}

// hold calls the gate before tick k and counts the time it held the twin.
func (s *Service) hold(ctx context.Context, k int64) error {
	t0 := time.Now()
	held, err := s.gate(ctx)
	if err != nil {
		return fmt.Errorf("holding tick %d for a reader of the twin's output: %w", k, err)
	}
	if held {
		d := time.Since(t0)
		s.met.held.Add(d.Seconds())
		s.count(func(st *Stats) {
			st.Held++
			st.HeldSeconds += d.Seconds()
		})
	}
	return nil
}

// writeTelemetry writes tick k's simulated observations and then the
// watermark at its end.
func (s *Service) writeTelemetry(ctx context.Context, k int64, out *Output) error {
	if (k+1)*grid.OperationalTickUS <= s.sentUS {
		// Written before a restart: on Kafka already, with its watermark.
		s.count(func(st *Stats) { st.Telemetry += int64(len(out.Telemetry)) })
		return nil
	}
	for _, o := range out.Telemetry {
		if err := s.produce(ctx, schemas.TopicTelemetry, o.GetArrival().GetApp(), o, nil, true); err != nil {
			return err
		}
	}
	if err := s.watermark(ctx, (k+1)*grid.OperationalTickUS, false); err != nil {
		return err
	}
	s.count(func(st *Stats) { st.Telemetry += int64(len(out.Telemetry)) })
	return nil
}

// end writes the final telemetry watermark, at the run's horizon.
func (s *Service) end(ctx context.Context, horizon int64) error {
	return s.watermark(ctx, horizon, true)
}

// watermark writes the telemetry watermark w (the end of the tick just
// evaluated) to every telemetry partition.
func (s *Service) watermark(ctx context.Context, w int64, final bool) error {
	v, err := proto.Marshal(&stratapb.Watermark{RunId: s.cfg.RunID, WatermarkUs: w, Final: final})
	if err != nil {
		return fmt.Errorf("encoding watermark: %w", err)
	}
	hs := kafka.WatermarkHeadersAt(time.Now())
	for p := range s.partitions {
		if !s.owns(p) {
			continue // another shard's apps, and its watermarks
		}
		s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Names.Topic(schemas.TopicTelemetry), Partition: int32(p), Value: v, Headers: hs}, s.produced)
	}
	return s.producedErr()
}

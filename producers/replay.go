package producers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ReplayConfig configures a Replayer.
type ReplayConfig struct {
	// RunID names the run; it travels on every record and watermark.
	RunID string
	// Observed writes the trace to strata.telemetry.v1 as observed on its
	// own platform (Provider) instead of strata.invocations.v1.
	Observed bool
	// Provider is the platform the trace was recorded on (default "azure").
	Provider string
	// AllowedLatenessUS is how far out of start order input may be
	// (default 600 s, longer than the trace's longest duration).
	AllowedLatenessUS int64
	// Speed paces the replay in event time; 0 is as fast as possible.
	Speed replay.Speed
	// Clock is the wall clock pacing waits on (default the system clock).
	Clock replay.Clock
	// Partitions is the partition count of the target topic; watermarks go
	// to every partition. Required.
	Partitions int
	// SourceName names the input in dead letters (a file name, "synthetic").
	SourceName string
	// HorizonUS, if positive, is the trace's declared end: the final
	// watermark is at least this, so consumers close every tick up to it
	// (a synthetic trace of n days ends at n days, even if its last
	// invocation starts earlier; the last hour and day are then whole).
	HorizonUS int64
	// Progress, if set, is called after every 10,000 records with the
	// trace time reached and the records produced.
	Progress func(traceUS int64, records int64)
	// Names prefixes the topics (see schemas.Names).
	Names schemas.Names
	// Gate, if set, is called before each record is written with its start
	// time and may block: flow control (see Lead). An error stops the
	// replay.
	Gate func(ctx context.Context, startUS int64) error
	// FromUS, if positive, leaves out the invocations that start before
	// it (ReplayResult.Skipped): a closed loop resumed from its twin's
	// checkpoint has them already.
	FromUS int64
}

// ReplayResult reports what a replay did.
type ReplayResult struct {
	Invocations   int64   `json:"invocations"`
	Watermarks    int64   `json:"watermarks"`
	DeadLetters   int64   `json:"dead_letters"`
	BadLines      int64   `json:"bad_lines"`
	Late          int64   `json:"late"`
	Skipped       int64   `json:"skipped,omitempty"`
	HorizonUS     int64   `json:"horizon_us"`
	WallSeconds   float64 `json:"wall_seconds"`
	RecordsPerSec float64 `json:"records_per_second"`
}

type replayMetrics struct {
	records     prometheus.Counter
	watermarks  prometheus.Counter
	deadLetters *prometheus.CounterVec
}

func newReplayMetrics(reg prometheus.Registerer) *replayMetrics {
	m := &replayMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "replay", Name: "records_total",
			Help: "Invocations produced by the replay producer.",
		}),
		watermarks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "replay", Name: "watermarks_total",
			Help: "Watermark records produced (one per partition per tick).",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "replay", Name: "dead_letters_total",
			Help: "Input rejected and dead-lettered, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.watermarks, m.deadLetters)
	}
	return m
}

// Replayer produces a trace into Kafka in event time.
type Replayer struct {
	cfg    ReplayConfig
	cl     *kgo.Client
	log    *slog.Logger
	m      *replayMetrics
	topic  string
	wmTick int64

	errMu   sync.Mutex
	prodErr error
	acked   atomic.Int64
}

// NewReplayer returns a replayer producing with cl (which must use
// kafka.Partitioner), logging to logger and registering metrics on reg (nil
// for none).
func NewReplayer(cfg ReplayConfig, cl *kgo.Client, logger *slog.Logger, reg prometheus.Registerer) (*Replayer, error) {
	if cfg.Partitions <= 0 {
		return nil, errors.New("configuring replay: partition count must be positive")
	}
	if cfg.RunID == "" {
		return nil, errors.New("configuring replay: run id is empty")
	}
	if cfg.AllowedLatenessUS <= 0 {
		cfg.AllowedLatenessUS = 600_000_000
	}
	if cfg.Provider == "" {
		cfg.Provider = "azure"
	}
	topic := cfg.Names.Topic(schemas.TopicInvocations)
	if cfg.Observed {
		topic = cfg.Names.Topic(schemas.TopicTelemetry)
	}
	return &Replayer{cfg: cfg, cl: cl, log: logger, m: newReplayMetrics(reg), topic: topic, wmTick: -1}, nil
}

// Topic returns the topic the replayer writes to.
func (r *Replayer) Topic() string { return r.topic }

func (r *Replayer) produced(_ *kgo.Record, err error) {
	if err != nil {
		r.errMu.Lock()
		if r.prodErr == nil {
			r.prodErr = err
		}
		r.errMu.Unlock()
		return
	}
	r.acked.Add(1)
}

func (r *Replayer) err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.prodErr
}

// Run replays src until it ends or ctx is done. Malformed lines and late
// invocations are dead-lettered and counted; they never stop the replay. It
// returns after every record is acknowledged by Kafka.
func (r *Replayer) Run(ctx context.Context, src replay.Source) (ReplayResult, error) {
	var res ReplayResult
	t0 := time.Now()
	ord := replay.NewOrderer(r.cfg.AllowedLatenessUS)
	pacer := replay.NewPacer(r.cfg.Speed, r.cfg.Clock)
	if err := r.watermark(ctx, 0, false, &res); err != nil {
		return res, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("replaying: %w", err)
		}
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			res.BadLines++
			r.deadLetter(ctx, fmt.Sprintf("line %d", le.Line), le.Reason, []byte(le.Text), &res, "malformed_line")
			continue
		}
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", r.cfg.SourceName, err)
		}
		if err := ord.Push(in); err != nil {
			res.Late++
			r.deadLetter(ctx, fmt.Sprintf("row %d", in.Row), err.Error(), csvLine(in), &res, "late")
			continue
		}
		for {
			next, ok := ord.Pop()
			if !ok {
				break
			}
			if err := r.send(ctx, pacer, next, &res); err != nil {
				return res, err
			}
		}
		if err := r.watermark(ctx, ord.Watermark(), false, &res); err != nil {
			return res, err
		}
	}
	for {
		next, ok := ord.Drain()
		if !ok {
			break
		}
		if err := r.send(ctx, pacer, next, &res); err != nil {
			return res, err
		}
	}
	if ms, ok := ord.MaxStart(); ok {
		res.HorizonUS = (grid.TickOf(ms, grid.OperationalTickUS) + 1) * grid.OperationalTickUS
	}
	if h := (r.cfg.HorizonUS + grid.OperationalTickUS - 1) / grid.OperationalTickUS * grid.OperationalTickUS; h > res.HorizonUS {
		res.HorizonUS = h
	}
	if err := r.watermark(ctx, res.HorizonUS, true, &res); err != nil {
		return res, err
	}
	if err := r.cl.Flush(ctx); err != nil {
		return res, fmt.Errorf("flushing replay records: %w", err)
	}
	if err := r.err(); err != nil {
		return res, fmt.Errorf("producing replay records: %w", err)
	}
	res.WallSeconds = time.Since(t0).Seconds()
	if res.WallSeconds > 0 {
		res.RecordsPerSec = float64(res.Invocations) / res.WallSeconds
	}
	return res, nil
}

func (r *Replayer) send(ctx context.Context, pacer *replay.Pacer, in replay.Invocation, res *ReplayResult) error {
	if in.StartUS() < r.cfg.FromUS {
		res.Skipped++
		return nil
	}
	if err := pacer.Wait(ctx, in.StartUS()); err != nil {
		return fmt.Errorf("pacing replay: %w", err)
	}
	if r.cfg.Gate != nil {
		if err := r.cfg.Gate(ctx, in.StartUS()); err != nil {
			return fmt.Errorf("holding the replay for its consumer: %w", err)
		}
	}
	if err := r.err(); err != nil {
		return fmt.Errorf("producing replay records: %w", err)
	}
	arr := &stratapb.Arrival{
		InvocationId: in.ID(), App: in.App, Func: in.Func,
		StartUs: in.StartUS(), EndUs: in.EndUS, DurationUs: in.DurationUS,
		Row: in.Row, RunId: r.cfg.RunID,
	}
	// The hand encoders write what proto.Marshal writes, without
	// reflection (schemas.AppendArrival).
	var val []byte
	var err error
	if r.cfg.Observed {
		val, err = schemas.AppendObservation(nil, &stratapb.Observation{Arrival: arr, Provider: proto.String(r.cfg.Provider), Source: "trace"})
	} else {
		val, err = schemas.AppendArrival(nil, arr)
	}
	if err != nil {
		return fmt.Errorf("encoding invocation row %d: %w", in.Row, err)
	}
	r.cl.Produce(ctx, &kgo.Record{Topic: r.topic, Key: []byte(in.App), Value: val}, r.produced)
	res.Invocations++
	r.m.records.Inc()
	if r.cfg.Progress != nil && res.Invocations%10000 == 0 {
		r.cfg.Progress(in.StartUS(), res.Invocations)
	}
	return nil
}

// watermark writes a watermark to every partition when w crosses a tick
// boundary (always when final). The value written is the tick boundary at or
// below w, so consumers close exactly the ticks that are complete.
func (r *Replayer) watermark(ctx context.Context, w int64, final bool, res *ReplayResult) error {
	tick := grid.TickOf(w, grid.OperationalTickUS)
	if !final && tick <= r.wmTick {
		return nil
	}
	r.wmTick = tick
	val, err := proto.Marshal(&stratapb.Watermark{
		RunId: r.cfg.RunID, WatermarkUs: tick * grid.OperationalTickUS, Final: final,
		EmittedUnixMs: 0,
	})
	if err != nil {
		return fmt.Errorf("encoding watermark: %w", err)
	}
	for p := range r.cfg.Partitions {
		r.cl.Produce(ctx, &kgo.Record{Topic: r.topic, Partition: int32(p), Value: val, Headers: kafka.WatermarkHeaders}, r.produced)
		res.Watermarks++
		r.m.watermarks.Inc()
	}
	return nil
}

func (r *Replayer) deadLetter(ctx context.Context, location, reason string, payload []byte, res *ReplayResult, kind string) {
	res.DeadLetters++
	r.m.deadLetters.WithLabelValues(kind).Inc()
	r.log.Warn("dead-lettering input", "source", r.cfg.SourceName, "location", location, "reason", reason)
	val, err := proto.Marshal(&stratapb.DeadLetter{
		Source: r.cfg.SourceName, Location: location, Reason: reason, Payload: payload,
		Component: "replay", RunId: r.cfg.RunID,
	})
	if err != nil {
		r.log.Error("encoding dead letter", "err", err)
		return
	}
	r.cl.Produce(ctx, &kgo.Record{Topic: r.cfg.Names.Topic(schemas.TopicDeadLetter), Key: []byte(r.cfg.SourceName), Value: val}, r.produced)
}

func csvLine(in replay.Invocation) []byte {
	return []byte(fmt.Sprintf("%s,%s,%s,%s", in.App, in.Func, replay.FormatSeconds(in.EndUS), replay.FormatSeconds(in.DurationUS)))
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// sourceFlags select the trace: a file, or the synthetic generator.
type sourceFlags struct {
	trace     string
	synthDays int
	// synthSet records that --synth-days was given: --trace excludes it.
	synthSet bool
	seed     int64
	apps     int
}

// register registers the flags: one synthetic day by default, its seed
// called --seed.
func (f *sourceFlags) register(fs *flag.FlagSet) { f.registerWith(fs, "seed", 1) }

// registerWith registers the flags with the synthetic trace's seed called
// seedFlag and days synthetic days by default, which --synth-days -h
// prints.
func (f *sourceFlags) registerWith(fs *flag.FlagSet, seedFlag string, days int) {
	fs.StringVar(&f.trace, "trace", "", "trace `FILE` in the Azure 2021 format (plain or .gz); default: a synthetic trace")
	f.synthDays = days
	fs.Var(&daysValue{days: &f.synthDays, set: &f.synthSet}, "synth-days", "generate `N` days of synthetic trace when no --trace is given")
	fs.Int64Var(&f.seed, seedFlag, 1, "seed of the synthetic trace")
	fs.IntVar(&f.apps, "apps", 0, "keep only this many apps of the synthetic trace (0 = all 119)")
}

// daysValue is the value of --synth-days: a number of days that records
// whether the command line (or a config file) set it.
type daysValue struct {
	days *int
	set  *bool
}

func (v *daysValue) String() string {
	if v == nil || v.days == nil {
		return "0"
	}
	return strconv.Itoa(*v.days)
}

func (v *daysValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number of days")
	}
	*v.days, *v.set = n, true
	return nil
}

// open returns the selected source, its name for messages, its length in
// trace microseconds when known (0 otherwise) and a closer.
func (f *sourceFlags) open() (replay.Source, string, int64, func(), error) {
	if f.trace != "" {
		if f.synthSet {
			return nil, "", 0, nil, errors.New("--trace and --synth-days are exclusive")
		}
		r, err := replay.OpenTrace(f.trace)
		if err != nil {
			return nil, "", 0, nil, err
		}
		return r, f.trace, 0, func() { _ = r.Close() }, nil
	}
	days := f.synthDays
	s, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: f.seed, Apps: f.apps})
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("creating synthetic trace: %w", err)
	}
	return s, fmt.Sprintf("synthetic(days=%d,seed=%d,apps=%d)", days, f.seed, f.apps), int64(days) * grid.StrategicTickUS, func() {}, nil
}

// pipelineOpts configures one replay → features → NATS pipeline.
type pipelineOpts struct {
	brokers []string // nil: embedded kfake
	natsURL string   // "": embedded nats-server
	// partitions is the partition count asked for on the command line; 0
	// adopts the existing topics' (kafka.ResolvePartitions). prepare sets it
	// to the count in use.
	partitions int
	// names prefixes every topic, group, stream, subject and bucket.
	names      schemas.Names
	speed      replay.Speed
	clock      replay.Clock
	epoch      time.Time
	runID      string
	latenessUS int64
	progress   io.Writer // nil: no progress bar
	logger     *slog.Logger
	reg        prometheus.Registerer
	onBatch    func(h schemas.BatchHeader, rows int, data []byte)
	// stateRetention bounds each tick-batch stream (bytes, oldest dropped).
	stateRetention int64
	// env, if set, is an already running Kafka + NATS pair to use.
	env *env
}

type pipelineResult struct {
	Replay   producers.ReplayResult
	Features features.Stats
	Wall     time.Duration
}

// env is a running Kafka + NATS pair, embedded or external.
type env struct {
	brokers []string
	// embeddedKafka is set when brokers is the in-process kfake, which
	// keeps every record in memory and has no retention of its own.
	embeddedKafka bool
	// partitions is the partition count of the topics.
	partitions int
	names      schemas.Names
	nc         natsConn
	js         jetstream.JetStream
	close      func()
	// natsURL is the NATS server's client URL (an embedded one listens on a
	// random loopback port).
	natsURL string
}

type natsConn interface{ Drain() error }

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "run-" + hex.EncodeToString(b[:])
}

// startEnv starts or connects to Kafka and NATS and makes sure the topics,
// streams and buckets exist.
func startEnv(ctx context.Context, o *pipelineOpts) (*env, error) {
	e := &env{brokers: o.brokers, names: o.names}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	embeddedNATS := o.natsURL == ""
	if len(e.brokers) == 0 {
		k, err := kafka.StartEmbedded(o.partitions)
		if err != nil {
			return nil, err
		}
		closers = append(closers, k.Close)
		e.brokers, e.embeddedKafka = k.Brokers(), true
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(e.brokers, o.logger)...)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("creating kafka admin client: %w", err)
	}
	e.partitions, err = kafka.ResolvePartitions(ctx, cl, o.partitions, o.names.Topics()...)
	cl.Close()
	if err != nil {
		closeAll()
		return nil, err
	}
	if o.logger != nil {
		o.logger.Info("kafka topics", "partitions", e.partitions, "asked", o.partitions, "prefix", o.names.Prefix)
	}
	url := o.natsURL
	if embeddedNATS {
		dir, err := os.MkdirTemp("", "strata-nats-")
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("creating nats store dir: %w", err)
		}
		closers = append(closers, func() { _ = os.RemoveAll(dir) })
		n, err := natsbus.StartEmbedded(dir)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, n.Close)
		url = n.URL()
	}
	nc, err := natsbus.Connect(url, "strata")
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, func() { _ = nc.Drain() })
	js, err := jetstream.New(nc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, natsbus.StreamConfig{Memory: embeddedNATS, MaxBytes: o.stateRetention, Names: o.names}); err != nil {
		closeAll()
		return nil, err
	}
	e.nc, e.js, e.close, e.natsURL = nc, js, closeAll, url
	return e, nil
}

// prepare fills in the defaults (run id, stream retention) and returns the
// Kafka + NATS pair to run on: o.env if set, else a new one that the
// returned function closes. o.partitions becomes the topics' partition
// count; a count asked for that differs from existing topics' is an error.
func (o *pipelineOpts) prepare(ctx context.Context) (*env, func(), error) {
	if err := schemas.ValidatePrefix(o.names.Prefix); err != nil {
		return nil, nil, err
	}
	if o.runID == "" {
		o.runID = newRunID()
	}
	if o.stateRetention == 0 {
		o.stateRetention = 128 << 20
	}
	if o.env != nil {
		switch {
		case o.names != o.env.names:
			return nil, nil, fmt.Errorf("running with name prefix %q on an environment prepared for %q", o.names.Prefix, o.env.names.Prefix)
		case o.partitions > 0 && o.partitions != o.env.partitions:
			return nil, nil, fmt.Errorf("the topics have %d partitions but %d were asked for", o.env.partitions, o.partitions)
		}
		o.partitions = o.env.partitions
		return o.env, func() {}, nil
	}
	e, err := startEnv(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	o.partitions = e.partitions
	return e, e.close, nil
}

// runPipeline replays src in the open loop (observed telemetry) through the
// feature service to the state streams and returns when the features have
// published the last batch of the run.
func runPipeline(ctx context.Context, o pipelineOpts, src replay.Source, srcName string, traceLenUS int64) (pipelineResult, error) {
	var res pipelineResult
	e, closeEnv, err := o.prepare(ctx)
	if err != nil {
		return res, err
	}
	defer closeEnv()

	kv, err := e.js.KeyValue(ctx, o.names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		return res, fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	pub := natsbus.NewBatchPublisher(e.js, 0)
	group := o.names.Group("strata-features-" + o.runID)
	svc, err := features.NewService(ctx, features.Config{
		Brokers: e.brokers, Group: group, Epoch: o.epoch, Names: o.names,
		StopAfterFinal: true, RunID: o.runID, OnBatch: o.onBatch,
	}, pub, features.KVCheckpoints{KV: kv}, o.logger.With("role", "features"), o.reg)
	if err != nil {
		return res, err
	}
	pcl, err := kgo.NewClient(append(kafka.CommonOpts(e.brokers, o.logger),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(200_000),
		kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return res, fmt.Errorf("creating replay kafka client: %w", err)
	}
	defer pcl.Close()
	rcfg := producers.ReplayConfig{RunID: o.runID, Observed: true, AllowedLatenessUS: o.latenessUS,
		Speed: o.speed, Clock: o.clock, Partitions: o.partitions, SourceName: srcName, Names: o.names}
	bar := newProgress(o.progress, traceLenUS, &rcfg)
	rep, err := producers.NewReplayer(rcfg, pcl, o.logger.With("role", "replay"), o.reg)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error {
		r, err := rep.Run(gctx, src)
		res.Replay = r
		return err
	})
	if e.embeddedKafka {
		tctx, stopTrim := context.WithCancel(gctx)
		defer stopTrim()
		go trimConsumed(tctx, pcl, []string{group}, []string{o.names.Topic(schemas.TopicTelemetry)}, 2*time.Second, o.logger)
	}
	err = g.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	res.Wall = time.Since(t0)
	res.Features = svc.Stats()
	return res, err
}

// newProgress shows replay progress in trace seconds on w (nil: none) and
// hooks it into cfg; the caller finishes the returned bar.
func newProgress(w io.Writer, traceLenUS int64, cfg *producers.ReplayConfig) *progressbar.ProgressBar {
	if w == nil {
		return nil
	}
	total := int64(-1)
	if traceLenUS > 0 {
		total = traceLenUS / 1e6
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("replaying (trace seconds)"), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	cfg.Progress = func(t, _ int64) { _ = bar.Set64(t / 1e6) }
	return bar
}

// trimConsumed is the embedded broker's retention: every interval it deletes
// the records of topics that every one of groups has committed (the feature
// service and the sink commit only after their work is durable), so a long
// run does not keep every record in memory. Real Kafka has its own
// retention; this runs only against the in-process broker, which strata
// owns for the run.
func trimConsumed(ctx context.Context, cl *kgo.Client, groups []string, topics []string, every time.Duration, log *slog.Logger) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(every)
	defer t.Stop()
	type tp struct {
		topic string
		part  int32
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The lowest offset committed by every group, per partition.
		low := map[tp]int64{}
		seen := map[tp]int{}
		for _, g := range groups {
			offs, err := adm.FetchOffsets(ctx, g)
			if err != nil {
				break // the group may not have committed yet
			}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil || !slices.Contains(topics, o.Topic) || o.At <= 0 {
					return
				}
				k := tp{o.Topic, o.Partition}
				if v, ok := low[k]; !ok || o.At < v {
					low[k] = o.At
				}
				seen[k]++
			})
		}
		del := kadm.Offsets{}
		for k, at := range low {
			if seen[k] == len(groups) {
				del.Add(kadm.Offset{Topic: k.topic, Partition: k.part, At: at, LeaderEpoch: -1})
			}
		}
		if len(del) == 0 {
			continue
		}
		if _, err := adm.DeleteRecords(ctx, del); err != nil && ctx.Err() == nil {
			log.Warn("trimming consumed records from the embedded broker", "err", err)
		}
	}
}

// summary is the JSON that `strata run --summary` writes.
type summary struct {
	RunID                string           `json:"run_id"`
	Source               string           `json:"source"`
	Invocations          int64            `json:"invocations"`
	Windowed             int64            `json:"windowed_invocations"`
	Ticks                map[string]int64 `json:"ticks"`
	StatesPublished      int64            `json:"states_published"`
	DeadLetters          int64            `json:"dead_letters"`
	BadLines             int64            `json:"bad_lines"`
	Late                 int64            `json:"late"`
	HorizonSeconds       float64          `json:"horizon_seconds"`
	WallSeconds          float64          `json:"wall_seconds"`
	InvocationsPerSecond float64          `json:"invocations_per_second"`
	Speed                string           `json:"speed"`
	Kafka                string           `json:"kafka"`
	NATS                 string           `json:"nats"`
}

// newSummary builds the summary fields both loops share.
func newSummary(o pipelineOpts, source string, rep producers.ReplayResult, fs features.Stats, wall time.Duration) summary {
	s := summary{
		RunID: o.runID, Source: source, Invocations: rep.Invocations, Windowed: fs.Invocations,
		Ticks: fs.Ticks, StatesPublished: fs.StatesPublished,
		DeadLetters: rep.DeadLetters + fs.Late + fs.Malformed,
		BadLines:    rep.BadLines, Late: rep.Late + fs.Late,
		HorizonSeconds: float64(rep.HorizonUS) / 1e6, WallSeconds: wall.Seconds(), Speed: o.speed.String(),
		Kafka: orDefault(strings.Join(o.brokers, ","), "embedded"), NATS: orDefault(o.natsURL, "embedded"),
	}
	if w := wall.Seconds(); w > 0 {
		s.InvocationsPerSecond = float64(s.Invocations) / w
	}
	return s
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("parsing --log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func parseEpoch(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing --trace-epoch %q (want RFC 3339, e.g. 2022-01-30T00:00:00Z): %w", s, err)
	}
	return t.UTC(), nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// replayFlags are the flags of the roles that replay a trace.
type replayFlags struct {
	speed    string
	runID    string
	lateness time.Duration
	progress bool
}

func (r *replayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.speed, "speed", "max", "replay speed: trace seconds per wall second (3600 = an hour a second), or max")
	fs.StringVar(&r.runID, "run-id", "", "run id (default: random)")
	fs.DurationVar(&r.lateness, "allowed-lateness", 600*time.Second, "how far out of start order the trace may be; later rows are dead-lettered")
	fs.BoolVar(&r.progress, "progress", true, "show a progress bar on stderr")
}

// registerPrefix registers --prefix, the name prefix of a deployment.
func registerPrefix(fs *flag.FlagSet, n *schemas.Names) { pipeline.RegisterPrefixFlag(fs, "prefix", n) }

// commonFlags are shared by the roles.
type commonFlags struct {
	// pipe holds --kafka, --nats, --partitions and --prefix
	// (pipeline.Config.RegisterFlags).
	pipe        pipeline.Config
	logLevel    string
	metricsAddr string
	epoch       string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	c.registerBatch(fs)
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `ADDR` (e.g. :9464); off by default")
}

// registerBatch registers the common flags except --metrics-addr, for the
// batch commands (eval, export, bench), which run one pipeline after
// another, each with a registry of its own, and serve no metrics.
func (c *commonFlags) registerBatch(fs *flag.FlagSet) {
	c.pipe.RegisterFlags(fs, "")
	fs.StringVar(&c.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&c.epoch, "trace-epoch", grid.DefaultEpoch.Format(time.RFC3339), "wall-clock instant of trace time 0 (sets hour of day)")
}

// serveMetrics serves reg on addr until ctx is done; "" serves nothing. It
// listens before it returns, so a taken or malformed address fails the
// command before its role starts.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	if addr == "" {
		return nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("serving metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf       commonFlags
		sf       sourceFlags
		rf       replayFlags
		summaryF = fs.String("summary", "", "write a JSON summary of the run to `FILE`")
		observed = fs.Bool("observed", false, "open loop: replay the trace as telemetry observed on its own platform, without the twin and agents")
		stratPol = fs.String("strategic", pipeline.DefaultStrategicPolicy, "strategic policy (daily, per app): "+policyNames(schemas.Strategic)+", none, or "+pipeline.PolicyExternal+" (served by a worker outside this process, docs/worker-contract.md)")
		tact     = fs.String("tactical", pipeline.DefaultTacticalPolicy, "tactical policy (hourly, per function): "+policyNames(schemas.Tactical)+", none, or "+pipeline.PolicyExternal+" (as for --strategic; agents/pyworker serves it from Python)")
		oper     = fs.String("operational", pipeline.DefaultOperationalPolicy, "operational policy (15 s, per active function): "+policyNames(schemas.Operational)+", none, or "+pipeline.PolicyExternal+" (as for --strategic)")
		defPl    = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		polSeed  = fs.Int64("policy-seed", pipeline.DefaultPolicySeed, "seed of the policies' random choices")
		stf      storeFlags
		outcomes = fs.Bool("outcomes", false, "closed loop: also write per-invocation outcomes (strata.outcomes.v1 and the outcomes table)")
		models   = fs.String("models", "", "closed loop: `DIR` of trained checkpoints (dqn.ckpt, ppo.ckpt, lstm.ckpt) for --strategic dqn, --tactical ppo, --operational lstm")
		trans    = fs.String("transitions", "strategic,tactical", "closed loop: layers whose learner transitions go to strata.transitions.v1 (comma-separated; operational is ~1.5 M a day; none for no layer)")
		prof     profileFlags
	)
	cf.register(fs)
	sf.register(fs)
	rf.register(fs)
	stf.register(fs)
	prof.register(fs, "the run")
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if *observed && conf.hasCloud() {
		return errors.New("strata run --observed builds no cloud model: its config file cannot hold the reward, model and catalog sections")
	}
	defaultMemoryLimit()
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	sp, err := replay.ParseSpeed(rf.speed)
	if err != nil {
		return err
	}
	epoch, err := parseEpoch(cf.epoch)
	if err != nil {
		return err
	}
	reg := newRegistry()
	if err := serveMetrics(ctx, cf.metricsAddr, reg); err != nil {
		return err
	}
	stopProf, err := prof.start()
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProf(); perr != nil {
			logger.Error("writing profiles", "err", perr)
		}
	}()
	src, name, traceLen, closeSrc, err := sf.open()
	if err != nil {
		return err
	}
	defer closeSrc()
	o := pipeline.Config{Brokers: cf.pipe.Brokers, NATSURL: cf.pipe.NATSURL, Partitions: cf.pipe.Partitions, Names: cf.pipe.Names,
		Speed: sp, Epoch: epoch, RunID: rf.runID, LatenessUS: rf.lateness.Microseconds(), Logger: logger, Registerer: reg}
	if rf.progress {
		o.Progress = stderr
	}
	if o.RunID == "" {
		o.RunID = pipeline.NewRunID()
	}
	if !*observed {
		pl, err := parsePlacement(*defPl)
		if err != nil {
			return err
		}
		tl, err := parseLayers(*trans)
		if err != nil {
			return fmt.Errorf("parsing --transitions: %w", err)
		}
		return runLoopMain(ctx, loopFlags{strategic: *stratPol, tactical: *tact, operational: *oper, placement: pl,
			policySeed: *polSeed, summary: *summaryF, sources: &sf, store: stf.target(), args: args, outcomes: *outcomes,
			transitions: tl, models: *models, conf: conf}, o, src, name, traceLen, stdout)
	}
	res, err := pipeline.OpenLoop(ctx, o, src, name, traceLen)
	if err != nil {
		return err
	}
	sum := newSummary(o, name, res.Replay, res.Features, res.Wall)
	fmt.Fprintf(stdout, "run %s: %d invocations from %s, %d windowed; state batches: %d (operational %d, tactical %d, strategic %d); dead letters %d; %.1f s wall, %.0f invocations/s\n",
		sum.RunID, sum.Invocations, name, sum.Windowed, sum.StatesPublished,
		sum.Ticks[string(schemas.Operational)], sum.Ticks[string(schemas.Tactical)], sum.Ticks[string(schemas.Strategic)],
		sum.DeadLetters, sum.WallSeconds, sum.InvocationsPerSecond)
	if *summaryF != "" {
		return writeJSON(*summaryF, sum)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// replayMain runs the replay producer alone against external Kafka.
func replayMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf       commonFlags
		sf       sourceFlags
		rf       replayFlags
		observed = fs.Bool("observed", false, "write to strata.telemetry.v1 as observed on the trace's own platform (open loop)")
		provider = fs.String("provider", "azure", "with --observed: the platform the trace was recorded on")
	)
	cf.register(fs)
	sf.register(fs)
	rf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(cf.pipe.Brokers) == 0 {
		return errors.New("strata replay needs --kafka (use strata run for the embedded pipeline)")
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	sp, err := replay.ParseSpeed(rf.speed)
	if err != nil {
		return err
	}
	reg := newRegistry()
	if err := serveMetrics(ctx, cf.metricsAddr, reg); err != nil {
		return err
	}
	src, name, traceLen, closeSrc, err := sf.open()
	if err != nil {
		return err
	}
	defer closeSrc()
	brokers := cf.pipe.Brokers
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, logger), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	if err := schemas.ValidatePrefix(cf.pipe.Names.Prefix); err != nil {
		return err
	}
	n, err := kafka.ResolvePartitions(ctx, cl, cf.pipe.Partitions, cf.pipe.Names.Topics()...)
	if err != nil {
		return err
	}
	logger.Info("kafka topics", "partitions", n, "asked", cf.pipe.Partitions, "prefix", cf.pipe.Names.Prefix)
	if rf.runID == "" {
		rf.runID = pipeline.NewRunID()
	}
	rcfg := producers.ReplayConfig{RunID: rf.runID, Observed: *observed, Provider: *provider,
		AllowedLatenessUS: rf.lateness.Microseconds(), Speed: sp, Partitions: n, SourceName: name, Names: cf.pipe.Names}
	var pw io.Writer
	if rf.progress {
		pw = stderr
	}
	bar := pipeline.NewProgress(pw, traceLen, &rcfg)
	rep, err := producers.NewReplayer(rcfg, cl, logger, reg)
	if err != nil {
		return err
	}
	res, err := rep.Run(ctx, src)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d invocations (run %s) to %s: %d watermarks, %d dead letters, horizon %.0f s, %.1f s wall, %.0f records/s\n",
		res.Invocations, rf.runID, rep.Topic(), res.Watermarks, res.DeadLetters, float64(res.HorizonUS)/1e6, res.WallSeconds, res.RecordsPerSec)
	return nil
}

// featuresMain runs the feature service alone against external Kafka and
// NATS until interrupted (or, with --stop-after-final, until a run ends).
func featuresMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata features", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf        commonFlags
		group     = fs.String("group", "", "consumer group (default strata-features under --prefix)")
		runID     = fs.String("run-id", "", "only window this run (default: every run)")
		stopFinal = fs.Bool("stop-after-final", false, "exit once every partition has seen its run's final watermark")
		ckptEvery = fs.Duration("checkpoint-every", 5*time.Second, "wall-clock interval between state checkpoints")
	)
	cf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(cf.pipe.Brokers) == 0 || cf.pipe.NATSURL == "" {
		return errors.New("strata features needs --kafka and --nats (use strata run for the embedded pipeline)")
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	epoch, err := parseEpoch(cf.epoch)
	if err != nil {
		return err
	}
	reg := newRegistry()
	if err := serveMetrics(ctx, cf.metricsAddr, reg); err != nil {
		return err
	}
	if err := schemas.ValidatePrefix(cf.pipe.Names.Prefix); err != nil {
		return err
	}
	nc, err := natsbus.Connect(cf.pipe.NATSURL, "strata-features")
	if err != nil {
		return err
	}
	defer func() { _ = nc.Drain() }()
	js, err := jsFor(ctx, nc, cf.pipe.Names)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, cf.pipe.Names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		return fmt.Errorf("opening checkpoint bucket: %w", err)
	}
	svc, err := features.NewService(ctx, features.Config{Brokers: cf.pipe.Brokers, Group: *group,
		Epoch: epoch, StopAfterFinal: *stopFinal, RunID: *runID, CheckpointEvery: *ckptEvery, Names: cf.pipe.Names},
		natsbus.NewBatchPublisher(js, 0), features.KVCheckpoints{KV: kv}, logger, reg)
	if err != nil {
		return err
	}
	err = svc.Run(ctx)
	st := svc.Stats()
	fmt.Fprintf(stdout, "features: %d invocations windowed, %d late, %d malformed, %d state batches %v\n",
		st.Invocations, st.Late, st.Malformed, st.StatesPublished, st.Ticks)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	_ = os.Stdout.Sync()
	return nil
}

// parseLayers parses a comma-separated list of layer names; "none" or ""
// is the empty list.
func parseLayers(s string) ([]schemas.Layer, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []schemas.Layer
	for _, n := range strings.Split(s, ",") {
		l, err := schemas.ParseLayer(strings.TrimSpace(n))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, nil
}

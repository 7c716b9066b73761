package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
)

// limitSource yields at most n invocations of src.
type limitSource struct {
	src replay.Source
	n   int64
}

func (s *limitSource) Next() (replay.Invocation, error) {
	if s.n <= 0 {
		return replay.Invocation{}, io.EOF
	}
	s.n--
	return s.src.Next()
}

// benchIngestMain runs `strata bench ingest`: on one broker, in --runs
// interleaved rounds, the raw franz-go produce throughput of n telemetry
// records (the ceiling) and then the throughput of the same number of
// records sent over HTTP to an in-process `strata ingest` (authenticated,
// validated, acknowledged only after Kafka acknowledged them), with the
// request latency percentiles. Each run writes to a fresh scratch topic
// (and each ingest run to a fresh server), deleted afterwards; the last
// line is the ratio of the two sides' best runs.
func benchIngestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf          commonFlags
		records     = fs.Int64("records", 300_000, "records to send")
		batch       = fs.Int("batch", 500, "records per request")
		concurrency = fs.Int("concurrency", 8, "requests in flight")
		format      = fs.String("format", "json", "request format: json, otlp-proto or otlp-json")
		runs        = fs.Int("runs", 3, "runs of each side, interleaved (raw, ingest, raw, …); each side's best run counts")
		cpuProf     = fs.String("cpuprofile", "", "write a CPU profile of the last ingest run (after its requests are encoded) to `FILE`")
	)
	fs.IntVar(runs, "raw-runs", *runs, "alias of --runs (deprecated)")
	cf.registerBatch(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *runs < 1 || *records < 1 {
		return errors.New("strata bench ingest: --runs and --records must be positive")
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	o := pipeline.Config{Brokers: cf.pipe.Brokers, NATSURL: cf.pipe.NATSURL, Partitions: cf.pipe.Partitions, Names: cf.pipe.Names, Logger: logger}
	e, closeEnv, err := o.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	days := int(*records/120_000) + 1 // the synthetic trace holds ~140,000 invocations a day
	newSrc := func() (replay.Source, error) {
		s, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: 1})
		if err != nil {
			return nil, err
		}
		return &limitSource{src: s, n: *records}, nil
	}
	src, err := newSrc()
	if err != nil {
		return err
	}
	raw, err := encodeRawRecords(src, int(*records))
	if err != nil {
		return err
	}
	admin, err := kgo.NewClient(kafka.CommonOpts(e.Brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating bench admin client: %w", err)
	}
	defer admin.Close()
	ib := ingestBench{brokers: e.Brokers, partitions: e.Partitions, admin: admin, logger: logger,
		lcfg: loadgen.Config{Format: loadgen.Format(*format), Batch: *batch, Concurrency: *concurrency, Prebuild: true}}
	var rawRate, ingestRate float64
	for i := range *runs {
		rate, err := raw.run(ctx, stdout, e.Brokers, e.Partitions, i)
		if err != nil {
			return err
		}
		rawRate = max(rawRate, rate)

		if src, err = newSrc(); err != nil {
			return err
		}
		profile := ""
		if i == *runs-1 {
			profile = *cpuProf
		}
		res, err := ib.run(ctx, src, i, profile)
		if err != nil {
			return err
		}
		ingestRate = max(ingestRate, res.RecordsPerSec)
		fmt.Fprintf(stdout, "ingest over HTTP (%s, %d records a request, %d in flight), run %d: %d records in %.2f s = %.0f records/s; request latency p50 %v p90 %v p99 %v max %v\n",
			*format, *batch, *concurrency, i+1, res.Accepted, res.Wall.Seconds(), res.RecordsPerSec,
			res.P50.Round(time.Microsecond), res.P90.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	}
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s; ingest (best run): %.0f records/s\n", rawRate, ingestRate)
	fmt.Fprintf(stdout, "ingest/raw ratio: %.3f\n", ingestRate/rawRate)
	return nil
}

// ingestBench is the measured side of `strata bench ingest`.
type ingestBench struct {
	brokers    []string
	partitions int
	admin      *kgo.Client
	logger     *slog.Logger
	// lcfg is the load generator's configuration less URL, token, client
	// and OnStart, which each run sets.
	lcfg loadgen.Config
}

// run is ingest run i: a fresh `strata ingest` server writing to a fresh
// scratch topic (a benchmark must not fill the telemetry topic), started
// and serving before the clock starts; then src's records are encoded into
// requests and sent, timed by the load generator. It stops the server and
// deletes the topic before it returns. With profile set it writes a CPU
// profile of the sending to that file.
func (b *ingestBench) run(ctx context.Context, src replay.Source, i int, profile string) (loadgen.Result, error) {
	var res loadgen.Result
	topic := fmt.Sprintf("%s.ingest.%d", benchTopic, i)
	if err := kafka.EnsureTopics(ctx, b.admin, int32(b.partitions), topic); err != nil {
		return res, err
	}
	defer func() {
		if _, err := kadm.NewClient(b.admin).DeleteTopics(context.WithoutCancel(ctx), topic); err != nil {
			b.logger.Warn("deleting the bench topic", "topic", topic, "err", err)
		}
	}()
	const token = "bench-token"
	// 15 min lateness: no record of the trace is late (it would be written
	// to the dead-letter topic instead, and counted as rejected).
	srv, err := ingest.New(ctx, ingest.Config{Brokers: b.brokers, RunID: "bench-ingest", Topic: topic, Tokens: []string{token}, Lateness: 15 * time.Minute}, b.logger, nil)
	if err != nil {
		return res, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("listening: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln, "", "") }()
	// Wait until it serves: its first watermark waits for the new topic's
	// partitions to have leaders, which is not ingest's work to time.
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && srv.Stats().Watermarks > 0 {
				break
			}
		}
		if ctx.Err() != nil {
			stop()
			return res, errors.Join(ctx.Err(), <-served)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := b.lcfg
	cfg.URL, cfg.Token = "http://"+ln.Addr().String(), token
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2}}
	defer client.CloseIdleConnections()
	cfg.Client = client
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			stop()
			return res, errors.Join(fmt.Errorf("creating cpu profile: %w", err), <-served)
		}
		defer func() { _ = f.Close() }()
		cfg.OnStart = func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				b.logger.Warn("starting cpu profile", "err", err)
			}
		}
		defer pprof.StopCPUProfile()
	}
	res, err = loadgen.Run(ctx, cfg, src, b.logger)
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return res, err
	}
	if res.Failed > 0 || res.Rejected > 0 {
		return res, fmt.Errorf("ingest bench, run %d: %d records failed, %d rejected", i+1, res.Failed, res.Rejected)
	}
	if res.Accepted == 0 {
		return res, fmt.Errorf("ingest bench, run %d: nothing accepted", i+1)
	}
	return res, nil
}

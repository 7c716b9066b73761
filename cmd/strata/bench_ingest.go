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
	"runtime/pprof"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
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

// benchIngestMain runs `strata bench ingest`: on one broker, in one run, the
// raw franz-go produce throughput of n telemetry records (the ceiling) and
// the throughput of the same number of records sent over HTTP to an
// in-process `strata ingest` (authenticated, validated, acknowledged only
// after Kafka acknowledged them), with the request latency percentiles.
func benchIngestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf          commonFlags
		records     = fs.Int64("records", 300_000, "records to send")
		batch       = fs.Int("batch", 500, "records per request")
		concurrency = fs.Int("concurrency", 8, "requests in flight")
		format      = fs.String("format", "json", "request format: json, otlp-proto or otlp-json")
		rawRepeats  = fs.Int("raw-runs", 3, "raw-ceiling runs; the best one is the ceiling")
		cpuProf     = fs.String("cpuprofile", "", "write a CPU profile of the ingest phase (after the requests are encoded) to `FILE`")
	)
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	o := pipelineOpts{brokers: kafka.ParseBrokers(cf.kafka), natsURL: cf.nats, partitions: cf.partitions, logger: logger}
	e, closeEnv, err := o.prepare(ctx)
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
	runs, rawN, err := rawProduce(ctx, e.brokers, cf.partitions, src, int(*records), *rawRepeats)
	if err != nil {
		return err
	}
	rawRate := printRawRuns(stdout, runs, rawN)
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s\n", rawRate)

	// The ingest phase writes to a scratch topic, deleted afterwards, as
	// the ceiling does: a benchmark must not fill the telemetry topic.
	topic := benchTopic + ".ingest"
	admin, err := kgo.NewClient(kafka.CommonOpts(e.brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating bench admin client: %w", err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, int32(cf.partitions), topic); err != nil {
		return err
	}
	defer func() {
		if _, err := kadm.NewClient(admin).DeleteTopics(context.WithoutCancel(ctx), topic); err != nil {
			logger.Warn("deleting the bench topic", "topic", topic, "err", err)
		}
	}()
	const token = "bench-token"
	// 15 min lateness: no record of the trace is late (it would be written
	// to the dead-letter topic instead, and counted as rejected).
	srv, err := ingest.New(ctx, ingest.Config{Brokers: e.brokers, RunID: "bench-ingest", Topic: topic, Tokens: []string{token}, Lateness: 15 * time.Minute}, logger, nil)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
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
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if src, err = newSrc(); err != nil {
		stop()
		return err
	}
	var startProfile func()
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			stop()
			return fmt.Errorf("creating cpu profile: %w", err)
		}
		defer func() { _ = f.Close() }()
		startProfile = func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				logger.Warn("starting cpu profile", "err", err)
			}
		}
		defer pprof.StopCPUProfile()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency * 2}}
	res, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + ln.Addr().String(), Token: token, Format: loadgen.Format(*format),
		Batch: *batch, Concurrency: *concurrency, Client: client, Prebuild: true, OnStart: startProfile}, src, logger)
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if res.Failed > 0 || res.Rejected > 0 {
		return fmt.Errorf("ingest bench: %d records failed, %d rejected", res.Failed, res.Rejected)
	}
	if res.Accepted == 0 {
		return errors.New("ingest bench: nothing accepted")
	}
	fmt.Fprintf(stdout, "ingest over HTTP (%s, %d records a request, %d in flight): %d records in %.2f s = %.0f records/s; request latency p50 %v p90 %v p99 %v max %v\n",
		*format, *batch, *concurrency, res.Accepted, res.Wall.Seconds(), res.RecordsPerSec,
		res.P50.Round(time.Microsecond), res.P90.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	fmt.Fprintf(stdout, "ingest/raw ratio: %.3f\n", res.RecordsPerSec/rawRate)
	return nil
}

package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchTopic prefixes the topics that receive the raw ceiling's records.
const benchTopic = "strata.bench.raw"

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

// IngestConfig configures the ingest benchmark.
type IngestConfig struct {
	// Config is where Kafka is (nil Brokers: an embedded broker).
	pipeline.Config
	// Records records are sent, Batch a request, Concurrency requests in
	// flight, in Format (json, otlp-proto or otlp-json).
	Records            int64
	Batch, Concurrency int
	Format             string
	// Runs is the number of runs of each side, interleaved.
	Runs int
	// CPUProfile, if set, receives a CPU profile of the last ingest run.
	CPUProfile string
}

// Ingest measures, in c.Runs interleaved rounds, the raw franz-go produce
// throughput of c.Records telemetry records (the ceiling) and the
// throughput of the same records sent over HTTP to an in-process ingest
// service, with the request latency percentiles, and prints the
// ingest/raw ratio of the two sides' best runs last on stdout.
func Ingest(ctx context.Context, c IngestConfig, stdout io.Writer) error {
	if c.Runs < 1 || c.Records < 1 {
		return errors.New("strata bench ingest: --runs and --records must be positive")
	}
	o := c.Config
	e, closeEnv, err := o.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	days := int(c.Records/120_000) + 1 // the synthetic trace holds ~140,000 invocations a day
	newSrc := func() (replay.Source, error) {
		s, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: 1})
		if err != nil {
			return nil, err
		}
		return &limitSource{src: s, n: c.Records}, nil
	}
	src, err := newSrc()
	if err != nil {
		return err
	}
	raw, err := EncodeRaw(src, int(c.Records))
	if err != nil {
		return err
	}
	admin, err := kgo.NewClient(kafka.CommonOpts(e.Brokers, nil)...)
	if err != nil {
		return fmt.Errorf("creating bench admin client: %w", err)
	}
	defer admin.Close()
	ib := ingestBench{brokers: e.Brokers, partitions: e.Partitions, admin: admin, logger: c.Logger,
		lcfg: loadgen.Config{Format: loadgen.Format(c.Format), Batch: c.Batch, Concurrency: c.Concurrency, Prebuild: true}}
	var rawRate, ingestRate float64
	for i := range c.Runs {
		rate, err := raw.Run(ctx, stdout, e.Brokers, e.Partitions, i)
		if err != nil {
			return err
		}
		rawRate = max(rawRate, rate)

		if src, err = newSrc(); err != nil {
			return err
		}
		profile := ""
		if i == c.Runs-1 {
			profile = c.CPUProfile
		}
		res, err := ib.run(ctx, src, i, profile)
		if err != nil {
			return err
		}
		ingestRate = max(ingestRate, res.RecordsPerSec)
		fmt.Fprintf(stdout, "ingest over HTTP (%s, %d records a request, %d in flight), run %d: %d records in %.2f s = %.0f records/s; request latency p50 %v p90 %v p99 %v max %v\n",
			c.Format, c.Batch, c.Concurrency, i+1, res.Accepted, res.Wall.Seconds(), res.RecordsPerSec,
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

// RawRecords are the raw ceiling's records: as many as the source holds,
// of the same kind the pipeline writes (observed telemetry keyed by app).
// The first sample records are encoded once, before any run, and produced
// in a cycle, so neither encoding nor generation is timed.
type RawRecords struct {
	recs  []rawRecord
	total int
}

type rawRecord struct{ k, v []byte }

// EncodeRaw reads src to its end and encodes its first sample
// invocations.
func EncodeRaw(src replay.Source, sample int) (*RawRecords, error) {
	r := &RawRecords{}
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		r.total++
		if len(r.recs) >= sample {
			continue
		}
		v, err := proto.Marshal(&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: in.ID(), App: in.App, Func: in.Func,
			StartUs: in.StartUS(), EndUs: in.EndUS, DurationUs: in.DurationUS, Row: in.Row, RunId: "bench"},
			Provider: proto.String("azure"), Source: "trace"})
		if err != nil {
			return nil, fmt.Errorf("encoding bench record: %w", err)
		}
		r.recs = append(r.recs, rawRecord{[]byte(in.App), v})
	}
	if len(r.recs) == 0 {
		return nil, errors.New("measuring raw produce: empty trace")
	}
	return r, nil
}

// Run is one raw-ceiling run, run i of the benchmark: it produces the
// records with franz-go to a fresh topic on brokers (created before and
// deleted after the clock runs), waits until every one is acknowledged,
// prints the run and returns its rate in records per second.
func (r *RawRecords) Run(ctx context.Context, w io.Writer, brokers []string, partitions, i int) (float64, error) {
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return 0, fmt.Errorf("creating bench client: %w", err)
	}
	defer cl.Close()
	topic := fmt.Sprintf("%s.%d", benchTopic, i)
	if err := kafka.EnsureTopics(ctx, cl, int32(partitions), topic); err != nil {
		return 0, err
	}
	var (
		perr error
		mu   sync.Mutex
	)
	t0 := time.Now()
	for k := range r.total {
		rec := r.recs[k%len(r.recs)]
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: rec.k, Value: rec.v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = cmp.Or(perr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flushing bench records: %w", err)
	}
	d := time.Since(t0)
	if perr != nil {
		return 0, fmt.Errorf("producing bench records: %w", perr)
	}
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topic); err != nil {
		return 0, fmt.Errorf("deleting %s: %w", topic, err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	rate := float64(r.total) / d.Seconds()
	fmt.Fprintf(w, "raw franz-go produce, run %d: %d records in %.2f s = %.0f records/s\n", i+1, r.total, d.Seconds(), rate)
	return rate, nil
}

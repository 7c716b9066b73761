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
	"slices"
	"strings"
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
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchTopic prefixes the topics that receive the raw ceiling's records.
const benchTopic = "strata.bench.raw"

// ingestTopic prefixes the ingest benchmark's scratch topics, which also
// carry the run id: a shared broker may serve two benchmarks at once.
const ingestTopic = "strata.bench.ingest"

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

// Ingest measures, in c.Runs interleaved rounds (raw, ingest, raw,
// ingest, …), the raw franz-go produce throughput of c.Records telemetry
// records (the ceiling) and the throughput of the same records sent over
// HTTP to an in-process ingest service, with the request latency
// percentiles. It prints every run with its absolute rate and the round's
// ratio, the medians of each side (and their best runs), and last on
// stdout the ingest/raw ratio of the two sides' medians: on a shared
// machine a median of five runs or more moves far less than a best run.
func Ingest(ctx context.Context, c IngestConfig, stdout io.Writer) error {
	if c.Runs < 1 || c.Records < 1 {
		return errors.New("strata bench ingest: --runs and --records must be positive")
	}
	o := c.Config
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e, closeEnv, err := o.Prepare(ctx)
	if err != nil {
		return err
	}
	defer closeEnv()
	fmt.Fprintf(stdout, "machine: %s, %d cores, %s, load average %s; broker: %s\n", CPUModel(), runtime.NumCPU(), runtime.Version(),
		LoadAverage(), orDefault(strings.Join(c.Brokers, ","), "embedded kfake"))
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
	topics := ingestTopic + "." + o.RunID
	ib := ingestBench{brokers: e.Brokers, partitions: e.Partitions, admin: admin, logger: o.Logger, topics: topics, names: o.Names,
		lcfg: loadgen.Config{Format: loadgen.Format(c.Format), Batch: c.Batch, Concurrency: c.Concurrency, Prebuild: true}}
	var (
		rawRates, ingestRates, ratios []float64
		p50s, p90s, p99s              []time.Duration
	)
	for i := range c.Runs {
		rate, err := raw.run(ctx, stdout, e.Brokers, e.Partitions, fmt.Sprintf("%s.raw.%d", topics, i), i)
		if err != nil {
			return err
		}
		rawRates = append(rawRates, rate)

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
		ingestRates, ratios = append(ingestRates, res.RecordsPerSec), append(ratios, res.RecordsPerSec/rate)
		p50s, p90s, p99s = append(p50s, res.P50), append(p90s, res.P90), append(p99s, res.P99)
		fmt.Fprintf(stdout, "ingest over HTTP (%s, %d records a request, %d in flight), run %d: %d records in %.2f s = %.0f records/s (%.3f of this round's raw %.0f records/s); request latency p50 %v p90 %v p99 %v max %v\n",
			c.Format, c.Batch, c.Concurrency, i+1, res.Accepted, res.Wall.Seconds(), res.RecordsPerSec, res.RecordsPerSec/rate, rate,
			res.P50.Round(time.Microsecond), res.P90.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	}
	rawMed, ingestMed := Median(rawRates), Median(ingestRates)
	fmt.Fprintf(stdout, "the rounds' ingest/raw, sorted: %s; load average now %s\n", sortedList(ratios, "%.3f"), LoadAverage())
	fmt.Fprintf(stdout, "request latency, median of %d runs: p50 %v p90 %v p99 %v\n", c.Runs,
		Median(p50s).Round(time.Microsecond), Median(p90s).Round(time.Microsecond), Median(p99s).Round(time.Microsecond))
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s, median of %d runs: %.0f records/s; ingest (best run): %.0f records/s, median of %d runs: %.0f records/s; the ratio is of the medians\n",
		slices.Max(rawRates), c.Runs, rawMed, slices.Max(ingestRates), c.Runs, ingestMed)
	fmt.Fprintf(stdout, "ingest/raw ratio: %.3f\n", ingestMed/rawMed)
	return nil
}

// Median returns the median of xs (the mean of the middle two when their
// number is even), or 0 when xs is empty; xs is not modified.
func Median[T float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// sortedList formats xs, sorted, with format, separated by spaces.
func sortedList(xs []float64, format string) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}

// LoadAverage returns the 1-, 5- and 15-minute load averages of the
// machine (/proc/loadavg), or "unknown": the benchmarks share their
// machine, and the load says how much.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// ingestBench is the measured side of `strata bench ingest`.
type ingestBench struct {
	brokers    []string
	partitions int
	admin      *kgo.Client
	logger     *slog.Logger
	// topics prefixes the scratch topics; names the dead-letter topic.
	topics string
	names  schemas.Names
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
	topic := fmt.Sprintf("%s.%d", b.topics, i)
	if err := kafka.EnsureTopics(ctx, b.admin, int32(b.partitions), topic); err != nil {
		return res, err
	}
	// ingest.New reads the partition count, which a broker may not list
	// for a moment after CreateTopics returned.
	if _, err := kafka.WaitPartitionCount(ctx, b.admin, topic); err != nil {
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
	srv, err := ingest.New(ctx, ingest.Config{Brokers: b.brokers, RunID: "bench-ingest", Topic: topic, Names: b.names, Tokens: []string{token}, Lateness: 15 * time.Minute}, b.logger, nil)
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
// in a cycle, so neither encoding nor generation is timed. Their keys and
// values lie back to back in one buffer: a million small slices would be
// garbage-collector work in every run that follows, the ingest runs most.
type RawRecords struct {
	buf   []byte
	recs  []rawRecord
	total int
}

// rawRecord locates a record in RawRecords.buf: its key at [at, val),
// its value at [val, end).
type rawRecord struct{ at, val, end int }

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
		at := len(r.buf)
		r.buf = append(r.buf, in.App...)
		val := len(r.buf)
		r.buf, err = proto.MarshalOptions{}.MarshalAppend(r.buf, &stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: in.ID(), App: in.App, Func: in.Func,
			StartUs: in.StartUS(), EndUs: in.EndUS, DurationUs: in.DurationUS, Row: in.Row, RunId: "bench"},
			Provider: proto.String("azure"), Source: "trace"})
		if err != nil {
			return nil, fmt.Errorf("encoding bench record: %w", err)
		}
		r.recs = append(r.recs, rawRecord{at, val, len(r.buf)})
	}
	if len(r.recs) == 0 {
		return nil, errors.New("measuring raw produce: empty trace")
	}
	return r, nil
}

// warmUp writes, before the clock starts, one sample record to each
// partition of the fresh topic that a sample key maps to, and waits for
// their acknowledgements: the client then knows the partitions' leaders
// and holds its connections, as the ingest side's client does once its
// first watermark is written. Without it a run on a real broker sometimes
// timed the new topic's leader election (~5 s instead of 0.5 s).
func (r *RawRecords) warmUp(ctx context.Context, cl *kgo.Client, topic string, partitions int) error {
	if partitions < 1 {
		return nil
	}
	seen := make([]bool, partitions)
	var warm []*kgo.Record
	for _, rec := range r.recs {
		key := r.buf[rec.at:rec.val:rec.val]
		if p := kafka.KeyPartition(key, partitions); !seen[p] {
			seen[p] = true
			warm = append(warm, &kgo.Record{Topic: topic, Key: key, Value: r.buf[rec.val:rec.end:rec.end]})
		}
	}
	if err := cl.ProduceSync(ctx, warm...).FirstErr(); err != nil {
		return fmt.Errorf("warming up the bench client on %s: %w", topic, err)
	}
	return nil
}

// Run is one raw-ceiling run, run i of the benchmark: it produces the
// records with franz-go to a fresh topic on brokers (created before and
// deleted after the clock runs), waits until every one is acknowledged,
// prints the run and returns its rate in records per second.
func (r *RawRecords) Run(ctx context.Context, w io.Writer, brokers []string, partitions, i int) (float64, error) {
	return r.run(ctx, w, brokers, partitions, fmt.Sprintf("%s.%d", benchTopic, i), i)
}

// run is Run on the scratch topic topic.
func (r *RawRecords) run(ctx context.Context, w io.Writer, brokers []string, partitions int, topic string, i int) (float64, error) {
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return 0, fmt.Errorf("creating bench client: %w", err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, int32(partitions), topic); err != nil {
		return 0, err
	}
	if err := r.warmUp(ctx, cl, topic, partitions); err != nil {
		return 0, err
	}
	var (
		perr error
		mu   sync.Mutex
	)
	t0 := time.Now()
	for k := range r.total {
		rec := r.recs[k%len(r.recs)]
		key, val := r.buf[rec.at:rec.val:rec.val], r.buf[rec.val:rec.end:rec.end]
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: val}, func(_ *kgo.Record, err error) {
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

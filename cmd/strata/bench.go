package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchTopic prefixes the topics that receive the raw ceiling's records.
const benchTopic = "strata.bench.raw"

// benchUsage lists the benchmarks; each prints its ratio against a ceiling
// measured in the same run as its last line.
const benchUsage = `usage: strata bench <benchmark> [flags]

Benchmarks (each prints "<name>/<ceiling> ratio: X" last):
  pipeline  replay → features → NATS throughput against raw franz-go produce
  twin      pure twin Engine arrivals/s against the replay source alone
  loop      closed-loop ticks/s against the pure twin Engine on the same days
  sink      sink rows/s into ClickHouse (--clickhouse) or DuckDB (--store)
            against a raw batch insert of the same rows
  ingest    live telemetry over HTTP (strata ingest) against raw franz-go
            produce of the same records, with request latency p50/p99`

// benchMain runs `strata bench <benchmark>`. For pipeline: on one broker,
// in one run, it measures the raw franz-go produce throughput of the
// trace's records (the ceiling) and the end-to-end replay → features → NATS
// throughput of the whole trace, and prints the ratio as its last line.
// The other benchmarks are in bench_twin.go, bench_loop.go and
// bench_sink.go.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "twin":
			return benchTwinMain(ctx, args[1:], stdout, stderr)
		case "loop":
			return benchLoopMain(ctx, args[1:], stdout, stderr)
		case "sink":
			return benchSinkMain(ctx, args[1:], stdout, stderr)
		case "ingest":
			return benchIngestMain(ctx, args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "pipeline" {
		return errors.New(benchUsage)
	}
	fs := flag.NewFlagSet("strata bench pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf         commonFlags
		days       = fs.Int("days", 14, "days of synthetic trace")
		seed       = fs.Int64("seed", 1, "seed of the synthetic trace")
		apps       = fs.Int("apps", 0, "keep only this many apps (0 = all)")
		rawSample  = fs.Int("raw-sample", 200_000, "distinct records encoded for the raw ceiling, produced in a cycle up to the trace's count")
		rawRepeats = fs.Int("raw-runs", 3, "raw-ceiling runs; the best one is the ceiling")
		memProf    = fs.String("memprofile", "", "write a heap profile at the end of the pipeline phase to `FILE`")
		retention  = fs.Int64("state-retention-bytes", 128<<20, "bytes of state batches each JetStream stream keeps")
	)
	cf.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return err
	}
	o := pipelineOpts{brokers: kafka.ParseBrokers(cf.kafka), natsURL: cf.nats, partitions: cf.partitions,
		epoch: replay.DefaultEpoch, latenessUS: 600_000_000, logger: logger, stateRetention: *retention}
	e, err := startEnv(ctx, &o)
	if err != nil {
		return err
	}
	defer e.close()
	o.env = e
	synth := func() (replay.Source, error) {
		return replay.NewSynth(replay.SynthConfig{Days: *days, Seed: *seed, Apps: *apps})
	}

	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; broker: %s\n", cpuModel(), runtime.NumCPU(), runtime.Version(), orDefault(cf.kafka, "embedded kfake"))
	src, err := synth()
	if err != nil {
		return err
	}
	runs, rawN, err := rawProduce(ctx, e.brokers, cf.partitions, src, *rawSample, *rawRepeats)
	if err != nil {
		return err
	}
	rawRate := printRawRuns(stdout, runs, rawN)
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s; peak RSS so far %s\n", rawRate, peakRSS())
	resetPeakRSS()

	src, err = synth()
	if err != nil {
		return err
	}
	res, err := runPipeline(ctx, o, src, "synthetic", int64(*days)*replay.StrategicTickUS)
	if err != nil {
		return err
	}
	pipeRate := float64(res.Replay.Invocations) / res.Wall.Seconds()
	ops := res.Features.Ticks[string(schemas.Operational)]
	fmt.Fprintf(stdout, "pipeline replay → features → NATS: %d invocations, %d operational ticks (%d state batches) in %.2f s = %.0f invocations/s, %.0f ticks/s\n",
		res.Replay.Invocations, ops, res.Features.StatesPublished, res.Wall.Seconds(), pipeRate, float64(ops)/res.Wall.Seconds())
	fmt.Fprintf(stdout, "state batches: %.1f MB, %.1f KB per batch on average\n",
		float64(res.Features.StateBytes)/1e6, float64(res.Features.StateBytes)/1e3/float64(max(res.Features.StatesPublished, 1)))
	if *memProf != "" {
		if err := writeHeapProfile(*memProf); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "peak RSS of the pipeline phase: %s\n", peakRSS())
	fmt.Fprintf(stdout, "pipeline/raw ratio: %.3f\n", pipeRate/rawRate)
	return nil
}

// rawProduce measures the ceiling: how fast franz-go produces as many
// records as the source holds, of the same kind the pipeline writes
// (observed telemetry keyed by app), to the same broker. The first sample
// records are encoded before the clock starts and produced in a cycle, so
// encoding and generation are not timed. It repeats the measurement and
// returns every run's duration and the record count; each run's topic is
// deleted afterwards.
func rawProduce(ctx context.Context, brokers []string, partitions int, src replay.Source, sample, repeats int) ([]time.Duration, int, error) {
	type kv struct{ k, v []byte }
	var recs []kv
	total := 0
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		total++
		if len(recs) >= sample {
			continue
		}
		v, err := proto.Marshal(&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: in.ID(), App: in.App, Func: in.Func,
			StartUs: in.StartUS(), EndUs: in.EndUS, DurationUs: in.DurationUS, Row: in.Row, RunId: "bench"},
			Provider: proto.String("azure"), Source: "trace"})
		if err != nil {
			return nil, 0, fmt.Errorf("encoding bench record: %w", err)
		}
		recs = append(recs, kv{[]byte(in.App), v})
	}
	if len(recs) == 0 {
		return nil, 0, errors.New("measuring raw produce: empty trace")
	}
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return nil, 0, fmt.Errorf("creating bench client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var runs []time.Duration
	for run := range repeats {
		topic := fmt.Sprintf("%s.%d", benchTopic, run)
		if err := kafka.EnsureTopics(ctx, cl, int32(partitions), topic); err != nil {
			return nil, 0, err
		}
		var perr error
		var mu sync.Mutex
		t0 := time.Now()
		for i := range total {
			r := recs[i%len(recs)]
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.k, Value: r.v}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					perr = cmp.Or(perr, err)
					mu.Unlock()
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return nil, 0, fmt.Errorf("flushing bench records: %w", err)
		}
		runs = append(runs, time.Since(t0))
		if perr != nil {
			return nil, 0, fmt.Errorf("producing bench records: %w", perr)
		}
		if _, err := adm.DeleteTopics(ctx, topic); err != nil {
			return nil, 0, fmt.Errorf("deleting %s: %w", topic, err)
		}
		runtime.GC()
		debug.FreeOSMemory()
	}
	return runs, total, nil
}

// printRawRuns prints each raw-ceiling run of n records and returns the
// best rate, the ceiling.
func printRawRuns(w io.Writer, runs []time.Duration, n int) float64 {
	var best float64
	for i, d := range runs {
		rate := float64(n) / d.Seconds()
		best = max(best, rate)
		fmt.Fprintf(w, "raw franz-go produce, run %d: %d records in %.2f s = %.0f records/s\n", i+1, n, d.Seconds(), rate)
	}
	return best
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating heap profile: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("writing heap profile: %w", err)
	}
	return nil
}

// resetPeakRSS resets the kernel's peak-RSS mark (Linux ≥ 4.0: writing 5 to
// /proc/self/clear_refs), so the pipeline phase is measured on its own.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads the process's peak resident set size (VmHWM) on Linux.
func peakRSS() string {
	return procStatus("VmHWM:")
}

func procStatus(key string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), key))
		}
	}
	return "unknown"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// benchTopic receives the raw-producer ceiling's records.
const benchTopic = "strata.bench.raw"

// benchMain runs `strata bench pipeline`: on one broker, in one run, it
// measures the raw franz-go produce throughput of the trace's records (the
// ceiling) and the end-to-end replay → features → NATS throughput of the
// whole trace, and prints the ratio as its last line.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "pipeline" {
		return errors.New("usage: strata bench pipeline [flags]")
	}
	fs := flag.NewFlagSet("strata bench pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf        commonFlags
		days      = fs.Int("days", 14, "days of synthetic trace")
		seed      = fs.Int64("seed", 1, "seed of the synthetic trace")
		apps      = fs.Int("apps", 0, "keep only this many apps (0 = all)")
		rawMax    = fs.Int("raw-records", 500_000, "records produced for the raw ceiling (a rate; capped to bound broker memory)")
		retention = fs.Int64("state-retention-bytes", 128<<20, "bytes of state batches each JetStream stream keeps")
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
	raw, rawN, err := rawProduce(ctx, e.brokers, cf.partitions, src, *rawMax)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw franz-go produce: %d records in %.2f s = %.0f records/s (peak RSS so far %s)\n", rawN, raw.Seconds(), float64(rawN)/raw.Seconds(), peakRSS())
	runtime.GC()
	debug.FreeOSMemory()

	src, err = synth()
	if err != nil {
		return err
	}
	res, err := runPipeline(ctx, o, src, "synthetic", int64(*days)*replay.StrategicTickUS)
	if err != nil {
		return err
	}
	pipeRate := float64(res.Replay.Invocations) / res.Wall.Seconds()
	rawRate := float64(rawN) / raw.Seconds()
	ops := res.Features.Ticks[string(schemas.Operational)]
	fmt.Fprintf(stdout, "pipeline replay → features → NATS: %d invocations, %d operational ticks (%d state batches) in %.2f s = %.0f invocations/s, %.0f ticks/s\n",
		res.Replay.Invocations, ops, res.Features.StatesPublished, res.Wall.Seconds(), pipeRate, float64(ops)/res.Wall.Seconds())
	fmt.Fprintf(stdout, "state batches: %.1f MB, %.1f KB per batch on average\n",
		float64(res.Features.StateBytes)/1e6, float64(res.Features.StateBytes)/1e3/float64(max(res.Features.StatesPublished, 1)))
	fmt.Fprintf(stdout, "peak RSS: %s\n", peakRSS())
	fmt.Fprintf(stdout, "pipeline/raw ratio: %.3f\n", pipeRate/rawRate)
	return nil
}

// rawProduce encodes the source's invocations as the pipeline does
// (observed telemetry, keyed by app) and measures how fast franz-go produces
// up to limit of them to the same broker, encoding excluded: records are
// encoded before the clock starts. It deletes its topic afterwards.
func rawProduce(ctx context.Context, brokers []string, partitions int, src replay.Source, limit int) (time.Duration, int, error) {
	type kv struct{ k, v []byte }
	var recs []kv
	for len(recs) < limit {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		v, err := proto.Marshal(&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: in.ID(), App: in.App, Func: in.Func,
			StartUs: in.StartUS(), EndUs: in.EndUS, DurationUs: in.DurationUS, Row: in.Row, RunId: "bench"},
			Provider: proto.String("azure"), Source: "trace"})
		if err != nil {
			return 0, 0, fmt.Errorf("encoding bench record: %w", err)
		}
		recs = append(recs, kv{[]byte(in.App), v})
	}
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		return 0, 0, fmt.Errorf("creating bench client: %w", err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, int32(partitions), benchTopic); err != nil {
		return 0, 0, err
	}
	var perr error
	t0 := time.Now()
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Topic: benchTopic, Key: r.k, Value: r.v}, func(_ *kgo.Record, err error) {
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("flushing bench records: %w", err)
	}
	d := time.Since(t0)
	if perr != nil {
		return 0, 0, fmt.Errorf("producing bench records: %w", perr)
	}
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, benchTopic); err != nil {
		return 0, 0, fmt.Errorf("deleting %s: %w", benchTopic, err)
	}
	return d, len(recs), nil
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

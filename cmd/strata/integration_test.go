//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// The integration tier runs against real servers: Apache Kafka (KRaft),
// nats-server with JetStream. infra/scripts/up.sh starts them and writes
// their addresses to infra/.env.test; `make test-integration` exports them.

func servers(t *testing.T) (brokers []string, natsURL string) {
	t.Helper()
	k, n := os.Getenv("STRATA_KAFKA"), os.Getenv("STRATA_NATS")
	if k == "" || n == "" {
		t.Fatal("STRATA_KAFKA and STRATA_NATS must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	return kafka.ParseBrokers(k), n
}

// buildStrata builds the strata binary once for the package's
// integration tests (TestMain removes it) and returns its path.
func buildStrata(ctx context.Context, t *testing.T) string {
	t.Helper()
	sharedBin.once.Do(func() {
		if sharedBin.dir, sharedBin.err = os.MkdirTemp("", "strata-it-"); sharedBin.err != nil {
			return
		}
		sharedBin.path = filepath.Join(sharedBin.dir, "strata")
		sharedBin.out, sharedBin.err = exec.CommandContext(ctx, "go", "build", "-o", sharedBin.path, ".").CombinedOutput()
	})
	if sharedBin.err != nil {
		t.Fatalf("building strata: %v\n%s", sharedBin.err, sharedBin.out)
	}
	return sharedBin.path
}

// realRowsRun returns the arguments of a `strata run` of the 998 real
// rows on brokers and natsURL under names, run runID, writing its summary
// to summary, followed by extra.
func realRowsRun(brokers []string, natsURL string, names schemas.Names, runID, summary string, extra ...string) []string {
	return append([]string{"run", "--kafka", strings.Join(brokers, ","), "--nats", natsURL, "--prefix", names.Prefix,
		"--run-id", runID, "--trace", pipelinetest.RealTrace, "--summary", summary, "--progress=false"}, extra...)
}

// testNames returns the broker-side names of one test: a name prefix of
// its own, it-<test>-<random> (kafkatest.TestNames), for its Kafka topics
// and consumer groups and its JetStream streams, subjects and buckets. The
// test reads only what it created, whatever earlier tests and runs left on
// the servers and whatever runs beside it. When the test ends, the topics,
// groups, streams and buckets under the prefix are deleted.
func testNames(t *testing.T) schemas.Names {
	t.Helper()
	brokers, natsURL := servers(t)
	names := kafkatest.TestNames(t)
	t.Cleanup(func() { deleteNamed(t, brokers, natsURL, names) })
	return names
}

// deleteNamed deletes the Kafka topics and consumer groups
// (kafkatest.DeleteNamed) and the JetStream streams and buckets
// (natstest.DeleteNamed) under names' prefix.
func deleteNamed(t *testing.T, brokers []string, natsURL string, names schemas.Names) {
	kafkatest.DeleteNamed(t, brokers, names)
	natstest.DeleteNamed(t, natsURL, names)
}

// fnKey is a function of an app.
type fnKey struct{ app, fn string }

// TestIntegrationFeaturesKilledAndRestarted replays a synthetic day to real
// Kafka, runs `strata features` as a separate process, SIGKILLs it
// mid-stream, restarts it, and checks on the JetStream stream that every
// (layer, tick, shard) batch of the run is there exactly once and every
// invocation is counted exactly once.
func TestIntegrationFeaturesKilledAndRestarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fr := startFeaturesRun(ctx, t, 8, 1)

	// Start the feature service, kill it once part of the run is out.
	first := fr.start(ctx, t, nil)
	fr.waitBatches(ctx, t, fr.total/3)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// Restart it; it resumes from its checkpoint and finishes the run.
	second := exec.CommandContext(ctx, fr.bin, fr.args...)
	second.Stderr = os.Stderr
	if out, err := second.Output(); err != nil {
		t.Fatalf("restarted feature service: %v\n%s", err, out)
	}
	fr.check(ctx, t)
}

// TestIntegrationFeaturesScaleOutAndIn runs `strata features` as a group of
// processes on a replayed synthetic day: one process starts, a second joins
// the group mid-run (the partitions are rebalanced between them), then the
// first stops (SIGTERM; the second takes its partitions over from their
// checkpoints) and the second finishes the run. Every (layer, tick, shard)
// batch of the run must be on the JetStream stream exactly once and every
// invocation counted exactly once, and both processes must have published
// some of them.
func TestIntegrationFeaturesScaleOutAndIn(t *testing.T) {
	outA, outB := runFeatureGroup(t, 1, 6, 2)
	checkBothPublished(t, outA, outB)
}

// TestIntegrationFeaturesGroupFinishes runs two `strata features
// --stop-after-final` processes in one group on three replayed synthetic
// days, the second joining once the first has published: each must stop
// on its own once the partitions it holds are done — a process stopped
// only after every partition of the topic was done, so two in a group
// never stopped — and together they must have published every batch once
// and counted every invocation once. (Which one does the work depends on
// the rebalance: a partition handed to the second may already be done.)
func TestIntegrationFeaturesGroupFinishes(t *testing.T) {
	outA, outB := runFeatureGroup(t, 3, 10, 0) // long enough for the second to join while the first works
	t.Logf("first: %s; second: %s", strings.TrimSpace(outA), strings.TrimSpace(outB))
}

// runFeatureGroup replays days synthetic days of 40 apps, starts a
// `strata features` process of the run, a second one once the stream
// holds 1/joinAt of the run's batches and, with stopFirstAt > 0, stops the
// first (SIGTERM) once it holds 1/stopFirstAt. It waits for both to end
// on their own, checks the stream (fr.check) and returns what each
// printed.
func runFeatureGroup(t *testing.T, days, joinAt, stopFirstAt int) (outA, outB string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fr := startFeaturesRun(ctx, t, 40, days)
	var bufA, bufB bytes.Buffer
	a := fr.start(ctx, t, &bufA)
	fr.waitBatches(ctx, t, fr.total/joinAt)
	b := fr.start(ctx, t, &bufB)
	if stopFirstAt > 0 {
		fr.waitBatches(ctx, t, fr.total/stopFirstAt)
		if err := a.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*exec.Cmd{"first": a, "second": b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("the %s feature process: %v", name, err)
		}
	}
	fr.check(ctx, t)
	return bufA.String(), bufB.String()
}

// checkBothPublished fails t unless both feature processes' outputs say
// they published state batches.
func checkBothPublished(t *testing.T, outA, outB string) {
	t.Helper()
	for name, out := range map[string]string{"first": outA, "second": outB} {
		t.Logf("%s: %s", name, strings.TrimSpace(out))
		var inv, late, malformed, batches int64
		if _, err := fmt.Sscanf(out, "features: %d invocations windowed, %d late, %d malformed, %d state batches", &inv, &late, &malformed, &batches); err != nil {
			t.Fatalf("%s process printed %q: %v", name, out, err)
		}
		if batches == 0 {
			t.Errorf("the %s process published no state batch: the test did not exercise the group", name)
		}
	}
}

// featuresRun is a synthetic day replayed into the telemetry topic of a
// test's own names, for `strata features` processes to window.
type featuresRun struct {
	bin, runID string
	args       []string
	names      schemas.Names
	js         jetstream.JetStream
	stream     jetstream.Stream
	startSeq   uint64
	ins        []replay.Invocation
	// total is the run's operational batches, all shards.
	total int
}

// startFeaturesRun builds strata and replays days synthetic days of apps
// apps into 3 partitions.
func startFeaturesRun(ctx context.Context, t *testing.T, apps, days int) *featuresRun {
	t.Helper()
	brokers, natsURL := servers(t)
	fr := &featuresRun{names: testNames(t), bin: buildStrata(ctx, t), runID: fmt.Sprintf("it-features-%d", time.Now().UnixNano())}
	fr.js = jetStreamForTest(ctx, t, natsURL, fr.names)
	var err error
	if fr.stream, err = fr.js.Stream(ctx, fr.names.Stream(schemas.StreamState)); err != nil {
		t.Fatal(err)
	}
	info, err := fr.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fr.startSeq = info.State.LastSeq + 1 // 1: the stream is the test's own

	s, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: 11, Apps: apps})
	if err != nil {
		t.Fatal(err)
	}
	fr.ins = pipelinetest.ReadAll(t, s)
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nParts, err := kafka.ResolvePartitions(ctx, cl, 3, fr.names.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	// The horizon is the last day's end, whatever the last invocation's
	// tick.
	rep, err := producers.NewReplayer(producers.ReplayConfig{RunID: fr.runID, Observed: true, Partitions: nParts, SourceName: "synthetic",
		HorizonUS: int64(days) * grid.StrategicTickUS, Names: fr.names}, cl, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Run(ctx, &pipelinetest.SliceSource{Ins: fr.ins}); err != nil {
		t.Fatal(err)
	}
	// The operational batches of the run, all shards: a day holds
	// StrategicTickUS / OperationalTickUS = 86400 s / 15 s = 5760
	// operational ticks, and, by the tick contract, the final watermark at
	// the horizon makes every shard publish one batch more: 5761 batches
	// per shard for one day.
	fr.total = int(int64(days)*grid.TicksPerDay+1) * nParts
	// The feature processes' consumer group is strata-features under the
	// prefix.
	fr.args = []string{"features", "--kafka", brokers[0], "--nats", natsURL, "--prefix", fr.names.Prefix,
		"--run-id", fr.runID, "--checkpoint-every", "100ms", "--stop-after-final", "--log-level", "info"}
	return fr
}

// start starts a `strata features` process of the run, its standard
// output to stdout.
func (fr *featuresRun) start(ctx context.Context, t *testing.T, stdout io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, fr.bin, fr.args...)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// waitBatches waits until the stream holds more than n messages of the test.
func (fr *featuresRun) waitBatches(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := fr.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(info.State.LastSeq+1-fr.startSeq) > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("feature service made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check reads the run's batches from the stream: each (layer, tick,
// shard) once, every operational tick of every shard there, and every
// invocation counted once.
func (fr *featuresRun) check(ctx context.Context, t *testing.T) {
	t.Helper()
	seen, counted := stateBatches(ctx, t, fr.js, fr.names, fr.startSeq, fr.runID)
	want := map[fnKey]int64{}
	for _, in := range fr.ins {
		want[fnKey{in.App, in.Func}]++
	}
	for k, n := range want {
		if counted[k] != n {
			t.Errorf("%s/%s counted %d, want %d", k.app[:8], k.fn[:8], counted[k], n)
		}
	}
	var ops int
	for h, n := range seen {
		if n != 1 {
			t.Errorf("batch %+v in the stream %d times", h, n)
		}
		if h.Layer == schemas.Operational {
			ops++
		}
	}
	if ops != fr.total {
		t.Errorf("%d operational batches in the stream, want %d", ops, fr.total)
	}
}

// stateBatches reads the state stream of names from sequence startSeq to
// its end and returns, for run runID, how often each (layer, tick, shard)
// batch is there and how many invocations its operational rows count per
// function.
func stateBatches(ctx context.Context, t *testing.T, js jetstream.JetStream, names schemas.Names, startSeq uint64, runID string) (map[schemas.BatchHeader]int, map[fnKey]int64) {
	t.Helper()
	stream, err := js.Stream(ctx, names.Stream(schemas.StreamState))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, names.Stream(schemas.StreamState), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: startSeq})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[schemas.BatchHeader]int{}
	counted := map[fnKey]int64{}
	for {
		info, _ := stream.Info(ctx)
		msgs, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		var last uint64
		for m := range msgs.Messages() {
			n++
			md, _ := m.Metadata()
			last = md.Sequence.Stream
			b, err := schemas.DecodeState(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			if b.Header.RunID != runID {
				continue
			}
			seen[b.Header]++
			for _, r := range b.Operational {
				counted[fnKey{r.App, r.Func}] += r.Invocations
			}
		}
		if n == 0 && last == 0 && info != nil {
			break
		}
	}
	return seen, counted
}

//go:build integration

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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
	brokers, natsURL := servers(t)
	names := testNames(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building strata: %v\n%s", err, out)
	}
	runID := fmt.Sprintf("it-kill-%d", time.Now().UnixNano())

	js := jetStreamForTest(ctx, t, natsURL, names)
	streamName := names.Stream(schemas.StreamState)
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	startSeq := info.State.LastSeq + 1 // 1: the stream is the test's own

	// 1. Replay a synthetic day into the telemetry topic (open loop).
	s, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 11, Apps: 8})
	if err != nil {
		t.Fatal(err)
	}
	ins := pipelinetest.ReadAll(t, s)
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nParts, err := kafka.ResolvePartitions(ctx, cl, 3, names.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	// The horizon is the day's end, whatever the last invocation's tick.
	rep, err := producers.NewReplayer(producers.ReplayConfig{RunID: runID, Observed: true, Partitions: nParts, SourceName: "synthetic",
		HorizonUS: grid.StrategicTickUS, Names: names}, cl, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Run(ctx, &pipelinetest.SliceSource{Ins: ins}); err != nil {
		t.Fatal(err)
	}

	// 2. Start the feature service, kill it once part of the run is out.
	// Its consumer group is strata-features under the prefix.
	args := []string{"features", "--kafka", brokers[0], "--nats", natsURL, "--prefix", names.Prefix,
		"--run-id", runID, "--checkpoint-every", "100ms", "--stop-after-final", "--log-level", "info"}
	first := exec.CommandContext(ctx, bin, args...)
	first.Stderr = os.Stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// The operational batches of the run, all shards: the one-day horizon
	// holds StrategicTickUS / OperationalTickUS = 86400 s / 15 s = 5760
	// operational ticks, 0 … 5759, and, by the tick contract, the final
	// watermark at the horizon makes every shard publish one batch more,
	// for tick T+1 = 5760: 5761 batches per shard.
	ticks := grid.TicksPerDay + 1
	total := int(ticks) * nParts
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := int(info.State.LastSeq + 1 - startSeq); n > total/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("feature service made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// 3. Restart it; it resumes from its checkpoint and finishes the run.
	second := exec.CommandContext(ctx, bin, args...)
	second.Stderr = os.Stderr
	if out, err := second.Output(); err != nil {
		t.Fatalf("restarted feature service: %v\n%s", err, out)
	}

	// 4. Every batch of the run is in the stream once; every invocation is
	// counted once.
	cons, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{
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
	want := map[fnKey]int64{}
	for _, in := range ins {
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
	if ops != total {
		t.Errorf("%d operational batches in the stream, want %d", ops, total)
	}
}

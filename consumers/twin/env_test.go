package twin_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// TestMain fails the package if a test leaves goroutines behind: the
// service tests start a broker, a nats-server, clients and a service. The
// two ignored are nats.go's own, left by an asynchronous publish and an
// object read on a connection the test has closed (the checkpoints'
// object store), as in the other packages that use them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"))
}

const testPartitions = 2

// testEnv is an embedded Kafka broker and nats-server with the strata
// topics and streams.
type testEnv struct {
	brokers []string
	js      jetstream.JetStream
	pub     *natsbus.BatchPublisher
	prod    *kgo.Client
}

func startTestEnv(t *testing.T) *testEnv {
	t.Helper()
	k, err := kafka.StartEmbedded(testPartitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	js, _ := natstest.JetStream(t, "shadow-test", natsbus.StreamConfig{})
	prod, err := kgo.NewClient(kafka.CommonOpts(k.Brokers(), nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &testEnv{brokers: k.Brokers(), js: js, pub: natsbus.NewBatchPublisher(js, 0), prod: prod}
}

// produce writes records synchronously and returns how many it wrote.
func (e *testEnv) produce(t *testing.T, rs ...*kgo.Record) int {
	t.Helper()
	if err := e.prod.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	return len(rs)
}

// watermarks is the live watermark w of run on every telemetry partition.
func watermarks(t *testing.T, run string, w int64) []*kgo.Record {
	t.Helper()
	return watermarksOn(t, schemas.TopicTelemetry, run, w, false)
}

// watermarksOn is the watermark w (final or not) of run on every partition
// of topic.
func watermarksOn(t *testing.T, topic, run string, w int64, final bool) []*kgo.Record {
	t.Helper()
	v, err := proto.Marshal(&stratapb.Watermark{RunId: run, WatermarkUs: w, Final: final})
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	for p := range testPartitions {
		out = append(out, &kgo.Record{Topic: topic, Partition: int32(p), Value: v, Headers: kafka.WatermarkHeaders})
	}
	return out
}

// publishDecisions publishes an operational decision batch for tick k of
// run with one row per function, as a worker does (message id and all).
func (e *testEnv) publishDecisions(t *testing.T, run string, k int64, policy string, fns ...string) {
	t.Helper()
	b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: run, Layer: schemas.Operational, Tick: k,
		TickStartUS: k * grid.OperationalTickUS, NShards: 1}}
	for _, fn := range fns {
		b.Rows = append(b.Rows, schemas.DecisionRow{App: "app", Func: fn, Action: 1, Prewarm: 1,
			Policy: policy, PolicyVersion: fmt.Sprint(k)})
	}
	e.publishBatch(t, b)
	if err := e.pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// publishBatch publishes decision batch b as a worker does (message id and
// all), without waiting for its acknowledgement.
func (e *testEnv) publishBatch(t *testing.T, b *schemas.DecisionBatch) {
	t.Helper()
	data, err := schemas.EncodeDecisions(b)
	if err != nil {
		t.Fatal(err)
	}
	h := b.Header
	if err := e.pub.Publish(t.Context(), schemas.DecisionSubject(h.Layer), schemas.BatchMsgID(h.RunID, h.Layer, h.Tick, h.Shard, h.NShards), data); err != nil {
		t.Fatal(err)
	}
}

// testEngine returns an engine of run on the default cloud model, with the
// Unix epoch (live times are Unix microseconds), whose rewards of the
// layers transitions also yield transitions.
func testEngine(t *testing.T, run string, transitions ...schemas.Layer) *twin.Engine {
	t.Helper()
	epoch := time.Unix(0, 0).UTC()
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	mcfg := cloud.DefaultConfig()
	mcfg.Epoch = epoch
	model, err := cloud.NewModel(cat, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := twin.Config{RunID: run, Reward: cloud.DefaultRewardConfig(),
		DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}}
	for _, l := range transitions {
		if cfg.Transitions == nil {
			cfg.Transitions = map[schemas.Layer]bool{}
		}
		cfg.Transitions[l] = true
	}
	eng, err := twin.NewEngine(model, cfg, twin.NewProfileBuilder(epoch).Build(model))
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// testLogger logs warnings and errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// invocation is an invocation of fn of app "app" by run, starting at
// startUS and lasting 200 ms.
func invocation(run, id, fn string, startUS int64) *stratapb.Arrival {
	const dur = 200_000
	return &stratapb.Arrival{InvocationId: id, App: "app", Func: fn, StartUs: startUS, EndUs: startUS + dur, DurationUs: dur, RunId: run}
}

// record is m as a record of topic keyed by its app, "app".
func record(t *testing.T, topic string, m proto.Message) *kgo.Record {
	t.Helper()
	v, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte("app"), Value: v}
}

// running is a service whose Run runs in the background; evaluated is the
// last tick it evaluated (its OnTick), −1 before any.
type running struct {
	evaluated *atomic.Int64
	cancel    context.CancelFunc
	done      chan error
}

// newRunning returns the OnTick bookkeeping of a service to be started.
func newRunning() *running {
	r := &running{evaluated: &atomic.Int64{}, done: make(chan error, 1)}
	r.evaluated.Store(-1)
	return r
}

// start runs svc in the background until the test ends or stop.
func (r *running) start(t *testing.T, svc interface{ Run(context.Context) error }) {
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	t.Cleanup(cancel)
	go func() { r.done <- svc.Run(ctx) }()
}

// wait fails the test unless Run returns nil within 20 s; what says what
// should have ended it.
func (r *running) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return %s", what)
	}
}

// stop cancels Run's context and waits for it to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	r.wait(t, "after its context was cancelled")
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readTopic returns every record of topic as it stands once it holds at
// least want records.
func readTopic(t *testing.T, brokers []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %s, want %d", len(out), topic, want)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// topicSize returns the number of records written to topic.
func topicSize(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

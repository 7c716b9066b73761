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

// TestMain fails the package if a test leaves goroutines behind: the shadow
// test starts a broker, a nats-server, clients and the service.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const shadowPartitions = 2

// shadowEnv is an embedded Kafka broker and nats-server with the strata
// topics and streams.
type shadowEnv struct {
	brokers []string
	js      jetstream.JetStream
	pub     *natsbus.BatchPublisher
	prod    *kgo.Client
}

func startShadowEnv(t *testing.T) *shadowEnv {
	t.Helper()
	k, err := kafka.StartEmbedded(shadowPartitions)
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
	return &shadowEnv{brokers: k.Brokers(), js: js, pub: natsbus.NewBatchPublisher(js, 0), prod: prod}
}

// produce writes records synchronously and returns how many it wrote.
func (e *shadowEnv) produce(t *testing.T, rs ...*kgo.Record) int {
	t.Helper()
	if err := e.prod.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	return len(rs)
}

// observation is a live observed invocation of run starting at startUS.
func observation(t *testing.T, run, id, fn string, startUS int64, source string) *kgo.Record {
	t.Helper()
	const dur = 200_000
	v, err := proto.Marshal(&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: id, App: "app", Func: fn,
		StartUs: startUS, EndUs: startUS + dur, DurationUs: dur, RunId: run},
		LatencyMs: proto.Float64(250), Source: source})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: schemas.TopicTelemetry, Key: []byte("app"), Value: v}
}

// watermarks is the live watermark w of run on every telemetry partition.
func watermarks(t *testing.T, run string, w int64) []*kgo.Record {
	t.Helper()
	v, err := proto.Marshal(&stratapb.Watermark{RunId: run, WatermarkUs: w})
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	for p := range shadowPartitions {
		out = append(out, &kgo.Record{Topic: schemas.TopicTelemetry, Partition: int32(p), Value: v, Headers: kafka.WatermarkHeaders})
	}
	return out
}

// publishDecisions publishes an operational decision batch for tick k of
// run with one row per function, as a worker does (message id and all).
func (e *shadowEnv) publishDecisions(t *testing.T, run string, k int64, policy string, fns ...string) {
	t.Helper()
	b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: run, Layer: schemas.Operational, Tick: k,
		TickStartUS: k * grid.OperationalTickUS, NShards: 1}}
	for _, fn := range fns {
		b.Rows = append(b.Rows, schemas.DecisionRow{App: "app", Func: fn, Action: 1, Prewarm: 1,
			Policy: policy, PolicyVersion: fmt.Sprint(k)})
	}
	data, err := schemas.EncodeDecisions(b)
	if err != nil {
		t.Fatal(err)
	}
	h := b.Header
	if err := e.pub.Publish(t.Context(), schemas.DecisionSubject(h.Layer), schemas.BatchMsgID(h.RunID, h.Layer, h.Tick, h.Shard, h.NShards), data); err != nil {
		t.Fatal(err)
	}
	if err := e.pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
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

func TestShadowFollowsLiveTelemetry(t *testing.T) {
	const run = "live-1"
	env := startShadowEnv(t)

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
	eng, err := twin.NewEngine(model, twin.Config{RunID: run, Reward: cloud.DefaultRewardConfig(),
		DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}},
		twin.NewProfileBuilder(epoch).Build(model))
	if err != nil {
		t.Fatal(err)
	}
	var evaluated atomic.Int64
	evaluated.Store(-1)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := twin.NewShadow(twin.ShadowConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, OnTick: evaluated.Store}}, eng, env.js, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	// Live times are Unix microseconds: ticks around 1.2e8.
	t0 := grid.TickOf(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMicro(), grid.OperationalTickUS)
	tickUS := grid.OperationalTickUS
	produced := 0 // records the test writes to strata.telemetry.v1
	// Before the first watermark: one observation of the tick before it
	// (dropped as late once the twin starts at t0), one the twin wrote
	// itself and one of another run (both ignored).
	produced += env.produce(t, observation(t, run, "early", "fn", (t0-1)*tickUS+1, "live"),
		observation(t, run, "twin-own", "fn", t0*tickUS+1, "twin"),
		observation(t, "other-run", "other", "fn", t0*tickUS+1, "live"))
	produced += env.produce(t, watermarks(t, run, t0*tickUS)...)

	const ticks = 6
	missing, late := t0+2, t0+3
	batches := int64(0)
	for k := t0; k < t0+ticks; k++ {
		if k != missing && k != late {
			env.publishDecisions(t, run, k, "agent", "fn")
			batches++
			waitFor(t, fmt.Sprintf("the twin to hold the decisions of tick %d", k), func() bool { return svc.Stats().DecisionBatches == batches })
		}
		// Three invocations per tick, the first re-sent (a retried request).
		for i := range 3 {
			id := fmt.Sprintf("%d-%d", k, i)
			produced += env.produce(t, observation(t, run, id, "fn", k*tickUS+int64(i)*1_000_000+500_000, "live"))
			if i == 0 {
				produced += env.produce(t, observation(t, run, id, "fn", k*tickUS+500_000, "live"))
			}
		}
		produced += env.produce(t, watermarks(t, run, (k+1)*tickUS)...)
		waitFor(t, fmt.Sprintf("tick %d to be evaluated", k), func() bool { return evaluated.Load() >= k })
		if k == late {
			// Tick `late` was evaluated without its batch: it comes now
			// and takes effect at the next tick, beside that tick's own
			// batch (which decides fn; the late one also decides fn2).
			env.publishDecisions(t, run, k, "late", "fn", "fn2")
			batches++
			waitFor(t, "the twin to hold the late decisions", func() bool { return svc.Stats().DecisionBatches == batches })
		}
	}

	st := svc.Stats()
	if st.Ticks != ticks || st.HorizonTick != t0+ticks-1 {
		t.Errorf("evaluated %d ticks up to %d, want %d up to %d (starting at the first watermark's tick)", st.Ticks, st.HorizonTick, ticks, t0+ticks-1)
	}
	if st.Arrivals != 3*ticks || st.DuplicateArrivals != ticks || st.LateArrivals != 1 {
		t.Errorf("arrivals %d, duplicates %d, late %d; want %d distinct, %d duplicates, 1 late", st.Arrivals, st.DuplicateArrivals, st.LateArrivals, 3*ticks, ticks)
	}
	if st.LateDecisionBatches != 1 || st.Telemetry != 0 {
		t.Errorf("late decision batches %d, telemetry %d; want 1 and 0", st.LateDecisionBatches, st.Telemetry)
	}

	// Decisions: one per tick with a batch, none for the missing and the
	// late tick, and the late batch's at the tick after it.
	wantDecisions := ticks - 2 + 1 // fn at every tick with a batch in time, fn2 once
	type key struct {
		tick        int64
		fn, policy  string
		version     string
		prewarm     int32
		hasRegion   bool
		tickMatches bool
	}
	got := map[int64][]key{}
	for _, r := range readTopic(t, env.brokers, schemas.TopicDecisions, wantDecisions) {
		var d stratapb.Decision
		if err := proto.Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.RunId != run || d.Layer != string(schemas.Operational) || d.App != "app" {
			t.Fatalf("unexpected decision %v", &d)
		}
		got[d.Tick] = append(got[d.Tick], key{tick: d.Tick, fn: d.Func, policy: d.Policy, version: d.PolicyVersion, prewarm: d.Prewarm,
			hasRegion: d.Region != "", tickMatches: d.TickMs == d.Tick*tickUS/1000})
	}
	for k := t0; k < t0+ticks; k++ {
		ds := got[k]
		switch k {
		case missing, late:
			if len(ds) != 0 {
				t.Errorf("tick %d had no batch in time, got decisions %+v", k, ds)
			}
		case late + 1:
			if len(ds) != 2 || ds[0].fn != "fn" || ds[0].policy != "agent" || ds[0].version != fmt.Sprint(k) ||
				ds[1].fn != "fn2" || ds[1].policy != "late" || ds[1].version != fmt.Sprint(late) {
				t.Errorf("tick %d: decisions %+v, want fn by its own batch and fn2 by the late one", k, ds)
			}
		default:
			if len(ds) != 1 || ds[0].fn != "fn" || ds[0].policy != "agent" || ds[0].version != fmt.Sprint(k) {
				t.Errorf("tick %d: decisions %+v, want fn's", k, ds)
			}
		}
		for _, d := range ds {
			if !d.hasRegion || !d.tickMatches || d.prewarm != 1 {
				t.Errorf("tick %d: decision %+v not joined with its placement", k, d)
			}
		}
	}

	// Rewards: one per evaluated function-tick of fn (it runs every tick).
	rewards := readTopic(t, env.brokers, schemas.TopicRewards, ticks)
	seen := map[int64]bool{}
	for _, r := range rewards {
		var rw stratapb.Reward
		if err := proto.Unmarshal(r.Value, &rw); err != nil {
			t.Fatal(err)
		}
		if rw.RunId != run || rw.App != "app" || rw.Layer != string(schemas.Operational) {
			continue
		}
		if rw.Func == "fn" {
			if rw.Invocations != 3 {
				t.Errorf("tick %d: reward over %d invocations, want 3 (duplicates counted once)", rw.Tick, rw.Invocations)
			}
			seen[rw.Tick] = true
		}
	}
	for k := t0; k < t0+ticks; k++ {
		if !seen[k] {
			t.Errorf("no reward for fn at tick %d", k)
		}
	}

	// The twin wrote nothing to strata.telemetry.v1: it holds exactly what
	// the test produced.
	if n := topicSize(t, env.brokers, schemas.TopicTelemetry); n != int64(produced) {
		t.Errorf("strata.telemetry.v1 holds %d records, the test wrote %d", n, produced)
	}

	// Cancelled, the service returns promptly.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

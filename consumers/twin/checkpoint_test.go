package twin_test

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// restartTicks is the length of the restart tests' run: three hours, so
// that tactical rewards close inside it.
const restartTicks = 3 * grid.TicksPerHour

// feedRun writes a run of restartTicks to env: three functions' arrivals
// (every 20 s, every 45 s, and a burst each hour), the replay's watermarks
// and its final one, and an operational decision batch for every tick, as
// a worker would publish them.
func feedRun(t *testing.T, env *testEnv, run string) (arrivals int) {
	t.Helper()
	var rs []*kgo.Record
	add := func(id, fn string, start int64) {
		rs = append(rs, record(t, schemas.TopicInvocations, invocation(run, id, fn, start)))
	}
	horizon := int64(restartTicks) * grid.OperationalTickUS
	for s := int64(1_000_000); s < horizon; s += 20_000_000 {
		add(fmt.Sprintf("f-%d", s), "f", s)
	}
	for s := int64(3_000_000); s < horizon; s += 45_000_000 {
		add(fmt.Sprintf("g-%d", s), "g", s)
	}
	for h := range int64(3) {
		for i := range int64(20) {
			s := h*grid.TacticalTickUS + 600_000_000 + i*100_000
			add(fmt.Sprintf("b-%d", s), "b", s)
		}
	}
	arrivals = len(rs)
	rs = append(rs, watermarksOn(t, schemas.TopicInvocations, run, horizon, true)...)
	env.produce(t, rs...)
	for k := range int64(restartTicks) {
		b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: run, Layer: schemas.Operational, Tick: k,
			TickStartUS: k * grid.OperationalTickUS, NShards: 1}}
		for _, fn := range []string{"b", "f", "g"} {
			b.Rows = append(b.Rows, schemas.DecisionRow{App: "app", Func: fn, Action: int32(k % 3), Prewarm: int32(k % 3), Policy: "test"})
		}
		env.publishBatch(t, b)
	}
	if err := env.pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return arrivals
}

// restartService is a replay twin of run on env with checkpoints every
// 100 ticks; fault, if set, is its fault hook.
func restartService(t *testing.T, env *testEnv, run string, fault func(string, int64)) *twin.Service {
	t.Helper()
	obj, err := env.js.ObjectStore(t.Context(), schemas.BucketTwin)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := twin.NewService(twin.ServiceConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, Checkpoints: twin.ObjectCheckpoints{Obj: obj}, CheckpointEvery: 100, Fault: fault},
		TelemetryPartitions: testPartitions},
		testEngine(t, run), env.js, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestServiceRestartsFromCheckpoint stops a checkpointing replay twin at
// three points — after a tick's telemetry, inside a tick's scoring, and
// half way through writing a checkpoint — with its state, its Kafka
// client and whatever it had not flushed gone, starts a fresh one on the
// same run, and checks that it goes on from the last checkpoint to the
// uninterrupted run's figures and decision and reward digests, that the
// telemetry topic holds every invocation (each tick's at most twice: the
// one being written when it stopped), and that the rewards topic holds
// the uninterrupted run's rewards, some of them twice.
func TestServiceRestartsFromCheckpoint(t *testing.T) {
	const run = "restart-1"
	ref := startTestEnv(t)
	n := feedRun(t, ref, run)
	r := newRunning()
	svc := restartService(t, ref, run, nil)
	r.start(t, svc)
	r.wait(t, "after the final watermark")
	want := svc.Stats()
	if want.Arrivals != int64(n) || want.Ticks != restartTicks || want.Rewards == 0 {
		t.Fatalf("uninterrupted run: %d arrivals of %d, %d ticks, %d rewards", want.Arrivals, n, want.Ticks, want.Rewards)
	}
	wantRewards := rewardKeys(t, ref.brokers, int(want.Rewards))

	for _, tc := range []struct {
		point string
		tick  int64
		// from is the checkpoint the restart goes on from: the last one
		// written whole (the one cut short at 400 is not).
		from int64
	}{
		{twin.FaultTick, 250, 200},
		{twin.FaultScoring, 333, 300},
		{twin.FaultCheckpointWrite, 400, 300},
	} {
		t.Run(tc.point, func(t *testing.T) {
			env := startTestEnv(t)
			feedRun(t, env, run)
			ctx, cancel := context.WithCancel(t.Context())
			var hit bool
			first := restartService(t, env, run, func(point string, tick int64) {
				if point == tc.point && tick == tc.tick && !hit {
					hit = true
					t.Logf("stopping the twin at %s, tick %d", point, tick)
					cancel()
				}
			})
			done := make(chan error, 1)
			go func() { done <- first.Run(ctx) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the first twin did not stop")
			}
			cancel()
			if !hit {
				t.Fatalf("the run ended before %s at tick %d", tc.point, tc.tick)
			}

			second := restartService(t, env, run, nil)
			next, err := second.Restore(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if next != tc.from {
				t.Fatalf("restored at tick %d, want the checkpoint of tick %d", next, tc.from)
			}
			r := newRunning()
			r.start(t, second)
			r.wait(t, "after the final watermark")
			got := second.Stats()
			for _, c := range []struct {
				what      string
				got, want any
			}{
				{"decisions digest", got.DecisionsSHA256, want.DecisionsSHA256},
				{"rewards digest", got.RewardsSHA256, want.RewardsSHA256},
				{"ticks", got.Ticks, want.Ticks},
				{"arrivals", got.Arrivals, want.Arrivals},
				{"telemetry", got.Telemetry, want.Telemetry},
				{"decisions", got.Decisions, want.Decisions},
				{"rewards", got.Rewards, want.Rewards},
				{"decision batches", got.DecisionBatches, want.DecisionBatches},
				{"cost", got.CostUSD, want.CostUSD},
				{"cold starts", got.ColdStarts, want.ColdStarts},
				{"p95", got.LatencyP95MS, want.LatencyP95MS},
				{"scored invocations", got.ScoredInvocations, want.ScoredInvocations},
				{"published", got.Published, want.Published},
			} {
				if c.got != c.want {
					t.Errorf("%s: %v after the restart (from tick %d), %v uninterrupted", c.what, c.got, next, c.want)
				}
			}
			if !reflect.DeepEqual(got.LatencyByDay, want.LatencyByDay) || !reflect.DeepEqual(got.Layers, want.Layers) {
				t.Errorf("latency histograms or per-layer figures differ after the restart:\n%+v\n%+v", got.Layers, want.Layers)
			}
			if got.LateArrivals != 0 {
				t.Errorf("%d late arrivals after the restart", got.LateArrivals)
			}
			// Every invocation observed; a tick's observations at most
			// twice (the tick being written when the twin stopped).
			ids := map[string]int{}
			for _, rec := range readTopic(t, env.brokers, schemas.TopicTelemetry, n) {
				if kafka.IsWatermark(rec) {
					continue
				}
				var o stratapb.Observation
				if err := proto.Unmarshal(rec.Value, &o); err != nil {
					t.Fatal(err)
				}
				ids[o.GetArrival().GetInvocationId()]++
			}
			var twice int
			for _, c := range ids {
				if c > 1 {
					twice++
				}
			}
			if len(ids) != n || twice > 20 {
				t.Errorf("telemetry: %d distinct invocations of %d, %d of them twice", len(ids), n, twice)
			}
			gotRewards := rewardKeys(t, env.brokers, int(want.Rewards))
			if len(gotRewards) != len(wantRewards) {
				t.Errorf("rewards topic: %d distinct rewards, want %d", len(gotRewards), len(wantRewards))
			}
			for k, v := range wantRewards {
				if !proto.Equal(gotRewards[k], v) {
					t.Fatalf("reward %s differs after the restart: %v, want %v", k, gotRewards[k], v)
				}
			}
		})
	}
}

// rewardKeys reads at least want rewards from the rewards topic and
// returns the last one written per key (layer, tick, app, function).
func rewardKeys(t *testing.T, brokers []string, want int) map[string]*stratapb.Reward {
	t.Helper()
	out := map[string]*stratapb.Reward{}
	for _, rec := range readTopic(t, brokers, schemas.TopicRewards, want) {
		var rw stratapb.Reward
		if err := proto.Unmarshal(rec.Value, &rw); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%s/%d/%s/%s", rw.GetLayer(), rw.GetTick(), rw.GetApp(), rw.GetFunc())] = &rw
	}
	return out
}

// TestShadowRestartsFromCheckpoint stops a checkpointing shadow twin in
// the middle of a live run and starts a fresh one on the same run: it goes
// on from the last checkpoint, counts every acknowledged observation once,
// and writes every reward of the uninterrupted shadow's, equal, with
// those after the checkpoint written twice at most.
func TestShadowRestartsFromCheckpoint(t *testing.T) {
	const run, ticks = "live-restart", 60
	t0 := grid.TickOf(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMicro(), grid.OperationalTickUS)
	feed := func(env *testEnv) int {
		rs := watermarks(t, run, t0*grid.OperationalTickUS) // the shadow starts at t0
		n := 0
		for k := t0; k < t0+ticks; k++ {
			for i := range int64(1 + k%3) {
				id := fmt.Sprintf("%d-%d", k, i)
				rs = append(rs, observation(t, run, id, fmt.Sprintf("fn%d", i), k*grid.OperationalTickUS+i*2_000_000+300_000, "live"))
				n++
			}
			if k%7 == 0 { // a retried request
				rs = append(rs, observation(t, run, fmt.Sprintf("%d-0", k), "fn0", k*grid.OperationalTickUS+300_000, "live"))
			}
			rs = append(rs, watermarks(t, run, (k+1)*grid.OperationalTickUS)...)
		}
		env.produce(t, rs...)
		return n
	}
	shadow := func(env *testEnv, onTick func(int64), onCheckpoint func(int64)) *twin.Shadow {
		obj, err := env.js.ObjectStore(t.Context(), schemas.BucketTwin)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := twin.NewShadow(twin.ShadowConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run, OnTick: onTick,
			Checkpoints: twin.ObjectCheckpoints{Obj: obj}, CheckpointEvery: 10, OnCheckpoint: onCheckpoint}}, testEngine(t, run), env.js, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	last := t0 + ticks - 2 // the last tick a watermark closes whole

	ref := startTestEnv(t)
	n := feed(ref)
	r := newRunning()
	svc := shadow(ref, r.evaluated.Store, nil)
	r.start(t, svc)
	waitFor(t, "the shadow to evaluate the run", func() bool { return r.evaluated.Load() >= last })
	r.stop(t)
	want := svc.Stats()
	if want.Arrivals != int64(n) || want.Rewards == 0 {
		t.Fatalf("uninterrupted shadow: %d arrivals of %d, %d rewards", want.Arrivals, n, want.Rewards)
	}
	wantRewards := rewardKeys(t, ref.brokers, int(want.Rewards))

	env := startTestEnv(t)
	feed(env)
	first := newRunning()
	var checkpointed atomic.Int64
	stopAt := t0 + 35
	svc1 := shadow(env, func(k int64) {
		first.evaluated.Store(k)
		if k == stopAt {
			first.cancel()
		}
	}, checkpointed.Store)
	first.start(t, svc1)
	first.wait(t, "after it was stopped")
	from := checkpointed.Load()
	if from == 0 || from > stopAt {
		t.Fatalf("last checkpoint before the stop at tick %d: %d", stopAt, from)
	}
	second := newRunning()
	var resumed atomic.Int64
	resumed.Store(-1)
	svc2 := shadow(env, func(k int64) {
		resumed.CompareAndSwap(-1, k)
		second.evaluated.Store(k)
	}, nil)
	second.start(t, svc2)
	waitFor(t, "the restarted shadow to evaluate the run", func() bool { return second.evaluated.Load() >= last })
	second.stop(t)
	if resumed.Load() != from {
		t.Errorf("the restarted shadow's first tick is %d, want %d (the checkpoint's)", resumed.Load(), from)
	}
	got := svc2.Stats()
	if got.Arrivals != want.Arrivals || got.Rewards != want.Rewards || got.DecisionsSHA256 != want.DecisionsSHA256 || got.RewardsSHA256 != want.RewardsSHA256 {
		t.Errorf("restarted shadow: %d arrivals, %d rewards, digests %s %s; uninterrupted %d, %d, %s %s",
			got.Arrivals, got.Rewards, got.DecisionsSHA256[:8], got.RewardsSHA256[:8], want.Arrivals, want.Rewards, want.DecisionsSHA256[:8], want.RewardsSHA256[:8])
	}
	gotRewards := rewardKeys(t, env.brokers, int(want.Rewards))
	if len(gotRewards) != len(wantRewards) {
		t.Errorf("rewards topic: %d distinct rewards, want %d", len(gotRewards), len(wantRewards))
	}
	for k, v := range wantRewards {
		if !proto.Equal(gotRewards[k], v) {
			t.Fatalf("reward %s differs after the restart: %v, want %v", k, gotRewards[k], v)
		}
	}
}

// TestServiceShardsEqualOneTwin runs the same closed-loop input — six
// apps keyed across the two partitions, the replay's final watermark, an
// operational decision batch per tick and shard — through one twin and
// through two twin shards (Shard 0 and 1 of 2), and checks that the shards
// together wrote what the one twin wrote: every decision, reward and
// telemetry record equal, the figures adding up, and each telemetry
// partition's final watermark written by its owner.
func TestServiceShardsEqualOneTwin(t *testing.T) {
	const run = "shards"
	ticks := int64(2 * grid.TicksPerHour)
	horizon := ticks * grid.OperationalTickUS
	var apps []string
	parts := map[int]int{}
	for i := range 6 {
		app := fmt.Sprintf("app-%d", i)
		apps = append(apps, app)
		parts[kafka.KeyPartition([]byte(app), testPartitions)]++
	}
	if len(parts) != testPartitions {
		t.Fatalf("the apps fall in partitions %v: the test needs every partition", parts)
	}
	feed := func(env *testEnv) (arrivals int) {
		var rs []*kgo.Record
		for i, app := range apps {
			every := int64(20+7*i) * 1_000_000
			for s := int64(1_000_000 + i*300_000); s < horizon; s += every {
				a := invocation(run, fmt.Sprintf("%s-%d", app, s), "f", s)
				a.App = app
				r := record(t, schemas.TopicInvocations, a)
				r.Key = []byte(app)
				rs = append(rs, r)
			}
		}
		arrivals = len(rs)
		rs = append(rs, watermarksOn(t, schemas.TopicInvocations, run, horizon, true)...)
		env.produce(t, rs...)
		for k := range ticks {
			for shard := range testPartitions {
				b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: run, Layer: schemas.Operational, Tick: k,
					TickStartUS: k * grid.OperationalTickUS, Shard: shard, NShards: testPartitions}}
				for i, app := range apps {
					if kafka.KeyPartition([]byte(app), testPartitions) == shard {
						b.Rows = append(b.Rows, schemas.DecisionRow{App: app, Func: "f", Action: int32((k + int64(i)) % 3), Prewarm: int32((k + int64(i)) % 3), Policy: "test"})
					}
				}
				env.publishBatch(t, b)
			}
		}
		if err := env.pub.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		return arrivals
	}
	service := func(env *testEnv, shard, shards int) *twin.Service {
		svc, err := twin.NewService(twin.ServiceConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
			Layers: []schemas.Layer{schemas.Operational}, Shard: shard, Shards: shards}, TelemetryPartitions: testPartitions},
			testEngine(t, run), env.js, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	// byKey reads a topic's records of the run, keyed by layer, tick, app
	// and function (telemetry: by invocation id), as their encodings.
	byKey := func(env *testEnv, topic string) map[string]string {
		out := map[string]string{}
		for _, rec := range kafkatest.ReadTopics(t, t.Context(), env.brokers, topic) {
			if kafka.IsWatermark(rec) {
				continue
			}
			var k string
			switch topic {
			case schemas.TopicTelemetry:
				var o stratapb.Observation
				if err := proto.Unmarshal(rec.Value, &o); err != nil {
					t.Fatal(err)
				}
				k = o.GetArrival().GetInvocationId()
			case schemas.TopicRewards:
				var m stratapb.Reward
				if err := proto.Unmarshal(rec.Value, &m); err != nil {
					t.Fatal(err)
				}
				k = fmt.Sprintf("%s/%d/%s/%s", m.GetLayer(), m.GetTick(), m.GetApp(), m.GetFunc())
			default:
				var m stratapb.Decision
				if err := proto.Unmarshal(rec.Value, &m); err != nil {
					t.Fatal(err)
				}
				k = fmt.Sprintf("%s/%d/%s/%s", m.GetLayer(), m.GetTick(), m.GetApp(), m.GetFunc())
			}
			if _, dup := out[k]; dup {
				t.Fatalf("%s holds %s twice", topic, k)
			}
			out[k] = string(rec.Value)
		}
		return out
	}

	ref := startTestEnv(t)
	n := feed(ref)
	one := service(ref, 0, 0)
	r := newRunning()
	r.start(t, one)
	r.wait(t, "after the final watermark")
	want := one.Stats()
	if want.Arrivals != int64(n) || want.Ticks != ticks || want.Rewards == 0 || want.Decisions == 0 {
		t.Fatalf("one twin: %d arrivals of %d, %d ticks, %d rewards, %d decisions", want.Arrivals, n, want.Ticks, want.Rewards, want.Decisions)
	}

	env := startTestEnv(t)
	feed(env)
	var got twin.Stats
	for shard := range 2 {
		svc := service(env, shard, 2)
		r := newRunning()
		r.start(t, svc)
		r.wait(t, fmt.Sprintf("after the final watermark (shard %d)", shard))
		st := svc.Stats()
		if st.Ticks != ticks || st.Arrivals == 0 || st.Arrivals == want.Arrivals {
			t.Errorf("shard %d: %d ticks, %d arrivals: want every tick and a share of the %d arrivals", shard, st.Ticks, st.Arrivals, want.Arrivals)
		}
		got.Arrivals += st.Arrivals
		got.Rewards += st.Rewards
		got.Decisions += st.Decisions
		got.Telemetry += st.Telemetry
	}
	if got.Arrivals != want.Arrivals || got.Rewards != want.Rewards || got.Decisions != want.Decisions || got.Telemetry != want.Telemetry {
		t.Errorf("shards: %d arrivals, %d rewards, %d decisions, %d telemetry; one twin: %d, %d, %d, %d",
			got.Arrivals, got.Rewards, got.Decisions, got.Telemetry, want.Arrivals, want.Rewards, want.Decisions, want.Telemetry)
	}
	for topic, n := range map[string]int64{schemas.TopicRewards: want.Rewards, schemas.TopicDecisions: want.Decisions, schemas.TopicTelemetry: want.Telemetry} {
		w, g := byKey(ref, topic), byKey(env, topic)
		if len(w) != int(n) || len(g) != len(w) {
			t.Errorf("%s: %d records from the shards, %d from one twin, which counted %d", topic, len(g), len(w), n)
		}
		for k, v := range w {
			if g[k] != v {
				t.Fatalf("%s: %s differs between the shards and one twin", topic, k)
			}
		}
	}
	// Every telemetry partition ends with its owner's final watermark.
	final := map[int32]bool{}
	for _, rec := range kafkatest.ReadTopics(t, t.Context(), env.brokers, schemas.TopicTelemetry) {
		if !kafka.IsWatermark(rec) {
			continue
		}
		var w stratapb.Watermark
		if err := proto.Unmarshal(rec.Value, &w); err != nil {
			t.Fatal(err)
		}
		if w.Final && w.WatermarkUs == horizon {
			final[rec.Partition] = true
		}
	}
	if len(final) != testPartitions {
		t.Errorf("final watermarks on partitions %v, want all %d", final, testPartitions)
	}
}

package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestIngestInstancesAlignWatermarks runs two `strata ingest` servers,
// a and b, behind an imagined load balancer — each with its own clock and
// writer id, both writing to the same telemetry topic — and a feature
// service reading it with a 30 s idle bound. It checks that a tick closes
// only once both have passed it; that b, stopped, leaves the set once a
// is 30 s of event time past it, and a's watermarks alone close the ticks
// it held; that b, restarted under its id with a clock behind the
// watermark, moves nothing back (its record below the watermark is late);
// and that every record the two accepted before is counted once, none
// late.
func TestIngestInstancesAlignWatermarks(t *testing.T) {
	const token, run = "tok", "lb"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	k := kafkatest.Embedded(t, 2)
	js, _ := natstest.JetStream(t, "lb-test", natsbus.StreamConfig{Names: k.Names})
	kv, err := js.KeyValue(ctx, k.Names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		t.Fatal(err)
	}
	logger := pipelinetest.FailureLog(t)

	// The features: the newest operational batch's tick tells which ticks
	// are closed (closing tick k publishes the state of k+1).
	var mu sync.Mutex
	newest := int64(-1)
	perShard := map[int]int64{}
	moved := false // a shard's operational batch not after its one before
	fsvc, err := features.NewService(ctx, features.Config{Brokers: k.Brokers, Names: k.Names, RunID: run, Epoch: pipeline.LiveEpoch,
		WatermarkIdle: 30 * time.Second, OnBatch: func(h schemas.BatchHeader, _ int, _ []byte) {
			if h.Layer != schemas.Operational {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := perShard[h.Shard]; ok && h.Tick <= prev {
				moved = true
			}
			perShard[h.Shard] = h.Tick
			newest = max(newest, h.Tick)
		}}, natsbus.NewBatchPublisher(js, 0), features.KVCheckpoints{KV: kv}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	fdone := make(chan error, 1)
	fctx, stopFeatures := context.WithCancel(ctx)
	go func() { fdone <- fsvc.Run(fctx) }()
	defer func() {
		stopFeatures()
		if err := <-fdone; err != nil {
			t.Errorf("features: %v", err)
		}
	}()
	newestTick := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return newest
	}

	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a tick's start
	k0 := grid.TickOf(t0.UnixMicro(), grid.OperationalTickUS)
	type instance struct {
		clock *testClock
		url   string
		stop  func()
	}
	start := func(writer string, at time.Duration) *instance {
		t.Helper()
		in := &instance{clock: &testClock{now: t0.Add(at)}}
		srv, err := ingest.New(ctx, ingest.Config{Brokers: k.Brokers, RunID: run, Topic: k.Names.Topic(schemas.TopicTelemetry),
			Tokens: []string{token}, Lateness: 2 * time.Second, WatermarkEvery: 10 * time.Millisecond, Now: in.clock.Now, Writer: writer},
			slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		in.url = "http://" + ln.Addr().String()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx, ln, "", "") }()
		in.stop = func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("ingest %s: %v", writer, err)
			}
		}
		return in
	}
	send := func(in *instance, ids ...string) {
		t.Helper()
		var lines []string
		for _, id := range ids {
			end := in.clock.Now().Add(-500 * time.Millisecond)
			lines = append(lines, fmt.Sprintf(`{"invocation_id":%q,"app":"shop","func":%q,"end_us":%d,"duration_us":100000,"provider":"aws","region":"us-east-1","memory_mb":512}`,
				id, "f-"+id, end.UnixMicro()))
		}
		code, body := requestLive(t, ctx, http.MethodPost, in.url+"/v1/telemetry", "application/x-ndjson", token, []byte(strings.Join(lines, "\n")))
		if code != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"accepted":%d`, len(ids))) {
			t.Fatalf("sending %v: %d %s", ids, code, body)
		}
	}
	// settle waits until the features applied more watermarks than now:
	// both instances write one to each partition every 10 ms, so after
	// 8 more every partition holds one written after the clocks moved.
	settle := func() {
		t.Helper()
		n := fsvc.Stats().Watermarks
		pipelinetest.WaitFor(t, ctx, "fresh watermarks", func() bool { return fsvc.Stats().Watermarks >= n+8 })
	}
	closedThrough := func(want int64, what string) {
		t.Helper()
		pipelinetest.WaitFor(t, ctx, what, func() bool { return newestTick() >= want+1 })
		settle()
		if got := newestTick() - 1; got != want {
			t.Fatalf("%s: ticks closed through k0%+d, want k0%+d", what, got-k0, want-k0)
		}
	}

	a, b := start("a", 3*time.Second), start("b", 3*time.Second)
	send(a, "a1", "a2", "a3")
	send(b, "b1", "b2")
	pipelinetest.WaitFor(t, ctx, "the five records", func() bool { return fsvc.Stats().Invocations == 5 })

	// a runs ahead (watermark t0+23 s, which alone would close k0); b, at
	// t0+3 s (watermark t0+1 s, 22 s behind: within the idle bound),
	// holds tick k0 open.
	a.clock.set(t0.Add(25 * time.Second))
	settle()
	settle()
	if got := newestTick(); got != k0 {
		t.Fatalf("with b at t0+1 s the features published the state of tick k0%+d, want k0 only", got-k0)
	}
	// b passes t0+15 s: k0 closes, and nothing after it (a is at t0+23 s).
	b.clock.set(t0.Add(20 * time.Second))
	closedThrough(k0, "b at t0+18 s")

	// b stops. Once a is more than 30 s past b's last watermark, b leaves
	// the set and a's watermark (t0+198 s) closes ticks k0+1 … k0+12.
	b.stop()
	a.clock.set(t0.Add(40 * time.Second)) // 38 − 18 = 20 s: b still holds
	settle()
	if got := newestTick(); got != k0+1 {
		t.Fatalf("b stopped 20 s ago in event time: state of tick k0%+d published, want k0+1", got-k0)
	}
	a.clock.set(t0.Add(200 * time.Second))
	closedThrough(k0+12, "b idle, a at t0+198 s")

	// b comes back under its id with a clock behind the watermark: nothing
	// moves back, and its record from before the watermark is late.
	b = start("b", 180*time.Second)
	send(b, "b3")
	pipelinetest.WaitFor(t, ctx, "b's late record", func() bool { return fsvc.Stats().Late == 1 })
	settle()
	if got := newestTick(); got != k0+13 {
		t.Fatalf("after b rejoined behind: state of tick k0%+d published, want k0+13", got-k0)
	}
	// Both move on: b, in the set again, holds the ticks until it passes
	// them.
	// (The clocks move in steps within the idle bound of each other, each
	// step's watermarks read before the next.)
	for at := 190 * time.Second; at <= 250*time.Second; at += 10 * time.Second {
		b.clock.set(t0.Add(at))
		a.clock.set(t0.Add(at + 10*time.Second))
		settle()
	}
	closedThrough(k0+15, "a at t0+258 s, b at t0+248 s")
	for at := 260 * time.Second; at <= 400*time.Second; at += 10 * time.Second {
		b.clock.set(t0.Add(at))
		a.clock.set(t0.Add(at))
		settle()
	}
	closedThrough(k0+25, "both at t0+398 s")
	a.stop()
	b.stop()

	st := fsvc.Stats()
	if st.Invocations != 5 || st.Late != 1 || st.Duplicates != 0 {
		t.Errorf("features: %d invocations, %d late, %d duplicates; want 5, 1, 0", st.Invocations, st.Late, st.Duplicates)
	}
	mu.Lock()
	defer mu.Unlock()
	if moved {
		t.Error("a shard published an operational batch for a tick not after its previous one: the watermark moved back")
	}
}

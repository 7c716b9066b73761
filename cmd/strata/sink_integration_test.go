//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// sinkRecords returns decisions and rewards of run over keys first..first+n
// (operational layer, 10 functions of 5 apps per tick) for the topics
// under names.
func sinkRecords(names schemas.Names, run string, first, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := first; i < first+n; i++ {
		app := fmt.Sprintf("app-%d", i%5)
		fn := fmt.Sprintf("%s/f%d", app, i%10/5)
		tick := int64(i / 10)
		d := &stratapb.Decision{RunId: run, Layer: "operational", Tick: tick, TickMs: tick * 15000, App: app, Func: fn,
			Policy: "threshold", Action: int32(i % 4), Prewarm: int32(i % 4), Provider: "azure", Region: "eastus", MemoryMb: 256}
		db, _ := proto.Marshal(d)
		out = append(out, &kgo.Record{Topic: names.Topic(schemas.TopicDecisions), Key: []byte(app), Value: db})
		if i%2 == 0 { // rewards for half the keys
			r := &stratapb.Reward{RunId: run, Layer: "operational", Tick: tick, TickMs: d.TickMs, App: app, Func: fn,
				Reward: -0.1, Invocations: int64(i % 17), ColdStarts: int64(i % 3)}
			rb, _ := proto.Marshal(r)
			out = append(out, &kgo.Record{Topic: names.Topic(schemas.TopicRewards), Key: []byte(app), Value: rb})
		}
	}
	return out
}

// TestIntegrationSinkKilledAndRestarted writes decisions and rewards with
// duplicates to the real Kafka, runs `strata sink` into a fresh ClickHouse
// database, stops it mid-run, produces more (new keys and repeats of old
// ones), restarts it in the same group, and checks with FINAL that every
// key is there exactly once.
func TestIntegrationSinkKilledAndRestarted(t *testing.T) {
	brokers, _ := servers(t)
	names := testNames(t)
	dsn := pipelinetest.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("it-sink-%d", time.Now().UnixNano())
	group := names.Group("it-sink")

	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kafka.ResolvePartitions(ctx, cl, 0, append(names.Topics(), names.Topic(sink.TopicRuns))...); err != nil {
		t.Fatal(err)
	}
	produce := func(recs []*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const n1, n2, dup = 20000, 10000, 4000
	produce(sinkRecords(names, runID, 0, n1))
	produce(sinkRecords(names, runID, 0, dup)) // the same keys again

	st, err := store.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	countOf := func(table string) uint64 {
		t.Helper()
		_, rows, err := st.Query(ctx, "SELECT count() FROM "+table+" FINAL WHERE run_id = '"+runID+"'")
		if err != nil {
			t.Fatal(err)
		}
		return rows[0][0].(uint64)
	}
	common := []string{"--kafka", strings.Join(brokers, ","), "--clickhouse", dsn, "--prefix", names.Prefix, "--group", group,
		"--batch-rows", "500", "--flush-interval", "50ms", "--json"}
	sinkCmd := func(ctx context.Context, extra ...string) (sink.Stats, error) {
		var out, errOut bytes.Buffer
		if err := run(ctx, append(append([]string{"sink"}, common...), extra...), &out, &errOut); err != nil {
			return sink.Stats{}, fmt.Errorf("strata sink: %w\n%s", err, errOut.String())
		}
		var s sink.Stats
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			return sink.Stats{}, fmt.Errorf("sink output %q: %w", out.String(), err)
		}
		return s, nil
	}

	// First sink: stopped once some of the run's rows are in.
	sctx, stop := context.WithCancel(ctx)
	var s1 sink.Stats
	done := make(chan error, 1)
	go func() {
		var err error
		s1, err = sinkCmd(sctx)
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for countOf("decisions") < 1000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mid := countOf("decisions")
	t.Logf("first sink stopped with %d of %d decisions of the run written: %+v", mid, n1, s1)
	if mid == 0 {
		t.Fatal("the first sink wrote nothing")
	}

	// More keys and repeats while no sink runs; then the restart.
	produce(sinkRecords(names, runID, n1, n2))
	produce(sinkRecords(names, runID, dup, dup))
	t0 := time.Now()
	s2, err := sinkCmd(ctx, "--stop-after-idle", "3s")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted sink: %+v in %v", s2, time.Since(t0).Round(time.Millisecond))

	if got, want := countOf("decisions"), uint64(n1+n2); got != want {
		t.Errorf("decisions FINAL = %d, want %d distinct keys", got, want)
	}
	if got, want := countOf("rewards"), uint64((n1+n2)/2); got != want {
		t.Errorf("rewards FINAL = %d, want %d distinct keys", got, want)
	}
	// Nothing lost: every key's row is the one produced for it.
	_, rows, err := st.Query(ctx, "SELECT sum(prewarm), uniqExact(tick, app, func) FROM decisions FINAL WHERE run_id = '"+runID+"'")
	if err != nil {
		t.Fatal(err)
	}
	var wantPrewarm int64
	for i := range n1 + n2 {
		wantPrewarm += int64(i % 4)
	}
	if fmt.Sprint(rows[0]) != fmt.Sprint([]any{wantPrewarm, uint64(n1 + n2)}) {
		t.Errorf("sum(prewarm), distinct keys = %v, want [%d %d]", rows[0], wantPrewarm, n1+n2)
	}
}

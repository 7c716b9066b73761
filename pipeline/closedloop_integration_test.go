//go:build integration

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// emptyServers returns the real Kafka and NATS and a name prefix of the
// test's own under which nothing exists yet (kafkatest.TestNames); what
// the test creates under it is deleted when it ends.
func emptyServers(t *testing.T) ([]string, string, schemas.Names) {
	t.Helper()
	brokers, natsURL := kafka.ParseBrokers(os.Getenv("STRATA_KAFKA")), os.Getenv("STRATA_NATS")
	if len(brokers) == 0 || natsURL == "" {
		t.Fatal("STRATA_KAFKA and STRATA_NATS must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	names := kafkatest.TestNames(t)
	t.Cleanup(func() {
		kafkatest.DeleteNamed(t, brokers, names)
		natstest.DeleteNamed(t, natsURL, names)
	})
	return brokers, natsURL, names
}

// TestIntegrationClosedLoop runs the whole loop — replay, twin, features,
// policy workers, sink — on real Kafka, nats-server and ClickHouse: every
// decision and reward the twin wrote is one row of its table (FINAL). No
// partition count is asked for and the test's topics do not exist yet: the
// run creates them with kafka.DefaultPartitions and its runs row says so.
func TestIntegrationClosedLoop(t *testing.T) {
	brokers, natsURL, names := emptyServers(t)
	dsn := pipelinetest.ClickHouseDB(t)
	st, err := store.OpenClickHouse(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := &pipelinetest.BatchLog{}
	o := pipelinetest.LoopConfig(t, fmt.Sprintf("it-loop-%d", time.Now().UnixNano()), 0, log)
	o.Brokers, o.NATSURL, o.Names, o.Partitions = brokers, natsURL, names, 0
	res := pipelinetest.RunLoopInto(t, o, st)
	if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Features.Invocations != 998 {
		t.Fatalf("twin %+v, features windowed %d: want 431 ticks and 998 invocations observed and windowed", res.Twin, res.Features.Invocations)
	}
	checkPartitionsUsed(t, res, log, st, o.RunID, names, kafka.DefaultPartitions)
}

// TestIntegrationClosedLoopPartitions runs the closed loop on topics the
// test created with 3 partitions: asked for 4 it refuses, naming a topic,
// the count found and the count asked for, and leaves the topics as they
// are; asked for none it adopts the 3 and records them in its runs row.
func TestIntegrationClosedLoopPartitions(t *testing.T) {
	brokers, natsURL, names := emptyServers(t)
	dsn := pipelinetest.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := append(names.Topics(), names.Topic(sink.TopicRuns))
	if err := kafka.EnsureTopics(ctx, cl, 3, topics...); err != nil {
		t.Fatal(err)
	}
	runID := fmt.Sprintf("it-loop-parts-%d", time.Now().UnixNano())

	// --partitions 4 on 3-partition topics: refused before anything runs.
	o := pipelinetest.LoopConfig(t, runID+"-4", 0, &pipelinetest.BatchLog{})
	o.Brokers, o.NATSURL, o.Names, o.Partitions = brokers, natsURL, names, 4
	tr, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.ClosedLoop(ctx, o, tr, "real", 0)
	_ = tr.Close()
	if err == nil {
		t.Fatal("the loop ran with --partitions 4 on topics of 3 partitions")
	}
	msg := err.Error()
	for _, w := range []string{names.Topic(schemas.TopicInvocations), " 3 partitions", "--partitions 4"} {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("refusal %q is more than one line", msg)
	}
	// So does the sink role, before it reads anything.
	var out, errOut bytes.Buffer
	sr := pipeline.DefaultSinkRole()
	sr.Brokers, sr.Store.ClickHouse, sr.Names, sr.Partitions, sr.StopAfterIdle = strings.Join(brokers, ","), dsn, names, 4, time.Second
	err = sr.Run(ctx, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), names.Prefix+".") || !strings.Contains(err.Error(), " 3 partitions") ||
		!strings.Contains(err.Error(), "--partitions 4") {
		t.Errorf("strata sink --partitions 4 on 3-partition topics: %v\n%s", err, &errOut)
	}
	for _, tp := range topics {
		if n, err := kafka.PartitionCount(ctx, cl, tp); err != nil || n != 3 {
			t.Errorf("%s has %d partitions after the refusals (%v), want 3", tp, n, err)
		}
	}

	// No count asked for: the run adopts the topics' 3.
	st, err := store.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := &pipelinetest.BatchLog{}
	o = pipelinetest.LoopConfig(t, runID, 0, log)
	o.Brokers, o.NATSURL, o.Names, o.Partitions = brokers, natsURL, names, 0
	res := pipelinetest.RunLoopInto(t, o, st)
	if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Features.Invocations != 998 {
		t.Fatalf("twin %+v, features windowed %d: want 431 ticks and 998 invocations observed and windowed", res.Twin, res.Features.Invocations)
	}
	checkPartitionsUsed(t, res, log, st, runID, names, 3)
}

// checkPartitionsUsed checks that a closed-loop run used parts partitions:
// every layer's state batches came from parts shards, and the run's runs
// row records parts and the name prefix in its config_json.
func checkPartitionsUsed(t *testing.T, res pipeline.LoopResult, log *pipelinetest.BatchLog, st store.Store, runID string, names schemas.Names, parts int) {
	t.Helper()
	for l, ticks := range res.Features.Ticks {
		if b := res.Features.Batches[l]; b != ticks*int64(parts) {
			t.Errorf("%s: %d state batches over %d ticks, want %d shards", l, b, ticks, parts)
		}
	}
	for _, b := range log.Batches {
		if b.H.NShards != parts {
			t.Fatalf("state batch %+v: want %d shards", b.H, parts)
		}
	}
	_, rows, err := st.Query(context.Background(), "SELECT config_json FROM runs FINAL WHERE run_id = '"+runID+"'")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d runs rows for run %s, want 1", len(rows), runID)
	}
	var cfg struct {
		Partitions int    `json:"partitions"`
		Prefix     string `json:"name_prefix"`
	}
	s, _ := rows[0][0].(string)
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		t.Fatalf("config_json %q: %v", s, err)
	}
	if cfg.Partitions != parts || cfg.Prefix != names.Prefix {
		t.Errorf("runs row config_json %s: want partitions %d, name_prefix %q", s, parts, names.Prefix)
	}
}

//go:build integration

package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
)

// The integration tier runs against real servers: Apache Kafka (KRaft),
// nats-server with JetStream. infra/scripts/up.sh starts them and writes
// their addresses to infra/.env.test; `make test-integration` exports them.

// servers returns the real Kafka (its topics created with partitions under
// a prefix of the test's own) and NATS; what the test creates under the
// prefix is deleted when it ends.
func servers(t *testing.T, partitions int) (kafkatest.Cluster, string) {
	t.Helper()
	natsURL := os.Getenv("STRATA_NATS")
	if natsURL == "" {
		t.Fatal("STRATA_NATS must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	k := kafkatest.Real(t, partitions)
	t.Cleanup(func() { natstest.DeleteNamed(t, natsURL, k.Names) })
	return k, natsURL
}

// TestIntegrationLive is TestLiveEndToEnd on real Kafka, NATS and
// ClickHouse: telemetry over HTTP (JSON and OTLP) → Kafka → features →
// agents → the decisions API, the shadow twin → sink → ClickHouse.
func TestIntegrationLive(t *testing.T) {
	k, natsURL := servers(t, 3) // liveEndToEnd asks for 3 partitions
	liveEndToEnd(t, k.Brokers, natsURL, k.Names, pipelinetest.ClickHouseDB(t))
}

// TestIntegrationPipeline replays the 998 real rows through the features
// twice on topics of its own with 3 partitions: first asking for 3, then
// asking for none (the run adopts the 3).
func TestIntegrationPipeline(t *testing.T) {
	const parts = 3
	k, natsURL := servers(t, parts)
	brokers, names := k.Brokers, k.Names
	r, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	ins := pipelinetest.ReadAll(t, r)
	_ = r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("it-real-%d", time.Now().UnixNano())
	for i, sp := range []replay.Speed{0, 40000} {
		log := &pipelinetest.BatchLog{}
		o := pipelinetest.Config(runID, sp, parts, log)
		o.Brokers, o.NATSURL, o.Names = brokers, natsURL, names
		if i > 0 {
			o.Partitions = 0 // adopt the topics' count
		}
		res, err := pipeline.OpenLoop(ctx, o, &pipelinetest.SliceSource{Ins: ins}, "real", 0)
		if err != nil {
			t.Fatalf("speed %s: %v", sp, err)
		}
		checkPipeline(t, ins, res, log, parts) // every batch says 3 shards
		// A second run on the same topics, with its own consumer group.
		runID += "-b"
	}
}

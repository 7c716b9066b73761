//go:build integration

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-rl/strata/infra/store"
)

// TestIntegrationClosedLoop runs the whole loop — replay, twin, features,
// policy workers, sink — on real Kafka, nats-server and ClickHouse: every
// decision and reward the twin wrote is one row of its table (FINAL).
func TestIntegrationClosedLoop(t *testing.T) {
	brokers, natsURL := servers(t)
	dsn := clickHouseDB(t)
	st, err := store.OpenClickHouse(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	o := loopOptsForTest(t, fmt.Sprintf("it-loop-%d", time.Now().UnixNano()), 0, &batchLog{})
	o.brokers, o.natsURL = brokers, natsURL
	o.partitions = partitionsOf(t, brokers)
	res := runLoopInto(t, o, st)
	if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Features.Invocations != 998 {
		t.Fatalf("twin %+v, features windowed %d: want 431 ticks and 998 invocations observed and windowed", res.Twin, res.Features.Invocations)
	}
}

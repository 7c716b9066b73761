package twin_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// arrival is an invocation of fn by run starting at startUS, as the
// replay writes it to strata.invocations.v1.
func arrival(t *testing.T, run, id string, startUS int64) *kgo.Record {
	t.Helper()
	return record(t, schemas.TopicInvocations, invocation(run, id, "fn", startUS))
}

// TestServiceWaitsForDecisions runs the replay-synchronous twin on an
// embedded broker: a tick whose arrivals are all in waits for its decision
// batch, an arrival for an evaluated tick is late, every tick's telemetry
// and watermark are written, and the replay's final watermark ends Run.
func TestServiceWaitsForDecisions(t *testing.T) {
	const run = "replay-1"
	env := startTestEnv(t)
	r := newRunning()
	svc, err := twin.NewService(twin.ServiceConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, OnTick: r.evaluated.Store}, TelemetryPartitions: testPartitions},
		testEngine(t, run), env.js, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, svc)

	tickUS := grid.OperationalTickUS
	env.produce(t, arrival(t, run, "0-0", 1_000_000), arrival(t, run, "0-1", 2_000_000), arrival(t, "other-run", "x", 1_000_000))
	env.produce(t, watermarksOn(t, schemas.TopicInvocations, run, tickUS, false)...)
	waitFor(t, "the twin to read tick 0's arrivals", func() bool { return svc.Stats().Arrivals == 2 })
	time.Sleep(300 * time.Millisecond)
	if k := r.evaluated.Load(); k >= 0 {
		t.Fatalf("tick %d evaluated before its decision batch", k)
	}
	env.publishDecisions(t, run, 0, "agent", "fn")
	waitFor(t, "tick 0 to be evaluated", func() bool { return r.evaluated.Load() == 0 })

	env.produce(t, arrival(t, run, "late", 3_000_000), arrival(t, run, "1-0", tickUS+1_000_000))
	env.publishDecisions(t, run, 1, "agent", "fn")
	env.produce(t, watermarksOn(t, schemas.TopicInvocations, run, 2*tickUS, true)...)
	r.wait(t, "after the final watermark")

	st := svc.Stats()
	if st.Ticks != 2 || st.HorizonTick != 1 || st.Arrivals != 3 || st.LateArrivals != 1 || st.Telemetry != 3 {
		t.Errorf("ticks %d up to %d, arrivals %d, late %d, telemetry %d; want 2 up to 1, 3, 1, 3",
			st.Ticks, st.HorizonTick, st.Arrivals, st.LateArrivals, st.Telemetry)
	}
	if st.Decisions == 0 || st.Rewards == 0 || st.DecisionBatches != 2 || st.LatencyP50MS <= 0 {
		t.Errorf("decisions %d, rewards %d, decision batches %d, latency p50 %v ms", st.Decisions, st.Rewards, st.DecisionBatches, st.LatencyP50MS)
	}
	// The telemetry topic holds the three observations and, on every
	// partition, the watermarks 0, the end of tick 0, the end of tick 1 and
	// the final one.
	if n, want := topicSize(t, env.brokers, schemas.TopicTelemetry), int64(3+4*testPartitions); n != want {
		t.Errorf("strata.telemetry.v1 holds %d records, want %d", n, want)
	}
}

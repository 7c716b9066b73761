package twin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// observation is a live observed invocation of run starting at startUS.
func observation(t *testing.T, run, id, fn string, startUS int64, source string) *kgo.Record {
	t.Helper()
	return record(t, schemas.TopicTelemetry, &stratapb.Observation{Arrival: invocation(run, id, fn, startUS),
		LatencyMs: proto.Float64(250), Source: source})
}

func TestShadowFollowsLiveTelemetry(t *testing.T) {
	const run = "live-1"
	env := startTestEnv(t)

	r := newRunning()
	svc, err := twin.NewShadow(twin.ShadowConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, OnTick: r.evaluated.Store}}, testEngine(t, run), env.js, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, svc)

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
		waitFor(t, fmt.Sprintf("tick %d to be evaluated", k), func() bool { return r.evaluated.Load() >= k })
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
	r.stop(t)
}

// writerWatermarks is writer's watermark w of run on every partition of
// the telemetry topic (an ingest instance's, schemas.HeaderWriter).
func writerWatermarks(t *testing.T, run, writer string, w int64) []*kgo.Record {
	t.Helper()
	rs := watermarks(t, run, w)
	for _, r := range rs {
		r.Headers = kafka.WriterHeaders(writer)
	}
	return rs
}

// TestShadowAlignsIngestWriters feeds a Shadow the watermarks of two ingest
// instances, a and b: it evaluates a tick only once both passed it, and
// once a is more than the idle bound (60 s) past b's last watermark, b
// leaves the set and a's watermarks alone move the shadow on.
func TestShadowAlignsIngestWriters(t *testing.T) {
	const run = "live-writers"
	env := startTestEnv(t)
	r := newRunning()
	svc, err := twin.NewShadow(twin.ShadowConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, OnTick: r.evaluated.Store, WatermarkIdle: time.Minute}}, testEngine(t, run), env.js, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, svc)
	t0 := grid.TickOf(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMicro(), grid.OperationalTickUS)
	tick := grid.OperationalTickUS
	env.produce(t, writerWatermarks(t, run, "a", t0*tick)...)
	env.produce(t, writerWatermarks(t, run, "b", t0*tick)...)
	env.produce(t, observation(t, run, "x", "fn", t0*tick+500_000, "live"))
	// a is two ticks ahead of b: the shadow follows b.
	env.produce(t, writerWatermarks(t, run, "a", (t0+3)*tick)...)
	env.produce(t, writerWatermarks(t, run, "b", (t0+1)*tick)...)
	waitFor(t, "tick t0 to be evaluated", func() bool { return r.evaluated.Load() >= t0 })
	env.produce(t, writerWatermarks(t, run, "b", (t0+2)*tick)...)
	waitFor(t, "tick t0+1 to be evaluated", func() bool { return r.evaluated.Load() >= t0+1 })
	if got := r.evaluated.Load(); got != t0+1 {
		t.Fatalf("with b at tick t0+2 the shadow evaluated through t0%+d, want t0+1", got-t0)
	}
	// b stops; a, 8 ticks (120 s) past it, closes the ticks b held.
	env.produce(t, writerWatermarks(t, run, "a", (t0+10)*tick)...)
	waitFor(t, "the ticks b held to be evaluated", func() bool { return r.evaluated.Load() >= t0+9 })
	r.stop(t)
	if st := svc.Stats(); st.Arrivals != 1 || st.LateArrivals != 0 {
		t.Errorf("arrivals %d, late %d; want 1 and 0", st.Arrivals, st.LateArrivals)
	}
}

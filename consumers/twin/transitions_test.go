package twin_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// transitionTicks is the length of the transitions test's run.
const transitionTicks = 12

// feedTransitionRun writes a run of transitionTicks to env with, for every
// tick, the operational decision batch and the operational state batch a
// worker and the features would publish, so that the twin can complete
// each tick's operational transitions.
func feedTransitionRun(t *testing.T, env *testEnv, run string) {
	t.Helper()
	var rs []*kgo.Record
	horizon := int64(transitionTicks) * grid.OperationalTickUS
	for s := int64(1_000_000); s < horizon; s += 5_000_000 {
		rs = append(rs, record(t, schemas.TopicInvocations, invocation(run, fmt.Sprintf("f-%d", s), "f", s)))
	}
	rs = append(rs, watermarksOn(t, schemas.TopicInvocations, run, horizon, true)...)
	env.produce(t, rs...)
	for k := range int64(transitionTicks) {
		h := schemas.BatchHeader{RunID: run, Layer: schemas.Operational, Tick: k, TickStartUS: k * grid.OperationalTickUS, NShards: 1}
		row := schemas.OperationalRow{App: "app", Func: "f", Invocations: 3, LastStartUS: k*grid.OperationalTickUS + 1_000_000}
		for i := range row.RequestRate {
			row.RequestRate[i] = float64(k+int64(i)) / 15
		}
		data, err := schemas.EncodeState(&schemas.StateBatch{Header: h, Operational: []schemas.OperationalRow{row}})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.pub.Publish(t.Context(), schemas.StateSubject(schemas.Operational), schemas.BatchMsgID(run, schemas.Operational, k, 0, 1), data); err != nil {
			t.Fatal(err)
		}
		env.publishBatch(t, &schemas.DecisionBatch{Header: h, Rows: []schemas.DecisionRow{{App: "app", Func: "f", Action: int32(k % 3), Prewarm: int32(k % 3), Policy: "test"}}})
	}
	if err := env.pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// transitionService is a replay twin of run on env writing operational
// transitions (an interval is a tick: every tick's start completes the
// previous tick's); fault, if set, is its fault hook.
func transitionService(t *testing.T, env *testEnv, run string, fault func(string, int64)) *twin.Service {
	t.Helper()
	svc, err := twin.NewService(twin.ServiceConfig{CommonConfig: twin.CommonConfig{Brokers: env.brokers, RunID: run,
		Layers: []schemas.Layer{schemas.Operational}, Transitions: []schemas.Layer{schemas.Operational}, Fault: fault},
		TelemetryPartitions: testPartitions},
		testEngine(t, run, schemas.Operational), env.js, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// transitionValues returns the values of the transitions topic's records,
// sorted.
func transitionValues(t *testing.T, brokers []string) []string {
	t.Helper()
	var out []string
	for _, r := range readTopic(t, brokers, schemas.TopicTransitions, int(topicSize(t, brokers, schemas.TopicTransitions))) {
		out = append(out, string(r.Value))
	}
	slices.Sort(out)
	return out
}

// TestLoopGoesOnWhileTheScorerCompletesTransitions holds the twin's scorer
// inside the scoring of tick 4 — the last tick of an interval whose
// transitions the scoring produces — and checks that the loop still
// simulates and writes the telemetry of the ticks after it: completing an
// interval's transitions waits for that scoring, and it is the scorer's
// work, not the loop's (the loop used to wait for the scorer at every
// interval's start, so that an hour's or a day's close stood on the closed
// loop's path). Released, the run writes the same transitions as a run
// that was never held.
func TestLoopGoesOnWhileTheScorerCompletesTransitions(t *testing.T) {
	const run = "transitions-1"
	ref := startTestEnv(t)
	feedTransitionRun(t, ref, run)
	r := newRunning()
	svc := transitionService(t, ref, run, nil)
	r.start(t, svc)
	r.wait(t, "after the final watermark")
	want := svc.Stats()
	if want.Transitions == 0 || want.Ticks != transitionTicks {
		t.Fatalf("the run never held: %d transitions in %d ticks", want.Transitions, want.Ticks)
	}
	wantValues := transitionValues(t, ref.brokers)

	env := startTestEnv(t)
	feedTransitionRun(t, env, run)
	release, passed := make(chan struct{}), make(chan struct{})
	held := transitionService(t, env, run, func(point string, k int64) {
		switch {
		case point == twin.FaultScoring && k == 4:
			<-release // the scorer's goroutine
		case point == twin.FaultTick && k == 8:
			close(passed) // the loop's goroutine
		}
	})
	hr := newRunning()
	hr.start(t, held)
	select {
	case <-passed:
	case <-time.After(20 * time.Second):
		close(release)
		hr.stop(t)
		t.Fatal("the loop did not simulate tick 8 while the scorer was held in tick 4")
	}
	close(release)
	hr.wait(t, "after the scorer was released")
	got := held.Stats()
	if got.Transitions != want.Transitions || got.TransitionsDropped != want.TransitionsDropped {
		t.Errorf("held run: %d transitions, %d dropped; the run never held: %d, %d",
			got.Transitions, got.TransitionsDropped, want.Transitions, want.TransitionsDropped)
	}
	if got.DecisionsSHA256 != want.DecisionsSHA256 || got.RewardsSHA256 != want.RewardsSHA256 {
		t.Error("held run: other decision or reward digests than the run never held")
	}
	if gotValues := transitionValues(t, env.brokers); !slices.Equal(gotValues, wantValues) {
		t.Errorf("held run: %d transition records, other than the %d of the run never held", len(gotValues), len(wantValues))
	}
}

package pipeline_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

func testLoop(t *testing.T, runID string, speed replay.Speed) (pipeline.LoopResult, *pipelinetest.BatchLog) {
	t.Helper()
	log := &pipelinetest.BatchLog{}
	st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return pipelinetest.RunLoopInto(t, pipelinetest.LoopConfig(t, runID, speed, log), st), log
}

func TestEmbeddedClosedLoop(t *testing.T) {
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	res, log := testLoop(t, "loop", 0)
	// The 998 real rows start in ticks 0..430: the twin evaluates 431 ticks.
	if res.Twin.Ticks != 431 || res.Twin.Arrivals != 998 || res.Twin.Telemetry != 998 {
		t.Fatalf("twin stats %+v, want 431 ticks and 998 arrivals observed", res.Twin)
	}
	if res.Features.Invocations != 998 {
		t.Fatalf("features windowed %d invocations of the twin's telemetry, want 998", res.Features.Invocations)
	}
	if res.Twin.Rewards == 0 || res.Twin.Decisions == 0 {
		t.Fatalf("no rewards or decisions: %+v", res.Twin)
	}
	// The state the agents saw carries the twin's observations: utilisation
	// is known, not missing.
	var known bool
	for _, b := range log.Batches {
		sb, err := schemas.DecodeState(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sb.Operational {
			if r.CPUUtil[schemas.SeqLen-1].Valid {
				known = true
			}
		}
	}
	if !known {
		t.Fatal("closed-loop operational state never carried CPU utilisation")
	}
	// Same input, config and seed at another speed: identical decisions and
	// rewards.
	again, _ := testLoop(t, "loop", 20000)
	if again.Twin.RewardsSHA256 != res.Twin.RewardsSHA256 || again.Twin.DecisionsSHA256 != res.Twin.DecisionsSHA256 {
		t.Fatalf("speed max and 20000 differ: rewards %s vs %s, decisions %s vs %s",
			res.Twin.RewardsSHA256, again.Twin.RewardsSHA256, res.Twin.DecisionsSHA256, again.Twin.DecisionsSHA256)
	}
}

// TestClosedLoopMetrics checks that every role of the closed loop reports
// its hop on the registry it is given: a tick counted once by the twin,
// each tick's evaluation and decision wait timed, each state batch's agent
// hop timed, the features' watermark hop timed.
func TestClosedLoopMetrics(t *testing.T) {
	t.Parallel() // its own embedded servers
	reg := prometheus.NewRegistry()
	o := pipelinetest.LoopConfig(t, "metrics", 0, &pipelinetest.BatchLog{})
	o.Registerer = reg
	st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	res := pipelinetest.RunLoopInto(t, o, st)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// value returns a counter's value or a histogram's sample count.
	value := func(name, layer string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if layer != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "layer" && l.GetValue() == layer }) {
					continue
				}
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s{layer=%q}", name, layer)
		return 0
	}
	ticks := float64(res.Twin.Ticks)
	for _, c := range []struct {
		name, layer string
		want        float64
		atLeast     bool // the features publish state past the twin's last tick
	}{
		{"strata_twin_ticks_total", "", ticks, false},
		{"strata_twin_evaluate_seconds", "", ticks, false},
		{"strata_twin_score_seconds", "", ticks, false},
		{"strata_twin_decision_wait_seconds", "", ticks - 1, false},
		{"strata_twin_rewards_total", "operational", float64(res.Twin.Layers["operational"].Rewards), false},
		// Two partitions: each tick's operational state comes in two shards.
		{"strata_worker_tick_seconds", "operational", 2 * ticks, true},
		{"strata_worker_batches_total", "operational", 2 * ticks, true},
	} {
		if got := value(c.name, c.layer); got != c.want && !(c.atLeast && got > c.want) {
			t.Errorf("%s{layer=%q} = %v, want %v", c.name, c.layer, got, c.want)
		}
	}
	if n := value("strata_features_watermark_seconds", ""); n < ticks {
		t.Errorf("features timed %v watermarks for %v ticks", n, ticks)
	}
}

// failingPolicy decides like FixedPolicy for its first batches, then
// fails.
type failingPolicy struct {
	pipelinetest.FixedPolicy
	batches, after int
}

func (p *failingPolicy) Decide(ctx context.Context, st *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if p.batches++; p.batches > p.after {
		return errPolicy
	}
	return p.FixedPolicy.Decide(ctx, st, out)
}

var errPolicy = errors.New("policy broke")

// TestClosedLoopAgentFailure checks the run group's abort: a worker whose
// policy fails mid-run stops the loop — the twin, which waits for that
// worker's decisions, is cancelled instead of waiting for ever — and the
// error names the actor and carries the policy's error.
func TestClosedLoopAgentFailure(t *testing.T) {
	o := pipelinetest.LoopConfig(t, "agent-failure", 0, &pipelinetest.BatchLog{})
	o.Policies[schemas.Operational] = &failingPolicy{FixedPolicy: o.Policies[schemas.Operational].(pipelinetest.FixedPolicy), after: 5}
	r, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	_, err = pipeline.ClosedLoop(t.Context(), o, r, "real", 0)
	if !errors.Is(err, errPolicy) || !strings.Contains(err.Error(), "agent operational") {
		t.Fatalf("closed loop with a failing operational policy: %v, want the policy's error from the actor \"agent operational\"", err)
	}
}

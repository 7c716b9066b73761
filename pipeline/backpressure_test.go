package pipeline_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// slowStore is a real DuckDB store whose writes of decisions and rewards
// each take at least delay longer: a throttled sink.
type slowStore struct {
	store.Store
	delay  time.Duration
	writes atomic.Int64
}

func (s *slowStore) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	s.writes.Add(1)
	time.Sleep(s.delay)
	return s.Store.WriteDecisions(ctx, rows)
}

func (s *slowStore) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	s.writes.Add(1)
	time.Sleep(s.delay)
	return s.Store.WriteRewards(ctx, rows)
}

// slowPolicy is a policy that takes at least delay per batch: a slow agent.
type slowPolicy struct {
	worker.Policy
	delay time.Duration
}

func (p slowPolicy) Decide(ctx context.Context, st *schemas.StateBatch, out *schemas.DecisionBatch) error {
	time.Sleep(p.delay)
	return p.Policy.Decide(ctx, st, out)
}

// gaugeMax samples a gauge of reg every millisecond until stop is closed
// and returns the largest value seen.
func gaugeMax(reg *prometheus.Registry, name string, stop <-chan struct{}) func() float64 {
	var mu sync.Mutex
	peak := 0.0
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() == name {
					mu.Lock()
					peak = max(peak, mf.GetMetric()[0].GetGauge().GetValue())
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// TestClosedLoopBackpressure runs the 998 real rows' closed loop into a
// throttled store with a small --sink-max-lag, and with a slow agent: in
// both the loop slows down instead of running ahead — the twin holds its
// ticks while the sink is more than the bound behind, and the sink's lag
// never exceeds the bound by more than one tick's rows — while every row
// lands (RunLoopInto counts them) and the decisions and rewards are those
// of the unthrottled run.
func TestClosedLoopBackpressure(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T) store.Store {
		st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	ref := pipelinetest.RunLoopInto(t, pipelinetest.LoopConfig(t, "bp", 0, &pipelinetest.BatchLog{}), open(t))

	const maxLag = 200
	o := pipelinetest.LoopConfig(t, "bp", 0, &pipelinetest.BatchLog{})
	o.SinkMaxLag = maxLag
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	slow := &slowStore{Store: open(t), delay: 20 * time.Millisecond}
	stop := make(chan struct{})
	peak := gaugeMax(reg, "strata_loop_sink_lag_rows", stop)
	res := pipelinetest.RunLoopInto(t, o, slow)
	close(stop)
	if res.Twin.Held == 0 || res.Twin.HeldSeconds <= 0 {
		t.Errorf("the twin was never held behind a sink writing one batch per %v (stats %+v)", slow.delay, res.Twin)
	}
	// The gauge is set before each tick, ahead of the hold: at most the
	// bound plus what one tick published. A tick of the real rows
	// publishes far fewer than 500 rows; the run publishes over 2,000.
	p := peak()
	t.Logf("throttled sink: %d writes of %v, the twin held %d ticks for %.2f s, the sink at most %v rows behind; published %+v",
		slow.writes.Load(), slow.delay, res.Twin.Held, res.Twin.HeldSeconds, p, res.Twin.Published)
	if p > maxLag+500 || res.Twin.Published.Decisions+res.Twin.Published.Rewards <= maxLag+500 {
		t.Errorf("the sink fell %v rows behind the twin (bound %d; the run published %+v)", p, maxLag, res.Twin.Published)
	}
	if res.Twin.RewardsSHA256 != ref.Twin.RewardsSHA256 || res.Twin.DecisionsSHA256 != ref.Twin.DecisionsSHA256 {
		t.Errorf("backpressure changed the run: rewards %s, want %s; decisions %s, want %s",
			res.Twin.RewardsSHA256, ref.Twin.RewardsSHA256, res.Twin.DecisionsSHA256, ref.Twin.DecisionsSHA256)
	}

	// A slow agent: the twin waits for its decisions every tick, so
	// nothing runs ahead and nothing changes but the time.
	o = pipelinetest.LoopConfig(t, "bp", 0, &pipelinetest.BatchLog{})
	o.Policies[schemas.Operational] = slowPolicy{Policy: o.Policies[schemas.Operational], delay: 2 * time.Millisecond}
	res = pipelinetest.RunLoopInto(t, o, open(t))
	if res.Twin.RewardsSHA256 != ref.Twin.RewardsSHA256 || res.Twin.DecisionsSHA256 != ref.Twin.DecisionsSHA256 {
		t.Errorf("a slow agent changed the run: rewards %s, want %s; decisions %s, want %s",
			res.Twin.RewardsSHA256, ref.Twin.RewardsSHA256, res.Twin.DecisionsSHA256, ref.Twin.DecisionsSHA256)
	}
}

package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// slowStore is a real DuckDB store whose writes of decisions and rewards
// each take at least delay longer: a throttled sink. If stalled is set,
// its writes also wait until it is closed.
type slowStore struct {
	store.Store
	delay   time.Duration
	stalled chan struct{}
	writes  atomic.Int64
}

// wait holds a write for the store's delay, and until it is no longer
// stalled.
func (s *slowStore) wait() {
	s.writes.Add(1)
	if s.stalled != nil {
		<-s.stalled
	}
	time.Sleep(s.delay)
}

func (s *slowStore) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	s.wait()
	return s.Store.WriteDecisions(ctx, rows)
}

func (s *slowStore) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	s.wait()
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
			if v, err := metricSum(reg, name); err == nil {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
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
	// The store answers no write until the sink is past the bound (so the
	// twin must hold, however fast the loop runs — under -race it runs
	// slower than a 20 ms write), then 100 ms later it writes, each batch
	// 20 ms slower.
	slow := &slowStore{Store: open(t), delay: 20 * time.Millisecond, stalled: make(chan struct{})}
	stop := make(chan struct{})
	peak := gaugeMax(reg, "strata_loop_sink_lag_rows", stop)
	go func() {
		defer close(slow.stalled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v, err := metricSum(reg, "strata_loop_sink_lag_rows"); err == nil && v > maxLag {
				time.Sleep(100 * time.Millisecond)
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
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

// TestBackpressureMemoryCurve is a measurement, not a check: with
// STRATA_MEMCURVE_DAYS=N it runs N synthetic days through the closed loop
// into a DuckDB store throttled to one batch write per
// STRATA_MEMCURVE_DELAY (default 100ms) — slower than the loop produces
// rows — with the sink-lag bound STRATA_MEMCURVE_MAXLAG (default
// DefaultSinkMaxLag) and with none (a bound never reached), sampling the
// process's resident memory, the Go heap and the sink's lag every second,
// and writes the curves as CSV files to STRATA_MEMCURVE_OUT (default a
// temporary directory), one row per sample. README, "Backpressure", gives
// the command and the curves of 14 days.
func TestBackpressureMemoryCurve(t *testing.T) {
	days, _ := strconv.Atoi(os.Getenv("STRATA_MEMCURVE_DAYS"))
	if days <= 0 {
		t.Skip("a measurement: set STRATA_MEMCURVE_DAYS")
	}
	delay := 100 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("STRATA_MEMCURVE_DELAY")); err == nil {
		delay = d
	}
	maxLag := int64(pipeline.DefaultSinkMaxLag)
	if n, err := strconv.ParseInt(os.Getenv("STRATA_MEMCURVE_MAXLAG"), 10, 64); err == nil {
		maxLag = n
	}
	out := os.Getenv("STRATA_MEMCURVE_OUT")
	if out == "" {
		out = t.TempDir()
	}
	for _, c := range []struct {
		name   string
		maxLag int64
	}{{"bounded", maxLag}, {"unbounded", 1 << 62}} { // the unbounded gate never holds, but reports the lag
		runtime.GC()
		o := pipelinetest.LoopConfig(t, "memcurve-"+c.name, 0, &pipelinetest.BatchLog{})
		o.OnBatch, o.SinkMaxLag = nil, c.maxLag
		reg := prometheus.NewRegistry()
		o.Registerer = reg
		st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), c.name+".duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		slow := &slowStore{Store: st, delay: delay}
		if err := st.EnsureSchema(t.Context()); err != nil {
			t.Fatal(err)
		}
		o.Store, o.Run = slow, &stratapb.Run{RunId: o.RunID, Source: "synthetic"}
		src, err := replay.NewSynth(replay.SynthConfig{Days: days, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(out, "memcurve-"+c.name+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, "wall_s,rss_mb,go_heap_mb,sink_lag_rows")
		stop, done := make(chan struct{}), make(chan struct{})
		t0 := time.Now()
		go func() {
			defer close(done)
			sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				metrics.Read(sample)
				lag, _ := metricSum(reg, "strata_loop_sink_lag_rows")
				fmt.Fprintf(f, "%.0f,%.0f,%.0f,%.0f\n", time.Since(t0).Seconds(), float64(rssKB())/1024,
					float64(sample[0].Value.Uint64())/(1<<20), lag)
				select {
				case <-stop:
					return
				case <-tk.C:
				}
			}
		}()
		res, err := pipeline.ClosedLoop(t.Context(), o, src, "synthetic", int64(days)*grid.StrategicTickUS)
		close(stop)
		<-done
		_ = f.Close()
		_ = st.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d days in %.1f s, twin held %d ticks for %.1f s, sink wrote %v rows; curve in %s",
			c.name, days, res.Wall.Seconds(), res.Twin.Held, res.Twin.HeldSeconds, res.Sink.Rows, f.Name())
	}
}

// rssKB returns the process's resident set size in kB (0 where /proc is
// missing).
func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

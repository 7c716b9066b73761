package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// The timer trace of TestHybridHistogramPrewarmsTimerBursts: two timer
// functions in two apps fire every hhPeriodUS, hhFirings times, starting at
// hhFirstUS (tick 4; the period is exactly 100 ticks, so every firing starts
// at the same offset into its tick):
//   - hhBurstApp/timer fires hhBurst invocations at the same instant
//     (concurrent), each hhDurUS long;
//   - hhSingleApp/timer fires one invocation of hhDurUS.
//
// The period (25 min) exceeds every provider's free keep-alive in the
// catalog (aws 10, azure 20, gcp 15 min; checked below), so without
// pre-warm every firing finds no warm instance.
const (
	hhBurstApp  = "burst"
	hhSingleApp = "single"
	hhPeriodUS  = 25 * 60 * 1_000_000
	hhFirings   = 6
	hhBurst     = 4
	hhDurUS     = 1_000_000
	hhFirstUS   = 67_000_000
)

// writeTimerTrace writes the timer trace in the Azure 2021 format (header
// app,func,end_timestamp,duration; seconds) and returns its path.
func writeTimerTrace(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("app,func,end_timestamp,duration\n")
	for i := range hhFirings {
		start := int64(hhFirstUS + i*hhPeriodUS)
		end, dur := replay.FormatSeconds(start+hhDurUS), replay.FormatSeconds(hhDurUS)
		for range hhBurst {
			fmt.Fprintf(&b, "%s,timer,%s,%s\n", hhBurstApp, end, dur)
		}
		fmt.Fprintf(&b, "%s,timer,%s,%s\n", hhSingleApp, end, dur)
	}
	path := filepath.Join(t.TempDir(), "timer.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// firingOf returns the index of the firing an invocation starting at
// startUS belongs to.
func firingOf(t *testing.T, startUS int64) int {
	t.Helper()
	i := (startUS - hhFirstUS) / hhPeriodUS
	if startUS != hhFirstUS+i*hhPeriodUS || i < 0 || i >= hhFirings {
		t.Fatalf("outcome starts at %d µs, not at a firing of the trace", startUS)
	}
	return int(i)
}

// timerRun is what one closed-loop run over the timer trace did: per app,
// the cold starts of each firing, and the Prewarm of the operational
// decision for each firing's tick (-1 where the function had no row: not
// yet seen by the features, so not decided for).
type timerRun struct {
	cold    map[string][]int
	prewarm map[string][]int
	total   int
}

// runTimerLoop runs the timer trace through the embedded closed loop with
// op as the operational policy (nil: no operational layer; the strategic
// and tactical layers are off, so every function runs at the default
// placement aws/us-east/1024) and reads the twin's per-invocation outcomes
// and decisions back from a DuckDB store.
func runTimerLoop(t *testing.T, runID, trace string, op worker.Policy) timerRun {
	t.Helper()
	o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
	o.Policies = map[schemas.Layer]worker.Policy{}
	if op != nil {
		o.Policies[schemas.Operational] = op
	}
	o.Engine.Outcomes = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := store.OpenDuckDB(ctx, filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	o.Store, o.Run = st, &stratapb.Run{RunId: runID, Source: "timer"}
	r, err := replay.OpenTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if _, err := pipeline.ClosedLoop(ctx, o, r, "timer", 0); err != nil {
		t.Fatal(err)
	}
	num := func(v any) int64 {
		n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
		if err != nil {
			t.Fatalf("store value %v is not an integer", v)
		}
		return n
	}
	run := timerRun{cold: map[string][]int{}, prewarm: map[string][]int{}}
	seen := map[string][]int{}
	for _, app := range []string{hhBurstApp, hhSingleApp} {
		run.cold[app], run.prewarm[app], seen[app] = make([]int, hhFirings), make([]int, hhFirings), make([]int, hhFirings)
		for i := range run.prewarm[app] {
			run.prewarm[app][i] = -1
		}
	}
	_, rows, err := st.Query(ctx, "SELECT app, start_us, cold_start FROM outcomes FINAL WHERE run_id = '"+runID+"'")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		app := fmt.Sprint(row[0])
		i := firingOf(t, num(row[1]))
		seen[app][i]++
		if num(row[2]) != 0 {
			run.cold[app][i]++
			run.total++
		}
	}
	for app, want := range map[string]int{hhBurstApp: hhBurst, hhSingleApp: 1} {
		for i, n := range seen[app] {
			if n != want {
				t.Fatalf("%s: %d outcomes of firing %d in the store, want %d", app, n, i, want)
			}
		}
	}
	// The decision in force at each firing's tick: the table holds an
	// operational row when a function's decision changes (docs/tables.md).
	for i := range hhFirings {
		k := grid.TickOf(int64(hhFirstUS+i*hhPeriodUS), grid.OperationalTickUS)
		_, rows, err := st.Query(ctx, fmt.Sprintf("SELECT app, argMax(prewarm, tick) FROM decisions FINAL WHERE run_id = '%s' AND layer = 'operational' AND tick <= %d GROUP BY app", runID, k))
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			if app := fmt.Sprint(row[0]); run.prewarm[app] != nil {
				run.prewarm[app][i] = int(num(row[1]))
			}
		}
	}
	return run
}

// TestHybridHistogramPrewarmsTimerBursts runs the real hybrid-histogram
// baseline (docs/baselines.md#hybrid-histogram) and the reactive baseline as
// the control through the embedded closed loop on a timer trace whose
// period exceeds every provider's free keep-alive, and counts the twin's
// cold starts per firing.
//
// What the hybrid policy guarantees here, by its spec: it manages ONE warm
// instance per function (docs/baselines.md#hybrid-histogram; Prewarm ∈ {0, 1}), so a
// burst of hhBurst concurrent invocations gets exactly one warm start and
// hhBurst−1 cold ones once the policy has learned the period; a single-shot
// timer gets no cold start. Hand-derived, per function (1-min bins,
// margin 0.1, head/tail percentiles 5 % / 99 %; IT = start − latest earlier
// end, clamped to 0, computed by the features layer):
//
//   - firing 0 of both: cold (empty pool, nothing learned).
//   - burst, after firing 0: its ITs are the three concurrent starts,
//     clamped to 0 → bin 0 only; CV ≫ 2 → certain, head = tail = bin 0:
//     PW = 0, KA = 1.1 × 60 s = 66 s. Nothing covers firing 1: all cold.
//   - burst, after firing k ≥ 1: ITs add one ≈ 1499 s (bin 24) and three 0 s
//     per firing; bin 0 holds 3k+3 of 4k+3 ≤ 99 %, so tail = bin 24: PW = 0,
//     KA = 1.1 × 25 min = 1650 s > the 1499 s to the next firing. The policy
//     holds Prewarm = 1 across the gap: firings ≥ 2 have exactly one warm
//     start, hhBurst−1 cold ones.
//   - single, after firing 0: no IT yet → uncertain → PW = 0, KA = 4 h
//     covers firing 1; after firing k ≥ 1 every IT is ≈ 1499 s (bin 24) →
//     certain, PW = 0.9 × 24 min = 1296 s, window [end + 1296 s,
//     end + 2946 s] ∋ next firing at end + 1499 s: firings ≥ 1 are warm.
//
// So the learning period is one firing for the single timer and two for the
// burst (its first firing teaches only the zero ITs of the concurrent
// starts); docs/baselines.md sets no minimum number of ITs (S2, min_idle_times 0).
//
// The control, reactive (Prewarm = ⌈ConcurrencyPeak[k−1]⌉), sees no
// concurrency in the tick before a firing and relies on the provider's
// 10-min free keep-alive: every invocation of every firing is cold.
func TestHybridHistogramPrewarmsTimerBursts(t *testing.T) {
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for p := range cloud.NumProviders {
		if ka := cat.KeepAliveMin[p].Value * 60e6; ka >= hhPeriodUS-hhDurUS {
			t.Fatalf("%s free keep-alive %v min covers the %d-min timer gap: the trace no longer tests pre-warm", cloud.Provider(p), cat.KeepAliveMin[p].Value, hhPeriodUS/60_000_000)
		}
	}
	trace := writeTimerTrace(t)
	m := pipelinetest.LoopConfig(t, "x", 0, &pipelinetest.BatchLog{}).Model
	policy := func(name string) worker.Policy {
		p, err := agents.New(name, schemas.Operational, agents.Options{Seed: 1, Model: m})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	hybrid := runTimerLoop(t, "hybrid", trace, policy("hybrid-histogram"))
	wantCold := map[string][]int{
		hhBurstApp:  {hhBurst, hhBurst, hhBurst - 1, hhBurst - 1, hhBurst - 1, hhBurst - 1},
		hhSingleApp: {1, 0, 0, 0, 0, 0},
	}
	// The decided Prewarm for each firing's tick: no decision before the
	// function was seen, 0 where the window has lapsed, 1 (never hhBurst)
	// where it covers the tick.
	wantPrewarm := map[string][]int{
		hhBurstApp:  {-1, 0, 1, 1, 1, 1},
		hhSingleApp: {-1, 1, 1, 1, 1, 1},
	}
	for _, app := range []string{hhBurstApp, hhSingleApp} {
		if fmt.Sprint(hybrid.cold[app]) != fmt.Sprint(wantCold[app]) {
			t.Errorf("hybrid-histogram: %s cold starts per firing %v, want %v", app, hybrid.cold[app], wantCold[app])
		}
		if fmt.Sprint(hybrid.prewarm[app]) != fmt.Sprint(wantPrewarm[app]) {
			t.Errorf("hybrid-histogram: %s decided Prewarm per firing %v, want %v", app, hybrid.prewarm[app], wantPrewarm[app])
		}
	}

	reactive := runTimerLoop(t, "reactive", trace, policy("reactive"))
	for app, n := range map[string]int{hhBurstApp: hhBurst, hhSingleApp: 1} {
		for i, c := range reactive.cold[app] {
			if c != n {
				t.Errorf("reactive: %s firing %d had %d cold starts, want all %d", app, i, c, n)
			}
		}
	}
	if hybrid.total >= reactive.total {
		t.Errorf("hybrid-histogram %d cold starts, reactive %d", hybrid.total, reactive.total)
	}
}

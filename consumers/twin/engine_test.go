package twin

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

func newEngine(t testing.TB) *Engine { return newEngineWith(t, nil) }

// newEngineWith is newEngine with edit applied to the configuration.
func newEngineWith(t testing.TB, edit func(*Config)) *Engine {
	t.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{RunID: "r", Reward: cloud.DefaultRewardConfig(),
		DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}}
	if edit != nil {
		edit(&cfg)
	}
	e, err := NewEngine(m, cfg, func(app, fn string) cloud.Function { return m.NewFunction(app, fn, cloud.USEast, nil) })
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// workload returns arrivals per tick for two hours: function f of app a
// every 20 s, function g of app b every 30 minutes.
func workload() map[int64][]Arrival {
	out := map[int64][]Arrival{}
	add := func(app, fn string, start, dur int64) {
		k := start / grid.OperationalTickUS
		out[k] = append(out[k], Arrival{ID: fmt.Sprintf("%s-%s-%d", app, fn, start), App: app, Func: fn, StartUS: start, DurationUS: dur})
	}
	for s := int64(0); s < 2*grid.TacticalTickUS; s += 20_000_000 {
		add("a", "f", s+1_000_000, 150_000)
	}
	for s := int64(0); s < 2*grid.TacticalTickUS; s += 1_800_000_000 {
		add("b", "g", s+5_000_000, 2_000_000)
	}
	return out
}

func run(t *testing.T, e *Engine, ticks int64, decide func(k int64) []*schemas.DecisionBatch) []*Output {
	t.Helper()
	w := workload()
	var outs []*Output
	for k := range ticks {
		if decide != nil {
			for _, b := range decide(k) {
				if err := e.Apply(b); err != nil {
					t.Fatal(err)
				}
			}
		}
		o, err := e.Tick(k, w[k])
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	return outs
}

func TestEngineDeterministic(t *testing.T) {
	a := run(t, newEngine(t), 2*grid.TicksPerHour, nil)
	b := run(t, newEngine(t), 2*grid.TicksPerHour, nil)
	for k := range a {
		for i := range a[k].Telemetry {
			if !proto.Equal(a[k].Telemetry[i], b[k].Telemetry[i]) {
				t.Fatalf("tick %d telemetry %d differs", k, i)
			}
		}
		if len(a[k].Rewards) != len(b[k].Rewards) {
			t.Fatalf("tick %d: %d vs %d rewards", k, len(a[k].Rewards), len(b[k].Rewards))
		}
		for i := range a[k].Rewards {
			if !proto.Equal(a[k].Rewards[i], b[k].Rewards[i]) {
				t.Fatalf("tick %d reward %d differs", k, i)
			}
		}
	}
}

func TestEngineRewardsAddUpAndOracleIsNeverBeaten(t *testing.T) {
	outs := run(t, newEngine(t), 2*grid.TicksPerHour, nil)
	opCost := map[string]float64{}
	opInv := map[string]int64{}
	var tactical int
	var telemetry int
	for _, o := range outs {
		telemetry += len(o.Telemetry)
		for _, r := range o.Rewards {
			// Consistency of the row only: that the oracle is the best
			// alternative is TestEngineOracleIsBestAlternative's check.
			if r.Regret < -1e-12 || r.Reward > r.OracleReward+1e-12 {
				t.Fatalf("%s reward %v beats its oracle %v", r.Layer, r.Reward, r.OracleReward)
			}
			key := fmt.Sprintf("%s/%s/%d", r.App, r.Func, r.TickMs/3_600_000)
			switch r.Layer {
			case string(schemas.Operational):
				opCost[key] += r.CostUsd
				opInv[key] += r.Invocations
			case string(schemas.Tactical):
				tactical++
				if math.Abs(r.CostUsd-opCost[key]) > 1e-12*max(1, r.CostUsd) || r.Invocations != opInv[key] {
					t.Fatalf("%s: hour's counterfactual of the decided placement (%v USD, %d) differs from its ticks (%v USD, %d)",
						key, r.CostUsd, r.Invocations, opCost[key], opInv[key])
				}
			}
		}
	}
	// One observation per arrival: f every 20 s and g every 30 min over
	// the two hours.
	const wantTelemetry = 2*3600/20 + 2*60/30
	if telemetry != wantTelemetry || tactical != 4 {
		t.Fatalf("telemetry %d, want %d (one per arrival); tactical rewards %d, want 2 functions × 2 hours", telemetry, wantTelemetry, tactical)
	}
}

// observed is what one entity's invocations gave in a run, summed from the
// engine's per-invocation outcomes.
type observed struct {
	n, violations int
	latencyMS     float64 // sum
	costUSD       float64 // sum, without pre-warm
}

// runAlternative runs a fresh engine (outcomes on) over the workload for
// ticks ticks with d applied before tick 0, and returns layer l's rewards
// of interval 0 and the outcomes observed, both by entity (app/func, or
// app for the strategic layer).
func runAlternative(t *testing.T, l schemas.Layer, ticks int64, d *schemas.DecisionBatch) (map[string]*stratapb.Reward, map[string]*observed) {
	t.Helper()
	e := newEngineWith(t, func(c *Config) { c.Outcomes = true })
	key := func(app, fn string) string {
		if l == schemas.Strategic {
			return app
		}
		return app + "/" + fn
	}
	rows, obs := map[string]*stratapb.Reward{}, map[string]*observed{}
	for _, o := range run(t, e, ticks, func(k int64) []*schemas.DecisionBatch {
		if k == 0 {
			return []*schemas.DecisionBatch{d}
		}
		return nil
	}) {
		for _, r := range o.Rewards {
			if r.Layer == string(l) && r.Tick == 0 {
				rows[key(r.App, r.Func)] = r
			}
		}
		for _, oc := range o.Outcomes {
			if l == schemas.Operational && oc.StartUs >= grid.OperationalTickUS {
				continue
			}
			ob := obs[key(oc.App, oc.Func)]
			if ob == nil {
				ob = &observed{}
				obs[key(oc.App, oc.Func)] = ob
			}
			ob.n++
			ob.latencyMS += oc.LatencyMs
			ob.costUSD += oc.CostUsd
			if oc.SlaViolation {
				ob.violations++
			}
		}
	}
	return rows, obs
}

// referenceRewards computes docs/reward.md's reward of each alternative (cost
// c, mean latency lat, carbon g, SLA-violation rate sla), here and not by
// cloud.Rewards: c, lat and g clipped to their bounds, each scored
// 1 − x/max over the alternatives, weighted, less the SLA penalty, and
// clipped to ±MaxReward.
func referenceRewards(cfg cloud.RewardConfig, c, lat, g, sla []float64) []float64 {
	c, lat, g = slices.Clone(c), slices.Clone(lat), slices.Clone(g)
	for i := range c {
		c[i], lat[i], g[i] = min(c[i], cfg.MaxCostUSD), min(lat[i], cfg.MaxLatencyMS), min(g[i], cfg.MaxCarbonG)
	}
	maxC, maxL, maxG := slices.Max(c), slices.Max(lat), slices.Max(g)
	score := func(x, mx float64) float64 {
		if mx <= cfg.Epsilon {
			return 1
		}
		return 1 - x/mx
	}
	out := make([]float64, len(c))
	for i := range out {
		r := cfg.WCost*score(c[i], maxC) + cfg.WPerf*score(lat[i], maxL) + cfg.WCarbon*score(g[i], maxG) - cfg.SLAPenalty*sla[i]
		out[i] = max(-cfg.MaxReward, min(cfg.MaxReward, r))
	}
	return out
}

// TestEngineOracleIsBestAlternative checks every layer's oracle reward and
// regret against the alternatives enumerated by the test: for each
// alternative action of interval 0 (operational: the pre-warm counts;
// tactical: the 24 region × tier placements; strategic: the 3 providers) a
// fresh engine is run with that action decided, and the action's reward is
// computed here from what the run observed (its outcomes' latency, cost
// and SLA violations, the row's pre-warm cost and carbon). Every run starts
// from the same empty state, so each row's oracle must be the best of
// these rewards and its regret the gap to it; a wrong argmax or a reward
// scored on anything but the alternatives fails.
func TestEngineOracleIsBestAlternative(t *testing.T) {
	rc := cloud.DefaultRewardConfig()
	type alt struct {
		name string
		d    *schemas.DecisionBatch
	}
	bothFuncs := func(l schemas.Layer, row func(app, fn string) schemas.DecisionRow) *schemas.DecisionBatch {
		h := schemas.BatchHeader{RunID: "r", Layer: l, Tick: 0, NShards: 1}
		if l == schemas.Strategic {
			return &schemas.DecisionBatch{Header: h, Rows: []schemas.DecisionRow{row("a", ""), row("b", "")}}
		}
		return &schemas.DecisionBatch{Header: h, Rows: []schemas.DecisionRow{row("a", "f"), row("b", "g")}}
	}
	var operational, tactical, strategic []alt
	for _, p := range []int32{0, 1, 2, 4, 8} { // Config.PrewarmAlternatives' default
		operational = append(operational, alt{fmt.Sprintf("pre-warm %d", p), bothFuncs(schemas.Operational, func(app, fn string) schemas.DecisionRow {
			return schemas.DecisionRow{App: app, Func: fn, Prewarm: p, Policy: "test"}
		})})
	}
	for m := range cloud.NumMetros {
		for tr := range cloud.NumTiers {
			pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.Metro(m), Tier: cloud.Tier(tr)}
			tactical = append(tactical, alt{pl.String(), bothFuncs(schemas.Tactical, func(app, fn string) schemas.DecisionRow {
				return schemas.DecisionRow{App: app, Func: fn, Region: pl.Metro.String(), MemoryMB: int32(pl.Tier.MB()), Policy: "test"}
			})})
		}
	}
	for p := range cloud.NumProviders {
		strategic = append(strategic, alt{cloud.Provider(p).String(), bothFuncs(schemas.Strategic, func(app, _ string) schemas.DecisionRow {
			return schemas.DecisionRow{App: app, Provider: cloud.Provider(p).String(), Policy: "test"}
		})})
	}
	notFirst := 0 // entities whose best alternative is not the first one
	for _, c := range []struct {
		layer schemas.Layer
		ticks int64
		alts  []alt
	}{
		{schemas.Operational, 1, operational},
		{schemas.Tactical, grid.TicksPerHour, tactical},
		{schemas.Strategic, grid.TicksPerDay, strategic},
	} {
		t.Run(string(c.layer), func(t *testing.T) {
			rows := make([]map[string]*stratapb.Reward, len(c.alts))
			obs := make([]map[string]*observed, len(c.alts))
			for i, a := range c.alts {
				rows[i], obs[i] = runAlternative(t, c.layer, c.ticks, a.d)
			}
			keys := []string{"a/f", "b/g"}
			if c.layer == schemas.Strategic {
				keys = []string{"a", "b"}
			}
			for _, k := range keys {
				n := len(c.alts)
				cost, lat, carbon, sla := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
				for i, a := range c.alts {
					r, o := rows[i][k], obs[i][k]
					if r == nil || o == nil || o.n == 0 {
						t.Fatalf("%s %s: no reward row (%v) or no outcomes (%v)", k, a.name, r, o)
					}
					if int64(o.n) != r.Invocations || int64(o.violations) != r.SlaViolations {
						t.Fatalf("%s %s: row counts %d invocations, %d violations; the run had %d, %d", k, a.name, r.Invocations, r.SlaViolations, o.n, o.violations)
					}
					cost[i], lat[i], carbon[i] = o.costUSD+r.PrewarmCostUsd, o.latencyMS/float64(o.n), r.CarbonG
					sla[i] = float64(o.violations) / float64(o.n)
					if math.Abs(cost[i]-r.CostUsd) > 1e-12*max(1, r.CostUsd) {
						t.Fatalf("%s %s: row cost %v, outcomes and pre-warm %v", k, a.name, r.CostUsd, cost[i])
					}
				}
				want := referenceRewards(rc, cost, lat, carbon, sla)
				best := 0
				for i := range want {
					if want[i] > want[best] {
						best = i
					}
				}
				if best != 0 {
					notFirst++
				}
				for i, a := range c.alts {
					r := rows[i][k]
					const tol = 1e-9
					if math.Abs(r.Reward-want[i]) > tol || math.Abs(r.OracleReward-want[best]) > tol || math.Abs(r.Regret-(want[best]-want[i])) > tol {
						t.Errorf("%s %s: reward %.9f, oracle %.9f, regret %.9f; want %.9f, %.9f (%s), %.9f",
							k, a.name, r.Reward, r.OracleReward, r.Regret, want[i], want[best], c.alts[best].name, want[best]-want[i])
					}
				}
				t.Logf("%s: best of %d alternatives is %s (reward %.4f; worst %.4f)", k, n, c.alts[best].name, want[best], slices.Min(want))
			}
		})
	}
	if notFirst == 0 {
		t.Error("every best alternative is the first one: the test cannot tell a wrong argmax")
	}
}

func TestEnginePrewarmAvoidsColdStarts(t *testing.T) {
	cold := func(prewarm int32) int64 {
		e := newEngine(t)
		outs := run(t, e, 2*grid.TicksPerHour, func(k int64) []*schemas.DecisionBatch {
			h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * grid.OperationalTickUS, NShards: 1}
			return []*schemas.DecisionBatch{{Header: h, Rows: []schemas.DecisionRow{{App: "b", Func: "g", Prewarm: prewarm, Policy: "test"}}}}
		})
		var n int64
		for _, o := range outs {
			for _, ob := range o.Telemetry {
				if ob.GetArrival().GetFunc() == "g" && ob.GetColdStart() {
					n++
				}
			}
		}
		return n
	}
	if without, with := cold(0), cold(1); without != 4 || with != 0 {
		t.Fatalf("a function invoked every 30 min had %d cold starts without pre-warm, %d with one pre-warmed instance; want 4 and 0", without, with)
	}
}

// moveToGCPEUWest decides app a onto GCP at tick 0 and its function f
// onto eu-west/256 MB from hour 1.
func moveToGCPEUWest(k int64) []*schemas.DecisionBatch {
	switch k {
	case 0:
		return []*schemas.DecisionBatch{{Header: schemas.BatchHeader{Layer: schemas.Strategic, Tick: 0, NShards: 1},
			Rows: []schemas.DecisionRow{{App: "a", Provider: "gcp", Action: 2, Policy: "test"}}}}
	case grid.TicksPerHour:
		return []*schemas.DecisionBatch{{Header: schemas.BatchHeader{Layer: schemas.Tactical, Tick: 1, TickStartUS: grid.TacticalTickUS, NShards: 1},
			Rows: []schemas.DecisionRow{{App: "a", Func: "f", Region: "eu-west", MemoryMB: 256, Action: 2*6 + 1, Policy: "test"}}}}
	}
	return nil
}

func TestEngineDecisionsMovePlacement(t *testing.T) {
	e := newEngine(t)
	outs := run(t, e, 2*grid.TicksPerHour, moveToGCPEUWest)
	first, later := outs[0].Telemetry[0], outs[grid.TicksPerHour].Telemetry[0]
	if first.GetProvider() != "gcp" || first.GetRegion() != "us-east" || first.GetMemoryMb() != 1024 {
		t.Fatalf("hour 0 placement %s/%s/%d, want gcp/us-east/1024 (default metro and tier)", first.GetProvider(), first.GetRegion(), first.GetMemoryMb())
	}
	if later.GetProvider() != "gcp" || later.GetRegion() != "eu-west" || later.GetMemoryMb() != 256 {
		t.Fatalf("hour 1 placement %s/%s/%d, want gcp/eu-west/256", later.GetProvider(), later.GetRegion(), later.GetMemoryMb())
	}
	if len(outs[0].Decisions) != 1 || outs[0].Decisions[0].GetProvider() != "gcp" {
		t.Fatalf("decisions of tick 0: %v", outs[0].Decisions)
	}
	if d := outs[grid.TicksPerHour].Decisions; len(d) != 1 || d[0].GetRegion() != "eu-west" || d[0].GetProvider() != "gcp" {
		t.Fatalf("joined tactical decision: %v", d)
	}
	// Tick order is enforced.
	if _, err := e.Tick(0, nil); err == nil {
		t.Fatal("an old tick was evaluated again")
	}
}

// TestTransitionsCarryActionRewards checks that strategic and tactical
// transitions carry every action's reward in action order: 3 providers,
// 24 metro × tier placements; the taken action's is the transition's
// reward and the best is the reward row's oracle reward.
func TestTransitionsCarryActionRewards(t *testing.T) {
	e := newEngineWith(t, func(c *Config) {
		c.Transitions = map[schemas.Layer]bool{schemas.Strategic: true, schemas.Tactical: true}
	})
	outs := run(t, e, grid.TicksPerDay+1, moveToGCPEUWest)
	oracle := map[string]float64{}
	var trs []*stratapb.Transition
	for _, o := range outs {
		for _, r := range o.Rewards {
			oracle[fmt.Sprintf("%s/%d/%s/%s", r.GetLayer(), r.GetTick(), r.GetApp(), r.GetFunc())] = r.GetOracleReward()
		}
		trs = append(trs, o.Transitions...)
	}
	want := map[string]int{string(schemas.Strategic): cloud.NumProviders, string(schemas.Tactical): cloud.NumMetros * cloud.NumTiers}
	seen := map[string]bool{}
	for _, tr := range trs {
		ar := tr.GetActionRewards()
		if len(ar) != want[tr.GetLayer()] {
			t.Fatalf("%s transition of %s/%s: %d action rewards, want %d", tr.GetLayer(), tr.GetApp(), tr.GetFunc(), len(ar), want[tr.GetLayer()])
		}
		if got := float64(ar[tr.GetAction()]); math.Abs(got-tr.GetReward()) > 1e-6 {
			t.Errorf("%s transition: action %d's reward %v, the transition's %v", tr.GetLayer(), tr.GetAction(), got, tr.GetReward())
		}
		best := float64(slices.Max(ar))
		if o := oracle[fmt.Sprintf("%s/%d/%s/%s", tr.GetLayer(), tr.GetTick(), tr.GetApp(), tr.GetFunc())]; math.Abs(best-o) > 1e-6 {
			t.Errorf("%s transition: best action reward %v, oracle reward %v", tr.GetLayer(), best, o)
		}
		seen[tr.GetLayer()] = true
	}
	if !seen[string(schemas.Strategic)] || !seen[string(schemas.Tactical)] {
		t.Fatalf("transitions of layers %v, want strategic and tactical", seen)
	}
}

// TestEngineScoresBesideSimulation scores every tick on a goroutine of its
// own while Simulate runs up to two hours ahead — new decisions applied
// before the intervals they follow are scored — and gets the outputs of the
// plain Tick: the scoring is detached from the engine's live state (run it
// under -race).
func TestEngineScoresBesideSimulation(t *testing.T) {
	edit := func(c *Config) {
		c.Transitions = map[schemas.Layer]bool{schemas.Strategic: true, schemas.Tactical: true, schemas.Operational: true}
	}
	ticks := int64(grid.TicksPerDay + grid.TicksPerHour)
	decide := mixedDecisions
	want := run(t, newEngineWith(t, edit), ticks, decide)

	e := newEngineWith(t, edit)
	w := workload()
	queue := make(chan *Output, 2*grid.TicksPerHour)
	errs := make(chan error, 1)
	var got []*Output
	go func() {
		defer close(errs)
		for o := range queue {
			if err := e.Score(o); err != nil {
				errs <- err
				return
			}
			got = append(got, o)
		}
	}()
	for k := range ticks {
		for _, b := range decide(k) {
			if err := e.Apply(b); err != nil {
				t.Fatal(err)
			}
		}
		o, err := e.Simulate(k, w[k], func(t int64) []Arrival { return w[t] })
		if err != nil {
			t.Fatal(err)
		}
		queue <- o
	}
	close(queue)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d outputs scored, want %d", len(got), len(want))
	}
	var trs int
	for k := range want {
		for _, c := range []struct {
			what      string
			got, want []proto.Message
		}{
			{"telemetry", msgs(got[k].Telemetry), msgs(want[k].Telemetry)},
			{"decisions", msgs(got[k].Decisions), msgs(want[k].Decisions)},
			{"rewards", msgs(got[k].Rewards), msgs(want[k].Rewards)},
			{"transitions", msgs(got[k].Transitions), msgs(want[k].Transitions)},
		} {
			if len(c.got) != len(c.want) {
				t.Fatalf("tick %d: %d %s, want %d", k, len(c.got), c.what, len(c.want))
			}
			for i := range c.want {
				if !proto.Equal(c.got[i], c.want[i]) {
					t.Fatalf("tick %d: %s %d differs:\n got %v\nwant %v", k, c.what, i, c.got[i], c.want[i])
				}
			}
		}
		trs += len(want[k].Transitions)
	}
	if trs == 0 {
		t.Fatal("no transitions: the test checks nothing of the decisions in force")
	}
}

// mixedDecisions moves app a to gcp/eu-west, then decides at the first tick
// after each interval whose scoring reads the decision in force (hour 1's
// and day 0's), and sets a pre-warm count every seventh tick.
func mixedDecisions(k int64) []*schemas.DecisionBatch {
	bs := moveToGCPEUWest(k)
	switch k {
	case 2 * grid.TicksPerHour:
		bs = append(bs, &schemas.DecisionBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical, Tick: 2, TickStartUS: 2 * grid.TacticalTickUS, NShards: 1},
			Rows: []schemas.DecisionRow{{App: "a", Func: "f", Region: "us-west", MemoryMB: 512, Action: 1*6 + 2, Policy: "test"}}})
	case grid.TicksPerDay:
		bs = append(bs, &schemas.DecisionBatch{Header: schemas.BatchHeader{Layer: schemas.Strategic, Tick: 1, TickStartUS: grid.StrategicTickUS, NShards: 1},
			Rows: []schemas.DecisionRow{{App: "a", Provider: "azure", Action: 1, Policy: "test"}}})
	}
	if k%7 == 3 {
		bs = append(bs, &schemas.DecisionBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: k, TickStartUS: k * grid.OperationalTickUS, NShards: 1},
			Rows: []schemas.DecisionRow{{App: "a", Func: "f", Action: 1, Prewarm: int32(k % 3), Policy: "test"}}})
	}
	return bs
}

// msgs returns ms as proto messages.
func msgs[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

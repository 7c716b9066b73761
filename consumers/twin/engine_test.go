package twin

import (
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.NewModel(cat, cloud.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m, Config{RunID: "r", Reward: cloud.DefaultRewardConfig(),
		DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}},
		func(app, fn string) cloud.Function { return m.NewFunction(app, fn, cloud.USEast, nil) })
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
		k := start / replay.OperationalTickUS
		out[k] = append(out[k], Arrival{ID: fmt.Sprintf("%s-%s-%d", app, fn, start), App: app, Func: fn, StartUS: start, DurationUS: dur})
	}
	for s := int64(0); s < 2*replay.TacticalTickUS; s += 20_000_000 {
		add("a", "f", s+1_000_000, 150_000)
	}
	for s := int64(0); s < 2*replay.TacticalTickUS; s += 1_800_000_000 {
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
	a := run(t, newEngine(t), 2*ticksPerHour, nil)
	b := run(t, newEngine(t), 2*ticksPerHour, nil)
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
	outs := run(t, newEngine(t), 2*ticksPerHour, nil)
	opCost := map[string]float64{}
	opInv := map[string]int64{}
	var tactical int
	var telemetry int
	for _, o := range outs {
		telemetry += len(o.Telemetry)
		for _, r := range o.Rewards {
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
	if want := len(workload()); telemetry == 0 || tactical != 4 {
		t.Fatalf("telemetry %d (ticks with arrivals %d), tactical rewards %d, want 2 functions × 2 hours", telemetry, want, tactical)
	}
}

func TestEnginePrewarmAvoidsColdStarts(t *testing.T) {
	cold := func(prewarm int32) int64 {
		e := newEngine(t)
		outs := run(t, e, 2*ticksPerHour, func(k int64) []*schemas.DecisionBatch {
			h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * replay.OperationalTickUS, NShards: 1}
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

func TestEngineDecisionsMovePlacement(t *testing.T) {
	e := newEngine(t)
	outs := run(t, e, 2*ticksPerHour, func(k int64) []*schemas.DecisionBatch {
		switch k {
		case 0:
			return []*schemas.DecisionBatch{{Header: schemas.BatchHeader{Layer: schemas.Strategic, Tick: 0, NShards: 1},
				Rows: []schemas.DecisionRow{{App: "a", Provider: "gcp", Action: 2, Policy: "test"}}}}
		case ticksPerHour:
			return []*schemas.DecisionBatch{{Header: schemas.BatchHeader{Layer: schemas.Tactical, Tick: 1, TickStartUS: replay.TacticalTickUS, NShards: 1},
				Rows: []schemas.DecisionRow{{App: "a", Func: "f", Region: "eu-west", MemoryMB: 256, Action: 2*6 + 1, Policy: "test"}}}}
		}
		return nil
	})
	first, later := outs[0].Telemetry[0], outs[ticksPerHour].Telemetry[0]
	if first.GetProvider() != "gcp" || first.GetRegion() != "us-east" || first.GetMemoryMb() != 1024 {
		t.Fatalf("hour 0 placement %s/%s/%d, want gcp/us-east/1024 (default metro and tier)", first.GetProvider(), first.GetRegion(), first.GetMemoryMb())
	}
	if later.GetProvider() != "gcp" || later.GetRegion() != "eu-west" || later.GetMemoryMb() != 256 {
		t.Fatalf("hour 1 placement %s/%s/%d, want gcp/eu-west/256", later.GetProvider(), later.GetRegion(), later.GetMemoryMb())
	}
	if len(outs[0].Decisions) != 1 || outs[0].Decisions[0].GetProvider() != "gcp" {
		t.Fatalf("decisions of tick 0: %v", outs[0].Decisions)
	}
	if d := outs[ticksPerHour].Decisions; len(d) != 1 || d[0].GetRegion() != "eu-west" || d[0].GetProvider() != "gcp" {
		t.Fatalf("joined tactical decision: %v", d)
	}
	// Tick order is enforced.
	if _, err := e.Tick(0, nil); err == nil {
		t.Fatal("an old tick was evaluated again")
	}
}

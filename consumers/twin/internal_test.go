package twin

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// synthDay returns the arrivals of a small synthetic day by tick, and the
// profile function built from them.
func synthDay(t *testing.T, m *cloud.Model, apps int) (map[int64][]Arrival, func(app, fn string) cloud.Function) {
	t.Helper()
	src, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 7, Apps: apps})
	if err != nil {
		t.Fatal(err)
	}
	pb := NewProfileBuilder(grid.DefaultEpoch)
	byTick := map[int64][]Arrival{}
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pb.Add(in)
		s := in.StartUS()
		k := grid.TickOf(s, grid.OperationalTickUS)
		if k < 0 || k >= grid.TicksPerDay {
			continue
		}
		byTick[k] = append(byTick[k], Arrival{ID: in.ID(), App: in.App, Func: in.Func, StartUS: s, DurationUS: in.DurationUS, Row: in.Row})
	}
	return byTick, pb.Build(m)
}

// runDay evaluates one day on a fresh engine and returns its rewards.
func runDay(t *testing.T, m *cloud.Model, cfg Config, profile func(app, fn string) cloud.Function, byTick map[int64][]Arrival, decide func(k int64, e *Engine)) []*stratapb.Reward {
	t.Helper()
	e, err := NewEngine(m, cfg, profile)
	if err != nil {
		t.Fatal(err)
	}
	var rw []*stratapb.Reward
	for k := range int64(grid.TicksPerDay) {
		if decide != nil {
			decide(k, e)
		}
		out, err := e.TickAhead(k, byTick[k], func(t int64) []Arrival { return byTick[t] })
		if err != nil {
			t.Fatal(err)
		}
		rw = append(rw, out.Rewards...)
	}
	return rw
}

func testModel(t *testing.T) *cloud.Model {
	t.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOracleNeverBeaten checks docs/reward.md's property: from the same starting
// state no alternative beats the oracle. Every interval's reward row
// carries the best alternative's reward evaluated from the interval's
// starting pools (oracle_reward); with the oracle deciding, the chosen
// action must be that best one: regret 0 on every row. The control — the
// default placement throughout — must show regret, or the test could not
// fail.
func TestOracleNeverBeaten(t *testing.T) {
	m := testModel(t)
	byTick, profile := synthDay(t, m, 6)
	base := Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig()}
	for _, l := range []schemas.Layer{schemas.Tactical, schemas.Strategic} {
		t.Run(string(l), func(t *testing.T) {
			control := runDay(t, m, base, profile, byTick, nil)
			var controlRegret float64
			for _, r := range control {
				if r.Layer == string(l) {
					controlRegret += r.Regret
				}
			}
			if controlRegret <= 0 {
				t.Fatalf("the default placement has no %s regret: the day cannot tell the oracle apart", l)
			}
			cfg := base
			cfg.Internal = map[schemas.Layer]InternalPolicy{l: PolicyOracle}
			rows := 0
			for _, r := range runDay(t, m, cfg, profile, byTick, nil) {
				if r.Layer != string(l) {
					continue
				}
				rows++
				if r.Regret > 1e-9 || r.Reward < r.OracleReward-1e-9 {
					t.Errorf("%s %d %s/%s: oracle reward %.6f beaten by an alternative with %.6f (regret %.3g)",
						l, r.Tick, r.App, r.Func, r.Reward, r.OracleReward, r.Regret)
				}
			}
			if rows == 0 {
				t.Fatalf("no %s rewards under the oracle", l)
			}
			t.Logf("%s: %d rows at regret 0; control regret total %.3f", l, rows, controlRegret)
		})
	}
}

// TestStaticBestChoices checks static-best's training (TrainStatic, from a
// trace source in end order through the orderer, equals a learner on the
// engine fed tick by tick) and that its choices are in force from the
// run's first tick, decided once.
func TestStaticBestChoices(t *testing.T) {
	m := testModel(t)
	byTick, profile := synthDay(t, m, 4)
	cfg := Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig()}
	src, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 7, Apps: 4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := TrainStatic(context.Background(), m, cfg, profile, src, 600_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) == 0 || len(c.Placements) == 0 {
		t.Fatalf("no choices: %+v", c)
	}
	// A learner on a plain run over the same day sees the same
	// counterfactuals, so its choices are the same.
	l := NewStaticLearner()
	cfg2 := cfg
	cfg2.Learn = l
	runDay(t, m, cfg2, profile, byTick, nil)
	again := l.Choices()
	for k, v := range c.Placements {
		if again.Placements[k] != v {
			t.Fatalf("%v: TrainStatic chose %v, the day's counterfactual totals %v", k, v, again.Placements[k])
		}
	}
	for k, v := range c.Providers {
		if again.Providers[k] != v {
			t.Fatalf("%v: TrainStatic chose %v, the day's counterfactual totals %v", k, v, again.Providers[k])
		}
	}
	// Static-best in force: every function with a choice runs where it was
	// chosen, and the decisions name the policy.
	cfg.Internal = map[schemas.Layer]InternalPolicy{schemas.Tactical: PolicyStaticBest, schemas.Strategic: PolicyStaticBest}
	cfg.Static = c
	e, err := NewEngine(m, cfg, profile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Tick(0, byTick[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Decisions) != len(c.Providers)+len(c.Placements) {
		t.Fatalf("first tick emitted %d decisions, want %d", len(out.Decisions), len(c.Providers)+len(c.Placements))
	}
	for _, d := range out.Decisions {
		if d.Policy != "static-best" {
			t.Fatalf("decision %+v does not name static-best", d)
		}
		if d.Layer == string(schemas.Tactical) {
			rt := c.Placements[FuncID{d.App, d.Func}]
			if d.Region != rt.Metro.String() || int(d.MemoryMb) != rt.Tier.MB() || d.Provider != c.Providers[d.App].String() {
				t.Fatalf("decision %+v, want %v on %v", d, rt, c.Providers[d.App])
			}
		}
	}
	out, err = e.Tick(1, byTick[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Decisions) != 0 {
		t.Fatalf("static-best decided again at tick 1: %d decisions", len(out.Decisions))
	}
}

func TestInternalPolicyConfig(t *testing.T) {
	m := testModel(t)
	base := Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig()}
	for name, in := range map[string]map[schemas.Layer]InternalPolicy{
		"operational oracle":      {schemas.Operational: PolicyOracle},
		"static-best, no choices": {schemas.Tactical: PolicyStaticBest},
		"unknown":                 {schemas.Tactical: "hindsight"},
	} {
		cfg := base
		cfg.Internal = in
		if _, err := NewEngine(m, cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// recorder keeps the counterfactuals it is given.
type recorder []Counterfactual

func (r *recorder) Add(c Counterfactual) {
	c.Rewards = append([]cloud.Reward(nil), c.Rewards...)
	*r = append(*r, c)
}

// TestReplayCounterfactuals checks the hook: a replay of the first of two
// days hands over that day's tactical and strategic intervals only, each
// with every alternative, the best of which is the reward table's oracle;
// and a replay of both days feeds a StaticLearner to TrainStatic's choices.
func TestReplayCounterfactuals(t *testing.T) {
	m := testModel(t)
	open := func() replay.Source {
		src, err := replay.NewSynth(replay.SynthConfig{Days: 2, Seed: 7, Apps: 3})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	profile, err := ProfileOf(open(), grid.DefaultEpoch, m)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig()}
	if err := ReplayCounterfactuals(context.Background(), m, cfg, profile, open(), 600_000_000, 1); err == nil {
		t.Fatal("a replay without Config.Learn: no error")
	}
	var day1 recorder
	cfg.Learn = &day1
	if err := ReplayCounterfactuals(context.Background(), m, cfg, profile, open(), 600_000_000, 1); err != nil {
		t.Fatal(err)
	}
	n := map[schemas.Layer]int{}
	for _, c := range day1 {
		n[c.Layer]++
		switch c.Layer {
		case schemas.Tactical:
			if c.Tick < 0 || c.Tick >= 24 || len(c.Rewards) != cloud.NumMetros*cloud.NumTiers || c.Func == "" || c.Invocations < 1 {
				t.Fatalf("tactical counterfactual of day 1: %+v", c)
			}
		case schemas.Strategic:
			if c.Tick != 0 || len(c.Rewards) != cloud.NumProviders || c.Func != "" {
				t.Fatalf("strategic counterfactual of day 1: %+v", c)
			}
		default:
			t.Fatalf("counterfactual of layer %s", c.Layer)
		}
	}
	if n[schemas.Tactical] == 0 || n[schemas.Strategic] == 0 {
		t.Fatalf("day 1's counterfactuals per layer: %v", n)
	}
	l := NewStaticLearner()
	cfg.Learn = l
	if err := ReplayCounterfactuals(context.Background(), m, cfg, profile, open(), 600_000_000, 2); err != nil {
		t.Fatal(err)
	}
	if l.Intervals[schemas.Tactical] <= int64(n[schemas.Tactical]) {
		t.Fatalf("two days scored %d tactical intervals, day 1 alone %d", l.Intervals[schemas.Tactical], n[schemas.Tactical])
	}
	c, err := TrainStatic(context.Background(), m, cfg, profile, open(), 600_000_000)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Choices()
	if len(got.Placements) != len(c.Placements) || len(got.Providers) != len(c.Providers) {
		t.Fatalf("replayed choices %d/%d, TrainStatic's %d/%d", len(got.Providers), len(got.Placements), len(c.Providers), len(c.Placements))
	}
	for k, v := range c.Placements {
		if got.Placements[k] != v {
			t.Errorf("%v: TrainStatic chose %v, the replay's totals %v", k, v, got.Placements[k])
		}
	}
}

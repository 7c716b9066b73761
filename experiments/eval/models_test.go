package eval

import (
	"slices"
	"strings"
	"testing"
)

// TestModelsRowsHierarchy checks the full hierarchy's section of `strata
// eval --models`: the baselines' combinations once, the learned layers
// once per seed under either pre-warm policy, and --rows selecting them.
func TestModelsRowsHierarchy(t *testing.T) {
	me := modelsEval{dirs: []string{"m1", "m2"}, tacticalOperational: "hybrid-histogram"}
	want := map[string]struct {
		runs       int
		s, tac, op string
	}{
		"baselines: reference":                    {1, "greedy-cost", "greedy-cost", "hybrid-histogram"},
		"baselines: static-best":                  {1, "static-best", "static-best", "hybrid-histogram"},
		"baselines: static-best + hazard-prewarm": {1, "static-best", "static-best", "hazard-prewarm"},
		"hindsight: oracle":                       {1, "oracle", "oracle", "hybrid-histogram"},
		"DQN+PPO+hybrid-histogram":                {2, "dqn", "ppo", "hybrid-histogram"},
		"DQN+PPO+hazard-prewarm":                  {2, "dqn", "ppo", "hazard-prewarm"},
		"static-best+PPO+hybrid-histogram":        {2, "static-best", "ppo", "hybrid-histogram"},
	}
	seen := 0
	for _, r := range modelsRows(me, false) {
		if r.Section != "hierarchy" {
			if r.Label == "DQN+PPO+LSTM" {
				t.Errorf("DQN+PPO+LSTM without lstm.ckpt")
			}
			continue
		}
		seen++
		w, ok := want[r.Label]
		if !ok || len(r.Runs) != w.runs {
			t.Errorf("hierarchy row %q with %d runs: want one of %v", r.Label, len(r.Runs), want)
			continue
		}
		for i, run := range r.Runs {
			p := run.Policies
			if p["strategic"] != w.s || p["tactical"] != w.tac || p["operational"] != w.op || (w.runs > 1) != (run.Models == me.dirs[min(i, 1)]) {
				t.Errorf("%s run %d: %v with models %q", r.Label, i, p, run.Models)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d hierarchy rows, want %d", seen, len(want))
	}
	me.rows = []string{"DQN+PPO+hazard-prewarm", "hindsight: oracle"}
	got := modelsRows(me, true)
	if len(got) != 2 || got[0].Label != "hindsight: oracle" || got[1].Label != "DQN+PPO+hazard-prewarm" {
		t.Errorf("--rows %v kept %+v", me.rows, got)
	}
	// random is a tactical baseline and an ablation; its section picks one.
	for _, c := range []struct {
		rows []string
		want []string // sections of the rows kept
	}{
		{[]string{"random"}, []string{"tactical", "ablation"}},
		{[]string{"ablation random"}, []string{"ablation"}},
		{[]string{"tactical random", "DQN only"}, []string{"tactical", "ablation"}},
	} {
		me.rows = c.rows
		var got []string
		for _, r := range modelsRows(me, true) {
			got = append(got, r.Section)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("--rows %q kept rows of sections %v, want %v", c.rows, got, c.want)
		}
	}
}

// TestModelsRowsDQNMask checks that --dqn-mask and --ppo-mask serve
// every row's DQN and PPO with the override, and that a bad mask is
// refused naming the flag.
func TestModelsRowsDQNMask(t *testing.T) {
	me := modelsEval{dirs: []string{"m1"}, tacticalOperational: "hybrid-histogram", dqnMask: "slo-risk", ppoMask: "memory"}
	n, m := 0, 0
	for _, r := range modelsRows(me, true) {
		for _, run := range r.Runs {
			s, tac := run.Policies["strategic"], run.Policies["tactical"]
			if s == "dqn" || tac == "ppo" {
				t.Errorf("%s %s: a learned policy served without the override (%s, %s)", r.Section, r.Label, s, tac)
			}
			if s == "dqn:mask=slo-risk" {
				n++
			}
			if tac == "ppo:mask=memory" {
				m++
			}
		}
	}
	// DQN: the strategic comparison, three ablations and two hierarchy
	// rows; PPO: the tactical comparison, two ablations, three hierarchy
	// rows.
	if n != 6 || m != 6 {
		t.Errorf("%d runs serve dqn:mask=slo-risk and %d ppo:mask=memory, want 6 and 6", n, m)
	}
	for _, flag := range []string{"--dqn-mask", "--ppo-mask"} {
		c := DefaultConfig()
		c.Models = "m1"
		if flag == "--dqn-mask" {
			c.DQNMask = "bogus"
		} else {
			c.PPOMask = "bogus"
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s bogus: %v", flag, err)
		}
	}
}

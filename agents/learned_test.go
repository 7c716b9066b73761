package agents_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/agentstest"
	"github.com/strata-rl/strata/schemas"
)

// TestLearnedPoliciesLoad checks that dqn, ppo and lstm load from a models
// directory and decide on a state batch, and that without one the error
// says what is missing.
func TestLearnedPoliciesLoad(t *testing.T) {
	dir := t.TempDir()
	agentstest.WriteCheckpoints(t, dir)
	m := testModel(t)
	batches := map[schemas.Layer]*schemas.StateBatch{
		schemas.Strategic:   {Strategic: []schemas.StrategicRow{{App: "a", Functions: 2, Invocations: 10}}},
		schemas.Tactical:    {Tactical: []schemas.TacticalRow{{App: "a", Func: "f", Invocations: 10, RequestRate: 0.1, Provider: "aws"}}},
		schemas.Operational: {Operational: []schemas.OperationalRow{{App: "a", Func: "f", Invocations: 3}}},
	}
	for _, layer := range schemas.Layers {
		name := agents.LearnedName(layer)
		if _, err := agents.New(name, layer, agents.Options{Seed: 1, Model: m}); err == nil {
			t.Errorf("%s without --models: accepted", name)
		}
		p, err := agents.New(name, layer, agents.Options{Seed: 1, Model: m, Models: dir})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Name() != name || p.Layer() != layer {
			t.Fatalf("%s: got %s on %s", name, p.Name(), p.Layer())
		}
		st := batches[layer]
		st.Header = schemas.BatchHeader{Layer: layer, Tick: 1, NShards: 1}
		out := &schemas.DecisionBatch{Header: st.Header}
		if err := p.Decide(context.Background(), st, out); err != nil {
			t.Fatalf("%s deciding: %v", name, err)
		}
		if len(out.Rows) != 1 {
			t.Fatalf("%s decided %d rows, want 1", name, len(out.Rows))
		}
	}
	if _, err := agents.New("dqn", schemas.Strategic, agents.Options{Models: t.TempDir()}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing checkpoint: %v", err)
	}
}

// TestLearnedPolicyParams checks the learned policies' overrides: the
// DQN's mask=none|slo-risk (a tiny, cold, short app is then placed on
// AWS, the only provider whose cold start keeps its SLO), anything else
// refused with ErrInvalidParam naming the key.
func TestLearnedPolicyParams(t *testing.T) {
	dir := t.TempDir()
	agentstest.WriteCheckpoints(t, dir)
	m := testModel(t)
	opts := agents.Options{Seed: 1, Model: m, Models: dir}
	for _, tc := range []struct {
		name  string
		layer schemas.Layer
		err   string
	}{
		{"dqn:mask=slo-risk", schemas.Strategic, ""},
		{"dqn:mask=none", schemas.Strategic, ""},
		{"dqn:mask=bogus", schemas.Strategic, "unknown action mask"},
		{"dqn:epsilon=0.5", schemas.Strategic, `"epsilon"`},
		{"ppo:mask=slo-risk", schemas.Tactical, "unknown action mask"},
		{"ppo:greedy=false", schemas.Tactical, `"greedy"`},
		{"ppo:mask=memory", schemas.Tactical, "lacks"},
		{"lstm:window=3", schemas.Operational, "the LSTM takes no parameters"},
	} {
		p, err := agents.New(tc.name, tc.layer, opts)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error containing %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !agents.IsLearned(tc.name, tc.layer) {
			t.Errorf("IsLearned(%q) = false", tc.name)
		}
		st := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Strategic, Tick: 1, NShards: 1},
			Strategic: []schemas.StrategicRow{{App: "a", Functions: 1, Invocations: 2, DurationMeanMS: 80, DurationP95MS: 150, ColdStartRate: schemas.Some(1)}}}
		out := &schemas.DecisionBatch{Header: st.Header}
		if err := p.Decide(t.Context(), st, out); err != nil {
			t.Fatal(err)
		}
		if tc.name == "dqn:mask=slo-risk" && out.Rows[0].Provider != "aws" {
			t.Errorf("%s placed a tiny cold short app on %s", tc.name, out.Rows[0].Provider)
		}
	}
	if _, err := agents.New("dqn:mask=slo-risk", schemas.Strategic, agents.Options{Seed: 1, Models: dir}); err == nil {
		t.Error("dqn:mask=slo-risk without the cloud model: accepted")
	}
}

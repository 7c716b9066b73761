package agents_test

import (
	"context"
	"errors"
	"os"
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

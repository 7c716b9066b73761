package agents_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/schemas"
)

// writeCheckpoints saves an (untrained) checkpoint of each learned policy
// into dir, as the training will.
func writeCheckpoints(t *testing.T, dir string) {
	t.Helper()
	save := func(layer schemas.Layer, write func(f *os.File) error) {
		f, err := os.Create(filepath.Join(dir, agents.CheckpointFile(layer)))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatalf("saving %s: %v", layer, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := dqn.NewLearner(dqn.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	save(schemas.Strategic, func(f *os.File) error { return dl.Save(f) })
	pl, err := ppo.NewLearner(ppo.DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	save(schemas.Tactical, func(f *os.File) error { return pl.Save(f) })
	cfg := lstm.DefaultConfig()
	cfg.Net.Hidden, cfg.Net.DenseHidden = [2]int{8, 8}, 8
	cfg.MaxEpochs, cfg.BatchSize = 1, 16
	var ds lstm.Dataset
	for i := range 64 {
		seq := make([]float32, lstm.SeqDim)
		for j := range seq {
			seq[j] = float32(math.Sin(float64(i+j) / 7))
		}
		if _, err := ds.Add(seq, []float32{0.5, 0.25, float32(i % 5)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := lstm.Train(cfg, &ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	save(schemas.Operational, func(f *os.File) error { return res.Save(f, cfg, "test", lstm.DefaultPrewarmRule()) })
}

// TestLearnedPoliciesLoad checks that dqn, ppo and lstm load from a models
// directory and decide on a state batch, and that without one the error
// says what is missing.
func TestLearnedPoliciesLoad(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoints(t, dir)
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

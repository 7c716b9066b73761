// Package agentstest provides helpers for tests that serve the learned
// policies, as net/http/httptest does for HTTP.
package agentstest

import (
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

// WriteCheckpoints saves an untrained checkpoint of each learned policy
// (dqn, ppo, and an LSTM of small width trained one epoch on a sine) into
// dir under the names agents.CheckpointFile gives, for tests that serve
// them.
func WriteCheckpoints(t testing.TB, dir string) {
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

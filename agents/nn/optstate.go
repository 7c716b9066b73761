package nn

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// OptimizerFormat is the format of the optimiser-state files this package
// writes and reads, stored under "format" in their metadata.
const OptimizerFormat = "strata-nn-optimizer/1"

// The optimiser state is what a network's checkpoint (Save) leaves out and
// training needs to continue bit for bit: Adam's step count and moments,
// the dropout generator's state and the training counters (the learning
// rate is in the checkpoint's configuration). SaveOptimizer writes it as a
// safetensors file beside the checkpoint — tensors "adam.m.<parameter>"
// and "adam.v.<parameter>" in parameter order, metadata "format"
// (OptimizerFormat), "kind", "adam.t", "dropout.rng" (the generator's four
// state words) and "stats" (TrainStats as JSON) — and LoadOptimizer
// restores it into a network of the same architecture loaded from that
// checkpoint.

// SaveOptimizer writes the Q-network's optimiser state.
func (n *QNet) SaveOptimizer(w io.Writer) error {
	return n.c.saveOptimizer(w, KindQ, n.Stats)
}

// LoadOptimizer restores the Q-network's optimiser state written by
// SaveOptimizer from a network of the same architecture.
func (n *QNet) LoadOptimizer(r io.Reader) error {
	return n.c.loadOptimizer(r, KindQ, &n.Stats)
}

// SaveOptimizer writes the actor-critic's optimiser state.
func (n *PPONet) SaveOptimizer(w io.Writer) error {
	return n.c.saveOptimizer(w, KindPPO, n.Stats)
}

// LoadOptimizer restores the actor-critic's optimiser state written by
// SaveOptimizer from a network of the same architecture.
func (n *PPONet) LoadOptimizer(r io.Reader) error {
	return n.c.loadOptimizer(r, KindPPO, &n.Stats)
}

// SaveOptimizer writes the LSTM's optimiser state.
func (n *LSTMNet) SaveOptimizer(w io.Writer) error {
	return n.c.saveOptimizer(w, KindLSTM, n.Stats)
}

// LoadOptimizer restores the LSTM's optimiser state written by
// SaveOptimizer from a network of the same architecture.
func (n *LSTMNet) LoadOptimizer(r io.Reader) error {
	return n.c.loadOptimizer(r, KindLSTM, &n.Stats)
}

// momentSet returns a parameter set whose tensors are the Adam moments,
// sharing their memory: the m of every parameter, then the v.
func (c *core) momentSet() *paramSet {
	ms := newParamSet()
	for _, which := range []struct {
		prefix string
		vals   [][]float32
	}{{"adam.m.", c.opt.m}, {"adam.v.", c.opt.v}} {
		for i, p := range c.ps.list {
			q := &param{name: which.prefix + p.name, shape: p.shape, d: which.vals[i], idx: len(ms.list)}
			ms.list = append(ms.list, q)
			ms.byName[q.name] = q
		}
	}
	return ms
}

func (c *core) saveOptimizer(w io.Writer, kind string, st TrainStats) error {
	sj, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("saving %s optimiser state: %w", kind, err)
	}
	rng, err := json.Marshal(c.dropRNG.s)
	if err != nil {
		return fmt.Errorf("saving %s optimiser state: %w", kind, err)
	}
	meta := map[string]string{
		"format": OptimizerFormat, "kind": kind,
		"adam.t":      strconv.Itoa(c.opt.t),
		"dropout.rng": string(rng),
		"stats":       string(sj),
	}
	if err := writeCheckpoint(w, meta, c.momentSet()); err != nil {
		return fmt.Errorf("saving %s optimiser state: %w", kind, err)
	}
	return nil
}

func (c *core) loadOptimizer(r io.Reader, kind string, st *TrainStats) error {
	fail := func(err error) error { return fmt.Errorf("loading %s optimiser state: %w", kind, err) }
	ck, err := ReadCheckpoint(r)
	if err != nil {
		return fail(err)
	}
	if f := ck.Metadata["format"]; f != OptimizerFormat {
		return fail(fmt.Errorf("%w: %q, want %q", ErrVersion, f, OptimizerFormat))
	}
	if k := ck.Kind(); k != kind {
		return fail(fmt.Errorf("%w: %q, want %q", ErrKind, k, kind))
	}
	t, err := strconv.Atoi(ck.Metadata["adam.t"])
	if err != nil || t < 0 {
		return fail(fmt.Errorf("%w: adam.t %q", ErrCheckpoint, ck.Metadata["adam.t"]))
	}
	var rng [4]uint64
	if err := json.Unmarshal([]byte(ck.Metadata["dropout.rng"]), &rng); err != nil || rng == [4]uint64{} {
		return fail(fmt.Errorf("%w: dropout.rng %q", ErrCheckpoint, ck.Metadata["dropout.rng"]))
	}
	var stats TrainStats
	if err := json.Unmarshal([]byte(ck.Metadata["stats"]), &stats); err != nil {
		return fail(fmt.Errorf("%w: stats: %w", ErrCheckpoint, err))
	}
	// bind checks every moment's presence, shape and finiteness before it
	// copies any.
	if err := ck.bind(c.momentSet()); err != nil {
		return fail(err)
	}
	c.opt.t, c.dropRNG.s, *st = t, rng, stats
	return nil
}

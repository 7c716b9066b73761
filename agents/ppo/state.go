package ppo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/strata-rl/strata/agents/nn"
)

// StateFormat is the format of the training states SaveState writes.
const StateFormat = "strata-ppo-state/1"

// Entries of a training-state archive.
const (
	stateCheckpoint = "checkpoint.safetensors"
	stateOptimizer  = "net.optimizer"
	stateLearner    = "learner.json"
)

// maxStateBytes bounds one entry of a training state (a rollout of 2,048
// transitions is about 1 MB of JSON).
const maxStateBytes = 1 << 30

// learnerState is learner.json: what the checkpoint leaves out.
type learnerState struct {
	Format string `json:"format"`
	// Buffer is the rollout collected so far, in arrival order.
	Buffer []Transition `json:"buffer"`
	// Seen are the (run, app, func, tick) keys accepted since the last
	// update, sorted (the duplicate check).
	Seen  [][4]string `json:"seen"`
	Stats Stats       `json:"stats"`
}

// SaveState writes everything the learner needs to continue training bit
// for bit as an uncompressed tar archive: its checkpoint (Save: network,
// version, configuration), the network's optimiser state (Adam moments,
// dropout generator), the rollout collected so far, the keys of the
// transitions accepted since the last update and the counters. LoadState
// reads it; a learner restored from it and one never stopped, fed the same
// transitions, write byte-identical checkpoints. (The minibatch order is
// drawn from the seed and the version at each update, so it needs no
// state.)
func (l *Learner) SaveState(w io.Writer) error {
	fail := func(err error) error { return fmt.Errorf("saving PPO training state: %w", err) }
	var ckpt, opt bytes.Buffer
	if err := l.Save(&ckpt); err != nil {
		return fail(err)
	}
	if err := l.net.SaveOptimizer(&opt); err != nil {
		return fail(err)
	}
	st := learnerState{Format: StateFormat, Buffer: l.buf, Stats: l.stats}
	for k := range l.seen {
		st.Seen = append(st.Seen, [4]string{k.run, k.app, k.fn, fmt.Sprint(k.tick)})
	}
	slices.SortFunc(st.Seen, func(a, b [4]string) int {
		return strings.Compare(strings.Join(a[:], "\x00"), strings.Join(b[:], "\x00"))
	})
	sj, err := json.Marshal(st)
	if err != nil {
		return fail(err)
	}
	return nn.WriteArchive(w, []nn.ArchiveEntry{{Name: stateLearner, Data: sj}, {Name: stateCheckpoint, Data: ckpt.Bytes()},
		{Name: stateOptimizer, Data: opt.Bytes()}})
}

// LoadState reads a training state written by SaveState and returns the
// learner it describes. A state that is not one, of another format, or
// whose rollout does not fit the network is refused with ErrCheckpoint
// (wrapped) and what was wrong.
func LoadState(r io.Reader) (*Learner, error) {
	fail := func(err error) (*Learner, error) { return nil, fmt.Errorf("loading PPO training state: %w", err) }
	var st learnerState
	raw, err := nn.ReadStateArchive(r, []string{stateLearner, stateCheckpoint, stateOptimizer}, maxStateBytes, StateFormat, &st, ErrCheckpoint)
	if err != nil {
		return fail(err)
	}
	l, err := LoadLearner(bytes.NewReader(raw[stateCheckpoint]))
	if err != nil {
		return fail(err)
	}
	if err := l.net.LoadOptimizer(bytes.NewReader(raw[stateOptimizer])); err != nil {
		l.Close()
		return fail(err)
	}
	if len(st.Buffer) > l.cfg.Rollout {
		l.Close()
		return fail(fmt.Errorf("%w: a rollout of %d transitions for a buffer of %d", ErrCheckpoint, len(st.Buffer), l.cfg.Rollout))
	}
	for i := range st.Buffer {
		t := &st.Buffer[i]
		err := l.check(t)
		if err == nil && !finite(t.State, t.NextState, []float32{t.Reward, t.LogProb, t.Value}) {
			err = errors.New("non-finite values")
		}
		if err != nil {
			l.Close()
			return fail(fmt.Errorf("%w: rollout transition %d: %w", ErrCheckpoint, i, err))
		}
	}
	for _, k := range st.Seen {
		var tick int64
		if _, err := fmt.Sscan(k[3], &tick); err != nil {
			l.Close()
			return fail(fmt.Errorf("%w: seen key %q: %w", ErrCheckpoint, k, err))
		}
		l.seen[txKey{k[0], k[1], k[2], tick}] = struct{}{}
	}
	l.buf = append(l.buf[:0], st.Buffer...)
	l.stats = st.Stats
	return l, nil
}

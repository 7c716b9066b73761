package learner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/schemas"
)

// StateFormat is the format of the training states SaveState writes.
const StateFormat = "strata-learner-state/1"

// ErrState is returned (wrapped) for a training state that is not one or
// does not fit the learner it is restored into.
var ErrState = errors.New("unusable learner training state")

// Entries of a learner's training-state archive.
const (
	stateLearner = "learner.json"
	stateDQN     = "dqn.state"
	statePPO     = "ppo.state"
)

// maxStateBytes bounds one entry of a training state.
const maxStateBytes = 1 << 30

// savedState is learner.json.
type savedState struct {
	Format string          `json:"format"`
	Layers []schemas.Layer `json:"layers"`
	Stats  Stats           `json:"stats"`
}

// SaveState writes the learner's training state between runs — after a
// run's last interval was processed, before the next Begin — as an
// uncompressed tar archive: the DQN's and PPO's training states
// (dqn.Learner.SaveState, ppo.Learner.SaveState) and the counters. A
// learner restored from it (Restore) continues bit for bit: the next
// episodes write byte-identical checkpoints. It refuses while a run has
// transitions waiting for their interval's marker.
func (l *Learner) SaveState(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for layer, m := range l.acc {
		if len(m) > 0 {
			return fmt.Errorf("saving learner state: %w: %d intervals of %s's %s transitions are incomplete; save between runs", ErrState, len(m), l.run, layer)
		}
	}
	st := savedState{Format: StateFormat, Layers: l.cfg.Layers, Stats: l.statsLocked()}
	sj, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("saving learner state: %w", err)
	}
	entries := []nn.ArchiveEntry{{Name: stateLearner, Data: sj}}
	if l.dqn != nil {
		var b bytes.Buffer
		if err := l.dqn.SaveState(&b); err != nil {
			return fmt.Errorf("saving learner state: %w", err)
		}
		entries = append(entries, nn.ArchiveEntry{Name: stateDQN, Data: b.Bytes()})
	}
	if l.ppo != nil {
		var b bytes.Buffer
		if err := l.ppo.SaveState(&b); err != nil {
			return fmt.Errorf("saving learner state: %w", err)
		}
		entries = append(entries, nn.ArchiveEntry{Name: statePPO, Data: b.Bytes()})
	}
	if err := nn.WriteArchive(w, entries); err != nil {
		return fmt.Errorf("saving learner state: %w", err)
	}
	return nil
}

// Restore replaces the learner's algorithms and counters with a training
// state written by SaveState, before its next Begin. The state must train
// the same layers with the same configurations (a DQN or PPO
// configuration that differs, a feature set among them, is refused with
// ErrState naming it); on any error the learner is left as it was.
func (l *Learner) Restore(r io.Reader) error {
	fail := func(err error) error { return fmt.Errorf("restoring learner state: %w", err) }
	raw, err := nn.ReadArchive(r, []string{stateLearner, stateDQN, statePPO}, maxStateBytes)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrState, err))
	}
	var st savedState
	if err := json.Unmarshal(raw[stateLearner], &st); err != nil {
		return fail(fmt.Errorf("%w: %s: %w", ErrState, stateLearner, err))
	}
	if st.Format != StateFormat {
		return fail(fmt.Errorf("%w: format %q, want %q", ErrState, st.Format, StateFormat))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var d *dqn.Learner
	var p *ppo.Learner
	closeAll := func() {
		if d != nil {
			d.Close()
		}
		if p != nil {
			p.Close()
		}
	}
	if (raw[stateDQN] != nil) != (l.dqn != nil) || (raw[statePPO] != nil) != (l.ppo != nil) {
		return fail(fmt.Errorf("%w: the state trains %v, this learner %v", ErrState, st.Layers, l.cfg.Layers))
	}
	if raw[stateDQN] != nil {
		if d, err = dqn.LoadState(bytes.NewReader(raw[stateDQN])); err != nil {
			return fail(err)
		}
		if err := sameConfig("DQN", d.Config(), l.dqn.Config()); err != nil {
			closeAll()
			return fail(err)
		}
	}
	if raw[statePPO] != nil {
		if p, err = ppo.LoadState(bytes.NewReader(raw[statePPO])); err != nil {
			closeAll()
			return fail(err)
		}
		if err := sameConfig("PPO", p.Config(), l.ppo.Config()); err != nil {
			closeAll()
			return fail(err)
		}
	}
	if d != nil {
		l.dqn.Close()
		l.dqn = d
	}
	if p != nil {
		l.ppo.Close()
		l.ppo = p
	}
	s := st.Stats
	for _, m := range []*map[schemas.Layer]int64{&s.Transitions, &s.Markers, &s.Intervals, &s.Checkpoints} {
		if *m == nil {
			*m = map[schemas.Layer]int64{}
		}
	}
	if s.Rejected == nil {
		s.Rejected = map[string]int64{}
	}
	l.stats = s
	return nil
}

// sameConfig refuses a restored algorithm whose configuration (as JSON:
// networks, hyperparameters, feature set) differs from the learner's.
func sameConfig(what string, restored, want any) error {
	a, err := json.Marshal(restored)
	if err != nil {
		return err
	}
	b, err := json.Marshal(want)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%w: the state's %s configuration %s differs from this learner's %s", ErrState, what, a, b)
	}
	return nil
}

// statsLocked is Stats with l.mu held.
func (l *Learner) statsLocked() Stats {
	s := l.stats
	s.Transitions, s.Markers, s.Intervals = maps.Clone(s.Transitions), maps.Clone(s.Markers), maps.Clone(s.Intervals)
	s.Rejected, s.Checkpoints = maps.Clone(s.Rejected), maps.Clone(s.Checkpoints)
	if l.dqn != nil {
		s.DQN = l.dqn.Stats()
	}
	if l.ppo != nil {
		s.PPO = l.ppo.Stats()
	}
	return s
}

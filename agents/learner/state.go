package learner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
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
	// Run is the run begun last, absent in a state saved before any
	// Begin (and in states written before runs were saved).
	Run *savedRun `json:"run,omitempty"`
}

// savedRun is the run in progress when a state was saved: enough to go on
// handling its transitions after Restore and Resume.
type savedRun struct {
	ID string `json:"id"`
	// Episode is the DQN's episode (it sets ε; not in the DQN's state).
	Episode int `json:"episode"`
	// Next is the next interval to process per layer (absent until the
	// layer's first marker), Done the intervals processed per layer.
	Next map[schemas.Layer]int64 `json:"next,omitempty"`
	Done map[schemas.Layer]int64 `json:"done,omitempty"`
	// DQNVersion is the last DQN version published in the run.
	DQNVersion string `json:"dqn_version,omitempty"`
	// Pending are the intervals not yet processed, in layer then interval
	// order.
	Pending []savedInterval `json:"pending,omitempty"`
}

// savedInterval is one interval's transitions received so far.
type savedInterval struct {
	Layer schemas.Layer `json:"layer"`
	Tick  int64         `json:"tick"`
	// Want is the marker's count, −1 before the marker arrived.
	Want int64 `json:"want"`
	// Transitions are the transitions in the order received, each a
	// serialised stratapb.Transition.
	Transitions [][]byte `json:"transitions,omitempty"`
}

// SaveState writes the learner's training state as an uncompressed tar
// archive: the DQN's and PPO's training states (dqn.Learner.SaveState,
// ppo.Learner.SaveState), the counters and the run in progress — the
// intervals processed and the transitions received for intervals not yet
// processed. It can be called at any point between two Handle calls: a
// learner restored from it (Restore, then Resume for the same run, or
// Begin for the next) and handed the transitions that followed continues
// bit for bit, publishing byte-identical checkpoints.
func (l *Learner) SaveState(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := savedState{Format: StateFormat, Layers: l.cfg.Layers, Stats: l.statsLocked()}
	if l.run != "" {
		r, err := l.savedRunLocked()
		if err != nil {
			return fmt.Errorf("saving learner state: %w", err)
		}
		st.Run = r
	}
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

// Restore replaces the learner's algorithms, counters and run in progress
// with a training state written by SaveState; then Resume continues the
// state's run, or Begin starts the next (dropping what the state held of
// its run). Until one of them the learner publishes nothing. The state must train
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
	var run *restoredRun
	if st.Run != nil {
		if run, err = st.Run.restore(); err != nil {
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
	// The store is the caller's to give again (Resume or Begin).
	l.store = nil
	l.run, l.acc, l.next, l.done, l.dqnVersion = "", nil, nil, nil, ""
	if run != nil {
		l.run, l.acc, l.next, l.done, l.dqnVersion = run.id, run.acc, run.next, run.done, run.dqnVersion
		if l.dqn != nil {
			l.dqn.SetEpisode(run.episode)
		}
	}
	return nil
}

// Resume continues run runID, whose mid-run training state was just
// restored (Restore), publishing to store. Unlike Begin it publishes
// nothing and keeps what the state holds of the run: the transitions to
// Handle next are those that followed the state on the transitions topic.
// A state of another run, or of none, is refused with ErrState.
func (l *Learner) Resume(runID string, store Store) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.run != runID || runID == "" {
		return fmt.Errorf("resuming run %q: %w: the restored state is of run %q", runID, ErrState, l.run)
	}
	l.store = store
	return nil
}

// RunPosition is where a learner stands in its current run.
type RunPosition struct {
	// Run is the run's id ("" before any Begin or restored run).
	Run string
	// Done counts the intervals processed per layer; Next is the next
	// interval to process per layer (absent before the layer's first
	// marker).
	Done, Next map[schemas.Layer]int64
	// Pending counts the transitions received for intervals not yet
	// processed, per layer.
	Pending map[schemas.Layer]int
	// Versions are the current model versions per layer trained.
	Versions map[schemas.Layer]string
}

// Position returns where the learner stands in its current run.
func (l *Learner) Position() RunPosition {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := RunPosition{Run: l.run, Done: maps.Clone(l.done), Next: maps.Clone(l.next), Pending: map[schemas.Layer]int{}, Versions: map[schemas.Layer]string{}}
	for layer, m := range l.acc {
		for _, a := range m {
			p.Pending[layer] += len(a.trs)
		}
	}
	if l.dqn != nil {
		p.Versions[schemas.Strategic] = l.dqn.Version()
	}
	if l.ppo != nil {
		p.Versions[schemas.Tactical] = l.ppo.Version()
	}
	return p
}

// savedRunLocked is the run in progress as savedRun, with l.mu held.
func (l *Learner) savedRunLocked() (*savedRun, error) {
	r := &savedRun{ID: l.run, Next: maps.Clone(l.next), Done: maps.Clone(l.done), DQNVersion: l.dqnVersion}
	if l.dqn != nil {
		r.Episode = l.dqn.Episode()
	}
	for _, layer := range slices.Sorted(maps.Keys(l.acc)) {
		m := l.acc[layer]
		for _, tick := range slices.Sorted(maps.Keys(m)) {
			a := m[tick]
			si := savedInterval{Layer: layer, Tick: tick, Want: a.want}
			for _, tr := range a.trs {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tr)
				if err != nil {
					return nil, fmt.Errorf("encoding a pending %s transition of interval %d: %w", layer, tick, err)
				}
				si.Transitions = append(si.Transitions, b)
			}
			r.Pending = append(r.Pending, si)
		}
	}
	return r, nil
}

// restoredRun is a savedRun decoded into the learner's own fields.
type restoredRun struct {
	id         string
	episode    int
	next, done map[schemas.Layer]int64
	acc        map[schemas.Layer]map[int64]*intervalAcc
	dqnVersion string
}

// restore decodes r.
func (r *savedRun) restore() (*restoredRun, error) {
	out := &restoredRun{id: r.ID, episode: r.Episode, next: maps.Clone(r.Next), done: maps.Clone(r.Done),
		acc: map[schemas.Layer]map[int64]*intervalAcc{}, dqnVersion: r.DQNVersion}
	if out.next == nil {
		out.next = map[schemas.Layer]int64{}
	}
	if out.done == nil {
		out.done = map[schemas.Layer]int64{}
	}
	for _, si := range r.Pending {
		m := out.acc[si.Layer]
		if m == nil {
			m = map[int64]*intervalAcc{}
			out.acc[si.Layer] = m
		}
		if m[si.Tick] != nil {
			return nil, fmt.Errorf("%w: interval %d of %s is pending twice", ErrState, si.Tick, si.Layer)
		}
		a := &intervalAcc{want: si.Want}
		for k, b := range si.Transitions {
			tr := &stratapb.Transition{}
			if err := proto.Unmarshal(b, tr); err != nil {
				return nil, fmt.Errorf("%w: pending %s transition %d of interval %d: %w", ErrState, si.Layer, k, si.Tick, err)
			}
			a.trs = append(a.trs, tr)
		}
		m[si.Tick] = a
	}
	return out, nil
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

package dqn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/strata-rl/strata/agents/nn"
)

// StateFormat is the format of the training states SaveState writes.
const StateFormat = "strata-dqn-state/1"

// Entries of a training-state archive.
const (
	stateCheckpoint = "checkpoint.tar"
	stateOptimizer  = "online.optimizer"
	stateBuffer     = "buffer.bin"
	stateLearner    = "learner.json"
)

// maxStateBytes bounds one entry of a training state: the replay buffer
// of 100,000 transitions of 14 values is about 12 MB.
const maxStateBytes = 1 << 30

// learnerState is learner.json: what the checkpoint leaves out.
type learnerState struct {
	Format string `json:"format"`
	// Credit is the fractional gradient steps carried to the next
	// transition; FitRows the states kept to fit the scaler.
	Credit  float64   `json:"credit"`
	FitRows []float32 `json:"fit_rows,omitempty"`
	Stats   Stats     `json:"stats"`
	// The replay buffer's shape and sampling generator (its rows are
	// buffer.bin).
	BufferLen   int    `json:"buffer_len"`
	BufferPos   int    `json:"buffer_pos"`
	BufferAdded uint64 `json:"buffer_added"`
	BufferRNG   []byte `json:"buffer_rng"`
}

// SaveState writes everything the learner needs to continue training bit
// for bit as an uncompressed tar archive: its checkpoint (Save), the online
// network's optimiser state (Adam moments, dropout generator), the replay
// buffer with its sampling generator, the rows kept to fit the scaler, the
// fractional-step credit and the counters. LoadState reads it; a learner
// restored from it and one never stopped, fed the same transitions, write
// byte-identical checkpoints.
func (l *Learner) SaveState(w io.Writer) error {
	fail := func(err error) error { return fmt.Errorf("saving DQN training state: %w", err) }
	var ckpt, opt bytes.Buffer
	if err := l.Save(&ckpt); err != nil {
		return fail(err)
	}
	if err := l.online.SaveOptimizer(&opt); err != nil {
		return fail(err)
	}
	rng, err := l.buf.src.MarshalBinary()
	if err != nil {
		return fail(err)
	}
	b := l.buf
	st := learnerState{Format: StateFormat, Credit: l.credit, FitRows: l.fitRows, Stats: l.stats,
		BufferLen: b.Len(), BufferPos: b.pos, BufferAdded: b.added, BufferRNG: rng}
	sj, err := json.Marshal(st)
	if err != nil {
		return fail(err)
	}
	var rows bytes.Buffer
	for _, v := range []any{b.states, b.next, b.actions, b.rewards, b.dones} {
		if err := binary.Write(&rows, binary.LittleEndian, v); err != nil {
			return fail(err)
		}
	}
	return nn.WriteArchive(w, []nn.ArchiveEntry{{Name: stateLearner, Data: sj}, {Name: stateCheckpoint, Data: ckpt.Bytes()},
		{Name: stateOptimizer, Data: opt.Bytes()}, {Name: stateBuffer, Data: rows.Bytes()}})
}

// LoadState reads a training state written by SaveState and returns the
// learner it describes. A state that is not one, of another format, or
// whose parts disagree is refused with ErrCheckpoint (wrapped) and what was
// wrong.
func LoadState(r io.Reader) (*Learner, error) {
	fail := func(err error) (*Learner, error) { return nil, fmt.Errorf("loading DQN training state: %w", err) }
	var st learnerState
	raw, err := nn.ReadStateArchive(r, []string{stateLearner, stateCheckpoint, stateOptimizer, stateBuffer}, maxStateBytes, StateFormat, &st, ErrCheckpoint)
	if err != nil {
		return fail(err)
	}
	l, err := LoadLearner(bytes.NewReader(raw[stateCheckpoint]))
	if err != nil {
		return fail(err)
	}
	if err := l.restore(st, raw[stateOptimizer], raw[stateBuffer]); err != nil {
		l.Close()
		return fail(err)
	}
	return l, nil
}

// restore puts the state's optimiser, buffer and counters into l, fresh
// from its checkpoint.
func (l *Learner) restore(st learnerState, opt, rows []byte) error {
	if err := l.online.LoadOptimizer(bytes.NewReader(opt)); err != nil {
		return err
	}
	b, d := l.buf, l.buf.dim
	n := st.BufferLen
	if n < 0 || n > b.capacity || st.BufferPos < 0 || st.BufferPos >= max(b.capacity, 1) || (n < b.capacity && st.BufferPos != 0) {
		return fmt.Errorf("%w: buffer of %d rows at %d, capacity %d", ErrCheckpoint, n, st.BufferPos, b.capacity)
	}
	// n is compared with what rows holds before it is multiplied: with a
	// corrupt capacity the product could wrap to rows' length.
	if w := 8*d + 4 + 4 + 1; n > len(rows)/w || len(rows) != n*w {
		return fmt.Errorf("%w: %s holds %d bytes, %d rows of width %d need %d", ErrCheckpoint, stateBuffer, len(rows), n, d, n*w)
	}
	b.states, b.next = make([]float32, n*d), make([]float32, n*d)
	b.actions, b.rewards, b.dones = make([]int32, n), make([]float32, n), make([]bool, n)
	rd := bytes.NewReader(rows)
	for _, v := range []any{b.states, b.next, b.actions, b.rewards, b.dones} {
		if err := binary.Read(rd, binary.LittleEndian, v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCheckpoint, stateBuffer, err)
		}
	}
	for _, x := range [][]float32{b.states, b.next, b.rewards} {
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: %s holds non-finite values", ErrCheckpoint, stateBuffer)
			}
		}
	}
	if err := b.src.UnmarshalBinary(st.BufferRNG); err != nil {
		return fmt.Errorf("%w: buffer generator: %w", ErrCheckpoint, err)
	}
	b.pos, b.added = st.BufferPos, st.BufferAdded
	if st.Stats.ScalerFitted != (l.online.Scaler != nil) {
		return errors.Join(ErrCheckpoint, fmt.Errorf("the counters say the scaler is fitted: %v, the network has one: %v", st.Stats.ScalerFitted, l.online.Scaler != nil))
	}
	l.credit, l.fitRows, l.stats = st.Credit, st.FitRows, st.Stats
	if !l.stats.ScalerFitted && l.fitRows == nil {
		l.fitRows = make([]float32, 0, min(l.cfg.ScalerFit, 1<<16)*l.cfg.Net.Inputs())
	}
	return nil
}

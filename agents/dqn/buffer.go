package dqn

import (
	"fmt"
	"math/rand/v2"

	"github.com/strata-rl/strata/schemas"
)

// Transition is one strategic step of one app: the raw (unscaled) state
// vector of day d, the provider chosen, the reward observed, the raw state
// of day d+1 and whether the episode ended there.
type Transition struct {
	// State and Next hold the network's input width of raw values each
	// (schemas.StrategicRow.Vector for the strategic layer).
	State []float32
	// Action is the index of the action taken (0 aws, 1 azure, 2 gcp).
	Action int
	// Reward is the reward of the step.
	Reward float32
	// Next is the state reached; ignored in targets when Done is set.
	Next []float32
	// Done marks the last transition of an episode (no bootstrap).
	Done bool
}

// Batch is a sampled minibatch in flat, row-major slices.
type Batch struct {
	// States and Next hold Size rows of Dim values each.
	States, Next []float32
	Actions      []int
	Rewards      []float32
	Dones        []bool
}

// Size returns the number of transitions in the batch.
func (b *Batch) Size() int { return len(b.Actions) }

// Buffer is the replay buffer: a ring of at most Cap transitions (the
// oldest overwritten first) with seeded uniform sampling with
// replacement. Storage grows with use up to the capacity. It is not safe
// for concurrent use.
type Buffer struct {
	dim, capacity int
	states, next  []float32
	actions       []int32
	rewards       []float32
	dones         []bool
	// pos is the slot the next transition is written to once full.
	pos   int
	added uint64
	rng   *rand.Rand
	src   *rand.PCG // rng's source, whose state SaveState keeps
	// zero is the stored Next of a terminal transition given without one.
	zero []float32
}

// NewBuffer returns an empty buffer for transitions of dim-wide states,
// holding at most capacity of them and sampling with a PCG generator
// seeded from seed.
func NewBuffer(capacity, dim int, seed uint64) (*Buffer, error) {
	if capacity < 1 || dim < 1 {
		return nil, fmt.Errorf("creating replay buffer: %w: capacity %d, state width %d", ErrConfig, capacity, dim)
	}
	src := rand.NewPCG(seed, 0x5eed_d9a0)
	return &Buffer{dim: dim, capacity: capacity, rng: rand.New(src), src: src}, nil
}

// Len returns the number of transitions held.
func (b *Buffer) Len() int { return len(b.actions) }

// Cap returns the capacity.
func (b *Buffer) Cap() int { return b.capacity }

// Added returns the number of transitions ever added, overwritten ones
// included.
func (b *Buffer) Added() uint64 { return b.added }

// Add stores a copy of t, overwriting the oldest transition when the
// buffer is full. A transition of the wrong width is an ErrTransition
// error and one holding NaN or ±Inf an ErrNonFinite error; neither is
// stored. A terminal transition (Done) may leave Next empty: it is
// stored as zeros (targets ignore it). The action is not checked against
// a network here; the Learner does that.
func (b *Buffer) Add(t Transition) error {
	if t.Done && len(t.Next) == 0 {
		t.Next = b.zeros()
	}
	if len(t.State) != b.dim || len(t.Next) != b.dim || t.Action < 0 {
		return fmt.Errorf("adding transition: %w: states of %d and %d values (want %d), action %d", ErrTransition, len(t.State), len(t.Next), b.dim, t.Action)
	}
	if !schemas.Finite(t.State) || !schemas.Finite(t.Next) || !schemas.Finite([]float32{t.Reward}) {
		return fmt.Errorf("adding transition: %w", ErrNonFinite)
	}
	b.added++
	if len(b.actions) < b.capacity {
		b.states = append(b.states, t.State...)
		b.next = append(b.next, t.Next...)
		b.actions = append(b.actions, int32(t.Action))
		b.rewards = append(b.rewards, t.Reward)
		b.dones = append(b.dones, t.Done)
		return nil
	}
	i := b.pos
	copy(b.states[i*b.dim:(i+1)*b.dim], t.State)
	copy(b.next[i*b.dim:(i+1)*b.dim], t.Next)
	b.actions[i], b.rewards[i], b.dones[i] = int32(t.Action), t.Reward, t.Done
	b.pos = (b.pos + 1) % b.capacity
	return nil
}

// zeros returns a shared all-zero state (never written to: Add copies).
func (b *Buffer) zeros() []float32 {
	if len(b.zero) != b.dim {
		b.zero = make([]float32, b.dim)
	}
	return b.zero
}

// At returns a copy of the i-th oldest transition held (0 ≤ i < Len).
func (b *Buffer) At(i int) Transition {
	if len(b.actions) == b.capacity {
		i = (b.pos + i) % b.capacity
	}
	return Transition{
		State:  append([]float32(nil), b.states[i*b.dim:(i+1)*b.dim]...),
		Next:   append([]float32(nil), b.next[i*b.dim:(i+1)*b.dim]...),
		Action: int(b.actions[i]), Reward: b.rewards[i], Done: b.dones[i],
	}
}

// Sample draws n transitions uniformly with replacement into dst,
// reusing its slices, and returns it. The buffer must not be empty.
func (b *Buffer) Sample(dst *Batch, n int) (*Batch, error) {
	if len(b.actions) == 0 || n < 1 {
		return nil, fmt.Errorf("sampling %d transitions from a buffer of %d: %w", n, len(b.actions), ErrNotReady)
	}
	if dst == nil {
		dst = new(Batch)
	}
	d := b.dim
	dst.States = resize(dst.States, n*d)
	dst.Next = resize(dst.Next, n*d)
	dst.Actions = resize(dst.Actions, n)
	dst.Rewards = resize(dst.Rewards, n)
	dst.Dones = resize(dst.Dones, n)
	for k := range n {
		i := b.rng.IntN(len(b.actions))
		copy(dst.States[k*d:(k+1)*d], b.states[i*d:(i+1)*d])
		copy(dst.Next[k*d:(k+1)*d], b.next[i*d:(i+1)*d])
		dst.Actions[k] = int(b.actions[i])
		dst.Rewards[k] = b.rewards[i]
		dst.Dones[k] = b.dones[i]
	}
	return dst, nil
}

// resize returns s with length n, reusing its storage when it can.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

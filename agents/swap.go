package agents

import (
	"context"
	"sync"

	"github.com/strata-rl/strata/schemas"
)

// Swappable serves a policy that can be replaced while it runs (a model
// version promoted or rolled back): Swap hands over the next policy, and
// Decide switches to it at the start of the next batch, so a switch falls
// between two ticks and never inside one. Name and Version are those of
// the policy that decided the latest batch (the current one before any).
// Decide is not safe for concurrent use; Swap, Name and Version are.
type Swappable struct {
	mu       sync.Mutex
	cur      Policy
	next     Policy
	switches int
}

// NewSwappable returns p, served until a Swap.
func NewSwappable(p Policy) *Swappable { return &Swappable{cur: p} }

// Swap makes p the policy that decides from the next batch on; a policy
// swapped in before that batch replaces it.
func (s *Swappable) Swap(p Policy) {
	s.mu.Lock()
	s.next = p
	s.mu.Unlock()
}

// Current returns the policy that decided the latest batch.
func (s *Swappable) Current() Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Switches returns how many times Decide switched to a swapped-in policy.
func (s *Swappable) Switches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.switches
}

// Name returns the current policy's name.
func (s *Swappable) Name() string { return s.Current().Name() }

// Version returns the current policy's version.
func (s *Swappable) Version() string { return s.Current().Version() }

// Layer returns the current policy's layer.
func (s *Swappable) Layer() schemas.Layer { return s.Current().Layer() }

// Decide switches to the policy swapped in since the last batch, if any,
// then decides the batch with it.
func (s *Swappable) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	s.mu.Lock()
	if s.next != nil {
		s.cur, s.next = s.next, nil
		s.switches++
	}
	p := s.cur
	s.mu.Unlock()
	return p.Decide(ctx, state, out)
}

package notify

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by Until when the component it waits on stopped
// before the condition held.
var ErrStopped = errors.New("stopped before the condition held")

// Signal wakes the goroutines waiting for a change. The zero value is ready
// to use; a Signal must not be copied after first use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced by every Notify
}

// Changed returns a channel that is closed at the next Notify.
func (s *Signal) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every goroutine waiting on a channel Changed returned.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Until waits until cond holds. changed returns the channel of the Signal
// that the state cond reads notifies (a component's Changed method); it is
// taken before each test of cond, so a change between the test and the
// wait is not missed. Until returns ctx's error when ctx ends first, and
// an error wrapping ErrStopped when stopped (nil for never) is closed
// first.
func Until(ctx context.Context, changed func() <-chan struct{}, cond func() bool, stopped <-chan struct{}) error {
	for {
		ch := changed()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			if cond() {
				return nil
			}
			return ErrStopped
		case <-ch:
		}
	}
}

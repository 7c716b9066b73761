package producers

import (
	"context"
	"sync"
	"sync/atomic"
)

// Lead holds a replay at most a fixed lead of trace time ahead of a
// consumer's progress: flow control for a closed loop, whose twin reads
// the invocations far slower than a replay at full speed writes them, so
// that the broker does not hold the whole trace. The consumer reports its
// progress with Advance; ReplayConfig.Gate is Lead.Wait. Holding the
// replay changes only when records are written, never what is written.
type Lead struct {
	leadUS int64
	// doneUS is read without the lock on every record (Wait's fast path)
	// and written under it.
	doneUS atomic.Int64

	mu    sync.Mutex
	moved chan struct{} // closed and replaced by every Advance
}

// NewLead returns a Lead that lets records start up to leadUS after the
// consumer's progress (0 before the first Advance).
func NewLead(leadUS int64) *Lead {
	return &Lead{leadUS: leadUS, moved: make(chan struct{})}
}

// Advance reports that the consumer is done with trace time before doneUS.
func (l *Lead) Advance(doneUS int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if doneUS <= l.doneUS.Load() {
		return
	}
	l.doneUS.Store(doneUS)
	close(l.moved)
	l.moved = make(chan struct{})
}

// Wait blocks until a record starting at startUS is within the lead of the
// consumer's progress, or ctx is done.
func (l *Lead) Wait(ctx context.Context, startUS int64) error {
	for {
		if startUS < l.doneUS.Load()+l.leadUS {
			return nil
		}
		l.mu.Lock()
		// Read again under the lock: an Advance between the check and
		// taking moved would otherwise be missed.
		ok, moved := startUS < l.doneUS.Load()+l.leadUS, l.moved
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

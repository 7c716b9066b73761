package producers

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/strata-rl/strata/infra/notify"
)

// Lead holds a replay at most a fixed lead of trace time ahead of a
// consumer's progress: flow control for a closed loop, whose twin reads
// the invocations far slower than a replay at full speed writes them, so
// that the broker does not hold the whole trace. The consumer reports its
// progress with Advance; ReplayConfig.Gate is Lead.Wait. Holding the
// replay changes only when records are written, never what is written.
type Lead struct {
	leadUS int64
	// doneUS is read without a lock on every record (Wait's fast path).
	doneUS atomic.Int64
	// mu orders Advances; moved wakes the waiting replay after each.
	mu    sync.Mutex
	moved notify.Signal
}

// NewLead returns a Lead that lets records start up to leadUS after the
// consumer's progress (0 before the first Advance).
func NewLead(leadUS int64) *Lead {
	return &Lead{leadUS: leadUS}
}

// Advance reports that the consumer is done with trace time before doneUS.
func (l *Lead) Advance(doneUS int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if doneUS <= l.doneUS.Load() {
		return
	}
	l.doneUS.Store(doneUS)
	l.moved.Notify()
}

// Wait blocks until a record starting at startUS is within the lead of the
// consumer's progress, or ctx is done.
func (l *Lead) Wait(ctx context.Context, startUS int64) error {
	within := func() bool { return startUS < l.doneUS.Load()+l.leadUS }
	if within() {
		return nil
	}
	return notify.Until(ctx, l.moved.Changed, within, nil)
}

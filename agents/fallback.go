package agents

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/strata-rl/strata/schemas"
)

// Fallback serves a layer's policy with a named fallback beside it: a
// batch the primary fails on is decided by the fallback instead, and while
// the fallback is forced (the operator's choice, SetForced) the fallback
// decides every batch. Both see every state batch, whichever one's
// decisions are used, so that each keeps the history it decides from
// (idle-time histograms, moving windows) and a switch in either direction
// decides as a policy that saw the whole run would. Name and Version say
// who decided the latest batch, as the worker stamps them on its rows.
//
// Decide is not safe for concurrent use; SetForced and Counts are.
type Fallback struct {
	primary, fallback Policy
	forced            atomic.Bool
	// used is the policy whose decisions the latest batch carries.
	used atomic.Pointer[Policy]
	// failed counts batches the primary failed on; forcedN batches the
	// fallback decided because it was forced.
	failed, forcedN atomic.Uint64
	// lastErr is the primary's latest failure.
	lastErr atomic.Pointer[error]
}

// NewFallback returns primary served with fallback beside it; both must
// be of the same layer.
func NewFallback(primary, fallback Policy) (*Fallback, error) {
	if primary.Layer() != fallback.Layer() {
		return nil, fmt.Errorf("creating fallback %s for %s policy %s: it is a %s policy", fallback.Name(), primary.Layer(), primary.Name(), fallback.Layer())
	}
	f := &Fallback{primary: primary, fallback: fallback}
	f.used.Store(&f.primary)
	return f, nil
}

// Name returns the name of the policy whose decisions the latest batch
// carries (the primary's before any batch).
func (f *Fallback) Name() string { return (*f.used.Load()).Name() }

// Version returns that policy's version.
func (f *Fallback) Version() string { return (*f.used.Load()).Version() }

// Layer returns the layer both policies decide.
func (f *Fallback) Layer() schemas.Layer { return f.primary.Layer() }

// Primary returns the policy served while it decides and is not
// overridden.
func (f *Fallback) Primary() Policy { return f.primary }

// FallbackPolicy returns the fallback.
func (f *Fallback) FallbackPolicy() Policy { return f.fallback }

// SetForced makes the fallback decide every batch from the next one on
// (on), or the primary again (off).
func (f *Fallback) SetForced(on bool) { f.forced.Store(on) }

// Forced reports whether the fallback is forced.
func (f *Fallback) Forced() bool { return f.forced.Load() }

// FallbackCounts returns the batches the fallback decided so far: because
// the primary failed on them, and because it was forced.
func (f *Fallback) FallbackCounts() (failed, forced uint64) {
	return f.failed.Load(), f.forcedN.Load()
}

// LastError returns the primary's latest failure, nil if it never failed.
func (f *Fallback) LastError() error {
	if p := f.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Decide has both policies decide the batch and keeps the fallback's rows
// when the fallback is forced or the primary failed; it fails when the
// policy whose rows are needed fails, or when ctx is done.
func (f *Fallback) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	n0 := len(out.Rows)
	perr := f.primary.Decide(ctx, state, out)
	if ctx.Err() != nil && perr != nil {
		return perr
	}
	var alt schemas.DecisionBatch
	alt.Header = out.Header
	ferr := f.fallback.Decide(ctx, state, &alt)
	forced := f.forced.Load()
	if perr == nil && !forced {
		f.used.Store(&f.primary)
		return nil
	}
	if perr != nil {
		f.lastErr.Store(&perr)
	}
	if ferr != nil {
		if perr != nil {
			return fmt.Errorf("%s failed (%w), and so did its fallback %s: %w", f.primary.Name(), perr, f.fallback.Name(), ferr)
		}
		return fmt.Errorf("deciding with forced fallback %s: %w", f.fallback.Name(), ferr)
	}
	if forced {
		f.forcedN.Add(1)
	} else {
		f.failed.Add(1)
	}
	out.Rows = append(out.Rows[:n0], alt.Rows...)
	f.used.Store(&f.fallback)
	return nil
}

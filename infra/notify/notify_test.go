package notify_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/strata-rl/strata/infra/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestUntil counts to 1,000 on one goroutine while another waits for each
// of several targets: every wait ends once its target is reached, and
// none misses a change between its test and its wait.
func TestUntil(t *testing.T) {
	var (
		s notify.Signal
		n atomic.Int64
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			n.Add(1)
			s.Notify()
		}
	}()
	for _, target := range []int64{1, 10, 500, 1000} {
		if err := notify.Until(t.Context(), s.Changed, func() bool { return n.Load() >= target }, nil); err != nil {
			t.Fatalf("waiting for %d: %v", target, err)
		}
		if got := n.Load(); got < target {
			t.Fatalf("Until returned at %d, before %d", got, target)
		}
	}
	<-done
}

// TestUntilEnds checks the two ways a wait ends without its condition:
// the context, and the component stopping.
func TestUntilEnds(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool
		stop    bool
		lastly  bool // the condition holds once stopped
		wantErr error
	}{
		{"context cancelled", true, false, false, context.Canceled},
		{"stopped", false, true, false, notify.ErrStopped},
		{"stopped after the last change", false, true, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s notify.Signal
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stopped := make(chan struct{})
			var holds atomic.Bool
			if tc.cancel {
				cancel()
			}
			if tc.stop {
				holds.Store(tc.lastly)
				close(stopped)
			}
			err := notify.Until(ctx, s.Changed, holds.Load, stopped)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Until: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

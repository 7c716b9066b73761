package producers

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLeadHoldsUntilAdvanced checks that Wait lets a start within the lead
// of the consumer's progress through at once, holds one beyond it until
// Advance brings it within, and gives up when its context ends.
func TestLeadHoldsUntilAdvanced(t *testing.T) {
	l := NewLead(100)
	ctx := t.Context()
	if err := l.Wait(ctx, 99); err != nil {
		t.Fatalf("a start within the lead was held: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 250) }()
	l.Advance(100) // 250 is still beyond 100+100
	select {
	case err := <-done:
		t.Fatalf("released at progress 100: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	l.Advance(151)
	if err := <-done; err != nil {
		t.Fatalf("released with %v", err)
	}
	l.Advance(50) // progress never goes back
	if err := l.Wait(ctx, 250); err != nil {
		t.Fatalf("a start within the lead was held after a stale Advance: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Wait(cctx, 10_000); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a done context: %v, want context.Canceled", err)
	}
}

package decisions_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (Follow
// starts one ordered consumer per layer). One goroutine of nats.go is
// ignored, as in agents/learner and cmd/strata: JetStream's asynchronous
// publish context (natsbus.BatchPublisher) starts
// resetPendingAcksOnReconnect, which can stay blocked on a nil status
// channel after the connection closes; it holds nothing of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

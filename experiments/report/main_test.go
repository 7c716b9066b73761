package report

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the
// workflows start and stop embedded brokers, nats-servers and the roles.
// One goroutine of nats.go is ignored: JetStream's asynchronous-publish
// context (the model store's PutBytes uses one) starts
// resetPendingAcksOnReconnect, which can be left blocked on a nil status
// channel after the connection closes; it holds nothing of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

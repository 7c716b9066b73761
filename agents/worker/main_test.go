package worker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the act
// tests start and stop nats-servers, connections and act servers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

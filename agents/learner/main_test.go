package learner_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the tests
// start nats-servers, connections and key-value watches.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

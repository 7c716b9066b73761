package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// pipeline test starts and stops an embedded broker, a nats-server, a
// consumer group and a producer.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

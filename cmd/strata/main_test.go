package main

import (
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// sharedBin is the strata binary the integration tests build once
// (buildStrata); TestMain removes it when the tests end.
var sharedBin struct {
	once      sync.Once
	dir, path string
	out       []byte
	err       error
}

// TestMain fails the package if a test leaves goroutines behind: every
// pipeline test starts and stops an embedded broker, a nats-server, a
// consumer group and a producer. One goroutine of nats.go is ignored:
// JetStream's asynchronous-publish context (the model store's PutBytes
// uses one) starts resetPendingAcksOnReconnect, which can be left blocked
// on a nil status channel after the connection closes; it holds nothing of
// ours. The strata binary the integration tests built is removed at the
// end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
		goleak.Cleanup(func(code int) {
			if sharedBin.dir != "" {
				_ = os.RemoveAll(sharedBin.dir)
			}
			os.Exit(code)
		}))
}

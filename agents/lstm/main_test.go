package lstm

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines: gorgonia's tape machine runs each
// pass on a goroutine of its own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-rl/strata/consumers/twin"
)

// FaultEnv is the environment variable that names a fault point where the
// process kills itself with SIGKILL — POINT:TICK, POINT one of
// twin-tick, twin-scoring, twin-checkpoint-write — for the restart tests
// (docs/twin.md, "Checkpoint and restart"). Unset, nothing happens.
const FaultEnv = "STRATA_FAULT"

// FaultFromEnv returns the fault hook FaultEnv asks for, nil when it is
// unset: at the named point and tick it logs the fault and sends the
// process SIGKILL, so nothing of it runs on (no deferred flush, no
// graceful stop).
func FaultFromEnv(logger *slog.Logger) (func(point string, tick int64), error) {
	v := os.Getenv(FaultEnv)
	if v == "" {
		return nil, nil
	}
	point, at, ok := strings.Cut(v, ":")
	tick, err := strconv.ParseInt(at, 10, 64)
	switch {
	case !ok || err != nil || tick < 0:
		return nil, fmt.Errorf("%s=%q: want POINT:TICK, TICK a tick number", FaultEnv, v)
	case point != twin.FaultTick && point != twin.FaultScoring && point != twin.FaultCheckpointWrite:
		return nil, fmt.Errorf("%s=%q: the point must be %s, %s or %s", FaultEnv, v, twin.FaultTick, twin.FaultScoring, twin.FaultCheckpointWrite)
	}
	logger.Warn("fault injection armed", "point", point, "tick", tick)
	return func(p string, k int64) {
		if p != point || k != tick {
			return
		}
		logger.Error("fault injection: SIGKILL", "point", p, "tick", k)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}, nil
}

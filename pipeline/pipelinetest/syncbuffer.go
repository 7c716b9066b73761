package pipelinetest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: a process or a
// role writes its log into it while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// failureLogTail bounds how much of a FailureLog a failed test prints.
const failureLogTail = 64 << 10

// FailureLog returns an info-level logger that writes into a buffer and,
// when t has failed by the end of the test, prints the last 64 KiB of what
// it wrote: a flaky end-to-end test then shows what its roles were doing,
// and a passing one stays quiet.
func FailureLog(t testing.TB) *slog.Logger {
	t.Helper()
	var buf SyncBuffer
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		s := buf.String()
		if len(s) > failureLogTail {
			s = "…" + s[len(s)-failureLogTail:]
		}
		t.Logf("the roles' log:\n%s", s)
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

package ingest

import (
	"fmt"
	"os"
	"testing"
)

// TestDefaultWriter checks the writer id of an instance that names none:
// stable across restarts when it listens on a fixed port, the process's
// own otherwise.
func TestDefaultWriter(t *testing.T) {
	host, _ := os.Hostname()
	pid := fmt.Sprintf("%s/%d", host, os.Getpid())
	for _, c := range []struct{ listen, want string }{
		{"127.0.0.1:8080", host + "/127.0.0.1:8080"},
		{":9000", host + "/:9000"},
		{"127.0.0.1:0", pid},
		{"", pid},
		{"not an address", pid},
	} {
		if got := DefaultWriter(c.listen); got != c.want {
			t.Errorf("DefaultWriter(%q) = %q, want %q", c.listen, got, c.want)
		}
	}
}

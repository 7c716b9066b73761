package replay_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// TestIDIsTheHashOfItsFields holds Invocation.ID to its definition — the
// first 16 bytes, hex-encoded, of SHA-256 over app, 0, func, 0 and the
// big-endian end, duration and row — for names of every length around the
// ID's stack buffer, empty and non-ASCII names included.
func TestIDIsTheHashOfItsFields(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 64, 100, 115, 116, 200, 300} {
		in := replay.Invocation{App: strings.Repeat("é", n/2) + strings.Repeat("a", n%2), Func: strings.Repeat("f", n),
			EndUS: r.Int64() - 1<<62, DurationUS: r.Int64N(1 << 40), Row: r.Int64N(1 << 30)}
		var b []byte
		b = append(append(append(append(b, in.App...), 0), in.Func...), 0)
		b = binary.BigEndian.AppendUint64(b, uint64(in.EndUS))
		b = binary.BigEndian.AppendUint64(b, uint64(in.DurationUS))
		b = binary.BigEndian.AppendUint64(b, uint64(in.Row))
		sum := sha256.Sum256(b)
		if got, want := in.ID(), hex.EncodeToString(sum[:16]); got != want {
			t.Fatalf("names of %d bytes: ID %s, want %s", n, got, want)
		}
	}
}

// BenchmarkID measures Invocation.ID on the trace's 64-character names.
func BenchmarkID(b *testing.B) {
	in := replay.Invocation{App: strings.Repeat("a", 64), Func: strings.Repeat("f", 64), EndUS: 1 << 40, DurationUS: 1 << 20, Row: 12345}
	for b.Loop() {
		_ = in.ID()
	}
}

package replay

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Invocation is one row of a trace: one execution of function Func of
// application App that ended at EndUS after running for DurationUS.
type Invocation struct {
	// App is the application identifier (a hash in the Azure trace).
	App string
	// Func is the function identifier within the application.
	Func string
	// EndUS is the end timestamp in microseconds of trace time.
	EndUS int64
	// DurationUS is the execution duration in microseconds.
	DurationUS int64
	// Row is the 1-based data-row number of the invocation in its source
	// (the header line is not counted). Synthetic invocations are numbered in
	// the order the generator emits them, which is also the row number they
	// get when written to a file.
	Row int64
}

// StartUS returns the start of the invocation in microseconds of trace time:
// end minus duration. An invocation belongs to the tick in which it starts.
func (in Invocation) StartUS() int64 { return in.EndUS - in.DurationUS }

// ID returns the invocation's deterministic identifier: the first 16 bytes,
// hex-encoded, of SHA-256 over app, func, end, duration and row number. The
// same trace row therefore always gets the same id, whether it is read from a
// file or produced by the generator, so a retried or replayed record is
// recognisable downstream.
func (in Invocation) ID() string {
	// One buffer, hashed at once: names up to 100 bytes each (the trace's
	// are 64) stay on the stack.
	var buf [256]byte
	b := append(buf[:0], in.App...)
	b = append(b, 0)
	b = append(b, in.Func...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(in.EndUS))
	b = binary.BigEndian.AppendUint64(b, uint64(in.DurationUS))
	b = binary.BigEndian.AppendUint64(b, uint64(in.Row))
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// Source yields invocations one at a time. Next returns io.EOF after the last
// invocation. Implementations are not safe for concurrent use.
type Source interface {
	Next() (Invocation, error)
}

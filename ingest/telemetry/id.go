package telemetry

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// InvocationID returns the deterministic id of a live invocation that came
// without one: the first 16 bytes, as 32 lower-case hex digits, of SHA-256
// over
//
//	len(app) ‖ app ‖ len(fn) ‖ fn ‖ endUS ‖ durationUS
//
// where each length is a big-endian uint64 byte count and endUS and
// durationUS are big-endian two's-complement int64s. The length prefixes
// keep the encoding unambiguous ("a"+"bc" and "ab"+"c" hash differently), so
// the same invocation gets the same id in every request that reports it, and
// a retried request is recognisable downstream.
func InvocationID(app, fn string, endUS, durationUS int64) string {
	var d draft
	d.str[fApp], d.str[fFunc] = app, fn
	d.deriveID(endUS, durationUS)
	return string(d.id[:d.idLen])
}

// deriveID sets d's id to InvocationID of its app and func, endUS and
// durationUS, without allocating.
func (d *draft) deriveID(endUS, durationUS int64) {
	var stack [2*maxNameBytes + 32]byte
	b := stack[:0]
	b = binary.BigEndian.AppendUint64(b, uint64(d.textLen(fApp)))
	b = d.appendText(b, fApp)
	b = binary.BigEndian.AppendUint64(b, uint64(d.textLen(fFunc)))
	b = d.appendText(b, fFunc)
	b = binary.BigEndian.AppendUint64(b, uint64(endUS))
	b = binary.BigEndian.AppendUint64(b, uint64(durationUS))
	sum := sha256.Sum256(b)
	d.idLen = hex.Encode(d.id[:], sum[:16])
}

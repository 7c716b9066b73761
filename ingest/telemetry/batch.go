package telemetry

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Batch is one request's records as the ingest service writes them: each
// valid record validated and encoded, in one pass from the decoded fields,
// as the strata.v1 Observation that goes to Kafka (Source "live",
// Arrival.RunId RunID), back to back in one buffer; the rejected ones with
// their reasons. DecodeJSON and DecodeOTLP fill a Batch; a Batch can be
// reused for request after request, which keeps its buffers.
type Batch struct {
	// RunID is the Arrival.RunId of every record (empty: none).
	RunID string
	// Errors are the rejected records, in request order.
	Errors []RecordError
	// Total counts the records (OTLP: the invocation spans) in the
	// request: Total = Len() + len(Errors).
	Total int
	// Skipped counts OTLP spans that are not invocations (no FaaS
	// attributes and not a server span): neither accepted nor rejected.
	Skipped int

	buf  []byte // the valid records' encodings, back to back
	recs []encoded
}

// encoded locates one valid record in Batch.buf.
type encoded struct {
	index        int
	start, end   int64
	at, keyAt    int // the value's and the key's offsets in buf
	keyEnd, stop int // the offsets just past them
}

// Encoded is one valid record of a Batch.
type Encoded struct {
	// Index is the record's 0-based index in the request (OTLP: the
	// invocation span's index in request order).
	Index int
	// StartUS and EndUS are its start and end, Unix microseconds.
	StartUS, EndUS int64
	// Key is its Kafka key, the app, and Value the encoded Observation:
	// both slices of the batch's buffer, valid until the batch decodes
	// the next request.
	Key, Value []byte
}

// Len returns the number of valid records.
func (b *Batch) Len() int { return len(b.recs) }

// At returns valid record i, in request order.
func (b *Batch) At(i int) Encoded {
	r := &b.recs[i]
	return Encoded{Index: r.index, StartUS: r.start, EndUS: r.end,
		Key: b.buf[r.keyAt:r.keyEnd:r.keyEnd], Value: b.buf[r.at:r.stop:r.stop]}
}

// reset empties b for the next request, keeping its buffers.
func (b *Batch) reset() {
	// The rejected records' bytes, and those a caller appended.
	clear(b.Errors[:cap(b.Errors)])
	b.Errors, b.Total, b.Skipped = b.Errors[:0], 0, 0
	b.buf, b.recs = b.buf[:0], b.recs[:0]
}

// accept validates d, the draft of record index, and appends it to b, or
// returns why it is not valid. left is the number of records from this
// one on, at most: the first one makes room for all of them, so that a
// request of many records grows the buffers once.
func (b *Batch) accept(index int, d *draft, cat *cloud.Catalog, left int) *badField {
	if bad := d.validate(cat); bad != nil {
		return bad
	}
	if len(b.recs) == 0 {
		b.recs = slices.Grow(b.recs, max(left, 1))
		b.buf = slices.Grow(b.buf, max(left, 1)*encodedSizeHint)
	}
	b.Total++
	at := len(b.buf)
	var keyAt int
	b.buf, keyAt = d.appendObservation(b.buf, b.RunID)
	b.recs = append(b.recs, encoded{index: index, start: d.num[fStart], end: d.num[fEnd],
		at: at, keyAt: keyAt, keyEnd: keyAt + d.textLen(fApp), stop: len(b.buf)})
	return nil
}

// encodedSizeHint is the room made in the buffer for each record of a
// request: about the size of a record with an id, a provider and a few
// observations.
const encodedSizeHint = 160

// reject appends a rejected record to b. names maps bad's field to the
// encoding's name for it; raw is copied and truncated; left is as for
// accept.
func (b *Batch) reject(index, line int, bad *badField, names *[numFields]string, raw []byte, left int) {
	b.rejectOwned(index, line, bad, names, truncRaw(raw), left)
}

// rejectOwned is reject for a raw of at most maxRawBytes that b may keep.
func (b *Batch) rejectOwned(index, line int, bad *badField, names *[numFields]string, raw []byte, left int) {
	b.Total++
	e := RecordError{Index: index, Line: line, Field: bad.name, Reason: bad.reason, Raw: raw}
	if e.Field == "" && bad.f != fieldNone {
		e.Field = names[bad.f]
	}
	if b.Errors == nil {
		b.Errors = make([]RecordError, 0, max(left, 1))
	}
	b.Errors = append(b.Errors, e)
}

// result returns b as a Result, each valid record decoded from its
// encoding into an Observation of its own.
func (b *Batch) result() (Result, error) {
	r := Result{Errors: b.Errors, Total: b.Total, Skipped: b.Skipped}
	if len(b.recs) == 0 {
		return r, nil
	}
	r.Observations = make([]*stratapb.Observation, len(b.recs))
	r.Index = make([]int, len(b.recs))
	obs := make([]stratapb.Observation, len(b.recs))
	for i := range b.recs {
		e := b.At(i)
		if err := proto.Unmarshal(e.Value, &obs[i]); err != nil {
			return Result{}, fmt.Errorf("decoding telemetry: reading back record %d: %w", e.Index, err)
		}
		r.Observations[i], r.Index[i] = &obs[i], e.Index
	}
	return r, nil
}

// Field numbers of strata.v1 Observation and Arrival (events.proto).
const (
	obsArrival protowire.Number = iota + 1
	obsProvider
	obsRegion
	obsMemoryMB
	obsLatencyMS
	obsCPUBusyMS
	obsQueueWaitMS
	obsMemoryUsedMB
	obsColdStart
	obsWarmInstances
	obsTotalInstances
	obsCostUSD
	obsCarbonG
	obsFailed
	obsSource
)

const (
	arrInvocationID protowire.Number = iota + 1
	arrApp
	arrFunc
	arrStartUS
	arrEndUS
	arrDurationUS
	_ // row: 0 for live records, so never written
	arrRunID
)

// appendObservation appends to b the strata.v1 Observation of d, a
// validated draft, with Source "live" and Arrival.RunId runID, byte for
// byte as proto.Marshal encodes that message (fields in number order,
// proto3 zero values left out, optional fields written when present), and
// returns the offset in b of the app's bytes.
func (d *draft) appendObservation(b []byte, runID string) ([]byte, int) {
	idLen := d.idLen
	if n := d.textLen(fID); n > 0 {
		idLen = n
	}
	start, end, dur := d.num[fStart], d.num[fEnd], d.num[fDuration]
	n := sizeBytes(idLen) + sizeBytes(d.textLen(fApp)) + sizeBytes(d.textLen(fFunc)) +
		sizeVarint(start) + sizeVarint(end) + sizeVarint(dur) + sizeBytes(len(runID))
	b = append(b, tag(obsArrival, protowire.BytesType))
	b = appendVarint(b, uint64(n))
	if idLen > 0 {
		b = append(b, tag(arrInvocationID, protowire.BytesType))
		b = appendVarint(b, uint64(idLen))
		if d.textLen(fID) > 0 {
			b = d.appendText(b, fID)
		} else {
			b = append(b, d.id[:d.idLen]...)
		}
	}
	b = append(b, tag(arrApp, protowire.BytesType))
	b = appendVarint(b, uint64(d.textLen(fApp)))
	keyAt := len(b)
	b = d.appendText(b, fApp)
	b = append(b, tag(arrFunc, protowire.BytesType))
	b = appendVarint(b, uint64(d.textLen(fFunc)))
	b = d.appendText(b, fFunc)
	b = appendInt(b, arrStartUS, start)
	b = appendInt(b, arrEndUS, end)
	b = appendInt(b, arrDurationUS, dur)
	if runID != "" {
		b = append(b, tag(arrRunID, protowire.BytesType))
		b = appendVarint(b, uint64(len(runID)))
		b = append(b, runID...)
	}

	for _, s := range [...]struct {
		f   field
		num protowire.Number
	}{{fProvider, obsProvider}, {fRegion, obsRegion}} {
		if d.present(s.f) {
			b = append(b, tag(s.num, protowire.BytesType))
			b = appendVarint(b, uint64(len(d.str[s.f])))
			b = append(b, d.str[s.f]...)
		}
	}
	if d.has&optionalObservations == 0 {
		b = append(b, tag(obsSource, protowire.BytesType), byte(len(sourceLive)))
		return append(b, sourceLive...), keyAt
	}
	b = d.appendOptInt(b, fMemory, obsMemoryMB)
	b = d.appendOptFloat(b, fLatency, obsLatencyMS)
	b = d.appendOptFloat(b, fCPUBusy, obsCPUBusyMS)
	b = d.appendOptFloat(b, fQueueWait, obsQueueWaitMS)
	b = d.appendOptFloat(b, fMemoryUsed, obsMemoryUsedMB)
	b = d.appendOptBool(b, fColdStart, obsColdStart)
	b = d.appendOptInt(b, fWarm, obsWarmInstances)
	b = d.appendOptInt(b, fTotal, obsTotalInstances)
	b = d.appendOptFloat(b, fCost, obsCostUSD)
	b = d.appendOptFloat(b, fCarbon, obsCarbonG)
	b = d.appendOptBool(b, fFailed, obsFailed)
	b = append(b, tag(obsSource, protowire.BytesType), byte(len(sourceLive)))
	return append(b, sourceLive...), keyAt
}

// optionalObservations has the bits of the fields from memory_mb to
// failed: few records carry any of them.
const optionalObservations = 1<<(fFailed+1) - 1<<fMemory

// Every field number is below 16, so every tag is one byte.
const _ = uint(15 - obsSource)

// tag is the one-byte tag of field num (below 16) of wire type typ.
func tag(num protowire.Number, typ protowire.Type) byte { return byte(num)<<3 | byte(typ) }

// appendVarint is protowire.AppendVarint with the one-byte case inline:
// lengths, bools and small counts.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// sizeBytes is the size of a string field of n bytes in an Arrival (whose
// field numbers take one byte), 0 when n is 0 (proto3 leaves it out).
func sizeBytes(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

// sizeVarint is the size of an int64 field of value v in an Arrival, 0
// when v is 0.
func sizeVarint(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(v))
}

// appendInt appends an int64 field unless v is 0 (proto3 leaves it out).
func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, tag(num, protowire.VarintType))
	return appendVarint(b, uint64(v))
}

// appendOptInt appends optional int32 field f when present: as an int32,
// sign-extended to 64 bits as protobuf encodes int32.
func (d *draft) appendOptInt(b []byte, f field, num protowire.Number) []byte {
	if !d.present(f) {
		return b
	}
	b = append(b, tag(num, protowire.VarintType))
	return appendVarint(b, uint64(int64(int32(d.num[f]))))
}

// appendOptFloat appends optional double field f when present.
func (d *draft) appendOptFloat(b []byte, f field, num protowire.Number) []byte {
	if !d.present(f) {
		return b
	}
	b = append(b, tag(num, protowire.Fixed64Type))
	return protowire.AppendFixed64(b, math.Float64bits(d.flt[f]))
}

// appendOptBool appends optional bool field f when present.
func (d *draft) appendOptBool(b []byte, f field, num protowire.Number) []byte {
	if !d.present(f) {
		return b
	}
	b = append(b, tag(num, protowire.VarintType))
	return appendVarint(b, protowire.EncodeBool(d.bln[f]))
}

package schemas

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	flatbuffers "github.com/google/flatbuffers/go"
)

// The operational state batches and the decision batches — one per shard
// and tick each way — are written here without Arrow arrays: their
// columns go straight from the rows into the record batch's body, laid out
// as arrow-go's record encoder lays out unsliced arrays (each buffer padded
// to 8 bytes; a validity bitmap only where a column has nulls, and then of
// (n+7)/8 bytes, or zeros padded to 64 bytes where every value is null;
// offsets from 0), and the record batch message is built in a pooled
// flatbuffers builder as arrow-go builds it. TestIPCWriterMatchesArrow
// holds the bytes to ipc.Writer's. The tactical and strategic layers (one
// batch an hour or a day) and compressed batches keep the Arrow path.

// fbHeaderRecordBatch is MessageHeader.RecordBatch (format/Message.fbs).
const fbHeaderRecordBatch = 3

// ipcBody accumulates one record batch: its field nodes (length, null
// count), its buffers (offset, length) and its body.
type ipcBody struct {
	nodes []int64
	bufs  []int64
	body  []byte
	// Scratch of operationalBody: each row's steps on the wire, a column's
	// values and their validity.
	steps []int
	vals  []float64
	valid []bool
}

var ipcBodies = sync.Pool{New: func() any { return new(ipcBody) }}

func (b *ipcBody) reset() {
	b.nodes, b.bufs, b.body = b.nodes[:0], b.bufs[:0], b.body[:0]
}

// node adds a field node of n values, nulls of them null.
func (b *ipcBody) node(n, nulls int) {
	b.nodes = append(b.nodes, int64(n), int64(nulls))
}

// open starts a buffer at the body's end and returns its offset.
func (b *ipcBody) open() int { return len(b.body) }

// close ends the buffer started at off: records it and pads the body to 8
// bytes.
func (b *ipcBody) close(off int) {
	b.bufs = append(b.bufs, int64(off), int64(len(b.body)-off))
	for len(b.body)%ipcAlignment != 0 {
		b.body = append(b.body, 0)
	}
}

// empty adds an absent buffer (a validity bitmap of a column without
// nulls).
func (b *ipcBody) empty() { b.close(b.open()) }

// validity adds the validity bitmap of values valid of which nulls are
// null: none when nulls is 0, zeros padded to 64 bytes when all are.
func (b *ipcBody) validity(valid []bool, nulls int) {
	off, n := b.open(), len(valid)
	switch nulls {
	case 0:
	case n:
		b.body = append(b.body, make([]byte, ((n+7)/8+63)/64*64)...)
	default:
		b.body = append(b.body, make([]byte, (n+7)/8)...)
		bm := b.body[off:]
		for i, v := range valid {
			if v {
				bm[i/8] |= 1 << (i % 8)
			}
		}
	}
	b.close(off)
}

// nullable adds the node, validity and values of a nullable float64
// column (or list child) held in the scratch vals and valid.
func (b *ipcBody) nullable() {
	nulls := 0
	for _, v := range b.valid {
		if !v {
			nulls++
		}
	}
	b.node(len(b.vals), nulls)
	b.validity(b.valid, nulls)
	off := b.open()
	b.putFloat64s(b.vals)
	b.close(off)
}

func (b *ipcBody) putFloat64s(vs []float64) {
	if len(vs) == 0 {
		return
	}
	if nativeLittleEndian {
		b.body = append(b.body, unsafe.Slice((*byte)(unsafe.Pointer(&vs[0])), 8*len(vs))...)
		return
	}
	for _, v := range vs {
		b.body = binary.LittleEndian.AppendUint64(b.body, math.Float64bits(v))
	}
}

// nativeLittleEndian says the machine stores float64s as the Arrow format
// does, so a slice's bytes can be copied as they are.
var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// strings adds a string column of n values, s(i) each: node, no
// validity, offsets, data.
func (b *ipcBody) strings(n int, s func(i int) string) {
	b.node(n, 0)
	b.empty()
	off, body := b.open(), binary.LittleEndian.AppendUint32(b.body, 0)
	total := 0
	for i := range n {
		total += len(s(i))
		body = binary.LittleEndian.AppendUint32(body, uint32(total))
	}
	b.body = body
	b.close(off)
	off, body = b.open(), b.body
	for i := range n {
		body = append(body, s(i)...)
	}
	b.body = body
	b.close(off)
}

// ints adds an integer column of n values without nulls, width bytes
// (4 or 8) each.
func (b *ipcBody) ints(n, width int, v func(i int) int64) {
	b.node(n, 0)
	b.empty()
	off, body := b.open(), b.body
	for i := range n {
		if width == 4 {
			body = binary.LittleEndian.AppendUint32(body, uint32(v(i)))
		} else {
			body = binary.LittleEndian.AppendUint64(body, uint64(v(i)))
		}
	}
	b.body = body
	b.close(off)
}

// floats adds a float64 column (or list child) without nulls.
func (b *ipcBody) floats(vals []float64) {
	b.node(len(vals), 0)
	b.empty()
	off := b.open()
	b.putFloat64s(vals)
	b.close(off)
}

// values adds a nullable float64 column of n values, v(i) each.
func (b *ipcBody) values(n int, v func(i int) Value) {
	vals, valid := b.vals[:0], b.valid[:0]
	for i := range n {
		x := v(i)
		vals, valid = append(vals, x.V), append(valid, x.Valid)
	}
	b.vals, b.valid = vals, valid
	b.nullable()
}

// list adds the node, absent validity and offsets of a list column whose
// rows hold counts[i] values.
func (b *ipcBody) list(counts []int) {
	b.node(len(counts), 0)
	b.empty()
	off, body := b.open(), binary.LittleEndian.AppendUint32(b.body, 0)
	total := 0
	for _, c := range counts {
		total += c
		body = binary.LittleEndian.AppendUint32(body, uint32(total))
	}
	b.body = body
	b.close(off)
}

// message returns the framed record batch message of the body's nrows
// rows, as arrow-go frames it.
func (b *ipcBody) message(w *bytes.Buffer, nrows int) {
	fb := fbBuilders.Get().(*flatbuffers.Builder)
	defer fbBuilders.Put(fb)
	fb.Reset()
	nodes, bufs := pairsFB(fb, b.nodes), pairsFB(fb, b.bufs)
	fb.StartObject(5) // RecordBatch
	fb.PrependInt64Slot(0, int64(nrows), 0)
	fb.PrependUOffsetTSlot(1, nodes, 0)
	fb.PrependUOffsetTSlot(2, bufs, 0)
	rec := fb.EndObject()
	fb.StartObject(5) // Message
	fb.PrependInt16Slot(0, fbMetadataV5, 0)
	fb.PrependByteSlot(1, fbHeaderRecordBatch, 0)
	fb.PrependUOffsetTSlot(2, rec, 0)
	fb.PrependInt64Slot(3, int64(len(b.body)), 0)
	fb.PrependUOffsetTSlot(4, 0, 0)
	fb.Finish(fb.EndObject())
	frameMessage(w, fb.FinishedBytes())
	w.Write(b.body)
}

// pairsFB builds a vector of 16-byte structs of two int64s (FieldNode:
// length, null count; Buffer: offset, length) from vs, two values each.
func pairsFB(fb *flatbuffers.Builder, vs []int64) flatbuffers.UOffsetT {
	n := len(vs) / 2
	fb.StartVector(16, n, 8)
	for i := n - 1; i >= 0; i-- {
		fb.Prep(8, 16)
		fb.PrependInt64(vs[2*i+1])
		fb.PrependInt64(vs[2*i])
	}
	return fb.EndVector(n)
}

// frameMessage writes flatbuffer message msg as ipc.Writer frames it:
// continuation token, little-endian length of the padded flatbuffer, the
// flatbuffer, padding to 8 bytes.
func frameMessage(w *bytes.Buffer, msg []byte) {
	padded := len(msg) + 8
	if r := padded % ipcAlignment; r != 0 {
		padded += ipcAlignment - r
	}
	var head [8]byte
	binary.LittleEndian.PutUint32(head[:4], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(head[4:], uint32(padded-8))
	w.Write(head[:])
	w.Write(msg)
	var zeros [ipcAlignment]byte
	w.Write(zeros[:padded-8-len(msg)])
}

// writeStream returns the one-batch IPC stream of body's nrows rows under
// fields and schema metadata keys and vals.
func writeStream(fields []arrow.Field, keys, vals []string, body *ipcBody, nrows int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, len(body.body)+1024+64*len(fields)+16*len(body.bufs)))
	if err := writeSchemaMessage(buf, fields, keys, vals); err != nil {
		return nil, err
	}
	body.message(buf, nrows)
	buf.Write(ipcEOS[:])
	return buf.Bytes(), nil
}

// operationalBody writes the columns of rows (operationalFields) into b.
func operationalBody(b *ipcBody, rows []OperationalRow) {
	n := len(rows)
	b.strings(n, func(i int) string { return rows[i].App })
	b.strings(n, func(i int) string { return rows[i].Func })
	b.ints(n, 8, func(i int) int64 { return rows[i].Invocations })
	b.ints(n, 8, func(i int) int64 { return rows[i].LastStartUS })
	steps := b.steps[:0]
	for i := range rows {
		steps = append(steps, rows[i].wireSteps())
	}
	b.steps = steps
	seq := func(f func(r *OperationalRow) *[SeqLen]float64) {
		b.list(steps)
		vals := b.vals[:0]
		for i := range rows {
			vals = append(vals, f(&rows[i])[SeqLen-steps[i]:]...)
		}
		b.vals = vals
		b.floats(vals)
	}
	seqValues := func(f func(r *OperationalRow) *[SeqLen]Value) {
		b.list(steps)
		vals, valid := b.vals[:0], b.valid[:0]
		for i := range rows {
			for _, v := range f(&rows[i])[SeqLen-steps[i]:] {
				vals, valid = append(vals, v.V), append(valid, v.Valid)
			}
		}
		b.vals, b.valid = vals, valid
		b.nullable()
	}
	seq(func(r *OperationalRow) *[SeqLen]float64 { return &r.RequestRate })
	seqValues(func(r *OperationalRow) *[SeqLen]Value { return &r.MemoryUtil })
	seqValues(func(r *OperationalRow) *[SeqLen]Value { return &r.CPUUtil })
	seqValues(func(r *OperationalRow) *[SeqLen]Value { return &r.QueueDepth })
	seq(func(r *OperationalRow) *[SeqLen]float64 { return &r.HourSin })
	seq(func(r *OperationalRow) *[SeqLen]float64 { return &r.ConcurrencyMean })
	seq(func(r *OperationalRow) *[SeqLen]float64 { return &r.ConcurrencyPeak })
	// idle_times_s: a Left row carries none.
	counts, vals := steps[:0], b.vals[:0]
	for i := range rows {
		if r := &rows[i]; !r.Left {
			vals = append(vals, r.IdleTimesS...)
			counts = append(counts, len(r.IdleTimesS))
		} else {
			counts = append(counts, 0)
		}
	}
	b.steps, b.vals = counts, vals
	b.list(counts)
	b.floats(vals)
}

// decisionBody writes the columns of rows (decisionFields) into b.
func decisionBody(b *ipcBody, rows []DecisionRow) {
	n := len(rows)
	b.strings(n, func(i int) string { return rows[i].App })
	b.strings(n, func(i int) string { return rows[i].Func })
	b.ints(n, 4, func(i int) int64 { return int64(rows[i].Action) })
	b.strings(n, func(i int) string { return rows[i].Provider })
	b.strings(n, func(i int) string { return rows[i].Region })
	b.ints(n, 4, func(i int) int64 { return int64(rows[i].MemoryMB) })
	b.ints(n, 4, func(i int) int64 { return int64(rows[i].Prewarm) })
	b.ints(n, 8, func(i int) int64 { return rows[i].KeepWarmMS })
	b.strings(n, func(i int) string { return rows[i].Policy })
	b.strings(n, func(i int) string { return rows[i].PolicyVersion })
	b.values(n, func(i int) Value { return rows[i].LogProb })
	b.values(n, func(i int) Value { return rows[i].Value })
	b.values(n, func(i int) Value { return rows[i].Predicted })
}

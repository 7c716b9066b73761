package schemas

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	flatbuffers "github.com/google/flatbuffers/go"
)

// A batch is one Arrow IPC stream: the schema message, whose metadata
// carries the batch's header, one record batch message and the end-of-
// stream marker. arrow-go's ipc.Writer builds the schema message from an
// arrow.Schema through a fresh flatbuffers builder, a field visitor and a
// dictionary mapper each time — half of the writer's time on the loop's
// small batches, and a new arrow.Schema per batch besides. writeIPC
// builds the same bytes from the fields and the header directly, into a
// pooled builder (TestIPCWriterMatchesArrow compares them with
// ipc.Writer's byte for byte), and has arrow-go encode the record batch —
// for the tactical, strategic and compressed batches; the operational
// state batches and the decision batches have their record batch written
// from their rows too (ipcbody.go), and read back without arrow-go
// (ipcread.go).

// Values of the Arrow format's flatbuffers schema (format/Schema.fbs,
// format/Message.fbs) that writeIPC writes.
const (
	fbTypeInt           = 2
	fbTypeFloatingPoint = 3
	fbTypeUtf8          = 5
	fbTypeBool          = 6
	fbTypeList          = 12
	fbPrecisionDouble   = 2
	fbHeaderSchema      = 1
	fbMetadataV5        = 4
	ipcAlignment        = 8
)

// ipcEOS is the end-of-stream marker: a continuation token and a zero
// length.
var ipcEOS = [8]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}

var fbBuilders = sync.Pool{New: func() any { return flatbuffers.NewBuilder(4096) }}

// writeIPC returns the IPC stream of rec, whose columns are fields, under
// schema metadata keys and vals; size sizes the output, lz4 compresses the
// record batch's buffers.
func writeIPC(fields []arrow.Field, keys, vals []string, rec arrow.RecordBatch, size int, lz4 bool) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if err := writeSchemaMessage(buf, fields, keys, vals); err != nil {
		return nil, err
	}
	var opts []ipc.Option
	if lz4 {
		opts = append(opts, ipc.WithLZ4())
	}
	p, err := ipc.GetRecordBatchPayload(rec, opts...)
	if err != nil {
		return nil, fmt.Errorf("encoding the record batch: %w", err)
	}
	defer p.Release()
	if _, err := p.WritePayload(buf); err != nil {
		return nil, fmt.Errorf("writing the record batch: %w", err)
	}
	buf.Write(ipcEOS[:])
	return buf.Bytes(), nil
}

// writeSchemaMessage writes the schema message of fields with metadata
// keys and vals, framed as ipc.Writer frames it: continuation token,
// little-endian length of the padded flatbuffer, the flatbuffer, padding
// to 8 bytes.
func writeSchemaMessage(w *bytes.Buffer, fields []arrow.Field, keys, vals []string) error {
	b := fbBuilders.Get().(*flatbuffers.Builder)
	defer fbBuilders.Put(b)
	b.Reset()
	fieldsVec, err := fieldsFB(b, fields)
	if err != nil {
		return err
	}
	meta := metadataFB(b, keys, vals)
	b.StartObject(4)            // Schema
	b.PrependInt16Slot(0, 0, 0) // endianness: little
	b.PrependUOffsetTSlot(1, fieldsVec, 0)
	b.PrependUOffsetTSlot(2, meta, 0)
	schema := b.EndObject()
	// The message: no custom metadata of its own.
	b.StartObject(5)
	b.PrependInt16Slot(0, fbMetadataV5, 0)
	b.PrependByteSlot(1, fbHeaderSchema, 0)
	b.PrependUOffsetTSlot(2, schema, 0)
	b.PrependInt64Slot(3, 0, 0) // body length
	b.PrependUOffsetTSlot(4, 0, 0)
	b.Finish(b.EndObject())
	frameMessage(w, b.FinishedBytes())
	return nil
}

// fieldsFB builds the vector of fields, first in a fresh builder: a
// schema message's fields are the tail of its flatbuffer (readFast relies
// on it).
func fieldsFB(b *flatbuffers.Builder, fields []arrow.Field) (flatbuffers.UOffsetT, error) {
	var offs [32]flatbuffers.UOffsetT
	fs := offs[:0]
	for _, f := range fields {
		off, err := fieldFB(b, f)
		if err != nil {
			return 0, err
		}
		fs = append(fs, off)
	}
	b.StartVector(4, len(fs), 4)
	for i := len(fs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(fs[i])
	}
	return b.EndVector(len(fs)), nil
}

// metadataFB builds a KeyValue vector of keys and vals (0 when empty).
func metadataFB(b *flatbuffers.Builder, keys, vals []string) flatbuffers.UOffsetT {
	if len(keys) == 0 {
		return 0
	}
	var kvs [16]flatbuffers.UOffsetT
	offs := kvs[:0]
	for i, k := range keys {
		ko, vo := b.CreateString(k), b.CreateString(vals[i])
		b.StartObject(2)
		b.PrependUOffsetTSlot(0, ko, 0)
		b.PrependUOffsetTSlot(1, vo, 0)
		offs = append(offs, b.EndObject())
	}
	b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

// fieldFB builds field f as arrow-go's field visitor does, for the types
// the batches use: string, 32- and 64-bit signed integers, float64, bool
// and lists of those; field metadata is not written (the batches' fields
// have none).
func fieldFB(b *flatbuffers.Builder, f arrow.Field) (flatbuffers.UOffsetT, error) {
	if f.HasMetadata() {
		return 0, fmt.Errorf("encoding field %q: field metadata is not supported", f.Name)
	}
	name := b.CreateString(f.Name)
	var (
		kids  [1]flatbuffers.UOffsetT
		nkids int
		typ   byte
		off   flatbuffers.UOffsetT
	)
	switch dt := f.Type.(type) {
	case *arrow.StringType:
		typ = fbTypeUtf8
		b.StartObject(0)
		off = b.EndObject()
	case *arrow.BooleanType:
		typ = fbTypeBool
		b.StartObject(0)
		off = b.EndObject()
	case *arrow.Int32Type, *arrow.Int64Type:
		typ = fbTypeInt
		b.StartObject(2)
		b.PrependInt32Slot(0, int32(dt.(arrow.FixedWidthDataType).BitWidth()), 0)
		b.PrependBoolSlot(1, true, false)
		off = b.EndObject()
	case *arrow.Float64Type:
		typ = fbTypeFloatingPoint
		b.StartObject(1)
		b.PrependInt16Slot(0, fbPrecisionDouble, 0)
		off = b.EndObject()
	case *arrow.ListType:
		typ = fbTypeList
		kid, err := fieldFB(b, dt.ElemField())
		if err != nil {
			return 0, err
		}
		kids[0], nkids = kid, 1
		b.StartObject(0)
		off = b.EndObject()
	default:
		return 0, fmt.Errorf("encoding field %q: type %s is not supported", f.Name, f.Type)
	}
	b.StartVector(4, nkids, 4)
	for i := nkids - 1; i >= 0; i-- {
		b.PrependUOffsetT(kids[i])
	}
	kidsVec := b.EndVector(nkids)
	b.StartObject(7) // Field
	b.PrependUOffsetTSlot(0, name, 0)
	b.PrependBoolSlot(1, f.Nullable, false)
	b.PrependByteSlot(2, typ, 0)
	b.PrependUOffsetTSlot(3, off, 0)
	b.PrependUOffsetTSlot(4, 0, 0) // dictionary: none
	b.PrependUOffsetTSlot(5, kidsVec, 0)
	b.PrependUOffsetTSlot(6, 0, 0) // custom metadata: none
	return b.EndObject(), nil
}

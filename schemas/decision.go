package schemas

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// DecisionRow is one decision of a decision batch: what a layer's policy
// decided for one entity (an app for the strategic layer, a function for
// the others) for the batch's tick. Fields that do not apply to the layer
// are zero: the strategic layer sets Provider; the tactical layer Region and
// MemoryMB; the operational layer Prewarm and KeepWarmMS.
type DecisionRow struct {
	App  string
	Func string
	// Action is the index in the layer's action space: strategic 0..2
	// (aws, azure, gcp), tactical 0..23 (region-major: region×6 + tier),
	// operational the pre-warm count.
	Action     int32
	Provider   string
	Region     string
	MemoryMB   int32
	Prewarm    int32
	KeepWarmMS int64
	// Policy and PolicyVersion name who decided.
	Policy        string
	PolicyVersion string
	// LogProb and Value are the PPO action log-probability and critic value.
	LogProb Value
	Value   Value
	// Predicted is the operational layer's predicted invocations in the
	// tick, when the policy predicts (for pred_error).
	Predicted Value
}

// DecisionBatch is one tick's decisions of one layer (one shard of it).
type DecisionBatch struct {
	Header BatchHeader
	Rows   []DecisionRow
}

// DecisionSchemaVersion is the version of the decision-batch Arrow schema.
// Version 2 (same columns as 1): an operational batch carries only the
// functions whose decision changed since the worker's previous batch; a
// function missing from a batch keeps its decision in force
// (docs/state-contract.md).
const DecisionSchemaVersion = 2

var decisionFields = []arrow.Field{
	{Name: "app", Type: arrow.BinaryTypes.String},
	{Name: "func", Type: arrow.BinaryTypes.String},
	{Name: "action", Type: arrow.PrimitiveTypes.Int32},
	{Name: "provider", Type: arrow.BinaryTypes.String},
	{Name: "region", Type: arrow.BinaryTypes.String},
	{Name: "memory_mb", Type: arrow.PrimitiveTypes.Int32},
	{Name: "prewarm", Type: arrow.PrimitiveTypes.Int32},
	{Name: "keep_warm_ms", Type: arrow.PrimitiveTypes.Int64},
	{Name: "policy", Type: arrow.BinaryTypes.String},
	{Name: "policy_version", Type: arrow.BinaryTypes.String},
	{Name: "log_prob", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "predicted", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}

// DecisionFields returns the Arrow fields of decision batches.
func DecisionFields() []arrow.Field { return decisionFields }

const metaKind = "strata.kind"

// decisionMetadata returns the schema metadata of a decision batch's
// stream.
func decisionMetadata(h BatchHeader) (keys, vals []string) {
	keys, vals = headerMetadata(h, DecisionSchemaVersion)
	return append(keys, metaKind), append(vals, "decision")
}

// EncodeDecisions serialises a decision batch as an Arrow IPC stream, the
// header in the schema metadata (as for state batches, plus strata.kind =
// decision). Equal batches give equal bytes.
func EncodeDecisions(b *DecisionBatch) ([]byte, error) {
	body := ipcBodies.Get().(*ipcBody)
	defer ipcBodies.Put(body)
	body.reset()
	decisionBody(body, b.Rows)
	keys, vals := decisionMetadata(b.Header)
	data, err := writeStream(decisionFields, keys, vals, body, len(b.Rows))
	if err != nil {
		return nil, fmt.Errorf("encoding %s decision batch for tick %d: %w", b.Header.Layer, b.Header.Tick, err)
	}
	return data, nil
}

// DecodeDecisions parses a batch written by EncodeDecisions with the same
// guarantees as DecodeState: any invalid input gives an error wrapping
// ErrBadBatch, never a panic or a runaway allocation.
//
// A batch laid out as EncodeDecisions lays it out is read without
// arrow-go (ipcread.go), with the same result.
func DecodeDecisions(data []byte) (*DecisionBatch, error) {
	if out, ok := fastDecisions(data); ok {
		return out, nil
	}
	return decodeDecisionsArrow(data)
}

// decodeDecisionsArrow is DecodeDecisions through arrow-go's reader.
func decodeDecisionsArrow(data []byte) (out *DecisionBatch, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("reading decision batch: %w: %v", ErrBadBatch, p)
		}
	}()
	if len(data) > maxDecodeAlloc {
		return nil, fmt.Errorf("reading decision batch: %w: %d bytes, more than %d", ErrBadBatch, len(data), maxDecodeAlloc)
	}
	if err := checkFraming(data); err != nil {
		return nil, fmt.Errorf("reading decision batch: %w: %w", ErrBadBatch, err)
	}
	rd, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(boundedAllocator{memory.NewGoAllocator()}))
	if err != nil {
		return nil, fmt.Errorf("reading decision batch: %w: %w", ErrBadBatch, err)
	}
	defer rd.Release()
	md := rd.Schema().Metadata()
	if i := md.FindKey(metaKind); i < 0 || md.Values()[i] != "decision" {
		return nil, fmt.Errorf("reading decision batch: %w: not a decision batch", ErrBadBatch)
	}
	h, err := parseHeader(rd.Schema().Metadata(), DecisionSchemaVersion)
	if err != nil {
		return nil, err
	}
	if !rd.Schema().Equal(arrow.NewSchema(decisionFields, nil)) {
		return nil, fmt.Errorf("reading decision batch: %w: schema does not match version %d", ErrBadBatch, DecisionSchemaVersion)
	}
	if !rd.Next() {
		return nil, fmt.Errorf("reading decision batch: %w: no record batch", ErrBadBatch)
	}
	rec := rd.RecordBatch()
	if rec.NumRows() > MaxBatchRows {
		return nil, fmt.Errorf("reading decision batch: %w: %d rows", ErrBadBatch, rec.NumRows())
	}
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return nil, fmt.Errorf("reading decision batch: %w: column %s length", ErrBadBatch, rec.ColumnName(i))
		}
		if err := validateFull(col); err != nil {
			return nil, fmt.Errorf("reading decision batch: %w: column %s: %w", ErrBadBatch, rec.ColumnName(i), err)
		}
	}
	n := int(rec.NumRows())
	out = &DecisionBatch{Header: h, Rows: make([]DecisionRow, n)}
	i32 := func(c, i int) int32 { return rec.Column(c).(*array.Int32).Value(i) }
	for i := range n {
		out.Rows[i] = DecisionRow{
			App: str(rec, 0, i), Func: str(rec, 1, i), Action: i32(2, i),
			Provider: str(rec, 3, i), Region: str(rec, 4, i), MemoryMB: i32(5, i), Prewarm: i32(6, i),
			KeepWarmMS: rec.Column(7).(*array.Int64).Value(i),
			Policy:     str(rec, 8, i), PolicyVersion: str(rec, 9, i),
			LogProb: val(rec, 10, i), Value: val(rec, 11, i), Predicted: val(rec, 12, i),
		}
	}
	if rd.Next() {
		return nil, fmt.Errorf("reading decision batch: %w: more than one record batch", ErrBadBatch)
	}
	return out, rd.Err()
}

package schemas

import (
	"bytes"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// ArrowWriterState and ArrowWriterDecisions encode batches as EncodeState
// and EncodeDecisions did before writeIPC: through arrow-go's ipc.Writer
// with the header in an arrow.Schema's metadata. The tests hold the two
// to the same bytes.
func ArrowWriterState(b *StateBatch, lz4 bool) ([]byte, error) {
	cols, err := stateColumns(b)
	if err != nil {
		return nil, err
	}
	keys, vals := stateMetadata(b)
	md := arrow.NewMetadata(keys, vals)
	return arrowWriter(arrow.NewSchema(StateFields(b.Header.Layer), &md), cols, b.Len(), lz4)
}

// ArrowWriterDecisions: see ArrowWriterState.
func ArrowWriterDecisions(b *DecisionBatch) ([]byte, error) {
	keys, vals := decisionMetadata(b.Header)
	md := arrow.NewMetadata(keys, vals)
	return arrowWriter(arrow.NewSchema(decisionFields, &md), decisionColumns(b), len(b.Rows), false)
}

func arrowWriter(schema *arrow.Schema, cols []arrow.Array, n int, lz4 bool) ([]byte, error) {
	rec := array.NewRecordBatch(schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	var buf bytes.Buffer
	opts := []ipc.Option{ipc.WithSchema(schema)}
	if lz4 {
		opts = append(opts, ipc.WithLZ4())
	}
	w := ipc.NewWriter(&buf, opts...)
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

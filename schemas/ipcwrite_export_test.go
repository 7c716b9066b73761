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

// decisionColumns returns the Arrow columns of b's rows.
func decisionColumns(b *DecisionBatch) []arrow.Array {
	n := len(b.Rows)
	apps, fns, prov, reg, pol, ver := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	act, mem, pre := make([]int32, n), make([]int32, n), make([]int32, n)
	keep := make([]int64, n)
	lp, vl, pr := make([]Value, n), make([]Value, n), make([]Value, n)
	for i, r := range b.Rows {
		apps[i], fns[i], prov[i], reg[i], pol[i], ver[i] = r.App, r.Func, r.Provider, r.Region, r.Policy, r.PolicyVersion
		act[i], mem[i], pre[i], keep[i] = r.Action, r.MemoryMB, r.Prewarm, r.KeepWarmMS
		lp[i], vl[i], pr[i] = r.LogProb, r.Value, r.Predicted
	}
	return []arrow.Array{stringCol(apps), stringCol(fns), int32Col(act), stringCol(prov), stringCol(reg),
		int32Col(mem), int32Col(pre), int64Col(keep), stringCol(pol), stringCol(ver), valueCol(lp), valueCol(vl), valueCol(pr)}
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

// ArrowDecodeState and ArrowDecodeDecisions decode through arrow-go's
// reader only; FastDecodeState and FastDecodeDecisions through the fast
// path only (ok false where it declines).
var (
	ArrowDecodeState     = decodeStateArrow
	ArrowDecodeDecisions = decodeDecisionsArrow
	FastDecodeState      = fastOperational
	FastDecodeDecisions  = fastDecisions
)

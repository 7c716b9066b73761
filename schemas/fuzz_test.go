package schemas_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// testDecisions is a decision batch of layer l with n rows, every kind of
// value set (nulls included).
func testDecisions(l schemas.Layer, n int) *schemas.DecisionBatch {
	b := &schemas.DecisionBatch{Header: testHeader(l, 11)}
	for i := range n {
		r := schemas.DecisionRow{App: "app-é", Func: string(rune('f' + i)), Action: int32(i), Provider: "gcp",
			Region: "us-east", MemoryMB: 1024, Prewarm: int32(i), KeepWarmMS: 300_000, Policy: "dqn", PolicyVersion: "e3-s40"}
		if i%2 == 1 {
			r.LogProb, r.Value, r.Predicted = schemas.Some(-0.5), schemas.Some(1.5), schemas.Some(7)
		}
		b.Rows = append(b.Rows, r)
	}
	return b
}

// FuzzDecodeDecisions feeds arbitrary bytes to DecodeDecisions: it must
// return a batch or an error wrapping ErrBadBatch, never panic or exhaust
// memory; a batch it returns re-encodes to bytes that decode to the same
// batch (compared through a second encoding, which is byte-identical: the
// encoder is deterministic and keeps every float's bits, NaNs included).
func FuzzDecodeDecisions(f *testing.F) {
	for _, l := range schemas.Layers {
		for _, n := range []int{0, 1, 3} {
			data, err := schemas.EncodeDecisions(testDecisions(l, n))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
			if n == 3 {
				f.Add(data[:len(data)/2])          // truncated
				f.Add(append(data[:8:8], data...)) // a stray prefix
			}
		}
	}
	state, err := schemas.EncodeState(testBatch(schemas.Tactical, 2, 5))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state) // a state batch, not a decision batch
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := schemas.DecodeDecisions(data)
		if err != nil {
			if !errors.Is(err, schemas.ErrBadBatch) {
				t.Fatalf("error %v does not wrap ErrBadBatch", err)
			}
			return
		}
		if _, err := schemas.ParseLayer(string(b.Header.Layer)); err != nil {
			t.Fatalf("decoded a batch of layer %q: %v", b.Header.Layer, err)
		}
		enc, err := schemas.EncodeDecisions(b)
		if err != nil {
			t.Fatalf("re-encoding a decoded batch: %v", err)
		}
		again, err := schemas.DecodeDecisions(enc)
		if err != nil {
			t.Fatalf("decoding a re-encoded batch: %v", err)
		}
		if again.Header != b.Header || len(again.Rows) != len(b.Rows) {
			t.Fatalf("round trip: header %+v with %d rows, want %+v with %d", again.Header, len(again.Rows), b.Header, len(b.Rows))
		}
		enc2, err := schemas.EncodeDecisions(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the batch (%v)", err)
		}
	})
}

// FuzzSequencesFill decodes two state batches and completes them in turn
// with one Sequences, as a reader of a shard's stream does: whatever the
// bytes, Fill must not panic and must leave every operational row whole
// (Steps 0).
func FuzzSequencesFill(f *testing.F) {
	whole := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: 7, Shard: 1, NShards: 2},
		Operational: []schemas.OperationalRow{wholeRow(1, 7), wholeRow(2, 7)}}
	newest := &schemas.StateBatch{Header: whole.Header, Operational: []schemas.OperationalRow{wholeRow(1, 8), wholeRow(3, 8)}}
	newest.Header.Tick = 8
	newest.Operational[0].Steps = 1
	gap := &schemas.StateBatch{Header: whole.Header, Operational: []schemas.OperationalRow{wholeRow(2, 11)}}
	gap.Header.Tick = 11
	gap.Operational[0].Steps = 3
	enc := func(b *schemas.StateBatch) []byte {
		data, err := schemas.EncodeState(b)
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	w, n, g := enc(whole), enc(newest), enc(gap)
	f.Add(w, n)
	f.Add(w, g)
	f.Add(n, w) // stale
	f.Add(n, n)
	f.Add(w, enc(testBatch(schemas.Tactical, 2, 3)))
	f.Add(w[:len(w)-9], n)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var seq schemas.Sequences
		for _, data := range [][]byte{a, b} {
			batch, err := schemas.DecodeState(data)
			if err != nil {
				continue
			}
			seq.Fill(batch)
			for i, r := range batch.Operational {
				if r.Steps != 0 {
					t.Fatalf("row %d of tick %d left with %d steps", i, batch.Header.Tick, r.Steps)
				}
			}
		}
		if seq.Partial < 0 || seq.Gaps < 0 || seq.Stale < 0 {
			t.Fatalf("negative counts: %+v", seq)
		}
	})
}

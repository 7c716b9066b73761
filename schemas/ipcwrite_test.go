package schemas_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// TestIPCWriterMatchesArrow holds EncodeState and EncodeDecisions, which
// write the schema message themselves, to the bytes arrow-go's ipc.Writer
// writes for the same batch: every layer, empty and large batches (the
// large ones LZ4-compressed), steps left out, headers of every length.
func TestIPCWriterMatchesArrow(t *testing.T) {
	layers := []schemas.Layer{schemas.Operational, schemas.Tactical, schemas.Strategic}
	for _, l := range layers {
		for _, n := range []int{0, 1, 7, 300, 1200} {
			t.Run(fmt.Sprintf("%s/%d", l, n), func(t *testing.T) {
				b := testBatch(l, n, uint64(n)+3)
				b.Header.RunID = fmt.Sprintf("run-%0*d", n%40, n)
				b.Header.Tick = int64(n) * 987_654_321
				if l == schemas.Operational {
					b.OmitsIdle, b.HourSin = n%2 == 0, -0.123456789*float64(n)
					for i := range b.Operational {
						b.Operational[i].Steps = 1 + i%schemas.SeqLen
						b.Operational[i].Left = i%11 == 5
					}
				}
				stateMatchesArrow(t, b, fmt.Sprintf("%s, %d rows", l, n))
			})
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 40} {
		b := &schemas.DecisionBatch{Header: testHeader(schemas.Operational, r.Int64N(1<<40))}
		for i := range n {
			row := schemas.DecisionRow{App: fmt.Sprintf("a%d", i%3), Func: fmt.Sprint(i), Action: r.Int32N(9), Provider: "gcp",
				Region: "us-east", MemoryMB: 1024, Prewarm: r.Int32N(9), KeepWarmMS: r.Int64N(1 << 30), Policy: "hybrid", PolicyVersion: "1"}
			row.LogProb, row.Value, row.Predicted = optValue(r), optValue(r), optValue(r)
			b.Rows = append(b.Rows, row)
		}
		got, err := schemas.EncodeDecisions(b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := schemas.ArrowWriterDecisions(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d decisions: EncodeDecisions wrote %d bytes that differ from ipc.Writer's %d at byte %d", n, len(got), len(want), firstDiff(got, want))
		}
	}
}

// TestRowWriterMatchesArrow holds the operational state and decision
// batches written from their rows (ipcbody.go) to ipc.Writer's bytes over
// seeded random batches whose nullable columns have no nulls, some, or
// only nulls, with Left rows and with no rows.
func TestRowWriterMatchesArrow(t *testing.T) {
	states, decisions := randomBatches(300)
	for i := range states {
		what := fmt.Sprintf("batch %d (%d rows)", i, len(states[i].Operational))
		stateMatchesArrow(t, states[i], what)
		got, err := schemas.EncodeDecisions(decisions[i])
		if err != nil {
			t.Fatal(err)
		}
		want, err := schemas.ArrowWriterDecisions(decisions[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: EncodeDecisions wrote %d bytes that differ from ipc.Writer's %d at byte %d", what, len(got), len(want), firstDiff(got, want))
		}
	}
}

// stateMatchesArrow checks EncodeState's bytes for b against ipc.Writer's
// (LZ4-compressed where the plain encoding is above CompressAbove).
func stateMatchesArrow(t *testing.T, b *schemas.StateBatch, what string) {
	t.Helper()
	got, err := schemas.EncodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := schemas.ArrowWriterState(b, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > schemas.CompressAbove {
		if want, err = schemas.ArrowWriterState(b, true); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: EncodeState wrote %d bytes that differ from ipc.Writer's %d at byte %d", what, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// BenchmarkEncodeStateVersusArrowWriter encodes the same operational
// batch (250 rows, the newest step each, as the closed loop sends them)
// with EncodeState and through arrow-go's ipc.Writer.
func BenchmarkEncodeStateVersusArrowWriter(b *testing.B) {
	batch := testBatch(schemas.Operational, 250, 1)
	for i := range batch.Operational {
		batch.Operational[i].Steps = 1
	}
	b.Run("EncodeState", func(b *testing.B) {
		for b.Loop() {
			if _, err := schemas.EncodeState(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ipc.Writer", func(b *testing.B) {
		for b.Loop() {
			if _, err := schemas.ArrowWriterState(batch, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

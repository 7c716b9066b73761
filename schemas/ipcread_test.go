package schemas_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// randomBatches returns seeded operational state batches and decision
// batches as the loop sends them: rows with 0 to SeqLen+1 steps, Left
// rows, nullable columns with no, some or only nulls, no rows at all.
func randomBatches(rounds int) ([]*schemas.StateBatch, []*schemas.DecisionBatch) {
	r := rand.New(rand.NewPCG(21, 22))
	pick := func(share float64) schemas.Value {
		if r.Float64() < share {
			return schemas.Value{}
		}
		return schemas.Some(r.NormFloat64())
	}
	var states []*schemas.StateBatch
	var decisions []*schemas.DecisionBatch
	for round := range rounds {
		n := r.IntN(30)
		if round%17 == 0 {
			n = 0
		}
		share := []float64{0, 0.4, 1}[round%3]
		b := testBatch(schemas.Operational, n, uint64(round))
		b.OmitsIdle, b.HourSin = round%2 == 0, r.Float64()*2-1
		for i := range b.Operational {
			row := &b.Operational[i]
			row.Steps = r.IntN(schemas.SeqLen + 2)
			if b.OmitsIdle && r.IntN(5) == 0 {
				row.Left, row.Invocations = true, 0
			}
			for j := range schemas.SeqLen {
				row.MemoryUtil[j], row.CPUUtil[j], row.QueueDepth[j] = pick(share), pick(share), pick(share)
			}
		}
		states = append(states, b)
		d := &schemas.DecisionBatch{Header: testHeader(schemas.Operational, int64(round))}
		for i := range n {
			d.Rows = append(d.Rows, schemas.DecisionRow{App: fmt.Sprint("app", i%4), Func: fmt.Sprint(i), Action: r.Int32N(9),
				Provider: []string{"", "aws", "gcp"}[r.IntN(3)], Region: "eu-west", MemoryMB: 128 << r.IntN(5), Prewarm: r.Int32N(4),
				KeepWarmMS: r.Int64N(1 << 40), Policy: "ppo", PolicyVersion: fmt.Sprint(round),
				LogProb: pick(share), Value: pick(share), Predicted: pick(1 - share)})
		}
		decisions = append(decisions, d)
	}
	return states, decisions
}

// agreeState checks that where the fast reader answers for data, the Arrow
// reader gives the same batch; want says the fast reader must answer.
func agreeState(t *testing.T, data []byte, want bool) {
	t.Helper()
	fast, ok := schemas.FastDecodeState(data)
	if !ok {
		if want {
			t.Fatalf("the fast reader declined a batch EncodeState wrote (%d bytes)", len(data))
		}
		return
	}
	slow, err := schemas.ArrowDecodeState(data)
	if err != nil {
		t.Fatalf("the fast reader read a batch the Arrow reader rejects: %v", err)
	}
	if !sameState(fast, slow) {
		t.Fatalf("the fast reader read %+v, the Arrow reader %+v", fast, slow)
	}
}

func agreeDecisions(t *testing.T, data []byte, want bool) {
	t.Helper()
	fast, ok := schemas.FastDecodeDecisions(data)
	if !ok {
		if want {
			t.Fatalf("the fast reader declined a batch EncodeDecisions wrote (%d bytes)", len(data))
		}
		return
	}
	slow, err := schemas.ArrowDecodeDecisions(data)
	if err != nil {
		t.Fatalf("the fast reader read a batch the Arrow reader rejects: %v", err)
	}
	fe, err1 := schemas.EncodeDecisions(fast)
	se, err2 := schemas.EncodeDecisions(slow)
	if err1 != nil || err2 != nil || !bytes.Equal(fe, se) {
		t.Fatalf("the fast reader read %+v, the Arrow reader %+v", fast, slow)
	}
}

// sameState compares two decoded batches through their encodings (which
// keep every float's bits, NaNs included) and where rows hold idle times.
func sameState(a, b *schemas.StateBatch) bool {
	ae, err1 := schemas.EncodeState(a)
	be, err2 := schemas.EncodeState(b)
	if err1 != nil || err2 != nil || !bytes.Equal(ae, be) || len(a.Operational) != len(b.Operational) {
		return false
	}
	for i := range a.Operational {
		if (a.Operational[i].IdleTimesS == nil) != (b.Operational[i].IdleTimesS == nil) {
			return false
		}
	}
	return true
}

// TestFastDecodeAgreesWithArrow reads seeded batches, and every one-byte
// corruption (two masks) of two small ones, with the fast reader and arrow-go's: the fast
// reader answers for every batch the encoders write, with arrow-go's
// result, and for a corrupted batch answers only with arrow-go's result.
func TestFastDecodeAgreesWithArrow(t *testing.T) {
	states, decisions := randomBatches(200)
	for i, b := range states {
		data, err := schemas.EncodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		agreeState(t, data, true)
		fast, _ := schemas.FastDecodeState(data)
		slow, _ := schemas.ArrowDecodeState(data)
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("state batch %d: the fast reader read %+v, the Arrow reader %+v", i, fast, slow)
		}
		if data, err = schemas.EncodeDecisions(decisions[i]); err != nil {
			t.Fatal(err)
		}
		agreeDecisions(t, data, true)
		fd, _ := schemas.FastDecodeDecisions(data)
		sd, _ := schemas.ArrowDecodeDecisions(data)
		if !reflect.DeepEqual(fd, sd) {
			t.Fatalf("decision batch %d: the fast reader read %+v, the Arrow reader %+v", i, fd, sd)
		}
	}
	for _, i := range []int{1, 6} {
		sd, _ := schemas.EncodeState(states[i])
		dd, _ := schemas.EncodeDecisions(decisions[i])
		for _, data := range [][]byte{sd, dd} {
			for j := range data {
				for _, mask := range []byte{0x01, 0xff} {
					bad := bytes.Clone(data)
					bad[j] ^= mask
					agreeState(t, bad, false)
					agreeDecisions(t, bad, false)
				}
			}
		}
	}
	// A compressed batch and another layer are left to arrow-go.
	big := testBatch(schemas.Operational, 900, 3)
	lz, err := schemas.ArrowWriterState(big, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := schemas.FastDecodeState(lz); ok {
		t.Fatal("the fast reader read an LZ4-compressed batch")
	}
	if got, err := schemas.DecodeState(lz); err != nil || len(got.Operational) != 900 {
		t.Fatalf("DecodeState of an LZ4 batch: %v", err)
	}
	tac, _ := schemas.EncodeState(testBatch(schemas.Tactical, 5, 4))
	if _, ok := schemas.FastDecodeState(tac); ok {
		t.Fatal("the fast reader read a tactical batch")
	}
}

// FuzzFastDecode feeds arbitrary bytes to the fast readers: wherever one
// answers, arrow-go's reader gives the same batch.
func FuzzFastDecode(f *testing.F) {
	states, decisions := randomBatches(6)
	for i := range states {
		sd, _ := schemas.EncodeState(states[i])
		dd, _ := schemas.EncodeDecisions(decisions[i])
		f.Add(sd)
		f.Add(dd)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		agreeState(t, data, false)
		agreeDecisions(t, data, false)
	})
}

// BenchmarkDecodeStateVersusArrow reads the same operational batch (250
// rows, the newest step each, as the closed loop sends them) with the fast
// reader and with arrow-go's.
func BenchmarkDecodeStateVersusArrow(b *testing.B) {
	batch := testBatch(schemas.Operational, 250, 1)
	for i := range batch.Operational {
		batch.Operational[i].Steps = 1
	}
	data, err := schemas.EncodeState(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DecodeState", func(b *testing.B) {
		for b.Loop() {
			if _, err := schemas.DecodeState(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("arrow", func(b *testing.B) {
		for b.Loop() {
			if _, err := schemas.ArrowDecodeState(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

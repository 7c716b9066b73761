package schemas_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

func TestDecisionRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		b := &schemas.DecisionBatch{Header: testHeader(schemas.Tactical, 7)}
		for i := range n {
			r := schemas.DecisionRow{App: "a", Func: string(rune('f' + i)), Action: int32(i), Provider: "aws",
				Region: "eu-west", MemoryMB: 512, Prewarm: int32(i), KeepWarmMS: 600_000, Policy: "ppo", PolicyVersion: "v3"}
			if i%2 == 0 {
				r.LogProb, r.Value, r.Predicted = schemas.Some(-1.5), schemas.Some(0.25), schemas.Some(4)
			}
			b.Rows = append(b.Rows, r)
		}
		data, err := schemas.EncodeDecisions(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := schemas.EncodeDecisions(b)
		if err != nil || string(again) != string(data) {
			t.Fatalf("encoding is not deterministic: %v", err)
		}
		got, err := schemas.DecodeDecisions(data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Header != b.Header || len(got.Rows) != n || (n > 0 && !reflect.DeepEqual(got.Rows, b.Rows)) {
			t.Fatalf("round trip of %d rows: got %+v, want %+v", n, got, b)
		}
		if _, err := schemas.DecodeState(data); !errors.Is(err, schemas.ErrBadBatch) {
			t.Fatalf("a decision batch decoded as a state batch: %v", err)
		}
		if n > 0 {
			if _, err := schemas.DecodeDecisions(data[:len(data)/2]); !errors.Is(err, schemas.ErrBadBatch) {
				t.Fatalf("truncated decision batch: %v", err)
			}
		}
	}
	state, err := schemas.EncodeState(testBatch(schemas.Operational, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schemas.DecodeDecisions(state); !errors.Is(err, schemas.ErrBadBatch) {
		t.Fatalf("a state batch decoded as a decision batch: %v", err)
	}
}

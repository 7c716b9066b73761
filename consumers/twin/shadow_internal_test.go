package twin

import (
	"io"
	"log/slog"
	"testing"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestShadowDecisionsTakeLateBatchesAtTheNextInterval checks the shadow
// decision rules on the tactical layer: a batch on time takes effect at its
// hour, a late one at the next hour under that hour's own batch, a
// superseded or incomplete one never.
func TestShadowDecisionsTakeLateBatchesAtTheNextInterval(t *testing.T) {
	s := &Shadow{core: &core{cfg: CommonConfig{RunID: "r", Layers: []schemas.Layer{schemas.Tactical}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), batches: map[batchKey]*pendingBatch{}, wake: make(chan struct{}, 1)},
		applied: map[schemas.Layer]int64{}, late: map[batchKey]map[FuncID]bool{}}
	publish := func(hour int64, shard, n int, policy string, fns ...string) {
		t.Helper()
		b := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: "r", Layer: schemas.Tactical, Tick: hour, Shard: shard, NShards: n}}
		for _, fn := range fns {
			b.Rows = append(b.Rows, schemas.DecisionRow{App: "a", Func: fn, Policy: policy, Region: "us-east", MemoryMB: 512})
		}
		data, err := schemas.EncodeDecisions(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.onDecision(data); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(bs []*schemas.DecisionBatch) map[string]string {
		out := map[string]string{}
		for _, b := range bs {
			for _, r := range b.Rows {
				out[r.Func] = r.Policy
			}
		}
		return out
	}
	const start = 100 * grid.TicksPerHour // the shadow twin started at hour 100
	late := s.late

	publish(99, 0, 1, "before-start", "f", "g") // seeds the decisions, not late
	publish(100, 0, 1, "on-time", "f")
	got := s.shadowDecisions(start, start)
	if r := rows(got); len(r) != 2 || r["f"] != "on-time" || r["g"] != "before-start" || got[0].Header.Tick != 100 {
		t.Fatalf("hour 100: %v (tick %d)", r, got[0].Header.Tick)
	}
	if s.stats.LateDecisionBatches != 0 || len(late) != 1 || !late[batchKey{schemas.Tactical, 100}][FuncID{"a", "g"}] {
		t.Fatalf("late count %d, late entities %v: the pre-start batch is not counted late but yields no transition", s.stats.LateDecisionBatches, late)
	}
	// Mid-hour nothing changes for the tactical layer.
	publish(101, 0, 2, "late", "f", "h") // one shard of two: incomplete at hour 101
	if got := s.shadowDecisions(start+1, start); len(got) != 0 {
		t.Fatalf("mid-hour decisions %v", got)
	}
	publish(102, 0, 1, "own", "f") // hour 102 in time
	if got := s.shadowDecisions(101*grid.TicksPerHour, start); len(got) != 0 {
		t.Fatalf("hour 101 took an incomplete batch: %v", rows(got))
	}
	publish(101, 1, 2, "late", "h2") // hour 101 completes late
	publish(100, 0, 1, "superseded", "x")
	got = s.shadowDecisions(102*grid.TicksPerHour, start)
	if r := rows(got); len(r) != 3 || r["f"] != "own" || r["h"] != "late" || r["h2"] != "late" {
		t.Fatalf("hour 102: %v, want f by its own batch, h and h2 by the late one", r)
	}
	if s.stats.LateDecisionBatches != 1 || !late[batchKey{schemas.Tactical, 102}][FuncID{"a", "h"}] || late[batchKey{schemas.Tactical, 102}][FuncID{"a", "f"}] {
		t.Fatalf("late count %d, late entities %v", s.stats.LateDecisionBatches, late)
	}
	if len(s.batches) != 0 {
		t.Fatalf("batches left behind: %v", s.batches)
	}
}

package twin

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// runFrom evaluates ticks [from, to) on e with the workload's arrivals and
// decide's decisions (the oracles see the ticks ahead), scoring each tick;
// skipFirst leaves out the decisions of tick from (applied before).
func runFrom(t testing.TB, e *Engine, from, to int64, decide func(int64) []*schemas.DecisionBatch, skipFirst bool) []*Output {
	t.Helper()
	w := workload()
	var outs []*Output
	for k := from; k < to; k++ {
		if !skipFirst || k != from {
			for _, b := range decide(k) {
				if err := e.Apply(b); err != nil {
					t.Fatal(err)
				}
			}
		}
		o, err := e.TickAhead(k, w[k], func(t int64) []Arrival { return w[t] })
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	return outs
}

// TestEngineSnapshotRestoresExactly checks that an engine restored from a
// snapshot taken between two ticks — inside an hour, at an hour's and a
// day's end, with and without decisions already applied for the next tick,
// with external decisions and with the oracle inside — produces exactly
// the uninterrupted engine's telemetry, decisions, rewards, outcomes and
// transitions for every later tick, and snapshots to the same bytes.
func TestEngineSnapshotRestoresExactly(t *testing.T) {
	ticks := int64(grid.TicksPerDay + grid.TicksPerHour)
	noTactical := func(k int64) []*schemas.DecisionBatch {
		var out []*schemas.DecisionBatch
		for _, b := range mixedDecisions(k) {
			if b.Header.Layer != schemas.Tactical {
				out = append(out, b)
			}
		}
		return out
	}
	configs := []struct {
		name   string
		edit   func(*Config)
		decide func(int64) []*schemas.DecisionBatch
	}{
		{"external decisions with transitions", func(c *Config) {
			c.Outcomes = true
			c.Transitions = map[schemas.Layer]bool{schemas.Strategic: true, schemas.Tactical: true, schemas.Operational: true}
		}, mixedDecisions},
		{"tactical and strategic oracles inside", func(c *Config) {
			c.Outcomes = true
			c.Internal = map[schemas.Layer]InternalPolicy{schemas.Tactical: PolicyOracle, schemas.Strategic: PolicyOracle}
		}, func(k int64) []*schemas.DecisionBatch {
			var out []*schemas.DecisionBatch
			for _, b := range noTactical(k) {
				if b.Header.Layer == schemas.Operational {
					out = append(out, b)
				}
			}
			return out
		}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			want := runFrom(t, newEngineWith(t, cfg.edit), 0, ticks, cfg.decide, false)
			for _, at := range []int64{1, 300, 2 * grid.TicksPerHour, 2*grid.TicksPerHour + 3, grid.TicksPerDay, grid.TicksPerDay + 3} {
				for _, applied := range []bool{false, true} {
					e := newEngineWith(t, cfg.edit)
					runFrom(t, e, 0, at, cfg.decide, false)
					if applied {
						for _, b := range cfg.decide(at) {
							if err := e.Apply(b); err != nil {
								t.Fatal(err)
							}
						}
					}
					snap, err := e.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					r, err := RestoreEngine(e.m, e.cfg, e.profile, snap)
					if err != nil {
						t.Fatalf("restoring at tick %d: %v", at, err)
					}
					again, err := r.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(again, snap) {
						t.Fatalf("tick %d: the restored engine snapshots to other bytes (%d vs %d)", at, len(again), len(snap))
					}
					got := runFrom(t, r, at, ticks, cfg.decide, applied)
					for i, o := range got {
						compareOutputs(t, at+int64(i), o, want[at+int64(i)])
					}
				}
			}
		})
	}
}

// compareOutputs fails unless tick k's outputs are equal, record by
// record.
func compareOutputs(t *testing.T, k int64, got, want *Output) {
	t.Helper()
	for _, c := range []struct {
		what      string
		got, want []proto.Message
	}{
		{"telemetry", msgs(got.Telemetry), msgs(want.Telemetry)},
		{"decisions", msgs(got.Decisions), msgs(want.Decisions)},
		{"rewards", msgs(got.Rewards), msgs(want.Rewards)},
		{"outcomes", msgs(got.Outcomes), msgs(want.Outcomes)},
		{"transitions", msgs(got.Transitions), msgs(want.Transitions)},
	} {
		if len(c.got) != len(c.want) {
			t.Fatalf("tick %d: %d %s, want %d", k, len(c.got), c.what, len(c.want))
		}
		for i := range c.want {
			if !proto.Equal(c.got[i], c.want[i]) {
				t.Fatalf("tick %d: %s %d differs:\n got %v\nwant %v", k, c.what, i, c.got[i], c.want[i])
			}
		}
	}
}

// TestRestoreEngineRefuses checks the errors of a snapshot that cannot be
// restored: another run's, damaged bytes.
func TestRestoreEngineRefuses(t *testing.T) {
	e := newEngine(t)
	runFrom(t, e, 0, 10, mixedDecisions, false)
	snap, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := e.cfg
	other.RunID = "other"
	if _, err := RestoreEngine(e.m, other, e.profile, snap); err == nil {
		t.Fatal("restored another run's snapshot")
	}
	if _, err := RestoreEngine(e.m, e.cfg, e.profile, snap[:len(snap)/2]); err == nil {
		t.Fatal("restored a truncated snapshot")
	}
}

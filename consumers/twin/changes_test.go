package twin

import (
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestOperationalDecisionsWrittenOnChange checks that an operational
// decision is written when it changes the function's decision in force and
// not when it repeats it (a changed prediction alone is no change), and
// that a repeated or omitted decision stays in force: the pre-warmed pool
// is billed at every tick either way.
func TestOperationalDecisionsWrittenOnChange(t *testing.T) {
	e := newEngineWith(t, func(c *Config) { c.DefaultPlacement.Provider = cloud.GCP })
	row := func(prewarm int32, predicted float64) []schemas.DecisionRow {
		return []schemas.DecisionRow{{App: "p", Func: "f", Prewarm: prewarm, Action: prewarm, Policy: "test", PolicyVersion: "1", Predicted: schemas.Some(predicted)}}
	}
	for _, tc := range []struct {
		name    string
		rows    []schemas.DecisionRow
		written bool
	}{
		{"first decision", row(2, 1), true},
		{"same decision", row(2, 1), false},
		{"only the prediction differs", row(2, 5), false},
		{"omitted", nil, false},
		{"more pre-warm", row(3, 5), true},
		{"back to two", row(2, 5), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := e.NextTick()
			h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * grid.OperationalTickUS, NShards: 1}
			if err := e.Apply(&schemas.DecisionBatch{Header: h, Rows: tc.rows}); err != nil {
				t.Fatal(err)
			}
			out, err := e.Tick(k, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out.Decisions) == 1; got != tc.written || len(out.Decisions) > 1 {
				t.Fatalf("tick %d wrote %d decision rows, want written=%v", k, len(out.Decisions), tc.written)
			}
			if tc.written && out.Decisions[0].GetPrewarm() != tc.rows[0].Prewarm {
				t.Fatalf("tick %d wrote pre-warm %d, want %d", k, out.Decisions[0].GetPrewarm(), tc.rows[0].Prewarm)
			}
			// The decision in force holds instances warm: the tick's
			// operational reward bills them whether or not a row was
			// written.
			var billed bool
			for _, r := range out.Rewards {
				if r.GetLayer() == string(schemas.Operational) && r.GetPrewarmCostUsd() > 0 {
					billed = true
				}
			}
			if !billed {
				t.Fatalf("tick %d: no pre-warm billed; the decision in force was dropped", k)
			}
		})
	}
}

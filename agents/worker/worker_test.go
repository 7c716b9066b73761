package worker

import (
	"slices"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// TestChangedKeepsOnlyChanges checks the operational layer's delta rule:
// a row is published when it differs from the last one published for its
// function, in any field, and the first row of a function always is.
func TestChangedKeepsOnlyChanges(t *testing.T) {
	w := &Worker{}
	r := func(fn string, prewarm int32, predicted float64) schemas.DecisionRow {
		return schemas.DecisionRow{App: "a", Func: fn, Prewarm: prewarm, Action: prewarm, Policy: "p", PolicyVersion: "1", Predicted: schemas.Some(predicted)}
	}
	for i, tc := range []struct {
		in, want []schemas.DecisionRow
	}{
		{[]schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}},
		{[]schemas.DecisionRow{r("f", 1, 1), r("g", 0, 0)}, nil},
		{[]schemas.DecisionRow{r("f", 1, 2), r("g", 0, 0)}, []schemas.DecisionRow{r("f", 1, 2)}},
		{[]schemas.DecisionRow{r("g", 3, 0)}, []schemas.DecisionRow{r("g", 3, 0)}},
		{[]schemas.DecisionRow{r("f", 1, 2), r("h", 0, 0)}, []schemas.DecisionRow{r("h", 0, 0)}},
	} {
		if got := w.changed(slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("batch %d: published %v, want %v", i, got, tc.want)
		}
	}
}

package report

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/schemas"
)

// TestRunsFileRoundTrip writes two runs' figures and reads them back
// equal, the first file's run winning over a second file's of the same id.
func TestRunsFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mk := func(id string, reward float64) (ref, *runData) {
		d := &runData{layers: map[string]*layerSums{
			"tactical":    {Rows: 3, Invocations: 10, Reward: reward, RCost: 0.1, CostUSD: 1e-6},
			"operational": {Rows: 5, ColdStarts: 2, PrewarmUSD: 0.25, CarbonG: 1.0 / 3},
		}, mix: map[string]map[string]int64{"tactical provider": {"aws": 4, "gcp": 1}}, regret: map[int]int64{0: 7, 3: 1}}
		d.hist.Counts[0], d.hist.Counts[schemas.LatencyBuckets-1], d.hist.Total = 2, 5, 7
		row := runRow{RunID: id, Label: "tactical " + id, PolicySeed: 1, Strategic: "greedy-cost", Tactical: id, Operational: "hybrid-histogram",
			Source: "synthetic", Seed: 1, FirstDay: 1, ScoredFirstDay: 13, ScoredLastDay: 14, WallMS: 1234, StartedMS: 99}
		return ref{job: eval.Job{Label: row.Label}, runID: id, found: true, row: row}, d
	}
	r1, d1 := mk("a", 0.5)
	r2, d2 := mk("b", -0.25)
	data := map[string]*runData{"a": d1, "b": d2}
	if err := writeRuns(dir, []ref{r1, r2, r1}, data); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), RunsFile)
	_, d3 := mk("a", 9)
	if err := writeRuns(filepath.Dir(other), []ref{r1}, map[string]*runData{"a": d3}); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, RunsFile)
	c, err := readRuns(first + "," + other)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.rows) != 2 || c.rows[0] != r1.row || c.rows[1] != r2.row {
		t.Fatalf("rows %+v, want a's and b's", c.rows)
	}
	for id, want := range data {
		got := c.data[id]
		if got == nil || !reflect.DeepEqual(got.layers, want.layers) || got.hist != want.hist || !reflect.DeepEqual(got.mix, want.mix) ||
			!reflect.DeepEqual(got.regret, want.regret) || c.from[id] != first {
			t.Errorf("run %s read back as %+v from %s, want %+v from %s", id, got, c.from[id], want, first)
		}
	}
}

// TestRunsFileErrors: a runs file that cannot be used is an error naming
// the file, and the run and what is wrong with it.
func TestRunsFileErrors(t *testing.T) {
	good := `"label":"x","policy_seed":1,"strategic_policy":"","tactical_policy":"","operational_policy":"","source":"s","seed":1,` +
		`"first_day":1,"scored_first_day":1,"scored_last_day":1,"default_placement":"","revision":"","started_ms":1,"mix":{},"tactical_regret_rows":{}`
	tests := []struct {
		name, body string
		want       []string
	}{
		{"not JSON", "{", []string{"not a report's " + RunsFile}},
		{"unknown field", `{"version":1,"runs":[],"extra":1}`, []string{"not a report's", "extra"}},
		{"other version", `{"version":2,"runs":[]}`, []string{"layout version 2", "version 1"}},
		{"no run id", `{"version":1,"runs":[{"run_id":"",` + good + `,"wall_ms":5,"layers":{"tactical":{}},"latency_buckets":[]}]}`, []string{"run 1", "not a strata run id"}},
		{"unfinished", `{"version":1,"runs":[{"run_id":"r",` + good + `,"wall_ms":0,"layers":{"tactical":{}},"latency_buckets":[]}]}`, []string{`run 1 ("r")`, "not a finished run"}},
		{"no layers", `{"version":1,"runs":[{"run_id":"r",` + good + `,"wall_ms":5,"layers":{},"latency_buckets":[]}]}`, []string{"no layer's reward sums"}},
		{"bucket out of range", `{"version":1,"runs":[{"run_id":"r",` + good + `,"wall_ms":5,"layers":{"tactical":{}},"latency_buckets":[[9999,1]]}]}`, []string{"latency bucket 9999"}},
		{"negative count", `{"version":1,"runs":[{"run_id":"r",` + good + `,"wall_ms":5,"layers":{"tactical":{}},"latency_buckets":[[3,-1]]}]}`, []string{"count -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), RunsFile)
			if err := os.WriteFile(p, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readRuns(p)
			if err == nil {
				t.Fatal("read without an error")
			}
			for _, w := range append(tt.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := readRuns(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}

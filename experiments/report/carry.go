package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-rl/strata/schemas"
)

// RunsFile is the name of the file beside report.md that holds every run
// the report used: its runs row and the figures the report read from the
// store (runsFile). --from-runs reads it back.
const RunsFile = "runs.json"

// runsFileVersion is the version of the runs file's layout.
const runsFileVersion = 1

// runRow is the part of a runs row (docs/tables.md) the report matches a
// job with and reports.
type runRow struct {
	RunID            string `json:"run_id"`
	Label            string `json:"label"`
	Models           string `json:"models,omitempty"`
	PolicySeed       int64  `json:"policy_seed"`
	Strategic        string `json:"strategic_policy"`
	Tactical         string `json:"tactical_policy"`
	Operational      string `json:"operational_policy"`
	Source           string `json:"source"`
	Seed             int64  `json:"seed"`
	FirstDay         int32  `json:"first_day"`
	ScoredFirstDay   int32  `json:"scored_first_day"`
	ScoredLastDay    int32  `json:"scored_last_day"`
	DefaultPlacement string `json:"default_placement"`
	Revision         string `json:"revision"`
	WallMS           int64  `json:"wall_ms"`
	StartedMS        int64  `json:"started_ms"`
	ModelsDigest     string `json:"models_digest,omitempty"`
}

// runRecord is one run of a runs file: its runs row and its figures.
type runRecord struct {
	runRow
	Layers map[string]*layerSums `json:"layers"`
	// Latency is the scored days' latency histogram, its non-empty
	// buckets as [bucket, count] pairs.
	Latency [][2]int64                  `json:"latency_buckets"`
	Mix     map[string]map[string]int64 `json:"mix"`
	Regret  map[int]int64               `json:"tactical_regret_rows"`
}

// runsFile is the layout of RunsFile.
type runsFile struct {
	Version int         `json:"version"`
	Runs    []runRecord `json:"runs"`
}

// carried is what runs files hold: their runs rows, in file order, and
// each run's figures.
type carried struct {
	rows []runRow
	data map[string]*runData
	// from names the file each run came from.
	from map[string]string
}

// readRuns reads the runs files of paths (comma-separated); a run in more
// than one is taken from the first.
func readRuns(paths string) (*carried, error) {
	c := &carried{data: map[string]*runData{}, from: map[string]string{}}
	for _, p := range strings.Split(paths, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("strata report --from-runs: %w", err)
		}
		var f runsFile
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("strata report --from-runs %s: not a report's %s: %w", p, RunsFile, err)
		}
		if f.Version != runsFileVersion {
			return nil, fmt.Errorf("strata report --from-runs %s: layout version %d, this strata reads version %d", p, f.Version, runsFileVersion)
		}
		for i, r := range f.Runs {
			rd, err := r.data()
			if err != nil {
				return nil, fmt.Errorf("strata report --from-runs %s: run %d (%q): %w", p, i+1, r.RunID, err)
			}
			if _, dup := c.data[r.RunID]; dup {
				continue
			}
			c.rows = append(c.rows, r.runRow)
			c.data[r.RunID] = rd
			c.from[r.RunID] = p
		}
	}
	return c, nil
}

// data checks r and returns its figures.
func (r *runRecord) data() (*runData, error) {
	switch {
	case r.RunID == "" || strings.ContainsAny(r.RunID, `'\`):
		return nil, fmt.Errorf("run id %q: not a strata run id", r.RunID)
	case r.WallMS <= 0:
		return nil, fmt.Errorf("wall_ms %d: not a finished run", r.WallMS)
	case len(r.Layers) == 0:
		return nil, fmt.Errorf("no layer's reward sums")
	}
	d := &runData{layers: map[string]*layerSums{}, mix: map[string]map[string]int64{}, regret: map[int]int64{}}
	for l, s := range r.Layers {
		if s == nil {
			return nil, fmt.Errorf("layer %q: no sums", l)
		}
		d.layers[l] = s
	}
	for _, bc := range r.Latency {
		if bc[0] < 0 || bc[0] >= schemas.LatencyBuckets || bc[1] < 0 {
			return nil, fmt.Errorf("latency bucket %d count %d: buckets are 0..%d, counts not negative", bc[0], bc[1], schemas.LatencyBuckets-1)
		}
		d.hist.Counts[bc[0]] += bc[1]
		d.hist.Total += bc[1]
	}
	for dim, vals := range r.Mix {
		d.mix[dim] = vals
	}
	for b, n := range r.Regret {
		d.regret[b] = n
	}
	return d, nil
}

// record returns the runs file's record of a run with row and figures d.
func record(row runRow, d *runData) runRecord {
	r := runRecord{runRow: row, Layers: d.layers, Mix: d.mix, Regret: d.regret}
	for b, n := range d.hist.Counts {
		if n != 0 {
			r.Latency = append(r.Latency, [2]int64{int64(b), n})
		}
	}
	return r
}

// writeRuns writes dir/RunsFile: every run of refs that the report used,
// once, in the refs' order.
func writeRuns(dir string, refs []ref, d map[string]*runData) error {
	f := runsFile{Version: runsFileVersion, Runs: []runRecord{}}
	seen := map[string]bool{}
	for _, r := range refs {
		rd := d[r.runID]
		if rd == nil || seen[r.runID] {
			continue
		}
		seen[r.runID] = true
		f.Runs = append(f.Runs, record(r.row, rd))
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", RunsFile, err)
	}
	p := filepath.Join(dir, RunsFile)
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

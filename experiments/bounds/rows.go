package bounds

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/schemas"
)

// NumActions is the number of tactical actions: metro × 6 + tier.
const NumActions = cloud.NumMetros * cloud.NumTiers

// Descriptors are what the model says about a function that a rule may
// share across functions: where its users are and its hidden profile.
type Descriptors struct {
	// UserMetro is where the function's users are.
	UserMetro cloud.Metro
	// WorkingSetMB is the memory the function needs.
	WorkingSetMB float64
	// CPUBoundFraction is the share of its duration that scales with CPU.
	CPUBoundFraction float64
	// Runtime is its language runtime.
	Runtime cloud.Runtime
}

// DescriptorsOf returns f's descriptors.
func DescriptorsOf(f cloud.Function) Descriptors {
	return Descriptors{UserMetro: f.UserMetro, WorkingSetMB: f.Profile.WorkingSetMB,
		CPUBoundFraction: f.Profile.CPUBoundFraction, Runtime: f.Profile.Runtime}
}

// TierNeed returns the smallest memory tier that holds the working set,
// or the largest tier when none does.
func (d Descriptors) TierNeed() cloud.Tier {
	for t, mb := range cloud.TierMB {
		if float64(mb) >= d.WorkingSetMB {
			return cloud.Tier(t)
		}
	}
	return cloud.NumTiers - 1
}

// Row is one tactical function-hour the twin scored.
type Row struct {
	// Hour is the hour's index from trace time 0 (the tactical tick).
	Hour int64
	// App and Func identify the function.
	App, Func string
	// Invocations is the hour's invocations of the function.
	Invocations int64
	// Descriptors are the function's modelled properties.
	Descriptors
	// Rewards is the reward of each tactical action in the hour.
	Rewards [NumActions]float64
}

// Collector gathers the tactical counterfactuals of a replay as rows: plug
// it into twin.Config.Learn (twin.ReplayCounterfactuals). Strategic
// counterfactuals are ignored.
type Collector struct {
	profile func(app, fn string) cloud.Function
	desc    map[twin.FuncID]Descriptors
	// Rows are the rows collected, in the engine's order (by hour).
	Rows []Row
}

// NewCollector returns an empty collector; profile is the replay's
// profile function, which gives each function's descriptors.
func NewCollector(profile func(app, fn string) cloud.Function) *Collector {
	return &Collector{profile: profile, desc: map[twin.FuncID]Descriptors{}}
}

// Add records c when it is tactical.
func (c *Collector) Add(cf twin.Counterfactual) {
	if cf.Layer != schemas.Tactical {
		return
	}
	k := twin.FuncID{App: cf.App, Func: cf.Func}
	d, ok := c.desc[k]
	if !ok {
		d = DescriptorsOf(c.profile(cf.App, cf.Func))
		c.desc[k] = d
	}
	r := Row{Hour: cf.Tick, App: cf.App, Func: cf.Func, Invocations: cf.Invocations, Descriptors: d}
	for i := range min(len(cf.Rewards), NumActions) {
		r.Rewards[i] = cf.Rewards[i].R
	}
	c.Rows = append(c.Rows, r)
}

// csvHeader is the CSV's header without the rewards, r0 … r23 after it.
var csvHeader = []string{"hour", "app", "func", "invocations", "user_metro", "working_set_mb", "cpu_bound_fraction", "runtime", "tier_need_mb"}

// WriteCSV writes rows as CSV with a header: hour, app, func, invocations,
// the descriptors (user metro, working set MB, CPU-bound fraction,
// runtime, the MB of the smallest tier that holds the working set) and
// r0 … r23, the reward of each action (metro × 6 + tier). Floats are
// written exactly (ReadCSV gives them back bit for bit).
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	h := append([]string(nil), csvHeader...)
	for i := range NumActions {
		h = append(h, "r"+strconv.Itoa(i))
	}
	if err := cw.Write(h); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	rec := make([]string, len(h))
	for _, r := range rows {
		rec = append(rec[:0], strconv.FormatInt(r.Hour, 10), r.App, r.Func, strconv.FormatInt(r.Invocations, 10),
			r.UserMetro.String(), f(r.WorkingSetMB), f(r.CPUBoundFraction), r.Runtime.String(), strconv.Itoa(r.TierNeed().MB()))
		for _, x := range r.Rewards {
			rec = append(rec, f(x))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadCSV reads rows WriteCSV wrote.
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(csvHeader) + NumActions
	if _, err := cr.Read(); err != nil {
		return nil, fmt.Errorf("reading the bounds CSV's header: %w", err)
	}
	var rows []Row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the bounds CSV: %w", err)
		}
		row, err := parseRow(rec)
		if err != nil {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("reading the bounds CSV, line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
}

// parseRow parses one record of the CSV.
func parseRow(rec []string) (Row, error) {
	var r Row
	var errs []error
	num := func(s string) float64 {
		x, err := strconv.ParseFloat(s, 64)
		errs = append(errs, err)
		return x
	}
	integer := func(s string) int64 {
		x, err := strconv.ParseInt(s, 10, 64)
		errs = append(errs, err)
		return x
	}
	r.Hour, r.App, r.Func, r.Invocations = integer(rec[0]), rec[1], rec[2], integer(rec[3])
	m, err := cloud.ParseMetro(rec[4])
	errs = append(errs, err)
	r.UserMetro, r.WorkingSetMB, r.CPUBoundFraction = m, num(rec[5]), num(rec[6])
	r.Runtime = cloud.NumRuntimes
	for rt := range cloud.Runtime(cloud.NumRuntimes) {
		if rt.String() == rec[7] {
			r.Runtime = rt
		}
	}
	if r.Runtime == cloud.NumRuntimes {
		errs = append(errs, fmt.Errorf("unknown runtime %q", rec[7]))
	}
	for i := range NumActions {
		r.Rewards[i] = num(rec[len(csvHeader)+i])
	}
	return r, errors.Join(errs...)
}

package prewarm

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/agents/baselines"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// Name is the policy's name.
const Name = "hazard-prewarm"

// Version is the version of the policy's algorithm; a policy built with
// parameter overrides reports Version + "+" + its sorted overrides.
const Version = "1"

// ErrInvalidParam is wrapped by New for an unknown, malformed or
// out-of-range parameter: the baselines' error, so that callers check one.
var ErrInvalidParam = baselines.ErrInvalidParam

// stepS is one operational tick in seconds.
const stepS = float64(grid.OperationalTickUS) / 1e6

// Config holds the policy's parameters (docs/agents.md).
type Config struct {
	// Threshold θ is the smallest hazard — the probability that the next
	// invocation arrives within the tick, given the idle time so far — at
	// which one instance is pre-warmed for the tick (0.001).
	Threshold float64
	// KeepAliveS is the provider's free keep-alive the policy assumes: no
	// tick whose end lies within it of the last execution's end is
	// pre-warmed, since an idle instance is still there for free (600 s,
	// AWS's, the shortest in the catalog; the operational row does not
	// name the provider).
	KeepAliveS float64
	// HorizonS is the idle age past which nothing is pre-warmed (4 h − 60
	// s): the features drop a function from the batches after four idle
	// hours, and the decision in force when it leaves stays in force.
	HorizonS float64
	// BandwidthS widens the tick's window on each side when counting the
	// idle times that end in it (30 s), smoothing the estimate of a jittery
	// period; the count is scaled back to the tick's length.
	BandwidthS float64
	// MinAtRisk is the fewest idle times at least as long as the window's
	// start, the function's and PriorWeight's pseudo-count together, for an
	// estimate (1); with fewer, nothing is pre-warmed.
	MinAtRisk int
	// History is how many idle times are kept per function (256), the
	// newest.
	History int
	// PriorWeight α shrinks a function's estimate towards the hazard of
	// every function's idle times pooled (the newest PooledHistory of
	// them): h = (in + α·h_pooled) / (at risk + α), so that a function with
	// few idle times at this age borrows the population's (2; 0 = none).
	PriorWeight float64
	// PooledHistory is how many idle times of all functions the pooled
	// estimate keeps (4096).
	PooledHistory int
}

// DefaultConfig returns the defaults listed on Config.
func DefaultConfig() Config {
	return Config{Threshold: 0.001, KeepAliveS: 600, HorizonS: 4*3600 - 60, BandwidthS: 30, MinAtRisk: 1, History: 256,
		PriorWeight: 2, PooledHistory: 4096}
}

// param is one parameter key: its range and the Config field it sets
// (field for a number, intF for a whole number).
type param struct {
	key    string
	lo, hi float64
	field  func(*Config) *float64
	intF   func(*Config) *int
}

// params are the parameter keys, in the order the error lists them.
var params = []param{
	{key: "threshold", lo: 0, hi: 1, field: func(c *Config) *float64 { return &c.Threshold }},
	{key: "keep_alive_s", lo: 0, hi: 86400, field: func(c *Config) *float64 { return &c.KeepAliveS }},
	{key: "horizon_s", lo: 0, hi: 7 * 86400, field: func(c *Config) *float64 { return &c.HorizonS }},
	{key: "bandwidth_s", lo: 0, hi: 3600, field: func(c *Config) *float64 { return &c.BandwidthS }},
	{key: "min_at_risk", lo: 1, hi: 1e6, intF: func(c *Config) *int { return &c.MinAtRisk }},
	{key: "history", lo: 1, hi: 1e6, intF: func(c *Config) *int { return &c.History }},
	{key: "prior_weight", lo: 0, hi: 1e6, field: func(c *Config) *float64 { return &c.PriorWeight }},
	{key: "pooled_history", lo: 1, hi: 1e7, intF: func(c *Config) *int { return &c.PooledHistory }},
}

// ConfigFrom returns DefaultConfig with the overrides in ps applied; an
// unknown key, a value that does not parse or one out of range is an error
// naming the valid keys.
func ConfigFrom(ps map[string]string) (Config, error) {
	c := DefaultConfig()
	var keys []string
	for _, p := range params {
		keys = append(keys, p.key)
	}
	for k, v := range ps {
		i := slices.IndexFunc(params, func(p param) bool { return p.key == k })
		if i < 0 {
			return c, fmt.Errorf("%w: unknown key %q; valid keys are %s", ErrInvalidParam, k, strings.Join(keys, ", "))
		}
		p := params[i]
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || x < p.lo || x > p.hi || (p.intF != nil && x != math.Trunc(x)) {
			return c, fmt.Errorf("%w: %s=%q: want a number in [%g, %g]", ErrInvalidParam, k, v, p.lo, p.hi)
		}
		if p.intF != nil {
			*p.intF(&c) = int(x)
		} else {
			*p.field(&c) = x
		}
	}
	return c, nil
}

// Policy is the hazard-prewarm operational policy. Not safe for
// concurrent use.
type Policy struct {
	cfg     Config
	version string
	funcs   map[fnKey]*fnState
	// pooled keeps every function's newest idle times for the prior.
	pooled idleTimes
	// order and states are Decide's scratch: the batch's rows in update
	// order, and each row's function state.
	order  []int
	states []*fnState
}

type fnKey struct{ app, fn string }

// idleTimes keeps the newest idle times (seconds): ring in arrival
// order, sorted the same values in ascending order.
type idleTimes struct {
	ring   []float64
	head   int
	sorted []float64
}

// fnState is what the policy keeps of one function.
type fnState struct {
	its idleTimes
	// durS is the latest estimate of the busy seconds per invocation and
	// endUS the estimated end of the latest execution.
	durS  float64
	endUS int64
}

// New returns the policy with the parameter overrides ps (nil for the
// defaults; docs/agents.md lists the keys).
func New(ps map[string]string) (*Policy, error) {
	c, err := ConfigFrom(ps)
	if err != nil {
		return nil, fmt.Errorf("creating operational policy %q: %w", Name, err)
	}
	return &Policy{cfg: c, version: baselines.VersionWith(Version, ps), funcs: map[fnKey]*fnState{}}, nil
}

// Name returns Name.
func (p *Policy) Name() string { return Name }

// Version returns the algorithm's version with its overrides.
func (p *Policy) Version() string { return p.version }

// Layer returns the operational layer.
func (p *Policy) Layer() schemas.Layer { return schemas.Operational }

// Decide updates every row's function with the row's idle times and
// decides its pre-warm count for the batch's tick: 1 when the hazard of
// the tick reaches the threshold, else 0; KeepWarmMS 0 (the provider's
// keep-alive). Predicted is the hazard itself, the expected number of
// first arrivals in the tick (absent when nothing is estimated).
func (p *Policy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s deciding: %w", Name, err)
	}
	if state == nil || out == nil {
		return fmt.Errorf("%s deciding: nil state or output batch", Name)
	}
	if state.Header.Layer != schemas.Operational {
		return fmt.Errorf("%s deciding tick %d: got a %s state batch, want operational", Name, state.Header.Tick, state.Header.Layer)
	}
	t := state.Header.TickStartUS
	rows := state.Operational
	// Update in (app, func) order: the pooled idle times then do not
	// depend on the order of the batch's rows.
	p.order = schemas.RowOrder(p.order, rows, true)
	p.states = slices.Grow(p.states[:0], len(rows))[:len(rows)]
	for _, i := range p.order {
		p.states[i] = p.update(&rows[i])
	}
	for i := range rows {
		r := &rows[i]
		d := schemas.DecisionRow{App: r.App, Func: r.Func, Policy: Name, PolicyVersion: p.version}
		if h, ok := p.hazard(p.states[i], t); ok {
			d.Predicted = schemas.Some(h)
			if h >= p.cfg.Threshold && h > 0 {
				d.Prewarm = 1
			}
		}
		d.Action = d.Prewarm
		out.Rows = append(out.Rows, d)
	}
	return nil
}

// update adds the row's idle times and end estimate to its function's
// state and returns it.
func (p *Policy) update(r *schemas.OperationalRow) *fnState {
	k := fnKey{r.App, r.Func}
	f := p.funcs[k]
	if f == nil {
		f = &fnState{endUS: math.MinInt64}
		p.funcs[k] = f
	}
	for _, it := range r.IdleTimesS {
		if math.IsNaN(it) || math.IsInf(it, 0) {
			continue
		}
		f.its.add(max(it, 0), p.cfg.History)
		p.pooled.add(max(it, 0), p.cfg.PooledHistory)
	}
	if d, ok := r.BusySecondsPerInvocation(); ok {
		f.durS = d
	}
	f.endUS = max(f.endUS, r.LastStartUS+int64(math.Round(f.durS*1e6)))
	return f
}

// add keeps idle time it, dropping the oldest beyond history.
func (t *idleTimes) add(it float64, history int) {
	if len(t.ring) == history {
		old := t.ring[t.head]
		t.ring[t.head] = it
		t.head = (t.head + 1) % history
		j, _ := slices.BinarySearch(t.sorted, old)
		t.sorted = slices.Delete(t.sorted, j, j+1)
	} else {
		t.ring = append(t.ring, it)
	}
	j, _ := slices.BinarySearch(t.sorted, it)
	t.sorted = slices.Insert(t.sorted, j, it)
}

// counts returns how many kept idle times are ≥ lo (at risk) and how many
// of those are < hi.
func (t *idleTimes) counts(lo, hi float64) (atRisk, in int) {
	a, b := lowerBound(t.sorted, lo), lowerBound(t.sorted, hi)
	return len(t.sorted) - a, b - a
}

// hazard returns the estimated probability that the function's next
// invocation arrives in the tick starting at tickUS, given that none came
// since its last execution ended, and whether the policy estimates one
// for this tick at all: not before any execution, not while the free
// keep-alive covers the whole tick, not past the horizon, and not with
// fewer than MinAtRisk idle times (and pseudo-counts) as long as the
// window's start. The function's counts are shrunk towards the pooled
// hazard by PriorWeight.
func (p *Policy) hazard(f *fnState, tickUS int64) (float64, bool) {
	if f.endUS == math.MinInt64 {
		return 0, false
	}
	s := float64(tickUS-f.endUS) / 1e6
	if s+stepS <= p.cfg.KeepAliveS || s+stepS > p.cfg.HorizonS {
		return 0, false
	}
	lo, hi := max(s-p.cfg.BandwidthS, 0), s+stepS+p.cfg.BandwidthS
	atRisk, in := f.its.counts(lo, hi)
	n, k := float64(atRisk), float64(in)
	if pr, pi := p.pooled.counts(lo, hi); p.cfg.PriorWeight > 0 && pr > 0 {
		n += p.cfg.PriorWeight
		k += p.cfg.PriorWeight * float64(pi) / float64(pr)
	}
	if n < float64(p.cfg.MinAtRisk) || n == 0 {
		return 0, false
	}
	h := k / n * stepS / (hi - lo)
	return min(h, 1), true
}

// lowerBound returns the index of the first value ≥ x in sorted.
func lowerBound(sorted []float64, x float64) int {
	i, _ := slices.BinarySearch(sorted, x)
	return i
}

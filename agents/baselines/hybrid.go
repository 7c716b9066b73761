package baselines

import (
	"context"
	"math"
	"slices"

	"github.com/strata-rl/strata/agents/internal/rowcache"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// hybrid is the "Serverless in the Wild" hybrid histogram policy
// (Shahrad et al., ATC'20; docs/baselines.md#hybrid-histogram), per function by default or per app
// (parameter unit=app).
//
// Histogram (updated at every tick from the rows' IdleTimesS, in start
// order): 1-min bins over 4 h (240 bins); an idle time (IT) ≥ 4 h counts as
// out of bounds (OOB). The last `history` ITs (default 64) are kept for the
// fallback predictor. After each update the unit's pattern is classified,
// in this order:
//
//   - no IT yet, or fewer than min_idle_times (default 0): uncertain;
//   - OOB / all ITs ≥ oob_threshold (0.5, S2's value; the paper's is not
//     known): predict the next IT with an AR(1) model fitted by least
//     squares to the kept ITs (the last IT when fewer than two or all
//     equal; not ARIMA: no differencing, no MA terms, no order search),
//     PW = 0.85·pred, KA = 0.30·pred (±15 % band);
//   - coefficient of variation of the 240 bin counts (population std ÷
//     mean) < cv_threshold (2): uncertain → PW = 0, KA = 4 h;
//   - else certain: head = lower edge of the bin holding the 5th
//     percentile of in-range ITs, tail = upper edge of the bin holding the
//     99th (the first bin whose cumulative share reaches p);
//     PW = 0.9·head, KA = min(1.1·tail, 4 h).
//
// Mapping onto the 15 s ticks (docs/baselines.md#hybrid-histogram): the unit's last execution
// end is estimated as LastStartUS + its mean duration (Σ ConcurrencyMean ÷
// Σ RequestRate over the 12 steps, i.e. busy seconds per invocation; the
// rows carry no end times). A PW below one step becomes 0. The instance is
// wanted in [end + PW, end + PW + KA] (KA counted from the load, S2's
// reading; ka_from_load=false ends the window at end + the upper value
// instead: 1.1·tail, 1.15·pred or 4 h). Prewarm = 1 in every tick that
// overlaps the window, which is the same as rounding the window's start
// down and its end up to tick boundaries; else 0. With PW = 0 the window
// starts at the execution end and KeepWarmMS = the window's length (the
// keep-alive after the last execution, reset by every execution); with
// PW > 0 the instance is unloaded after the execution: KeepWarmMS =
// unload_keep_warm_ms (default 1 ms, since 0 means the provider's default).
// prewarm_keepalive_window=false leaves the PW = 0 window to KeepWarmMS
// alone (free keep-alive instead of billed pre-warm).
//
// Per app (unit=app), the app's functions' ITs, pooled in (function, start)
// order, feed one histogram and every function of the app gets the app's
// decision; the end estimate is the latest over the app's functions. Pooled
// per-function ITs are longer than the app's true ITs when functions
// interleave: an approximation, the rows carry no app-level ITs.
type hybrid struct {
	base
	perApp     bool
	binS       float64
	nBins      int
	rangeS     float64
	headP      float64
	tailP      float64
	margin     float64
	cvThr      float64
	oobThr     float64
	arMargin   float64
	minITs     int64
	kaFromLoad bool
	history    int
	prewarmKA  bool
	unloadMS   int64
	// units holds the units, found by a row's position in its shard's
	// previous batch before their names are hashed (rowcache).
	units rowcache.Table[entity, hhUnit]
	order []int
	// rowUnits are the units of a batch's rows, by row (Decide).
	rowUnits []*hhUnit
}

// hhUnit is one function's (or app's) histogram and current windows.
type hhUnit struct {
	bins    []uint32
	inRange int64
	oob     int64
	sumSq   float64 // Σ count² over the bins, for the CV
	its     []float64
	itHead  int // ring start when len(its) == history
	durS    float64
	endUS   int64
	dirty   bool
	// pw, ka and hi are the current windows in seconds: pre-warm, keep-alive
	// and the upper value of the alternative KA reading.
	pw, ka, hi float64
	mode       hhMode
}

// hhMode is the pattern a unit is classified as.
type hhMode uint8

const (
	hhUncertain hhMode = iota
	hhCertain
	hhOOB
)

func newHybrid(b base, ps *params) *hybrid {
	binS := ps.float("bin_s", 60, 1, 3600)
	rangeS := ps.float("range_s", 4*3600, binS, 7*86400)
	return &hybrid{
		base:       b,
		perApp:     ps.choice("unit", "function", "function", "app") == "app",
		binS:       binS,
		nBins:      int(math.Ceil(rangeS / binS)),
		rangeS:     rangeS,
		headP:      ps.float("head_percentile", 0.05, 0, 1),
		tailP:      ps.float("tail_percentile", 0.99, 0, 1),
		margin:     ps.float("margin", 0.1, 0, 0.99),
		cvThr:      ps.float("cv_threshold", 2, 0, 1000),
		oobThr:     ps.float("oob_threshold", 0.5, 0, 1),
		arMargin:   ps.float("arima_margin", 0.15, 0, 0.99),
		minITs:     ps.int("min_idle_times", 0, 0, 1_000_000),
		kaFromLoad: ps.bool("ka_from_load", true),
		history:    int(ps.int("history", 64, 1, 100_000)),
		prewarmKA:  ps.bool("prewarm_keepalive_window", true),
		unloadMS:   ps.int("unload_keep_warm_ms", 1, 1, 86_400_000),
	}
}

func (p *hybrid) unitKey(r *schemas.OperationalRow) entity {
	if p.perApp {
		return key(r.App, "")
	}
	return key(r.App, r.Func)
}

// Decide updates the histograms from the batch and decides every row.
func (p *hybrid) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	rows := state.Operational
	// Update in (app, func) order so that pooled per-app ITs do not depend
	// on the order of rows in the batch.
	p.order = schemas.RowOrder(p.order, rows, p.perApp)
	p.rowUnits = slices.Grow(p.rowUnits[:0], len(rows))[:len(rows)]
	p.units.Batch(state.Header.Shard)
	for _, i := range p.order {
		p.rowUnits[i] = p.update(&rows[i])
	}
	for i := range rows {
		r := &rows[i]
		u := p.rowUnits[i]
		if u.dirty {
			p.classify(u)
		}
		d := p.row(r.App, r.Func)
		d.Prewarm, d.KeepWarmMS = p.window(u, state.Header.TickStartUS)
		d.Action = d.Prewarm
		out.Rows = append(out.Rows, d)
	}
	return nil
}

// newUnit returns the unit of a function or app seen for the first time.
func (p *hybrid) newUnit() *hhUnit {
	return &hhUnit{bins: make([]uint32, p.nBins), dirty: true, endUS: math.MinInt64}
}

// update adds the row's idle times and end estimate to its unit, and
// returns the unit.
func (p *hybrid) update(r *schemas.OperationalRow) *hhUnit {
	u, _ := p.units.Row(p.unitKey(r), p.newUnit)
	for _, it := range r.IdleTimesS {
		if math.IsNaN(it) || math.IsInf(it, 0) {
			continue // not an idle time; the features layer never sends one
		}
		it = max(it, 0)
		if it < p.rangeS {
			b := min(int(it/p.binS), p.nBins-1)
			c := float64(u.bins[b])
			u.bins[b]++
			u.sumSq += 2*c + 1
			u.inRange++
		} else {
			u.oob++
		}
		if len(u.its) < p.history {
			u.its = append(u.its, it)
		} else {
			u.its[u.itHead] = it
			u.itHead = (u.itHead + 1) % p.history
		}
		u.dirty = true
	}
	if d, ok := r.BusySecondsPerInvocation(); ok {
		if p.perApp {
			u.durS = max(u.durS, d)
		} else {
			u.durS = d
		}
	}
	u.endUS = max(u.endUS, r.LastStartUS+int64(math.Round(u.durS*1e6)))
	return u
}

// classify recomputes the unit's pattern and windows.
func (p *hybrid) classify(u *hhUnit) {
	u.dirty = false
	total := u.inRange + u.oob
	switch {
	case total == 0 || total < p.minITs:
		p.uncertain(u)
	case float64(u.oob)/float64(total) >= p.oobThr:
		pred := p.predict(u)
		u.mode = hhOOB
		u.pw = (1 - p.arMargin) * pred
		u.ka = 2 * p.arMargin * pred
		u.hi = (1 + p.arMargin) * pred
	default:
		n := float64(p.nBins)
		mean := float64(u.inRange) / n
		variance := max(u.sumSq/n-mean*mean, 0)
		if mean <= 0 || math.Sqrt(variance)/mean < p.cvThr {
			p.uncertain(u)
			return
		}
		head, tail := -1, -1
		cum := 0.0
		for b, c := range u.bins {
			cum += float64(c)
			share := cum / float64(u.inRange)
			if head < 0 && share >= p.headP {
				head = b
			}
			if share >= p.tailP {
				tail = b
				break
			}
		}
		if tail < 0 { // rounding: the whole histogram is below tailP
			tail = p.nBins - 1
		}
		u.mode = hhCertain
		u.pw = (1 - p.margin) * float64(head) * p.binS
		u.hi = min((1+p.margin)*float64(tail+1)*p.binS, p.rangeS)
		u.ka = u.hi
	}
}

func (p *hybrid) uncertain(u *hhUnit) {
	u.mode, u.pw, u.ka, u.hi = hhUncertain, 0, p.rangeS, p.rangeS
}

// predict forecasts the next IT with AR(1) around the mean of the kept ITs,
// fitted by least squares; the last IT when there is no variation.
func (p *hybrid) predict(u *hhUnit) float64 {
	n := len(u.its)
	at := func(i int) float64 { return u.its[(u.itHead+i)%n] } // oldest first
	lastIT := at(n - 1)
	if n < 2 {
		return lastIT
	}
	mean := 0.0
	for i := range n {
		mean += at(i)
	}
	mean /= float64(n)
	var num, den float64
	for i := range n - 1 {
		num += (at(i) - mean) * (at(i+1) - mean)
		den += (at(i) - mean) * (at(i) - mean)
	}
	if den <= 1e-12 {
		return lastIT
	}
	phi := min(max(num/den, -0.99), 0.99)
	return max(mean+phi*(lastIT-mean), 0)
}

// window maps the unit's windows onto the tick starting at tickUS: the
// pre-warm count (0 or 1) and the keep-warm window.
func (p *hybrid) window(u *hhUnit, tickUS int64) (int32, int64) {
	if u.endUS == math.MinInt64 {
		return 0, 0
	}
	pw := u.pw
	if pw < stepS {
		pw = 0
	}
	end := pw + u.ka
	if !p.kaFromLoad {
		end = max(pw, u.hi)
	}
	keep := p.unloadMS
	if pw == 0 {
		keep = int64(math.Round(end * 1000))
		if !p.prewarmKA {
			return 0, keep
		}
	}
	from := u.endUS + int64(math.Round(pw*1e6))
	to := u.endUS + int64(math.Round(end*1e6))
	if from < tickUS+grid.OperationalTickUS && to > tickUS {
		return 1, keep
	}
	return 0, keep
}

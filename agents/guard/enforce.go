package guard

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// Constraint names a guardrail, as the projections metric labels it.
type Constraint string

// The constraints an Enforcer projects decisions onto.
const (
	ConstraintProvider Constraint = "provider"
	ConstraintRegion   Constraint = "region"
	ConstraintMemory   Constraint = "memory"
	ConstraintKeepWarm Constraint = "keep_warm"
)

// Constraints lists every Constraint, in a fixed order.
var Constraints = []Constraint{ConstraintProvider, ConstraintRegion, ConstraintMemory, ConstraintKeepWarm}

// Counts are the decisions an Enforcer changed, by the constraint they
// broke (a decision that broke two counts in both).
type Counts map[Constraint]int

// Enforcer projects one layer's decision batches onto what its rules
// allow. The operational layer's enforcer remembers each function's
// pre-warm count in force (a function missing from a batch keeps its
// decision), so it must see every batch of the layer it guards, in
// order, as the worker that publishes them does. Not safe for concurrent
// use.
type Enforcer struct {
	rules *Rules
	layer schemas.Layer
	// rtt is the round-trip time between metros, the distance of the
	// region projection.
	rtt [cloud.NumMetros][cloud.NumMetros]float64
	// warm is, per function of an app with a keep-warm budget, the warm
	// instances its decision in force may keep; appWarm their sum per app.
	warm    map[Function]int
	appWarm map[string]int
}

// NewEnforcer returns an enforcer of rules for layer's decisions; the
// catalog gives the distances between regions (the embedded catalog's
// when nil).
func NewEnforcer(rules *Rules, layer schemas.Layer, cat *cloud.Catalog) (*Enforcer, error) {
	if _, err := schemas.ParseLayer(string(layer)); err != nil {
		return nil, fmt.Errorf("creating a guardrail enforcer: %w", err)
	}
	if rules == nil {
		rules = None()
	}
	if cat == nil {
		c, err := cloud.DefaultCatalog()
		if err != nil {
			return nil, fmt.Errorf("creating a guardrail enforcer: %w", err)
		}
		cat = c
	}
	e := &Enforcer{rules: rules, layer: layer, warm: map[Function]int{}, appWarm: map[string]int{}}
	for a := range e.rtt {
		for b := range e.rtt[a] {
			e.rtt[a][b] = cat.MetroRTTMS[a][b].Value
		}
	}
	return e, nil
}

// Rules returns the rules the enforcer applies.
func (e *Enforcer) Rules() *Rules { return e.rules }

// Apply changes the rows of b that break a rule into the nearest allowed
// decision and returns what it changed. The projection, deterministic and
// independent of the rows' order:
//
//   - provider (strategic rows, and the provider a tactical row names): a
//     provider the app may not use becomes the first of the app's allowed
//     providers, in the file's order (the operator's preference); the
//     strategic Action follows it;
//   - region (tactical): a metro the app may not use becomes the allowed
//     metro nearest to it by the catalog's round-trip time, ties broken
//     by the file's order;
//   - memory (tactical): a tier below the function's minimum becomes the
//     smallest tier within its bounds, one above its maximum the largest;
//     the tactical Action (metro × 6 + tier) follows metro and tier;
//   - keep-warm (operational): a function's warm instances are its
//     Prewarm, or 1 when that is 0 and it has a keep-warm window
//     (KeepWarmMS > 0; the twin keeps one instance warm while the window
//     lasts). When the functions of an app in the batch ask for more than
//     the app's budget leaves after the decisions in force of its other
//     functions, the budget is shared max-min fairly: every function gets
//     min(ask, c) for the largest level c that fits, and what is left goes
//     one instance each to the functions cut, in order of name. A function
//     cut to 0 loses its keep-warm window too; Action follows Prewarm.
func (e *Enforcer) Apply(b *schemas.DecisionBatch) Counts {
	n := Counts{}
	switch e.layer {
	case schemas.Strategic:
		for i := range b.Rows {
			r := &b.Rows[i]
			if e.provider(r) {
				r.Action = int32(mustProvider(r.Provider))
				n[ConstraintProvider]++
			}
		}
	case schemas.Tactical:
		for i := range b.Rows {
			e.tactical(&b.Rows[i], n)
		}
	case schemas.Operational:
		e.operational(b.Rows, n)
	}
	return n
}

func mustProvider(s string) cloud.Provider {
	p, _ := cloud.ParseProvider(s)
	return p
}

// provider projects the provider r names; it reports whether it changed.
func (e *Enforcer) provider(r *schemas.DecisionRow) bool {
	a := e.rules.App(r.App)
	if a.Providers == nil {
		return false
	}
	if p, err := cloud.ParseProvider(r.Provider); err == nil && a.AllowsProvider(p) {
		return false
	}
	r.Provider = a.Providers[0].String()
	return true
}

// tactical projects a tactical row's provider, metro and tier.
func (e *Enforcer) tactical(r *schemas.DecisionRow, n Counts) {
	if r.Provider != "" && e.provider(r) {
		n[ConstraintProvider]++
	}
	a := e.rules.App(r.App)
	changed := false
	m, merr := cloud.ParseMetro(r.Region)
	if a.Metros != nil && (merr != nil || !a.AllowsMetro(m)) {
		m, merr = e.nearest(m, merr == nil, a.Metros), nil
		r.Region = m.String()
		n[ConstraintRegion]++
		changed = true
	}
	bd := e.rules.Memory(r.App, r.Func)
	t, terr := cloud.TierOf(int(r.MemoryMB))
	if (bd != Bounds{}) && (terr != nil || !bd.Allows(t)) {
		ts := bd.Tiers()
		if terr == nil && t.MB() > bd.MaxMB && bd.MaxMB != 0 {
			t = ts[len(ts)-1]
		} else {
			t = ts[0]
		}
		terr = nil
		r.MemoryMB = int32(t.MB())
		n[ConstraintMemory]++
		changed = true
	}
	if changed && merr == nil && terr == nil {
		r.Action = int32(int(m)*cloud.NumTiers + int(t))
	}
}

// nearest returns the metro of allowed nearest to m (the first allowed
// when m is not known), ties broken by allowed's order.
func (e *Enforcer) nearest(m cloud.Metro, known bool, allowed []cloud.Metro) cloud.Metro {
	if !known {
		return allowed[0]
	}
	best := allowed[0]
	for _, c := range allowed[1:] {
		if e.rtt[m][c] < e.rtt[m][best] {
			best = c
		}
	}
	return best
}

// warmOf returns the warm instances decision r may keep.
func warmOf(r *schemas.DecisionRow) int {
	w := int(max(r.Prewarm, 0))
	if w == 0 && r.KeepWarmMS > 0 {
		w = 1
	}
	return w
}

// operational projects the rows onto the apps' keep-warm budgets.
func (e *Enforcer) operational(rows []schemas.DecisionRow, n Counts) {
	byApp := map[string][]int{}
	var apps []string
	for i := range rows {
		app := rows[i].App
		if e.rules.App(app).MaxPrewarm < 0 {
			continue
		}
		if _, ok := byApp[app]; !ok {
			apps = append(apps, app)
		}
		byApp[app] = append(byApp[app], i)
	}
	for _, app := range apps {
		idx := byApp[app]
		slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(rows[i].Func, rows[j].Func) })
		// What the app's other functions keep warm under their decisions
		// in force.
		others := e.appWarm[app]
		for _, i := range idx {
			others -= e.warm[Function{app, rows[i].Func}]
		}
		ask := make([]int, len(idx))
		for k, i := range idx {
			ask[k] = warmOf(&rows[i])
		}
		got := share(ask, max(e.rules.App(app).MaxPrewarm-others, 0))
		total := others
		for k, i := range idx {
			r := &rows[i]
			if got[k] < ask[k] {
				if got[k] == 0 {
					r.Prewarm, r.KeepWarmMS = 0, 0
				} else {
					r.Prewarm = min(r.Prewarm, int32(got[k]))
				}
				r.Action = r.Prewarm
				n[ConstraintKeepWarm]++
			}
			w := warmOf(r)
			e.warm[Function{app, r.Func}] = w
			total += w
		}
		e.appWarm[app] = total
	}
}

// share divides capacity among the asks max-min fairly: each gets
// min(ask, c) for the largest level c whose total fits, and what is left
// goes one each to the asks cut, in order.
func share(ask []int, capacity int) []int {
	got := slices.Clone(ask)
	sum := 0
	for _, a := range ask {
		sum += a
	}
	if sum <= capacity {
		return got
	}
	fits := func(c int) int {
		t := 0
		for _, a := range ask {
			t += min(a, c)
		}
		return t
	}
	lo, hi := 0, slices.Max(ask) // fits(lo) ≤ capacity < fits(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(mid) <= capacity {
			lo = mid
		} else {
			hi = mid
		}
	}
	left := capacity - fits(lo)
	for k, a := range ask {
		got[k] = min(a, lo)
		if a > lo && left > 0 {
			got[k]++
			left--
		}
	}
	return got
}

// Check returns an error naming the first rule that row r of layer
// breaks, nil when it breaks none. It checks each row alone: the keep-warm
// budget, which spans an app's functions, is Budget's.
func (r *Rules) Check(layer schemas.Layer, d schemas.DecisionRow) error {
	a := r.App(d.App)
	if layer == schemas.Strategic || (layer == schemas.Tactical && d.Provider != "") {
		if p, err := cloud.ParseProvider(d.Provider); a.Providers != nil && (err != nil || !a.AllowsProvider(p)) {
			return fmt.Errorf("%s decision for %s/%s: provider %q is not allowed", layer, d.App, d.Func, d.Provider)
		}
	}
	if layer != schemas.Tactical {
		return nil
	}
	if m, err := cloud.ParseMetro(d.Region); a.Metros != nil && (err != nil || !a.AllowsMetro(m)) {
		return fmt.Errorf("tactical decision for %s/%s: region %q is not allowed", d.App, d.Func, d.Region)
	}
	if bd := r.Memory(d.App, d.Func); bd != (Bounds{}) {
		if t, err := cloud.TierOf(int(d.MemoryMB)); err != nil || !bd.Allows(t) {
			return fmt.Errorf("tactical decision for %s/%s: %d MB is outside the function's memory bounds [%s, %s]", d.App, d.Func, d.MemoryMB, bound(bd.MinMB), bound(bd.MaxMB))
		}
	}
	return nil
}

// WarmOf returns the warm instances an operational decision may keep: its
// Prewarm, or 1 when that is 0 and it has a keep-warm window. The
// keep-warm budget counts these.
func WarmOf(d schemas.DecisionRow) int { return warmOf(&d) }

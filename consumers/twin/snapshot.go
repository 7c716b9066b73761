package twin

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"fmt"
	"maps"
	"slices"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/internal/gobsafe"
	"github.com/strata-rl/strata/schemas"
)

// engineSnapshotVersion is the version of the Engine's snapshot encoding.
const engineSnapshotVersion = 1

// engineSnap is the Engine's state between two ticks: everything Simulate
// and Score read that a later tick depends on (docs/twin.md, "Checkpoint
// and restart"). The counterfactual scratch and the functions' cached
// evaluators are rebuilt on use.
type engineSnap struct {
	Version    int
	RunID      string
	Next       int64
	Started    bool
	Pending    []schemas.DecisionBatch
	StaticDone []schemas.Layer
	Apps       []appSnap // in app order
}

type appSnap struct {
	App           string
	Strategic     schemas.DecisionRow
	HasDecision   bool
	StrategicTick int64
	Funcs         []fnSnap // in function order
}

type fnSnap struct {
	Func                        string
	Fn                          cloud.Function
	Pools                       []*cloud.Pool // in placement order
	Tactical, Operational       schemas.DecisionRow
	HasTactical, HasOperational bool
	TacticalTick                int64
	OperationalTick             int64
	LastEndUS                   int64
	Hour, Day                   int64
	HourPools, DayPools         []*cloud.Pool
	HasHourPools, HasDayPools   bool
	HourSegs, DaySegs           []segSnap
	HourSegsCap                 int
	HourProvider                cloud.Provider
}

type segSnap struct {
	Tick    int64
	Metro   cloud.Metro
	Tier    cloud.Tier
	Prewarm int
	Reqs    []cloud.Request
}

func sameSegSnap(a, b segSnap) bool {
	return a.Tick == b.Tick && a.Metro == b.Metro && a.Tier == b.Tier && a.Prewarm == b.Prewarm && slices.Equal(a.Reqs, b.Reqs)
}

// Snapshot encodes the engine's state between two ticks, for a
// checkpoint: RestoreEngine gives an engine that evaluates the following
// ticks exactly as this one would. It must be called after Score has run
// for every simulated tick (the scoring Simulate leaves in an Output holds
// state detached from the engine, which the snapshot does not see).
func (e *Engine) Snapshot() ([]byte, error) {
	s := engineSnap{Version: engineSnapshotVersion, RunID: e.cfg.RunID, Next: e.next, Started: e.started}
	for _, l := range slices.Sorted(maps.Keys(e.pending)) {
		s.Pending = append(s.Pending, *e.pending[l])
	}
	for _, l := range slices.Sorted(maps.Keys(e.staticDone)) {
		if e.staticDone[l] {
			s.StaticDone = append(s.StaticDone, l)
		}
	}
	for _, a := range e.appList {
		as := appSnap{App: a.app, Strategic: a.strategic, HasDecision: a.hasDecision, StrategicTick: a.strategicTick}
		for _, f := range a.funcs {
			as.Funcs = append(as.Funcs, fnSnap{
				Func: f.key.fn, Fn: f.fn, Pools: poolList(f.pools),
				Tactical: f.tactical, Operational: f.operational, HasTactical: f.hasTactical, HasOperational: f.hasOperational,
				TacticalTick: f.tacticalTick, OperationalTick: f.operationalTick, LastEndUS: f.lastEndUS,
				Hour: f.hour, Day: f.day, HourPools: poolList(f.hourPools), DayPools: poolList(f.dayPools),
				HasHourPools: f.hourPools != nil, HasDayPools: f.dayPools != nil,
				HourSegs: segList(f.hourSegs), DaySegs: segList(f.daySoFar()),
				HourSegsCap: f.hourSegsCap, HourProvider: f.hourProvider,
			})
		}
		s.Apps = append(s.Apps, as)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return nil, fmt.Errorf("encoding the twin engine's snapshot at tick %d: %w", e.next, err)
	}
	return buf.Bytes(), nil
}

// RestoreEngine returns an engine on model m and config cfg (those of the
// engine snapshotted; the run id must match) in the state Snapshot encoded.
func RestoreEngine(m *cloud.Model, cfg Config, profile func(app, fn string) cloud.Function, data []byte) (*Engine, error) {
	e, err := NewEngine(m, cfg, profile)
	if err != nil {
		return nil, err
	}
	var s engineSnap
	if err := gobsafe.Decode(data, &s, "Version"); err != nil {
		return nil, fmt.Errorf("decoding the twin engine's snapshot: %w", err)
	}
	if s.Version != engineSnapshotVersion {
		return nil, fmt.Errorf("restoring the twin engine: snapshot version %d, this build reads %d", s.Version, engineSnapshotVersion)
	}
	if s.RunID != cfg.RunID {
		return nil, fmt.Errorf("restoring the twin engine: the snapshot is of run %q, not %q", s.RunID, cfg.RunID)
	}
	e.next, e.started = s.Next, s.Started
	for i := range s.Pending {
		b := s.Pending[i]
		e.pending[b.Header.Layer] = &b
	}
	for _, l := range s.StaticDone {
		e.staticDone[l] = true
	}
	for _, as := range s.Apps {
		if as.App == "" || e.apps[as.App] != nil {
			return nil, fmt.Errorf("restoring the twin engine: app %q is empty or repeated", as.App)
		}
		a := e.app(as.App)
		a.strategic, a.hasDecision, a.strategicTick = as.Strategic, as.HasDecision, as.StrategicTick
		for _, fs := range as.Funcs {
			k := fnKey{as.App, fs.Func}
			if e.funcs[k] != nil {
				return nil, fmt.Errorf("restoring the twin engine: function %s/%s repeated", as.App, fs.Func)
			}
			f := &fnState{key: k, fn: fs.Fn, pools: poolMap(fs.Pools, true),
				tactical: fs.Tactical, operational: fs.Operational, hasTactical: fs.HasTactical, hasOperational: fs.HasOperational,
				tacticalTick: fs.TacticalTick, operationalTick: fs.OperationalTick, lastEndUS: fs.LastEndUS,
				hour: fs.Hour, day: fs.Day, hourPools: poolMap(fs.HourPools, fs.HasHourPools), dayPools: poolMap(fs.DayPools, fs.HasDayPools),
				hourSegs:    segments(fs.HourSegs),
				hourSegsCap: fs.HourSegsCap, hourProvider: fs.HourProvider}
			// The day's segments end with the current hour's, which join
			// the day's hours when the hour is over.
			past := len(fs.DaySegs) - len(fs.HourSegs)
			if past < 0 || !slices.EqualFunc(fs.DaySegs[past:], fs.HourSegs, sameSegSnap) {
				return nil, fmt.Errorf("restoring the twin engine: function %s/%s: the hour's segments are not the end of the day's", as.App, fs.Func)
			}
			if past > 0 {
				f.dayHours = [][]segment{segments(fs.DaySegs[:past])}
			}
			e.funcs[k] = f
			a.funcs = append(a.funcs, f)
		}
		if !slices.IsSortedFunc(a.funcs, func(x, y *fnState) int { return cmp.Compare(x.key.fn, y.key.fn) }) {
			return nil, fmt.Errorf("restoring the twin engine: the functions of app %q are out of order", as.App)
		}
	}
	return e, nil
}

// poolList returns ps's pools in placement order (nil for none).
func poolList(ps map[cloud.Placement]*cloud.Pool) []*cloud.Pool {
	out := make([]*cloud.Pool, 0, len(ps))
	for _, p := range ps {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *cloud.Pool) int { return comparePlacements(a.Placement(), b.Placement()) })
	return out
}

// poolMap rebuilds a pool map from poolList's list; keep says the map
// existed (a nil map and an empty one differ to the engine).
func poolMap(ps []*cloud.Pool, keep bool) map[cloud.Placement]*cloud.Pool {
	if !keep {
		return nil
	}
	out := make(map[cloud.Placement]*cloud.Pool, len(ps))
	for _, p := range ps {
		out[p.Placement()] = p
	}
	return out
}

func comparePlacements(a, b cloud.Placement) int {
	if c := cmp.Compare(a.Provider, b.Provider); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Metro, b.Metro); c != 0 {
		return c
	}
	return cmp.Compare(a.Tier, b.Tier)
}

func segList(ss []segment) []segSnap {
	if ss == nil {
		return nil
	}
	out := make([]segSnap, len(ss))
	for i, s := range ss {
		out[i] = segSnap{Tick: s.tick, Metro: s.metro, Tier: s.tier, Prewarm: s.prewarm, Reqs: s.reqs}
	}
	return out
}

func segments(ss []segSnap) []segment {
	if ss == nil {
		return nil
	}
	out := make([]segment, len(ss))
	for i, s := range ss {
		out[i] = segment{tick: s.Tick, metro: s.Metro, tier: s.Tier, prewarm: s.Prewarm, reqs: s.Reqs}
	}
	return out
}

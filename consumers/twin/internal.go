package twin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// InternalPolicy names a policy that runs inside the engine's counterfactual
// engine instead of an agent worker (docs/twin.md): it needs what no state batch
// carries — the interval's own arrivals, or the training days' hindsight.
type InternalPolicy string

const (
	// PolicyOracle is the per-interval hindsight oracle: at the start of
	// each interval it evaluates every alternative action of the layer on
	// the interval's actual arrivals, from the interval's starting pools,
	// with the lower layers' decisions in force at the start carried over
	// (for the strategic layer the functions' region and tier, for both the
	// operational pre-warm count), and takes the one with the highest
	// reward. It is myopic: it does not value what an action leaves in the
	// pools for the next interval. When the lower layers change their
	// decisions inside the interval, the reward's counterfactual (which uses
	// the decisions as they happened) can differ from the oracle's estimate,
	// so its regret is 0 only when they do not.
	PolicyOracle InternalPolicy = "oracle"
	// PolicyStaticBest holds, for the whole run, the single action per
	// entity with the highest total reward over the training days (days
	// 1–10), measured by replaying them under the default placement
	// (TrainStatic). Entities not seen on the training days keep the
	// default placement.
	PolicyStaticBest InternalPolicy = "static-best"
)

// ParseInternalPolicy returns the internal policy called name, or false.
func ParseInternalPolicy(name string) (InternalPolicy, bool) {
	switch p := InternalPolicy(name); p {
	case PolicyOracle, PolicyStaticBest:
		return p, true
	}
	return "", false
}

// FuncID identifies a function of an app.
type FuncID struct{ App, Func string }

// RegionTier is a tactical action: a metro and a memory tier.
type RegionTier struct {
	Metro cloud.Metro
	Tier  cloud.Tier
}

// Action returns the tactical action index, metro × 6 + tier, as the
// tactical policies number their 24 actions.
func (rt RegionTier) Action() int32 { return int32(int(rt.Metro)*cloud.NumTiers + int(rt.Tier)) }

// StaticChoices are static-best's fixed actions: a provider per app and a
// metro and tier per function.
type StaticChoices struct {
	Providers  map[string]cloud.Provider
	Placements map[FuncID]RegionTier
}

// Counterfactual is what the engine scored for one entity in one
// tactical or strategic interval: the reward of every alternative action
// of the layer, in action order (tactical: metro × 6 + tier; strategic:
// the provider).
type Counterfactual struct {
	// Layer is tactical or strategic.
	Layer schemas.Layer
	// Tick is the interval's index: the hour for tactical, the day for
	// strategic, counted from trace time 0.
	Tick int64
	// App and Func identify the entity; Func is empty for strategic.
	App, Func string
	// Invocations is the interval's invocations of the entity.
	Invocations int64
	// Rewards holds every alternative's reward. It belongs to the engine:
	// read it during Add, copy what is kept.
	Rewards []cloud.Reward
}

// Counterfactuals receives the counterfactuals an engine scores
// (Config.Learn).
type Counterfactuals interface {
	// Add is called once per scored tactical or strategic interval of an
	// entity, in the engine's output order.
	Add(c Counterfactual)
}

// StaticLearner accumulates, per entity, the reward every alternative action
// would have earned in each scored interval; its Choices are the argmax
// totals. Plug it into Config.Learn of an engine replaying training days.
type StaticLearner struct {
	apps  map[string]*[cloud.NumProviders]float64
	funcs map[FuncID]*[cloud.NumMetros * cloud.NumTiers]float64
	// Intervals counts the scored intervals per layer.
	Intervals map[schemas.Layer]int64
}

// NewStaticLearner returns an empty learner.
func NewStaticLearner() *StaticLearner {
	return &StaticLearner{apps: map[string]*[cloud.NumProviders]float64{},
		funcs: map[FuncID]*[cloud.NumMetros * cloud.NumTiers]float64{}, Intervals: map[schemas.Layer]int64{}}
}

// Add adds c's rewards to its entity's totals.
func (s *StaticLearner) Add(c Counterfactual) {
	rs := c.Rewards
	switch c.Layer {
	case schemas.Strategic:
		a := s.apps[c.App]
		if a == nil {
			a = &[cloud.NumProviders]float64{}
			s.apps[c.App] = a
		}
		for i := range min(len(rs), len(a)) {
			a[i] += rs[i].R
		}
	case schemas.Tactical:
		k := FuncID{c.App, c.Func}
		f := s.funcs[k]
		if f == nil {
			f = &[cloud.NumMetros * cloud.NumTiers]float64{}
			s.funcs[k] = f
		}
		for i := range min(len(rs), len(f)) {
			f[i] += rs[i].R
		}
	default:
		return
	}
	s.Intervals[c.Layer]++
}

// argmax returns the first index of the largest value.
func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// Choices returns the action with the highest total reward per entity
// (ties go to the lowest action index).
func (s *StaticLearner) Choices() *StaticChoices {
	c := &StaticChoices{Providers: map[string]cloud.Provider{}, Placements: map[FuncID]RegionTier{}}
	for app, a := range s.apps {
		c.Providers[app] = cloud.Provider(argmax(a[:]))
	}
	for k, f := range s.funcs {
		i := argmax(f[:])
		c.Placements[k] = RegionTier{Metro: cloud.Metro(i / cloud.NumTiers), Tier: cloud.Tier(i % cloud.NumTiers)}
	}
	return c
}

// TrainStatic chooses static-best's actions: it replays the training days
// (days 1–10) of src through a fresh engine under cfg's default placement,
// with no decisions (ReplayCounterfactuals), and returns each entity's
// action with the highest total reward over its scored intervals.
func TrainStatic(ctx context.Context, m *cloud.Model, cfg Config, profile func(app, fn string) cloud.Function, src replay.Source, latenessUS int64) (*StaticChoices, error) {
	l := NewStaticLearner()
	cfg.Learn = l
	if err := ReplayCounterfactuals(ctx, m, cfg, profile, src, latenessUS, TrainingDays); err != nil {
		return nil, fmt.Errorf("training static-best: %w", err)
	}
	return l.Choices(), nil
}

// ReplayCounterfactuals replays days 1..days of src through a fresh engine
// under cfg's default placement, with no decisions and no internal
// policy, so that cfg.Learn (required) receives the counterfactuals of
// every scored tactical and strategic interval of those days. latenessUS
// is the replay's allowed lateness (src is ordered by end time; the
// engine needs start order). Lines that do not parse and late invocations
// are skipped, as the replay dead-letters them. A trace shorter than days
// ends the replay with its last day.
func ReplayCounterfactuals(ctx context.Context, m *cloud.Model, cfg Config, profile func(app, fn string) cloud.Function, src replay.Source, latenessUS int64, days int) error {
	if cfg.Learn == nil {
		return errors.New("replaying counterfactuals: Config.Learn is not set")
	}
	if days < 1 {
		return fmt.Errorf("replaying counterfactuals: %d days", days)
	}
	cfg.Internal, cfg.Static, cfg.Outcomes, cfg.Transitions = nil, nil, false, nil
	e, err := NewEngine(m, cfg, profile)
	if err != nil {
		return err
	}
	endUS := int64(days) * grid.StrategicTickUS
	ord := replay.NewOrderer(latenessUS)
	var cur []Arrival
	curTick := int64(0)
	// advance evaluates every tick before k.
	advance := func(k int64) error {
		for e.NextTick() < k {
			t := e.NextTick()
			var arr []Arrival
			if t == curTick {
				arr, cur = cur, nil
			}
			if _, err := e.Tick(t, arr); err != nil {
				return fmt.Errorf("replaying counterfactuals: %w", err)
			}
			if err := ctx.Err(); err != nil && t%grid.TicksPerHour == 0 {
				return err
			}
		}
		return nil
	}
	take := func(in replay.Invocation) error {
		s := in.StartUS()
		if s < 0 || s >= endUS {
			return nil
		}
		k := grid.TickOf(s, grid.OperationalTickUS)
		if k != curTick {
			if err := advance(curTick); err != nil {
				return err
			}
			if len(cur) > 0 {
				if _, err := e.Tick(curTick, cur); err != nil {
					return fmt.Errorf("replaying counterfactuals: %w", err)
				}
				cur = nil
			}
			curTick = k
		}
		cur = append(cur, Arrival{ID: in.ID(), App: in.App, Func: in.Func, StartUS: s, DurationUS: in.DurationUS, Row: in.Row})
		return nil
	}
	done := false
	for !done {
		in, err := src.Next()
		switch {
		case errors.Is(err, io.EOF):
			done = true
		case err != nil:
			var le *replay.LineError
			if errors.As(err, &le) {
				continue
			}
			return fmt.Errorf("replaying counterfactuals: reading the trace: %w", err)
		default:
			if in.StartUS() >= endUS+latenessUS {
				done = true // the days are complete
			}
			if err := ord.Push(in); err != nil {
				continue // late: dead-lettered by the replay
			}
		}
		for {
			var in replay.Invocation
			var ok bool
			if done {
				in, ok = ord.Drain()
			} else {
				in, ok = ord.Pop()
			}
			if !ok {
				break
			}
			if err := take(in); err != nil {
				return err
			}
		}
	}
	// Close the last day replayed (or of the trace).
	last := max(curTick+1, e.NextTick())
	last = (last + grid.TicksPerDay - 1) / grid.TicksPerDay * grid.TicksPerDay
	if err := advance(curTick); err != nil {
		return err
	}
	if e.NextTick() == curTick {
		if _, err := e.Tick(curTick, cur); err != nil {
			return fmt.Errorf("replaying counterfactuals: %w", err)
		}
	}
	if err := advance(min(last, int64(days)*grid.TicksPerDay)); err != nil {
		return err
	}
	return nil
}

// Lookahead returns the last tick whose arrivals Tick needs to evaluate
// tick k: later than k only at the start of an interval an oracle decides.
func (e *Engine) Lookahead(k int64) int64 {
	if e.cfg.Internal[schemas.Strategic] == PolicyOracle && k%grid.TicksPerDay == 0 {
		return k + grid.TicksPerDay - 1
	}
	if e.cfg.Internal[schemas.Tactical] == PolicyOracle && k%grid.TicksPerHour == 0 {
		return k + grid.TicksPerHour - 1
	}
	return k
}

// MaxLookahead returns the largest k' − k of Lookahead.
func (e *Engine) MaxLookahead() int64 {
	switch {
	case e.cfg.Internal[schemas.Strategic] == PolicyOracle:
		return grid.TicksPerDay - 1
	case e.cfg.Internal[schemas.Tactical] == PolicyOracle:
		return grid.TicksPerHour - 1
	}
	return 0
}

// internalRows returns the decisions internal policy p makes for layer l at
// tick k, the interval's first tick.
func (e *Engine) internalRows(l schemas.Layer, p InternalPolicy, k int64, ahead func(int64) []Arrival) ([]schemas.DecisionRow, error) {
	switch p {
	case PolicyStaticBest:
		if e.staticDone[l] {
			return nil, nil // decided once, at the run's first interval
		}
		e.staticDone[l] = true
		return e.staticRows(l), nil
	case PolicyOracle:
		return e.oracleRows(l, k, l.OperationalTicks(), ahead)
	}
	return nil, fmt.Errorf("internal %s policy %q is unknown", l, p)
}

func (e *Engine) staticRows(l schemas.Layer) []schemas.DecisionRow {
	var rows []schemas.DecisionRow
	switch l {
	case schemas.Strategic:
		for app, p := range e.cfg.Static.Providers {
			rows = append(rows, schemas.DecisionRow{App: app, Action: int32(p), Provider: p.String()})
		}
	case schemas.Tactical:
		for k, rt := range e.cfg.Static.Placements {
			rows = append(rows, schemas.DecisionRow{App: k.App, Func: k.Func, Action: rt.Action(),
				Region: rt.Metro.String(), MemoryMB: int32(rt.Tier.MB())})
		}
	}
	return rows
}

// oracleSegments returns f's segments over ticks [k, k+per) from the
// interval's arrivals, with the pre-warm count in force carried over.
func (e *Engine) oracleSegments(f *fnState, k, per int64, arr map[fnKey][]Arrival) []segment {
	pw := 0
	if f.hasOperational {
		pw = int(f.operational.Prewarm)
	}
	pl := e.placement(f)
	as := arr[f.key]
	var segs []segment
	i := 0
	for t := k; t < k+per; t++ {
		te := (t + 1) * grid.OperationalTickUS
		j := i
		for j < len(as) && as[j].StartUS < te {
			j++
		}
		if j == i && pw == 0 {
			continue
		}
		reqs := make([]cloud.Request, j-i)
		for n, a := range as[i:j] {
			reqs[n] = cloud.Request{StartUS: a.StartUS, DurationUS: a.DurationUS}
		}
		segs = append(segs, segment{tick: t, metro: pl.Metro, tier: pl.Tier, prewarm: pw, reqs: reqs})
		i = j
	}
	return segs
}

// oracleRows evaluates, for every entity active in the interval [k, k+per),
// each alternative action on the interval's arrivals and returns the best.
func (e *Engine) oracleRows(l schemas.Layer, k, per int64, ahead func(int64) []Arrival) ([]schemas.DecisionRow, error) {
	arr := map[fnKey][]Arrival{}
	for t := k; t < k+per; t++ {
		for _, a := range ahead(t) {
			key := fnKey{a.App, a.Func}
			arr[key] = append(arr[key], a)
		}
	}
	keys := make([]fnKey, 0, len(arr))
	for key, as := range arr {
		keys = append(keys, key)
		slices.SortFunc(as, func(a, b Arrival) int {
			if c := cmpInt(a.StartUS, b.StartUS); c != 0 {
				return c
			}
			return cmpString(a.ID, b.ID)
		})
	}
	slices.SortFunc(keys, func(a, b fnKey) int {
		if c := cmpString(a.app, b.app); c != 0 {
			return c
		}
		return cmpString(a.fn, b.fn)
	})
	var rows []schemas.DecisionRow
	switch l {
	case schemas.Tactical:
		n := cloud.NumMetros * cloud.NumTiers
		for _, key := range keys {
			f := e.function(key.app, key.fn)
			segs := e.oracleSegments(f, k, per, arr)
			prov := e.placement(f).Provider
			aggs := make([]cloud.Aggregate, n)
			for i := range n { // latencies are not needed: the reward uses the mean
				pl := cloud.Placement{Provider: prov, Metro: cloud.Metro(i / cloud.NumTiers), Tier: cloud.Tier(i % cloud.NumTiers)}
				if err := e.replaySegments(&e.sim, &f.fn, f.pools, [][]segment{segs}, func(segment) cloud.Placement { return pl }, &aggs[i], nil); err != nil {
					return nil, fmt.Errorf("oracle for hour %d of %s/%s: %w", k/per, key.app, key.fn, err)
				}
			}
			_, best := cloud.Rewards(aggs, e.cfg.Reward)
			rt := RegionTier{Metro: cloud.Metro(best / cloud.NumTiers), Tier: cloud.Tier(best % cloud.NumTiers)}
			rows = append(rows, schemas.DecisionRow{App: key.app, Func: key.fn, Action: rt.Action(),
				Region: rt.Metro.String(), MemoryMB: int32(rt.Tier.MB())})
		}
	case schemas.Strategic:
		var app string
		var fns []*fnState
		flush := func() error {
			if len(fns) == 0 {
				return nil
			}
			aggs := make([]cloud.Aggregate, cloud.NumProviders)
			segs := make([][]segment, len(fns)) // latencies are not needed: the reward uses the mean
			for i, f := range fns {
				segs[i] = e.oracleSegments(f, k, per, arr)
			}
			for p := range cloud.NumProviders {
				for i, f := range fns {
					place := func(s segment) cloud.Placement {
						return cloud.Placement{Provider: cloud.Provider(p), Metro: s.metro, Tier: s.tier}
					}
					if err := e.replaySegments(&e.sim, &f.fn, f.pools, segs[i:i+1], place, &aggs[p], nil); err != nil {
						return fmt.Errorf("oracle for day %d of %s: %w", k/per, app, err)
					}
				}
			}
			_, best := cloud.Rewards(aggs, e.cfg.Reward)
			rows = append(rows, schemas.DecisionRow{App: app, Action: int32(best), Provider: cloud.Provider(best).String()})
			fns = nil
			return nil
		}
		for _, key := range keys {
			if key.app != app {
				if err := flush(); err != nil {
					return nil, err
				}
				app = key.app
			}
			fns = append(fns, e.function(key.app, key.fn))
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

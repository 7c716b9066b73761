package twin

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Arrival is one invocation arriving at the twin.
type Arrival struct {
	ID         string
	App, Func  string
	StartUS    int64
	DurationUS int64
	Row        int64
}

// Config configures an Engine.
type Config struct {
	// RunID is written on every output record.
	RunID string
	// DefaultPlacement applies before any decision (docs/tick-contract.md).
	DefaultPlacement cloud.Placement
	// Reward weights and clips the rewards.
	Reward cloud.RewardConfig
	// PrewarmAlternatives are the pre-warm counts the operational reward
	// compares the decided count with. Default 0, 1, 2, 4, 8.
	PrewarmAlternatives []int
	// Outcomes makes Tick return per-invocation outcomes.
	Outcomes bool
	// Internal names the layers whose policy runs inside the engine
	// (oracle, static-best: strategic and tactical only). Their decisions
	// are made at each interval's first tick, before the external ones of
	// faster layers take effect, and are emitted like any other decision.
	Internal map[schemas.Layer]InternalPolicy
	// Static holds static-best's choices (TrainStatic); required when a
	// layer's internal policy is static-best.
	Static *StaticChoices
	// Learn, if set, receives every tactical and strategic counterfactual
	// scored: static-best's training (StaticLearner), `strata bounds`.
	Learn Counterfactuals
	// Transitions names the layers whose rewards also yield transitions
	// (Output.Transitions): one per reward of an entity whose decision in
	// force was made for that interval.
	Transitions map[schemas.Layer]bool
}

// Output is what one tick produced, in a deterministic order.
type Output struct {
	// Telemetry holds the tick's observed invocations in start order.
	Telemetry []*stratapb.Observation
	// Decisions holds the decisions that took effect at this tick, joined
	// with the placement they resolved to; an operational decision equal
	// to the function's decision in force is applied but not repeated.
	Decisions []*stratapb.Decision
	// Rewards holds the rewards of the intervals that ended with this tick.
	Rewards []*stratapb.Reward
	// Outcomes holds per-invocation outcomes when Config.Outcomes is set.
	Outcomes []*stratapb.Outcome
	// Transitions holds the transitions of the intervals that ended with
	// this tick, without their state vectors: the engine sees no state
	// batches; the service fills them in.
	Transitions []*stratapb.Transition

	// ops and closes are the work Simulate left to Score: every
	// function's operational tick, then the hour's and the day's closes,
	// in that order. They hold everything they need, detached from the
	// engine's live state, so that Score may run while later ticks are
	// simulated. ops are values, not closures: one per active function
	// and tick, they were two allocations each.
	ops    []opScore
	closes []func(out *Output) error
}

type fnKey struct{ app, fn string }

// segment is one tick of a function's activity, kept for the hour's and
// the day's counterfactuals.
type segment struct {
	tick    int64
	metro   cloud.Metro
	tier    cloud.Tier
	prewarm int
	reqs    []cloud.Request
}

type fnState struct {
	key   fnKey
	fn    cloud.Function
	pools map[cloud.Placement]*cloud.Pool
	// decisions in force
	tactical, operational       schemas.DecisionRow
	hasTactical, hasOperational bool
	// opRef is a copy of operational taken by the first tick simulated
	// under it, shared by the scoring of every tick after it (Score reads
	// it on its own goroutine, so it is never written; a new decision
	// clears it).
	opRef *schemas.DecisionRow
	// the intervals the decisions in force were made for
	tacticalTick, operationalTick int64
	// lastEndUS is the end of the function's latest execution (keep-warm).
	lastEndUS int64
	// hour and day bookkeeping: pools at the first activity of the period
	// (unchanged since its start, since pools only change when evaluated).
	hour, day           int64
	hourPools, dayPools map[cloud.Placement]*cloud.Pool
	hourSegs            []segment
	// dayHours holds the day's segments so far: the arrays of its past
	// hours, which detachHour adds (the current hour's are in hourSegs).
	// Appending each tick to a day-long array of its own as well was 15 %
	// of Simulate's time, most of it cache misses.
	dayHours [][]segment
	// hourSegsCap sizes an hour's segments from the previous hour's count
	// (fewer slices grown by appends).
	hourSegsCap  int
	hourProvider cloud.Provider
	// arrivals holds the function's arrivals of the tick being simulated
	// (Simulate), in start order; empty between ticks.
	arrivals []Arrival
	// ev evaluates the function under the placement it last ran at, and
	// pool is that placement's pool in pools (Simulate's goroutine only;
	// both valid when hasEv): a function mostly stays where it is, and
	// the map lookup of its pool was 3 % of a closed loop's CPU.
	ev    cloud.Evaluator
	pool  *cloud.Pool
	hasEv bool
	// pl is the placement in force as resolved when the engine had taken
	// plAt strategic and tactical decisions (placement; valid when
	// plValid).
	pl      cloud.Placement
	plAt    uint64
	plValid bool
}

type appState struct {
	app           string
	strategic     schemas.DecisionRow
	hasDecision   bool
	strategicTick int64
	funcs         []*fnState
}

// Engine is the twin's deterministic core. It is not safe for concurrent
// use, with one exception: Score may run on one goroutine while Simulate
// runs the next ticks on another (Simulate).
type Engine struct {
	m     *cloud.Model
	cfg   Config
	funcs map[fnKey]*fnState
	apps  map[string]*appState
	// appList holds the apps in name order: Simulate visits every
	// function each tick, and looking each app up by its 64-character
	// name was a tenth of that.
	appList []*appState
	// profile returns the modelled function (hidden properties, user metro,
	// SLO) of a function seen for the first time.
	profile func(app, fn string) cloud.Function
	next    int64 // next tick to evaluate
	started bool
	pending map[schemas.Layer]*schemas.DecisionBatch
	// staticDone marks the layers static-best has decided for.
	staticDone map[schemas.Layer]bool
	// Scratch of the counterfactuals, reused call after call: sim for
	// those Simulate runs (the internal oracles), score for Score's, so
	// that the two may run at the same time.
	sim, score replayScratch
	// tick is tickFunction's evaluation, reused from function to function.
	tick cloud.Result
	// placements counts the strategic and tactical decisions taken: a
	// function's cached placement is valid while it has not moved.
	placements uint64
	// starts holds the pools at the start of each function's tick until
	// Score has scored the tick's operational alternatives from them
	// (Simulate's goroutine clones; Score's reads).
	starts cloud.PoolArena
	// freeOps hands Score's emptied ops slices back to Simulate; it holds
	// as many as Score falls behind in an hour's close (freeOpsCap), and
	// opsCap sizes a new one from the last tick's count.
	freeOps chan []opScore
	opsCap  int
}

// freeOpsCap bounds the emptied ops slices kept for reuse: Score falls
// about a hundred ticks behind while it closes an hour, and Simulate,
// going on meanwhile, would allocate a slice for each.
const freeOpsCap = 256

// replayScratch is the scratch of one goroutine's counterfactual replays.
type replayScratch struct {
	eval    cloud.Result
	prewarm [1]int
	placed  []placedPool
	// alts, aggs and lat are scoreOperational's alternatives, pool the
	// starting pool each one is evaluated on.
	pool cloud.Pool
	alts []int
	aggs []cloud.Aggregate
	lat  [][]float64
	// rewards and ls are reward's: the alternatives' rewards and the
	// chosen one's latencies.
	rewards []cloud.Reward
	ls      []float64
}

// ErrOutOfOrder is returned by Tick for a tick other than the next one.
var ErrOutOfOrder = errors.New("tick out of order")

// NewEngine returns an engine on model m. profile supplies each function's
// modelled properties (see ProfileBuilder); it is called once per function.
func NewEngine(m *cloud.Model, cfg Config, profile func(app, fn string) cloud.Function) (*Engine, error) {
	if !cfg.DefaultPlacement.Valid() {
		return nil, fmt.Errorf("configuring twin: default placement %v is not valid", cfg.DefaultPlacement)
	}
	if err := cfg.Reward.Validate(); err != nil {
		return nil, fmt.Errorf("configuring twin: %w", err)
	}
	if cfg.PrewarmAlternatives == nil {
		cfg.PrewarmAlternatives = []int{0, 1, 2, 4, 8}
	}
	for _, n := range cfg.PrewarmAlternatives {
		if n < 0 {
			return nil, fmt.Errorf("configuring twin: negative pre-warm alternative %d", n)
		}
	}
	for l, p := range cfg.Internal {
		if _, ok := ParseInternalPolicy(string(p)); !ok || l == schemas.Operational {
			return nil, fmt.Errorf("configuring twin: %s policy %q cannot run inside the twin (oracle and static-best, strategic and tactical only)", l, p)
		}
		if p == PolicyStaticBest && cfg.Static == nil {
			return nil, fmt.Errorf("configuring twin: %s static-best needs its choices from the training days (TrainStatic)", l)
		}
	}
	return &Engine{m: m, cfg: cfg, funcs: map[fnKey]*fnState{}, apps: map[string]*appState{}, profile: profile,
		pending: map[schemas.Layer]*schemas.DecisionBatch{}, staticDone: map[schemas.Layer]bool{}, freeOps: make(chan []opScore, freeOpsCap)}, nil
}

// NextTick returns the tick Tick expects next.
func (e *Engine) NextTick() int64 { return e.next }

// StartAt makes k the first tick the engine evaluates, before it has
// evaluated any: decisions for earlier ticks are then out of order, and
// Simulate wants k first. Without it the first tick simulated is the start
// (replay starts at tick 0); shadow mode, whose Unix-epoch ticks are
// around 1.2e8, starts at its first watermark's tick.
func (e *Engine) StartAt(k int64) error {
	if e.started {
		return fmt.Errorf("starting the twin at tick %d: %w: it started before tick %d", k, ErrOutOfOrder, e.next)
	}
	e.next, e.started = k, true
	return nil
}

// Apply hands the engine a layer's decisions for a tick: they take effect
// when that tick is evaluated. Shards of one layer and tick are merged.
func (e *Engine) Apply(b *schemas.DecisionBatch) error {
	tick := b.Header.Tick
	var first int64
	switch b.Header.Layer {
	case schemas.Operational:
		first = tick
	case schemas.Tactical:
		first = tick * grid.TicksPerHour
	case schemas.Strategic:
		first = tick * grid.TicksPerDay
	default:
		return fmt.Errorf("applying decisions: unknown layer %q", b.Header.Layer)
	}
	if e.started && first < e.next {
		return fmt.Errorf("applying %s decisions for tick %d: %w: tick %d already evaluated", b.Header.Layer, tick, ErrOutOfOrder, first)
	}
	p := e.pending[b.Header.Layer]
	if p == nil || p.Header.Tick != tick {
		if p != nil {
			return fmt.Errorf("applying %s decisions for tick %d: decisions for tick %d are still pending", b.Header.Layer, tick, p.Header.Tick)
		}
		p = &schemas.DecisionBatch{Header: b.Header}
		e.pending[b.Header.Layer] = p
	}
	p.Rows = append(p.Rows, b.Rows...)
	return nil
}

func (e *Engine) function(app, fn string) *fnState {
	k := fnKey{app, fn}
	if f, ok := e.funcs[k]; ok {
		return f
	}
	f := &fnState{key: k, fn: e.profile(app, fn), pools: map[cloud.Placement]*cloud.Pool{}, hour: -1, day: -1, lastEndUS: math.MinInt64}
	e.funcs[k] = f
	a := e.app(app)
	i := sort.Search(len(a.funcs), func(i int) bool { return a.funcs[i].key.fn >= fn })
	a.funcs = slices.Insert(a.funcs, i, f)
	return f
}

func (e *Engine) app(app string) *appState {
	if a, ok := e.apps[app]; ok {
		return a
	}
	a := &appState{app: app}
	e.apps[app] = a
	i := sort.Search(len(e.appList), func(i int) bool { return e.appList[i].app >= app })
	e.appList = slices.Insert(e.appList, i, a)
	return a
}

// placement resolves the placement in force for f: the app's strategic
// provider, the function's tactical metro and tier, the default otherwise.
// It is kept on f until a strategic or tactical decision is taken.
func (e *Engine) placement(f *fnState) cloud.Placement {
	if f.plValid && f.plAt == e.placements {
		return f.pl
	}
	f.pl, f.plAt, f.plValid = e.resolvePlacement(f), e.placements, true
	return f.pl
}

// resolvePlacement is placement without the cache.
func (e *Engine) resolvePlacement(f *fnState) cloud.Placement {
	pl := e.cfg.DefaultPlacement
	if a := e.apps[f.key.app]; a != nil && a.hasDecision {
		if p, err := cloud.ParseProvider(a.strategic.Provider); err == nil {
			pl.Provider = p
		}
	}
	if f.hasTactical {
		if m, err := cloud.ParseMetro(f.tactical.Region); err == nil {
			pl.Metro = m
		}
		if t, err := cloud.TierOf(int(f.tactical.MemoryMB)); err == nil {
			pl.Tier = t
		}
	}
	return pl
}

// prewarm returns the pre-warm count in force for f at tick start t: the
// operational decision's count, raised to 1 while a keep-warm window
// (KeepWarmMS after the function's last execution ended) covers the tick's
// start. One instance is what the window keeps, as in the keep-alive
// baselines (docs/baselines.md#keepalive); expiry is rounded up to the tick.
func (f *fnState) prewarm(t int64) int {
	if !f.hasOperational {
		return 0
	}
	n := int(f.operational.Prewarm)
	if kw := f.operational.KeepWarmMS; kw > 0 && f.lastEndUS != math.MinInt64 && t < f.lastEndUS+kw*1000 && t >= f.lastEndUS-grid.OperationalTickUS {
		n = max(n, 1)
	}
	return n
}

func clonePools(ps map[cloud.Placement]*cloud.Pool) map[cloud.Placement]*cloud.Pool {
	out := make(map[cloud.Placement]*cloud.Pool, len(ps))
	for k, p := range ps {
		out[k] = p.Clone()
	}
	return out
}

func poolFrom(ps map[cloud.Placement]*cloud.Pool, pl cloud.Placement, startUS int64) *cloud.Pool {
	if p, ok := ps[pl]; ok {
		return p
	}
	p := cloud.NewPool(pl, startUS)
	ps[pl] = p
	return p
}

// Tick evaluates tick k with its arrivals (any order; each must start in
// tick k) under the decisions applied for it and the ones still in force.
// Ticks must come in order, without gaps. An oracle that needs later ticks'
// arrivals (Lookahead) sees none of them: use TickAhead.
func (e *Engine) Tick(k int64, arrivals []Arrival) (*Output, error) {
	return e.TickAhead(k, arrivals, func(t int64) []Arrival {
		if t == k {
			return arrivals
		}
		return nil
	})
}

// TickAhead is Tick with ahead giving the arrivals of the ticks up to
// Lookahead(k), which the internal oracles decide on.
func (e *Engine) TickAhead(k int64, arrivals []Arrival, ahead func(tick int64) []Arrival) (*Output, error) {
	out, err := e.Simulate(k, arrivals, ahead)
	if err != nil {
		return nil, err
	}
	if err := e.Score(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Simulate is the first half of TickAhead: it takes the tick's decisions
// and runs its arrivals, filling out's decisions, telemetry and outcomes,
// and leaves the scoring — the counterfactuals behind the rewards and
// transitions — to Score. The telemetry does not depend on the scoring, so
// a caller can send it (and let the next state be computed) while Score
// runs. The scoring left in the output is detached from the engine's live
// state: Score(out) may run on another goroutine while Simulate goes on
// with the next ticks, as long as the Score calls come one at a time, in
// tick order (each scores its tick's intervals in the order the rewards
// are emitted).
func (e *Engine) Simulate(k int64, arrivals []Arrival, ahead func(tick int64) []Arrival) (*Output, error) {
	if e.started && k != e.next {
		return nil, fmt.Errorf("evaluating tick %d: %w: want tick %d", k, ErrOutOfOrder, e.next)
	}
	e.started = true
	ks, ke := k*grid.OperationalTickUS, (k+1)*grid.OperationalTickUS
	out := &Output{}
	select {
	case ops := <-e.freeOps:
		out.ops = ops
	default:
		out.ops = make([]opScore, 0, e.opsCap)
	}
	if err := e.takeDecisions(k, ahead, out); err != nil {
		return nil, err
	}
	arr := slices.Clone(arrivals)
	slices.SortFunc(arr, func(a, b Arrival) int {
		if c := cmpInt(a.StartUS, b.StartUS); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	// Each function's arrivals are gathered on its state (one map lookup
	// per arrival, none per function: the loop below visits every
	// function known, most of them idle).
	for _, a := range arr {
		if a.StartUS < ks || a.StartUS >= ke {
			return nil, fmt.Errorf("evaluating tick %d: arrival %s starts at %d, outside [%d, %d)", k, a.ID, a.StartUS, ks, ke)
		}
		if a.DurationUS < 0 {
			return nil, fmt.Errorf("evaluating tick %d: arrival %s has negative duration", k, a.ID)
		}
	}
	for _, a := range arr {
		f := e.function(a.App, a.Func)
		f.arrivals = append(f.arrivals, a)
	}
	var obs []obsAt
	for _, a := range e.appList {
		for _, f := range a.funcs {
			o, err := e.tickFunction(f, k, f.arrivals, out)
			f.arrivals = f.arrivals[:0]
			if err != nil {
				return nil, err
			}
			obs = append(obs, o...)
		}
	}
	slices.SortStableFunc(obs, func(a, b obsAt) int { return cmpInt(a.start, b.start) })
	for _, o := range obs {
		out.Telemetry = append(out.Telemetry, o.obs)
	}
	if (k+1)%grid.TicksPerHour == 0 {
		h := k / grid.TicksPerHour
		jobs := e.detachHour(h)
		out.closes = append(out.closes, func(out *Output) error { return e.closeHour(h, jobs, out) })
	}
	if (k+1)%grid.TicksPerDay == 0 {
		d := k / grid.TicksPerDay
		jobs := e.detachDay(d)
		out.closes = append(out.closes, func(out *Output) error { return e.closeDay(d, jobs, out) })
	}
	e.opsCap = len(out.ops)
	e.next = k + 1
	return out, nil
}

// Score runs the scoring Simulate left in out, in order, adding the
// rewards and transitions to out. Calls must come one at a time and in
// tick order; they may overlap Simulate calls of later ticks.
func (e *Engine) Score(out *Output) error {
	ops, fs := out.ops, out.closes
	out.ops, out.closes = nil, nil
	for i := range ops {
		if err := e.scoreOperational(&ops[i], out); err != nil {
			return err
		}
	}
	clear(ops) // the pools, requests and decisions they held
	select {
	case e.freeOps <- ops[:0]:
	default:
	}
	for _, f := range fs {
		if err := f(out); err != nil {
			return err
		}
	}
	return nil
}

type obsAt struct {
	start int64
	obs   *stratapb.Observation
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

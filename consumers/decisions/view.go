package decisions

import (
	"cmp"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/schemas"
)

// MaxNameBytes is the longest app or function name the view holds and the
// API accepts, in bytes.
const MaxNameBytes = 256

// DefaultMaxEntities is the default of [Config.MaxEntities].
const DefaultMaxEntities = 100_000

// Placement is where a function runs: provider, region, memory tier, and the
// operational layer's pre-warm count and keep-warm window.
type Placement struct {
	Provider   string `json:"provider"`
	Region     string `json:"region"`
	MemoryMB   int32  `json:"memory_mb"`
	Prewarm    int32  `json:"prewarm"`
	KeepWarmMS int64  `json:"keep_warm_ms"`
}

// Placement field names, as listed in [EffectivePlacement.Default].
const (
	FieldProvider   = "provider"
	FieldRegion     = "region"
	FieldMemoryMB   = "memory_mb"
	FieldPrewarm    = "prewarm"
	FieldKeepWarmMS = "keep_warm_ms"
)

// EffectivePlacement is the placement in force for a function: the strategic
// provider, the tactical region and memory tier, the operational pre-warm
// count and keep-warm window, each falling back to the default placement.
// Default lists the fields still at the default (never nil).
type EffectivePlacement struct {
	Placement
	Default []string `json:"default"`
}

// Config configures a View.
type Config struct {
	// RunID is the run whose decisions the view keeps; batches of other
	// runs are ignored.
	RunID string
	// Epoch is trace time 0: tick k of a layer is in force from Epoch +
	// k·period. Live mode uses the Unix epoch, time.Unix(0, 0).UTC().
	Epoch time.Time
	// Default is the placement before any decision, applied field by field.
	Default Placement
	// MaxEntities caps the entities held per layer (apps for the strategic
	// layer, functions for the others); beyond it the entities with the
	// oldest decisions are evicted (see the package documentation).
	// Default DefaultMaxEntities.
	MaxEntities int
	// Now returns the wall-clock time recorded as a decision's received_at.
	// Default time.Now.
	Now func() time.Time
	// Names prefixes the decision stream and subjects Follow reads (see
	// schemas.Names).
	Names schemas.Names
}

// entry is one entity's decision in force in one layer.
type entry struct {
	tick        int64
	inForceFrom time.Time
	received    time.Time
	row         schemas.DecisionRow
}

type funcState struct {
	tactical, operational *entry
}

type appState struct {
	strategic *entry
	funcs     map[string]*funcState
}

// View is the live view of the decisions in force for one run. It is safe
// for concurrent use: Apply and Follow write, App, Function and the handler
// read.
type View struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu   sync.RWMutex
	apps map[string]*appState
	held map[schemas.Layer]int
}

// NewView returns an empty view. logger may be nil (nothing is logged); reg
// may be nil (metrics are not registered).
func NewView(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *View {
	if cfg.MaxEntities <= 0 {
		cfg.MaxEntities = DefaultMaxEntities
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Epoch = cfg.Epoch.UTC()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &View{cfg: cfg, log: logger, m: newMetrics(reg),
		apps: map[string]*appState{}, held: map[schemas.Layer]int{}}
}

// latestInForce is the latest start of a tick the view represents: JSON
// (RFC 3339) has four-digit years.
var latestInForce = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// inForceFrom returns the start of tick of layer l, and false when it is
// negative or cannot be represented.
func (v *View) inForceFrom(l schemas.Layer, tick int64) (time.Time, bool) {
	p := l.TickUS()
	if p == 0 || tick < 0 || tick > math.MaxInt64/(p*int64(time.Microsecond)) {
		return time.Time{}, false
	}
	t := v.cfg.Epoch.Add(time.Duration(tick*p) * time.Microsecond)
	if t.After(latestInForce) {
		return time.Time{}, false
	}
	return t, true
}

// cloneRow copies a row's strings out of the Arrow buffers it may point
// into, so that holding the row does not hold the whole batch.
func cloneRow(r schemas.DecisionRow) schemas.DecisionRow {
	r.App, r.Func = strings.Clone(r.App), strings.Clone(r.Func)
	r.Provider, r.Region = strings.Clone(r.Provider), strings.Clone(r.Region)
	r.Policy, r.PolicyVersion = strings.Clone(r.Policy), strings.Clone(r.PolicyVersion)
	return r
}

// Apply merges one decision batch (one shard of one tick of one layer) into
// the view. Per layer and entity it keeps the row of the newest tick: a row
// of an older tick than the one held is ignored, a row of the same tick (a
// shard, or the batch again) replaces it. Entities missing from the batch
// keep their decision. Batches of other runs are ignored.
func (v *View) Apply(b *schemas.DecisionBatch) {
	if b == nil || b.Header.RunID != v.cfg.RunID {
		return
	}
	l, tick := b.Header.Layer, b.Header.Tick
	from, ok := v.inForceFrom(l, tick)
	if !ok {
		v.log.Warn("skipping decision batch: tick out of range", "layer", l, "tick", tick, "shard", b.Header.Shard)
		v.m.skipped.WithLabelValues("tick").Add(float64(len(b.Rows)))
		return
	}
	now := v.cfg.Now()
	longNames, stale := 0, 0

	v.mu.Lock()
	for i := range b.Rows {
		r := &b.Rows[i]
		if len(r.App) > MaxNameBytes || len(r.Func) > MaxNameBytes || r.App == "" || (l != schemas.Strategic && r.Func == "") {
			longNames++
			continue
		}
		if old := v.get(l, r.App, r.Func); old != nil && old.tick > tick {
			stale++
			continue
		}
		slot := v.slot(l, r.App, r.Func)
		if *slot == nil {
			v.held[l]++
		}
		*slot = &entry{tick: tick, inForceFrom: from, received: now, row: cloneRow(*r)}
	}
	if v.held[l] > v.cfg.MaxEntities {
		v.evict(l)
	}
	// Set under the lock, so that concurrent batches leave the last count.
	v.m.held.WithLabelValues(string(l)).Set(float64(v.held[l]))
	v.mu.Unlock()

	v.m.batches.WithLabelValues(string(l)).Inc()
	if longNames > 0 {
		v.m.skipped.WithLabelValues("name").Add(float64(longNames))
		v.log.Warn("skipping decision rows with an empty or too long name", "layer", l, "tick", tick, "rows", longNames)
	}
	if stale > 0 {
		v.m.skipped.WithLabelValues("stale").Add(float64(stale))
		v.log.Debug("ignoring decision rows older than the ones held", "layer", l, "tick", tick, "rows", stale)
	}
}

// get returns the decision of layer l held for (app, fn), or nil; the
// caller holds mu.
func (v *View) get(l schemas.Layer, app, fn string) *entry {
	as := v.apps[app]
	if as == nil {
		return nil
	}
	if l == schemas.Strategic {
		return as.strategic
	}
	fs := as.funcs[fn]
	switch {
	case fs == nil:
		return nil
	case l == schemas.Tactical:
		return fs.tactical
	}
	return fs.operational
}

// slot returns where the decision of layer l for (app, fn) is held,
// creating the app and function as needed; the caller holds mu.
func (v *View) slot(l schemas.Layer, app, fn string) **entry {
	as := v.apps[app]
	if as == nil {
		as = &appState{funcs: map[string]*funcState{}}
		v.apps[strings.Clone(app)] = as
	}
	if l == schemas.Strategic {
		return &as.strategic
	}
	fs := as.funcs[fn]
	if fs == nil {
		fs = &funcState{}
		as.funcs[strings.Clone(fn)] = fs
	}
	if l == schemas.Tactical {
		return &fs.tactical
	}
	return &fs.operational
}

// prune drops apps and functions left without any decision after evict;
// the caller holds mu.
func (v *View) prune() {
	for app, as := range v.apps {
		for fn, fs := range as.funcs {
			if fs.tactical == nil && fs.operational == nil {
				delete(as.funcs, fn)
			}
		}
		if as.strategic == nil && len(as.funcs) == 0 {
			delete(v.apps, app)
		}
	}
}

// evict drops the entities of layer l with the oldest decisions until the
// layer holds 15/16 of MaxEntities, so that evictions are rare and their
// cost amortised; the caller holds mu.
func (v *View) evict(l schemas.Layer) {
	type victim struct {
		slot **entry
		tick int64
	}
	var all []victim
	for _, as := range v.apps {
		if l == schemas.Strategic {
			if as.strategic != nil {
				all = append(all, victim{&as.strategic, as.strategic.tick})
			}
			continue
		}
		for _, fs := range as.funcs {
			s := &fs.tactical
			if l == schemas.Operational {
				s = &fs.operational
			}
			if *s != nil {
				all = append(all, victim{s, (*s).tick})
			}
		}
	}
	slices.SortFunc(all, func(a, b victim) int { return cmp.Compare(a.tick, b.tick) })
	n := len(all) - max(v.cfg.MaxEntities*15/16, 1)
	for _, vi := range all[:n] {
		*vi.slot = nil
	}
	v.held[l] -= n
	v.prune()
	v.m.evicted.WithLabelValues(string(l)).Add(float64(n))
	v.log.Warn("evicting the oldest decisions: too many entities", "layer", l, "evicted", n,
		"max_entities", v.cfg.MaxEntities, "oldest_kept_tick", all[n].tick)
}

// Decision is one layer's decision in force for an entity. Its JSON holds
// the fields of its layer only: provider (strategic), region and memory_mb
// (tactical), prewarm and keep_warm_ms (operational); log_prob, value and
// predicted appear when set and finite.
type Decision struct {
	Layer schemas.Layer
	// Tick is the layer's tick the decision was made for.
	Tick int64
	// InForceFrom is the start of that tick (UTC).
	InForceFrom time.Time
	// ReceivedAt is when the view applied the decision (wall clock, UTC).
	ReceivedAt time.Time
	// Row is the decision row as published.
	Row schemas.DecisionRow
}

// FunctionDecisions is what is in force for one function: each layer's
// decision (nil when the layer never decided for it) and the effective
// placement.
type FunctionDecisions struct {
	RunID       string             `json:"run_id"`
	App         string             `json:"app"`
	Func        string             `json:"func"`
	Placement   EffectivePlacement `json:"placement"`
	Strategic   *Decision          `json:"strategic,omitempty"`
	Tactical    *Decision          `json:"tactical,omitempty"`
	Operational *Decision          `json:"operational,omitempty"`
}

// AppDecisions is what is in force for one app: its strategic decision (nil
// before any) and its functions that have a tactical or operational
// decision, sorted by name.
type AppDecisions struct {
	RunID     string              `json:"run_id"`
	App       string              `json:"app"`
	Strategic *Decision           `json:"strategic,omitempty"`
	Functions []FunctionDecisions `json:"functions"`
}

func (e *entry) decision(l schemas.Layer) *Decision {
	if e == nil {
		return nil
	}
	return &Decision{Layer: l, Tick: e.tick, InForceFrom: e.inForceFrom, ReceivedAt: e.received.UTC(), Row: e.row}
}

// App returns the decisions in force for app, and false when no layer has
// decided anything for it.
func (v *View) App(app string) (AppDecisions, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	as := v.apps[app]
	if as == nil {
		return AppDecisions{}, false
	}
	out := AppDecisions{RunID: v.cfg.RunID, App: app, Strategic: as.strategic.decision(schemas.Strategic),
		Functions: make([]FunctionDecisions, 0, len(as.funcs))}
	for fn, fs := range as.funcs {
		out.Functions = append(out.Functions, v.function(app, fn, as, fs))
	}
	slices.SortFunc(out.Functions, func(a, b FunctionDecisions) int { return strings.Compare(a.Func, b.Func) })
	return out, true
}

// knowsApp reports whether any layer holds a decision for app.
func (v *View) knowsApp(app string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.apps[app] != nil
}

// Function returns the decisions in force for function fn of app. It
// reports false when neither the function has a tactical or operational
// decision nor its app a strategic one: an app's strategic decision is in
// force for every function of the app, so a function the lower layers have
// not decided for yet is answered with the app's provider and the default
// for the other fields.
func (v *View) Function(app, fn string) (FunctionDecisions, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	as := v.apps[app]
	if as == nil {
		return FunctionDecisions{}, false
	}
	fs := as.funcs[fn]
	if fs == nil && as.strategic == nil {
		return FunctionDecisions{}, false
	}
	return v.function(app, fn, as, fs), true
}

// function builds a function's decisions; fs may be nil. The caller holds
// mu for reading.
func (v *View) function(app, fn string, as *appState, fs *funcState) FunctionDecisions {
	if fs == nil {
		fs = &funcState{}
	}
	out := FunctionDecisions{RunID: v.cfg.RunID, App: app, Func: fn,
		Strategic:   as.strategic.decision(schemas.Strategic),
		Tactical:    fs.tactical.decision(schemas.Tactical),
		Operational: fs.operational.decision(schemas.Operational)}
	def := v.cfg.Default
	p := EffectivePlacement{Placement: def, Default: []string{}}
	if as.strategic != nil && as.strategic.row.Provider != "" {
		p.Provider = as.strategic.row.Provider
	} else {
		p.Default = append(p.Default, FieldProvider)
	}
	if fs.tactical != nil && fs.tactical.row.Region != "" {
		p.Region = fs.tactical.row.Region
	} else {
		p.Default = append(p.Default, FieldRegion)
	}
	if fs.tactical != nil && fs.tactical.row.MemoryMB > 0 {
		p.MemoryMB = fs.tactical.row.MemoryMB
	} else {
		p.Default = append(p.Default, FieldMemoryMB)
	}
	if fs.operational != nil {
		p.Prewarm, p.KeepWarmMS = fs.operational.row.Prewarm, fs.operational.row.KeepWarmMS
	} else {
		p.Default = append(p.Default, FieldPrewarm, FieldKeepWarmMS)
	}
	out.Placement = p
	return out
}

package baselines

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// numTactical is the size of the tactical action space: metro × tier,
// metro-major.
const numTactical = cloud.NumMetros * cloud.NumTiers

// objective is what a greedy baseline minimises.
type objective uint8

const (
	objLatency objective = iota
	objCost
	objCarbon
)

// newPlacement builds a strategic or tactical baseline.
func newPlacement(b base, ps *params, cfg Config) (Policy, error) {
	if b.name == "random" {
		r := &random{base: b, seed: cfg.Seed}
		if b.layer == schemas.Tactical {
			r.defProvider = provider(ps)
		}
		return r, nil
	}
	if cfg.Model == nil {
		return nil, errors.New("a cloud model is required")
	}
	ev := newEvaluator(cfg.Model, ps)
	epoch := cfg.Epoch
	if epoch.IsZero() {
		epoch = cfg.Model.Config().Epoch
	}
	if b.name == "power-tuning" {
		return newPowerTuning(b, ps, cfg.Seed, ev), nil
	}
	g := &greedy{
		base:   b,
		ev:     ev,
		epoch:  epoch,
		funcs:  map[entity]*workload{},
		apps:   map[string]*[24]float64{},
		defWL:  ps.float("default_duration_ms", 0, 0, 1e7),
		defPrv: cloud.AWS,
	}
	switch b.name {
	case "greedy-latency":
		g.obj = objLatency
	case "greedy-cost":
		g.obj = objCost
	default:
		g.obj = objCarbon
	}
	if b.layer == schemas.Tactical {
		g.defPrv = provider(ps)
	}
	return g, nil
}

// provider reads the default_provider parameter: the provider a tactical
// decision uses when the row does not say where the function ran.
func provider(ps *params) cloud.Provider {
	p, _ := cloud.ParseProvider(ps.choice("default_provider", "aws", "aws", "azure", "gcp"))
	return p
}

// random draws each entity's action uniformly from a splitmix64 value of
// hash(seed, tick, app, func), so the choice depends neither on the order
// of rows nor on earlier ticks. Strategic: one of the 3 providers. Tactical:
// one of the 24 (metro, tier) actions, on the provider the row ran on last
// hour (default_provider, aws, when it does not say).
type random struct {
	base
	seed        int64
	defProvider cloud.Provider
}

// Decide implements the policy for every row of the batch.
func (p *random) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	tick := state.Header.Tick
	if p.layer == schemas.Strategic {
		for i := range state.Strategic {
			r := &state.Strategic[i]
			a := int32(uniform(entityHash(p.seed, tick, r.App, "")) * cloud.NumProviders)
			out.Rows = append(out.Rows, strategicRow(&p.base, r.App, cloud.Provider(a)))
		}
		return nil
	}
	for i := range state.Tactical {
		r := &state.Tactical[i]
		a := int(uniform(entityHash(p.seed, tick, r.App, r.Func)) * numTactical)
		pl := cloud.Placement{Provider: rowProvider(r, p.defProvider), Metro: cloud.Metro(a / cloud.NumTiers), Tier: cloud.Tier(a % cloud.NumTiers)}
		out.Rows = append(out.Rows, tacticalRow(&p.base, r, pl))
	}
	return nil
}

func strategicRow(b *base, app string, pv cloud.Provider) schemas.DecisionRow {
	d := b.row(app, "")
	d.Action = int32(pv)
	d.Provider = pv.String()
	return d
}

func tacticalRow(b *base, r *schemas.TacticalRow, pl cloud.Placement) schemas.DecisionRow {
	d := b.row(r.App, r.Func)
	d.Action = int32(int(pl.Metro)*cloud.NumTiers + int(pl.Tier))
	d.Provider = pl.Provider.String()
	d.Region = pl.Metro.String()
	d.MemoryMB = int32(pl.Tier.MB())
	return d
}

// rowProvider is the provider the tactical row's function ran on last hour,
// or def when the row does not name a known one.
func rowProvider(r *schemas.TacticalRow, def cloud.Provider) cloud.Provider {
	if p, err := cloud.ParseProvider(r.Provider); err == nil {
		return p
	}
	return def
}

// evaluator computes a placement's expected per-invocation latency, cost
// and carbon for an observed workload with cloud.Model. The function's
// hidden profile is not known to a baseline; it uses a prior: CPU-bound
// fraction cpu_fraction (default 0.4, the mean of the model's Beta(2, 3)),
// and the cold start averaged over the model's runtime mix.
type evaluator struct {
	m        *cloud.Model
	prior    cloud.Profile
	coldMS   [cloud.NumProviders]float64
	u        float64
	minMB    float64
	headroom float64
	coldRate float64
}

func newEvaluator(m *cloud.Model, ps *params) *evaluator {
	cfg := m.Config()
	e := &evaluator{
		m:        m,
		prior:    cloud.Profile{CPUBoundFraction: ps.float("cpu_fraction", 0.4, 0, 1), WorkingSetMB: 0},
		minMB:    ps.float("default_min_memory_mb", 512, 0, 3008),
		headroom: ps.float("memory_headroom", 0.1, 0, 10),
		coldRate: ps.float("cold_start_rate", 0, 0, 1),
	}
	for pv := range cloud.Provider(cloud.NumProviders) {
		for rt, w := range cfg.RuntimeMix {
			e.coldMS[pv] += w * m.ColdStartMS(pv, cloud.Runtime(rt))
		}
	}
	e.u = cfg.CarbonUtilisation
	if cfg.CarbonUtilisationFromProfile {
		e.u = e.prior.CPUBoundFraction
	}
	return e
}

// workload is what a greedy baseline knows about an entity.
type workload struct {
	// refMS is the mean duration at the model's reference configuration.
	refMS float64
	// needMB is the memory the entity needs (0: unknown).
	needMB float64
	// coldRate is the expected share of cold starts.
	coldRate float64
	known    bool
}

// factor is the execution-time factor of placement pl relative to the
// reference configuration under the prior profile.
func (e *evaluator) factor(pl cloud.Placement) float64 {
	return float64(e.m.ExecUS(pl, e.prior, 1_000_000)) / 1e6
}

// minTier is the smallest tier at or above the workload's memory need
// (raised by the headroom), or above default_min_memory_mb when the need is
// unknown; the largest tier when none is.
func (e *evaluator) minTier(w *workload) cloud.Tier {
	need := e.minMB
	if w.needMB > 0 {
		need = w.needMB * (1 + e.headroom)
	}
	for t := range cloud.Tier(cloud.NumTiers) {
		if float64(t.MB()) >= need {
			return t
		}
	}
	return cloud.NumTiers - 1
}

// score returns the objective of one invocation of workload w at pl for
// users in metro user, with grid intensity gPerKWh at pl.
func (e *evaluator) score(obj objective, pl cloud.Placement, w *workload, user cloud.Metro, gPerKWh float64) float64 {
	execUS := e.m.ExecUS(pl, e.prior, int64(math.Round(w.refMS*1000)))
	coldMS := w.coldRate * e.coldMS[pl.Provider]
	switch obj {
	case objLatency:
		return e.m.RTTMS(user, pl.Metro) + float64(execUS)/1000 + coldMS
	case objCost:
		billed := execUS
		if e.m.Config().BillColdStart {
			billed += int64(math.Round(coldMS * 1000))
		}
		return e.m.InvocationCostUSD(pl, billed, false)
	default:
		s := float64(execUS)/1e6 + coldMS/1000
		return e.m.EnergyKWh(pl, s, e.u) * e.m.Catalog().Regions[pl.Provider][pl.Metro].PUE.Value * gPerKWh
	}
}

// greedy is the greedy-latency, greedy-cost and greedy-carbon baseline of
// both placement layers: it picks the placement that minimises the model's
// expected per-invocation latency, cost or carbon for the entity's observed
// workload (the choice does not depend on the invocation count: per
// invocation and in total are the same argmin; pre-warm is the operational
// layer's).
//
// Tactical: on the provider the row ran on (default_provider when empty),
// the (metro, tier) of the 24 with the lowest score, ties to the lower
// action index. Strategic: the provider whose best (metro, tier) has the
// lowest score, ties to the lower provider.
//
// Workload. Duration = the row's DurationMeanMS divided by the placement's
// execution-time factor under the prior (tactical: the row's provider,
// region and memory, when all are known; strategic rows name no placement,
// so their durations are taken as reference durations); an entity with no
// invocations keeps its last known duration, or default_duration_ms when
// set, else it is left out. Cold-start share = the row's ColdStartRate when
// valid, else cold_start_rate (0). Memory need (tactical) = MemoryMB ×
// MemoryUtil ÷ CPUUtil (in the twin's telemetry this ratio is the busy-time
// weighted working set over the tier), the largest seen; tiers below need ×
// (1 + memory_headroom) are excluded; unknown need → tiers below
// default_min_memory_mb (512, the 95th percentile of the model's assumed
// working-set distribution) are excluded. Strategic rows carry no memory
// tier, so strategic choices use default_min_memory_mb.
//
// User metro (latency): tactical, from the app's invocations by UTC hour of
// day accumulated over every batch seen (a row of hour h−1 counts in that
// hour under the epoch), through Model.UserMetro. Strategic rows carry no
// hour-of-day profile; RTT in the model depends only on the two metros and
// every provider has a region in every metro, so the provider ranking does
// not depend on the user metro, and us-east is used.
//
// Carbon: the grid intensity of the hour the decision is in force for
// (tactical: the tick's hour; strategic: the mean over the day's 24 hours) —
// the series holds actual values, so this is a perfect forecast.
type greedy struct {
	base
	ev     *evaluator
	obj    objective
	epoch  time.Time
	funcs  map[entity]*workload
	apps   map[string]*[24]float64
	defWL  float64
	defPrv cloud.Provider
	inten  [cloud.NumProviders][cloud.NumMetros]float64
}

// Decide implements the policy for every row of the batch.
func (p *greedy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := p.check(ctx, state, out); err != nil {
		return err
	}
	start := state.Header.TickStartUS
	if p.obj == objCarbon {
		hours := 1
		if p.layer == schemas.Strategic {
			hours = 24
		}
		p.intensities(start, hours)
	}
	if p.layer == schemas.Strategic {
		for i := range state.Strategic {
			r := &state.Strategic[i]
			w := p.strategicWorkload(r)
			if !w.known {
				continue
			}
			best, bestScore := cloud.AWS, math.Inf(1)
			for pv := range cloud.Provider(cloud.NumProviders) {
				if _, s := p.best(pv, w, cloud.USEast); s < bestScore {
					best, bestScore = pv, s
				}
			}
			out.Rows = append(out.Rows, strategicRow(&p.base, r.App, best))
		}
		return nil
	}
	hour := cloud.HourOfDayUTC(p.epoch, start-grid.TacticalTickUS)
	for i := range state.Tactical {
		r := &state.Tactical[i]
		h := p.apps[r.App]
		if h == nil {
			h = new([24]float64)
			p.apps[r.App] = h
		}
		h[hour] += float64(r.Invocations)
	}
	for i := range state.Tactical {
		r := &state.Tactical[i]
		w := p.tacticalWorkload(r)
		if !w.known {
			continue
		}
		user := p.ev.m.UserMetro(*p.apps[r.App])
		pl, _ := p.best(rowProvider(r, p.defPrv), w, user)
		out.Rows = append(out.Rows, tacticalRow(&p.base, r, pl))
	}
	return nil
}

// intensities caches the mean grid intensity of each provider's region in
// each metro over hours hours from startUS.
func (p *greedy) intensities(startUS int64, hours int) {
	for pv := range cloud.Provider(cloud.NumProviders) {
		for mt := range cloud.Metro(cloud.NumMetros) {
			sum := 0.0
			for h := range hours {
				sum += p.ev.m.IntensityGPerKWh(pv, mt, startUS+int64(h)*grid.TacticalTickUS)
			}
			p.inten[pv][mt] = sum / float64(hours)
		}
	}
}

// best returns provider pv's best (metro, tier) for w and its score.
func (p *greedy) best(pv cloud.Provider, w *workload, user cloud.Metro) (cloud.Placement, float64) {
	minT := p.ev.minTier(w)
	var best cloud.Placement
	bestScore := math.Inf(1)
	for mt := range cloud.Metro(cloud.NumMetros) {
		for t := minT; t < cloud.NumTiers; t++ {
			pl := cloud.Placement{Provider: pv, Metro: mt, Tier: t}
			if s := p.ev.score(p.obj, pl, w, user, p.inten[pv][mt]); s < bestScore {
				best, bestScore = pl, s
			}
		}
	}
	return best, bestScore
}

func (p *greedy) entity(app, fn string) *workload {
	k := key(app, fn)
	w := p.funcs[k]
	if w == nil {
		w = &workload{}
		if p.defWL > 0 {
			w.refMS, w.known = p.defWL, true
		}
		p.funcs[k] = w
	}
	return w
}

func (p *greedy) strategicWorkload(r *schemas.StrategicRow) *workload {
	w := p.entity(r.App, "")
	if r.Invocations > 0 && r.DurationMeanMS > 0 && !math.IsInf(r.DurationMeanMS, 0) {
		w.refMS, w.known = r.DurationMeanMS, true
	}
	w.coldRate = p.ev.coldRate
	if r.ColdStartRate.Valid && r.ColdStartRate.V >= 0 {
		w.coldRate = min(max(r.ColdStartRate.V, 0), 1)
	}
	return w
}

func (p *greedy) tacticalWorkload(r *schemas.TacticalRow) *workload {
	w := p.entity(r.App, r.Func)
	observeTactical(p.ev, w, r)
	return w
}

// observeTactical updates w from a tactical row: reference duration, memory
// need and cold-start share.
func observeTactical(ev *evaluator, w *workload, r *schemas.TacticalRow) {
	pl, placed := rowPlacement(r)
	if r.Invocations > 0 && r.DurationMeanMS > 0 && !math.IsInf(r.DurationMeanMS, 0) {
		w.refMS, w.known = r.DurationMeanMS, true
		if placed {
			w.refMS /= ev.factor(pl)
		}
	}
	if need, ok := memoryNeed(r); ok {
		w.needMB = max(w.needMB, need)
	}
	w.coldRate = ev.coldRate
	if r.ColdStartRate.Valid && r.ColdStartRate.V >= 0 {
		w.coldRate = min(max(r.ColdStartRate.V, 0), 1)
	}
}

// rowPlacement is the placement the tactical row ran under, when it names a
// known provider, metro and tier.
func rowPlacement(r *schemas.TacticalRow) (cloud.Placement, bool) {
	pv, err1 := cloud.ParseProvider(r.Provider)
	mt, err2 := cloud.ParseMetro(r.Region)
	t, err3 := cloud.TierOf(int(r.MemoryMB))
	if err := errors.Join(err1, err2, err3); err != nil {
		return cloud.Placement{}, false
	}
	return cloud.Placement{Provider: pv, Metro: mt, Tier: t}, true
}

// memoryNeed estimates the function's working set from a tactical row:
// MemoryMB × MemoryUtil ÷ CPUUtil. Both utilisations divide by the same
// instances × time, so their ratio is the busy-time weighted memory in use
// over the tier; an invocation that ran out of memory reports the whole
// tier, so the estimate then pushes the choice above the tier.
func memoryNeed(r *schemas.TacticalRow) (float64, bool) {
	if r.MemoryMB <= 0 || !r.MemoryUtil.Valid || !r.CPUUtil.Valid || !(r.CPUUtil.V > 0) || !(r.MemoryUtil.V >= 0) {
		return 0, false
	}
	need := float64(r.MemoryMB) * r.MemoryUtil.V / r.CPUUtil.V
	if math.IsInf(need, 0) || math.IsNaN(need) {
		return 0, false
	}
	return need, true
}

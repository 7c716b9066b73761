package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/experiments/eval"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
)

// layerSums are one run's sums over its reward rows of one layer.
type layerSums struct {
	Rows, Invocations, ColdStarts, SLAViolations      float64
	Reward, Regret, RCost, RPerf, RCarbon, SLAPenalty float64
	CostUSD, PrewarmUSD, CarbonG                      float64
}

// runData is what the store holds of one run.
type runData struct {
	ref    ref
	layers map[string]*layerSums
	hist   schemas.LatencyHistogram
	// mix counts the intervals of the scored days under each value of a
	// decision dimension ("strategic provider": app-days; "tactical
	// provider", "tactical region", "tactical memory_mb": function-hours).
	mix map[string]map[string]int64
	// regret counts the tactical reward rows per regret bucket
	// (⌊regret × regretBins⌋).
	regret map[int]int64
}

// regretBins is the regret histogram's buckets per unit of regret.
const regretBins = 20

// load reads the figures of refs' runs from the store: reward sums per
// layer, the latency histogram over the scored days, the strategic and
// tactical decision mix and the tactical regret distribution. A run found
// in a runs file of more has its figures from there.
func load(ctx context.Context, st querier, refs []ref, win eval.Window, more *carried) (map[string]*runData, error) {
	d := map[string]*runData{}
	ids := make([]string, 0, len(refs))
	for _, r := range refs {
		if _, ok := d[r.runID]; ok || r.runID == "" {
			continue
		}
		if r.from != "" {
			// A runs file's run: its figures as the file has them.
			rd := *more.data[r.runID]
			rd.ref = r
			d[r.runID] = &rd
			continue
		}
		if strings.ContainsAny(r.runID, `'\`) {
			return nil, fmt.Errorf("run id %q: not a strata run id", r.runID)
		}
		d[r.runID] = &runData{ref: r, layers: map[string]*layerSums{}, mix: map[string]map[string]int64{}, regret: map[int]int64{}}
		ids = append(ids, "'"+r.runID+"'")
	}
	if len(ids) == 0 {
		return d, nil
	}
	in := "(" + strings.Join(ids, ", ") + ")"
	q := func(what, sql string, row func(r []any)) error {
		_, rows, err := st.Query(ctx, sql)
		if err != nil {
			return fmt.Errorf("reading the runs' %s from the store: %w", what, err)
		}
		for _, r := range rows {
			row(r)
		}
		return nil
	}
	err := q("rewards", "SELECT run_id, layer, count(), sum(invocations), sum(cold_starts), sum(sla_violations), sum(reward), sum(regret), "+
		"sum(r_cost), sum(r_perf), sum(r_carbon), sum(sla_penalty), sum(cost_usd), sum(prewarm_cost_usd), sum(carbon_g) "+
		"FROM rewards FINAL WHERE run_id IN "+in+" GROUP BY run_id, layer", func(r []any) {
		v := make([]float64, 13)
		for i := range v {
			v[i] = num(r[i+2])
		}
		d[str(r[0])].layers[str(r[1])] = &layerSums{Rows: v[0], Invocations: v[1], ColdStarts: v[2], SLAViolations: v[3], Reward: v[4], Regret: v[5],
			RCost: v[6], RPerf: v[7], RCarbon: v[8], SLAPenalty: v[9], CostUSD: v[10], PrewarmUSD: v[11], CarbonG: v[12]}
	})
	if err != nil {
		return nil, err
	}
	err = q("latency histograms", "SELECT run_id, bucket, sum(count) FROM latency_hist FINAL WHERE run_id IN "+in+" GROUP BY run_id, bucket", func(r []any) {
		h := &d[str(r[0])].hist
		b, n := int(num(r[1])), int64(num(r[2]))
		if b >= 0 && b < schemas.LatencyBuckets {
			h.Counts[b] += n
			h.Total += n
		}
	})
	if err != nil {
		return nil, err
	}
	// The mix weighs each decision by the intervals of the scored days it
	// was in force (until the entity's next decision): a decision made
	// in the warm-up and kept (static-best decides once) counts for the
	// scored days it governed.
	type ent struct{ run, layer, app, fn string }
	var cur ent
	var pend []decisionRow
	flush := func() {
		if len(pend) > 0 {
			weighInForce(d[cur.run].mix, cur.layer, pend, win)
		}
		pend = pend[:0]
	}
	// One run at a time: a 14-day evaluation stores ~70,000 placement
	// decisions a run, and the store hands a query's rows over at once.
	for _, id := range ids {
		err = q("decisions", "SELECT run_id, layer, app, func, tick, provider, region, memory_mb FROM decisions FINAL WHERE run_id = "+id+
			" AND layer IN ('strategic', 'tactical') ORDER BY layer, app, func, tick", func(r []any) {
			e := ent{str(r[0]), str(r[1]), str(r[2]), str(r[3])}
			if e != cur {
				flush()
				cur = e
			}
			pend = append(pend, decisionRow{tick: int64(num(r[4])), provider: str(r[5]), region: str(r[6]), memoryMB: int64(num(r[7]))})
		})
		if err != nil {
			return nil, err
		}
		flush()
	}
	err = q("regret distribution", fmt.Sprintf("SELECT run_id, floor(regret * %d), count() FROM rewards FINAL WHERE run_id IN %s AND layer = 'tactical' GROUP BY run_id, floor(regret * %d)",
		regretBins, in, regretBins), func(r []any) {
		d[str(r[0])].regret[int(num(r[1]))] += int64(num(r[2]))
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// num converts a numeric value of either backend (store.Number).
func num(v any) float64 { return store.Number(v) }

// decisionRow is one strategic or tactical decision of an entity.
type decisionRow struct {
	tick             int64
	provider, region string
	memoryMB         int64
}

// weighInForce adds to mix the intervals of the scored days each of an
// entity's decisions (sorted by tick) was in force: from its tick (or the
// scored days' start) to the next decision (or their end). mix's keys are
// "strategic provider" (app-days) and "tactical provider", "tactical
// region", "tactical memory_mb" (function-hours).
func weighInForce(mix map[string]map[string]int64, layer string, ds []decisionRow, win eval.Window) {
	per := int64(1) // strategic: days
	if layer == "tactical" {
		per = 24
	}
	from := int64(win.ScoredFirst-win.FirstDay) * per
	to := int64(win.ScoredLast-win.FirstDay+1) * per
	add := func(dim, val string, n int64) {
		if mix[dim] == nil {
			mix[dim] = map[string]int64{}
		}
		mix[dim][val] += n
	}
	for i, dr := range ds {
		end := to
		if i+1 < len(ds) {
			end = min(ds[i+1].tick, to)
		}
		n := end - max(dr.tick, from)
		if n <= 0 {
			continue
		}
		add(layer+" provider", dr.provider, n)
		if layer == "tactical" {
			add("tactical region", dr.region, n)
			add("tactical memory_mb", strconv.FormatInt(dr.memoryMB, 10), n)
		}
	}
}

// str converts a string value of either backend.
func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

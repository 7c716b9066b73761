package store

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/strata-rl/strata/schemas"
)

// RunQuery is one of the documented queries over the runs that `strata
// eval` and `strata train` record (docs/tables.md, "Querying runs"). Its
// text is ClickHouse's; `strata sql` runs it unchanged on DuckDB (FINAL is
// dropped there), and the tests run it on both.
type RunQuery struct {
	// Name is a short identifier; Question what the query answers.
	Name, Question string
	text           string
}

// SQL returns the query for the evaluation days first to last (1-based,
// inclusive, as `strata eval --eval-days` gives them).
func (q RunQuery) SQL(first, last int) string {
	return strings.NewReplacer("{first}", strconv.Itoa(first), "{last}", strconv.Itoa(last),
		"{top}", strconv.Itoa(schemas.LatencyBuckets-1)).Replace(q.text)
}

// evalRuns selects the evaluation runs of the days asked for, labelled.
const evalRuns = `(SELECT run_id, label FROM runs FINAL WHERE kind = 'eval' AND scored_first_day = {first} AND scored_last_day = {last})`

// RunQueries are the documented queries. Percentiles across runs come
// from the merged latency histograms (sum of count_le per bucket), never
// from averaging the runs' percentiles.
var RunQueries = []RunQuery{
	{Name: "p95-by-tactical-policy", Question: "which tactical policy had the lowest p95 latency on the evaluation days, across seeds (every run of a label merged)",
		text: `SELECT label, min(upper_ms) AS p95_ms, max(n) AS invocations
FROM (
  SELECT label, bucket, min(upper_ms) AS upper_ms, sum(count_le) AS le
  FROM latency_hist FINAL INNER JOIN ` + evalRuns + ` USING (run_id)
  WHERE label LIKE 'tactical %' AND day BETWEEN {first} AND {last}
  GROUP BY label, bucket
) INNER JOIN (
  SELECT label, sum(total) AS n
  FROM latency_hist FINAL INNER JOIN ` + evalRuns + ` USING (run_id)
  WHERE label LIKE 'tactical %' AND day BETWEEN {first} AND {last} AND bucket = {top}
  GROUP BY label
) USING (label)
WHERE le >= 0.95 * n
GROUP BY label
ORDER BY p95_ms, label`},
	{Name: "tactical-reward-across-seeds", Question: "each configuration's mean tactical reward per run, averaged over its runs (seeds), with the standard deviation across them",
		text: `SELECT label, count() AS runs, avg(r) AS mean_reward,
  sqrt((sum(r * r) - sum(r) * sum(r) / count()) / (count() - 1)) AS sd_across_runs
FROM (SELECT run_id, avg(reward) AS r FROM rewards FINAL WHERE layer = 'tactical' GROUP BY run_id)
INNER JOIN ` + evalRuns + ` USING (run_id)
GROUP BY label
ORDER BY mean_reward DESC, label`},
	{Name: "cost-per-million", Question: "per configuration: USD, keep-warm USD, gCO2e and cold starts per million invocations, from the operational rows (every function-tick the twin scored: its totals; cost_usd includes the keep-warm part)",
		text: `SELECT label, sum(invocations) AS n_invocations,
  sum(cost_usd) * 1000000 / sum(invocations) AS usd_per_m,
  sum(prewarm_cost_usd) * 1000000 / sum(invocations) AS keep_warm_usd_per_m,
  sum(carbon_g) * 1000000 / sum(invocations) AS gco2e_per_m,
  sum(cold_starts) * 1000000 / sum(invocations) AS cold_per_m
FROM rewards FINAL INNER JOIN ` + evalRuns + ` USING (run_id)
WHERE layer = 'operational'
GROUP BY label
ORDER BY usd_per_m, label`},
}

// Number converts a numeric value a query returned to float64, whichever
// the backend: ClickHouse returns its column types (UInt64 for count(),
// Float64, Int32…), DuckDB sums integers into HUGEINT (*big.Int). Other
// values are NaN.
func Number(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	case uint64:
		return float64(x)
	case uint32:
		return float64(x)
	case uint8:
		return float64(x)
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f
	}
	return math.NaN()
}

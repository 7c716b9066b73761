package store

import (
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// The row converters return a record's values in the order of its table's
// columns, as Go types both drivers accept for those columns.

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// RunValues returns a runs row's values in the order of the runs table's
// columns (as Columns names them), for a raw insert beside the store's own.
func RunValues(r *stratapb.Run) []any {
	return []any{r.GetRunId(), r.GetStartedUnixMs(), time.UnixMilli(r.GetStartedUnixMs()).UTC().Truncate(time.Second),
		r.GetSource(), r.GetSeed(), r.GetSpeed(), r.GetStrategicPolicy(), r.GetTacticalPolicy(),
		r.GetOperationalPolicy(), r.GetDefaultPlacement(), r.GetTraceEpoch(), r.GetConfigJson(),
		r.GetKind(), r.GetLabel(), r.GetRevision(), r.GetWallMs(), r.GetFirstDay(), r.GetScoredFirstDay(),
		r.GetScoredLastDay(), r.GetModels(), r.GetEpisode(), r.GetPolicySeed(), r.GetModelsDigest()}
}

func latencyValues(b *stratapb.LatencyBucket) []any {
	return []any{b.GetRunId(), b.GetDay(), b.GetBucket(), b.GetUpperMs(), b.GetCount(), b.GetCountLe(), b.GetTotal()}
}

func decisionValues(d *stratapb.Decision) []any {
	return []any{d.GetRunId(), d.GetLayer(), d.GetTick(), d.GetTickMs(), d.GetApp(), d.GetFunc(),
		d.GetPolicy(), d.GetPolicyVersion(), d.GetAction(), d.GetProvider(), d.GetRegion(),
		d.GetMemoryMb(), d.GetPrewarm(), d.GetKeepWarmMs(), d.LogProb, d.Value, b2u(d.GetCarried())}
}

func rewardValues(r *stratapb.Reward) []any {
	return []any{r.GetRunId(), r.GetLayer(), r.GetTick(), r.GetTickMs(), r.GetApp(), r.GetFunc(),
		r.GetReward(), r.GetRCost(), r.GetRPerf(), r.GetRCarbon(), r.GetSlaPenalty(),
		r.GetInvocations(), r.GetColdStarts(), r.GetSlaViolations(), r.GetCostUsd(),
		r.GetPrewarmCostUsd(), r.GetCarbonG(), r.GetLatencyP50Ms(), r.GetLatencyP95Ms(),
		r.GetPredError(), r.GetUnderprovisioned(), r.GetOracleReward(), r.GetRegret()}
}

func outcomeValues(o *stratapb.Outcome) []any {
	return []any{o.GetRunId(), o.GetInvocationId(), o.GetApp(), o.GetFunc(), o.GetStartUs(),
		o.GetProvider(), o.GetRegion(), o.GetMemoryMb(), o.GetLatencyMs(), o.GetExecMs(),
		o.GetQueueWaitMs(), b2u(o.GetColdStart()), b2u(o.GetFailed()), b2u(o.GetSlaViolation()),
		o.GetCostUsd(), o.GetCarbonG()}
}

// tickKeyOf is the natural key (run_id, layer, tick, app, func) as one
// string; \x00 cannot occur inside the fields' meaning, so it separates
// them unambiguously enough for de-duplicating a batch.
func tickKeyOf(run, layer string, tick int64, app, fn string) string {
	return strings.Join([]string{run, layer, strconv.FormatInt(tick, 10), app, fn}, "\x00")
}

// DecisionKey returns the natural key of a decision row.
func DecisionKey(d *stratapb.Decision) string {
	return tickKeyOf(d.GetRunId(), d.GetLayer(), d.GetTick(), d.GetApp(), d.GetFunc())
}

// RewardKey returns the natural key of a reward row.
func RewardKey(r *stratapb.Reward) string {
	return tickKeyOf(r.GetRunId(), r.GetLayer(), r.GetTick(), r.GetApp(), r.GetFunc())
}

// OutcomeKey returns the natural key of an outcome row.
func OutcomeKey(o *stratapb.Outcome) string {
	return strings.Join([]string{o.GetRunId(), o.GetApp(), o.GetFunc(), o.GetInvocationId()}, "\x00")
}

// LatencyKey returns the natural key of a latency_hist row.
func LatencyKey(b *stratapb.LatencyBucket) string {
	return strings.Join([]string{b.GetRunId(), strconv.Itoa(int(b.GetDay())), strconv.Itoa(int(b.GetBucket()))}, "\x00")
}

// RunKey returns the natural key of a run row.
func RunKey(r *stratapb.Run) string { return r.GetRunId() }

// lastByKey returns rows without earlier duplicates of the same key, in
// their original order: within one batch the row that came last wins, as
// it does across batches.
func lastByKey[T any](rows []T, key func(T) string) []T {
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[key(r)] = i
	}
	if len(last) == len(rows) {
		return rows
	}
	out := make([]T, 0, len(last))
	for i, r := range rows {
		if last[key(r)] == i {
			out = append(out, r)
		}
	}
	return out
}

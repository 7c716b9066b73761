package schemas

import (
	"math"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// The latency histogram's bucket grid, shared by every run so that the
// histograms of different runs merge by adding counts bucket by bucket:
// bucket 0 holds latencies up to 1 ms, bucket i (1 ≤ i < LatencyBuckets)
// those above LatencyUpperMS(i−1) and up to LatencyUpperMS(i) =
// LatencyGrowth^i ms. The last bucket's upper bound is 1.02^814 ≈ 10.0 M ms
// (2.8 h); a longer latency is counted in it too.
const (
	// LatencyBuckets is the number of buckets.
	LatencyBuckets = 815
	// LatencyGrowth is the ratio of consecutive upper bounds: a quantile
	// read as a bucket's upper bound is at most 2 % above the true one.
	LatencyGrowth = 1.02
)

// latencyUpper holds the buckets' upper bounds, computed once.
var latencyUpper = func() [LatencyBuckets]float64 {
	var u [LatencyBuckets]float64
	for i := range u {
		u[i] = math.Pow(LatencyGrowth, float64(i))
	}
	return u
}()

// LatencyUpperMS returns bucket i's upper bound in milliseconds.
func LatencyUpperMS(i int) float64 { return latencyUpper[i] }

// LatencyBucketOf returns the bucket of a latency in milliseconds: the
// first whose upper bound is at or above it (NaN and values ≤ 1 ms are
// bucket 0, values past the grid the last bucket).
func LatencyBucketOf(ms float64) int {
	if !(ms > 1) {
		return 0
	}
	i := int(math.Ceil(math.Log(ms) / math.Log(LatencyGrowth)))
	i = min(max(i, 0), LatencyBuckets-1)
	// The logarithm may round across a bound: settle on the table.
	for i < LatencyBuckets-1 && latencyUpper[i] < ms {
		i++
	}
	for i > 0 && latencyUpper[i-1] >= ms {
		i--
	}
	return i
}

// LatencyHistogram counts latencies on the shared bucket grid. The zero
// value is empty and ready to use.
type LatencyHistogram struct {
	// Counts holds the invocations per bucket.
	Counts [LatencyBuckets]int64
	// Total is the sum of Counts.
	Total int64
}

// Add counts one latency in milliseconds.
func (h *LatencyHistogram) Add(ms float64) {
	h.Counts[LatencyBucketOf(ms)]++
	h.Total++
}

// Merge adds o's counts to h.
func (h *LatencyHistogram) Merge(o *LatencyHistogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Total += o.Total
}

// Quantile returns the upper bound of the first bucket whose cumulative
// count reaches q × Total (0 for an empty histogram): the q-quantile, read
// at most LatencyGrowth−1 (2 %) above the value the sorted latencies give
// (their ⌈q·n⌉-th smallest), or 1 ms when that value is below 1 ms. The stored queries of docs/tables.md compute
// the same from the latency_hist table.
func (h *LatencyHistogram) Quantile(q float64) float64 {
	if h.Total == 0 {
		return 0
	}
	need := q * float64(h.Total)
	var le int64
	for i, c := range h.Counts {
		le += c
		if c > 0 && float64(le) >= need {
			return latencyUpper[i]
		}
	}
	return latencyUpper[LatencyBuckets-1]
}

// Rows returns the histogram as latency_hist rows of run runID and trace
// day day: one per bucket from the first that holds a latency to the last
// of the grid, so that summing count_le over runs bucket by bucket gives
// the merged cumulative counts (a run has no row below its first latency,
// where its cumulative count is 0). An empty histogram has no rows.
func (h *LatencyHistogram) Rows(runID string, day int32) []*stratapb.LatencyBucket {
	first := -1
	for i, c := range h.Counts {
		if c > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	out := make([]*stratapb.LatencyBucket, 0, LatencyBuckets-first)
	var le int64
	for i := first; i < LatencyBuckets; i++ {
		le += h.Counts[i]
		out = append(out, &stratapb.LatencyBucket{RunId: runID, Day: day, Bucket: int32(i), UpperMs: latencyUpper[i],
			Count: h.Counts[i], CountLe: le, Total: h.Total})
	}
	return out
}

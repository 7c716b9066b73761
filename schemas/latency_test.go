package schemas

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestLatencyBucketOfBounds(t *testing.T) {
	tests := []struct {
		ms   float64
		want int
	}{
		{math.NaN(), 0}, {-3, 0}, {0, 0}, {1, 0}, {1.0000001, 1}, {LatencyGrowth, 1},
		{LatencyGrowth * LatencyGrowth, 2}, {1e9, LatencyBuckets - 1}, {math.Inf(1), LatencyBuckets - 1},
	}
	for _, tt := range tests {
		if got := LatencyBucketOf(tt.ms); got != tt.want {
			t.Errorf("LatencyBucketOf(%v) = %d, want %d", tt.ms, got, tt.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		ms := math.Exp(r.Float64() * 16)
		i := LatencyBucketOf(ms)
		if ms > LatencyUpperMS(i) || i > 0 && ms <= LatencyUpperMS(i-1) {
			t.Fatalf("%v ms in bucket %d of (%v, %v]", ms, i, LatencyUpperMS(max(i-1, 0)), LatencyUpperMS(i))
		}
	}
}

// TestLatencyHistogramQuantile checks the histogram's quantiles against
// the sorted latencies: never below, at most 2 % above; and that merging
// two halves' histograms gives the whole's.
func TestLatencyHistogramQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all, a, b LatencyHistogram
	xs := make([]float64, 0, 50_000)
	for i := range 50_000 {
		ms := math.Exp(3 + 2*r.NormFloat64())
		xs = append(xs, ms)
		all.Add(ms)
		if i%2 == 0 {
			a.Add(ms)
		} else {
			b.Add(ms)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("the merged halves differ from the whole's histogram")
	}
	slices.Sort(xs)
	for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 1} {
		exact := xs[int(math.Ceil(q*float64(len(xs))))-1]
		got := all.Quantile(q)
		// Bucket 0 holds everything up to 1 ms.
		if got < exact || got > max(exact*LatencyGrowth, 1) {
			t.Errorf("q %v: histogram %v, sorted %v (want within [x, max(1.02x, 1 ms)])", q, got, exact)
		}
	}
	var empty LatencyHistogram
	if empty.Quantile(0.5) != 0 || empty.Rows("r", 1) != nil {
		t.Error("an empty histogram has a quantile or rows")
	}
}

func TestLatencyHistogramRows(t *testing.T) {
	var h LatencyHistogram
	for _, ms := range []float64{10, 10, 200, 5e6} {
		h.Add(ms)
	}
	rows := h.Rows("run-1", 13)
	first := LatencyBucketOf(10)
	if len(rows) != LatencyBuckets-first {
		t.Fatalf("%d rows, want %d (first bucket %d to the last)", len(rows), LatencyBuckets-first, first)
	}
	last := rows[len(rows)-1]
	if last.CountLe != 4 || last.Total != 4 || rows[0].Count != 2 || rows[0].CountLe != 2 || rows[0].Day != 13 || rows[0].RunId != "run-1" {
		t.Errorf("rows: first %v, last %v", rows[0], last)
	}
	for i, r := range rows {
		if int(r.Bucket) != first+i || r.UpperMs != LatencyUpperMS(first+i) {
			t.Fatalf("row %d: bucket %d upper %v", i, r.Bucket, r.UpperMs)
		}
	}
}

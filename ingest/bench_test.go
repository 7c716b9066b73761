package ingest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkTelemetryRequest times POST /v1/telemetry end to end on an
// embedded broker: a request of 500 JSON records (as `strata bench ingest`
// sends them) read, decoded, validated, encoded, produced and acknowledged
// by Kafka, and the reply read. allocs/record counts every allocation of
// the process (the client's, the server's, franz-go's and kfake's) per
// record.
func BenchmarkTelemetryRequest(b *testing.B) {
	const n = 500
	h := start(b, nil)
	var recs []string
	for i := range n {
		recs = append(recs, fmt.Sprintf(`{"invocation_id":"%032x","app":"app-%03d","func":"func-%d","end_us":%d,"duration_us":%d,"start_us":%d,"provider":"azure"}`,
			i, i%50, i%7, t0.UnixMicro(), 1000+i, t0.UnixMicro()-int64(1000+i)))
	}
	body := []byte("[" + strings.Join(recs, ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if code, _, reply := h.post("/v1/telemetry", "tok", body); code != 200 {
			b.Fatalf("status %d: %s", code, reply)
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n*b.N), "allocs/record")
}

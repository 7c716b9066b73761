package telemetry_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/strata-rl/strata/ingest/telemetry"
)

// benchRecords is the number of records in a benchmark request.
const benchRecords = 1000

// benchJSON returns a request of benchRecords realistic records, every
// fourth without an invocation id, as an array or as JSON lines.
func benchJSON(lines bool) []byte {
	var b bytes.Buffer
	if !lines {
		b.WriteByte('[')
	}
	regions := []string{"us-east-1", "eastus", "us-east1", "eu-west"}
	providers := []string{"aws", "azure", "gcp", "aws"}
	for i := range benchRecords {
		if i > 0 && !lines {
			b.WriteByte(',')
		}
		end, dur := 1700000000000000+int64(i)*1000, int64(1000+i%7*1000)
		id := ""
		if i%4 != 0 {
			id = fmt.Sprintf(`"invocation_id":"0a1b2c3d4e5f%020d",`, i)
		}
		fmt.Fprintf(&b, `{%s"app":"app-%03d","func":"func-%d","end_us":%d,"duration_us":%d,"provider":"%s","region":"%s",`+
			`"memory_mb":512,"latency_ms":%.3f,"cold_start":%v,"cost_usd":0.0000021,"carbon_g":0.00012}`,
			id, i%50, i%5, end, dur, providers[i%4], regions[i%4], float64(dur)/1000+0.25, i%10 == 0)
		if lines {
			b.WriteByte('\n')
		}
	}
	if !lines {
		b.WriteByte(']')
	}
	return b.Bytes()
}

// benchOTLPRequest is the OTLP export request of benchRecords Lambda
// invocation spans that BenchmarkDecodeEncode and BenchmarkPreScan decode.
func benchOTLPRequest(b *testing.B) ptraceotlp.ExportRequest {
	b.Helper()
	spans := make([]spanSpec, benchRecords)
	for i := range spans {
		spans[i] = spanSpec{name: "handler", kind: ptrace.SpanKindServer, start: t0NS + uint64(i)*1_000_000,
			end: t0NS + uint64(i)*1_000_000 + 250_000, traceByte: byte(i%250 + 1),
			attrs: map[string]any{"faas.invocation_id": fmt.Sprintf("req-%d", i), "faas.trigger": "http", "faas.coldstart": i%10 == 0}}
	}
	return request(b, []map[string]any{lambdaResource()}, [][]spanSpec{spans})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkPreScan measures the pre-scans alone on the bodies of
// BenchmarkDecodeEncode.
func BenchmarkPreScan(b *testing.B) {
	req := benchOTLPRequest(b)
	for _, c := range []struct {
		name string
		body []byte
		scan func([]byte) telemetry.ScanError
	}{
		{"json/array", benchJSON(false), func(b []byte) telemetry.ScanError { return telemetry.CheckJSON(b, telemetry.MaxJSONDepth) }},
		{"otlp/json", must(req.MarshalJSON()), func(b []byte) telemetry.ScanError { return telemetry.CheckJSON(b, telemetry.MaxOTLPDepth) }},
		{"otlp/proto", must(req.MarshalProto()), telemetry.CheckOTLPProto},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if v := c.scan(c.body); !v.OK {
					b.Fatal(v)
				}
			}
		})
	}
}

// BenchmarkDecodeEncode measures the service's per-record path: a request
// of benchRecords records decoded, validated and encoded as the
// Observations written to Kafka (run id set), in each request format, into
// a Batch reused from request to request as the service reuses it.
// allocs/record counts the heap allocations of a record.
func BenchmarkDecodeEncode(b *testing.B) {
	req := benchOTLPRequest(b)
	for _, c := range []struct {
		name, contentType string
		body              []byte
	}{
		{"json/array", "", benchJSON(false)},
		{"json/lines", "", benchJSON(true)},
		{"otlp/proto", telemetry.ContentTypeProtobuf, must(req.MarshalProto())},
		{"otlp/json", telemetry.ContentTypeJSON, must(req.MarshalJSON())},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			var (
				batch  = telemetry.Batch{RunID: "live"}
				before runtime.MemStats
				after  runtime.MemStats
			)
			runtime.ReadMemStats(&before)
			for b.Loop() {
				var err error
				if c.contentType == "" {
					err = batch.DecodeJSON(c.body)
				} else {
					err = batch.DecodeOTLP(c.body, c.contentType)
				}
				if err != nil || batch.Len() != benchRecords {
					b.Fatalf("%d records, errors %v, %v", batch.Len(), batch.Errors, err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(benchRecords*b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(benchRecords*b.N), "allocs/record")
		})
	}
}

package telemetry_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// testRunID is the run id the batch tests encode records under.
const testRunID = "run-batch"

// checkBatch decodes body into a fresh Batch with decode and into one
// that decoded other bodies before (which the service reuses), and checks
// both against r, the Result of the same body: the same records accepted
// and rejected, each value exactly the bytes proto.Marshal writes for the
// message it decodes to, which is r's observation with the run id set,
// and each key the app.
func checkBatch(t testing.TB, r telemetry.Result, decode func(*telemetry.Batch) error) {
	t.Helper()
	fresh := &telemetry.Batch{RunID: testRunID}
	if err := decode(fresh); err != nil {
		t.Fatalf("batch decode failed where the Result's succeeded: %v", err)
	}
	used := &telemetry.Batch{RunID: testRunID}
	for _, other := range []string{"[" + fullRecord + "," + minRecord + `,{"app":1}]`, minRecord + "\n" + `{"app":""}`} {
		if err := used.DecodeJSON([]byte(other)); err != nil {
			t.Fatal(err)
		}
	}
	if err := decode(used); err != nil {
		t.Fatalf("decode into a used batch failed where a fresh one succeeded: %v", err)
	}
	for _, b := range []*telemetry.Batch{fresh, used} {
		if b.Total != r.Total || b.Skipped != r.Skipped || b.Len() != len(r.Observations) || len(b.Errors) != len(r.Errors) {
			t.Fatalf("batch: Total %d, Skipped %d, %d records, %d errors; Result: %d, %d, %d, %d",
				b.Total, b.Skipped, b.Len(), len(b.Errors), r.Total, r.Skipped, len(r.Observations), len(r.Errors))
		}
		for i, e := range b.Errors {
			if w := r.Errors[i]; e.Index != w.Index || e.Line != w.Line || e.Field != w.Field || e.Reason != w.Reason || !bytes.Equal(e.Raw, w.Raw) {
				t.Fatalf("batch error %d: %+v, Result's: %+v", i, e, w)
			}
		}
		for i := range b.Len() {
			e := b.At(i)
			var got stratapb.Observation
			if err := proto.Unmarshal(e.Value, &got); err != nil {
				t.Fatalf("record %d does not decode: %v", e.Index, err)
			}
			want := proto.Clone(r.Observations[i]).(*stratapb.Observation)
			want.Arrival.RunId = testRunID
			if !proto.Equal(&got, want) {
				t.Fatalf("record %d:\n got %v\nwant %v", e.Index, &got, want)
			}
			m, err := proto.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Value, m) {
				t.Fatalf("record %d: encoded\n%x\nproto.Marshal of the same message\n%x", e.Index, e.Value, m)
			}
			a := want.GetArrival()
			if e.Index != r.Index[i] || string(e.Key) != a.GetApp() || e.StartUS != a.GetStartUs() || e.EndUS != a.GetEndUs() {
				t.Fatalf("record %d: index %d, key %q, start %d, end %d; want %d, %q, %d, %d",
					i, e.Index, e.Key, e.StartUS, e.EndUS, r.Index[i], a.GetApp(), a.GetStartUs(), a.GetEndUs())
			}
			if cap(e.Key) != len(e.Key) || cap(e.Value) != len(e.Value) {
				t.Fatalf("record %d: key and value are not capped: an append would overwrite the next record", i)
			}
		}
	}
}

// TestBatchEncodingEdges encodes records at the edges of the wire format
// (zero values proto3 leaves out, optional fields present with zero
// values, -0, the largest values, lengths that take two-byte varints,
// escaped and derived strings) and checks each against proto.Marshal of
// the message it should be.
func TestBatchEncodingEdges(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes: a two-byte length
	for _, tc := range []struct {
		name, rec string
		want      *stratapb.Observation
	}{
		{"start and duration 0", `{"app":"a","func":"f","end_us":1,"duration_us":1,"invocation_id":"i"}`,
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: "i", App: "a", Func: "f", EndUs: 1, DurationUs: 1}, Source: "live"}},
		{"duration 0", `{"app":"a","func":"f","end_us":5,"duration_us":0,"invocation_id":"i"}`,
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: "i", App: "a", Func: "f", StartUs: 5, EndUs: 5}, Source: "live"}},
		{"optional zeros", `{"app":"a","func":"f","end_us":5,"duration_us":1,"invocation_id":"i","warm_instances":0,"total_instances":0,` +
			`"latency_ms":0,"cpu_busy_ms":-0,"queue_wait_ms":0.0,"memory_used_mb":0,"cost_usd":0,"carbon_g":-0.0,"cold_start":false,"failed":false}`,
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: "i", App: "a", Func: "f", StartUs: 4, EndUs: 5, DurationUs: 1},
				WarmInstances: proto.Int32(0), TotalInstances: proto.Int32(0), LatencyMs: proto.Float64(0), CpuBusyMs: proto.Float64(0),
				QueueWaitMs: proto.Float64(0), MemoryUsedMb: proto.Float64(0), CostUsd: proto.Float64(0), CarbonG: proto.Float64(0),
				ColdStart: proto.Bool(false), Failed: proto.Bool(false), Source: "live"}},
		{"largest values", fmt.Sprintf(`{"app":"a","func":"f","end_us":%d,"duration_us":%d,"invocation_id":"i","memory_mb":%d,`+
			`"warm_instances":%d,"total_instances":%d,"latency_ms":%v,"cold_start":true,"failed":true}`,
			int64(math.MaxInt64), int64(math.MaxInt64), math.MaxInt32, math.MaxInt32, math.MaxInt32, math.MaxFloat64),
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: "i", App: "a", Func: "f", EndUs: math.MaxInt64, DurationUs: math.MaxInt64},
				MemoryMb: proto.Int32(math.MaxInt32), WarmInstances: proto.Int32(math.MaxInt32), TotalInstances: proto.Int32(math.MaxInt32),
				LatencyMs: proto.Float64(math.MaxFloat64), ColdStart: proto.Bool(true), Failed: proto.Bool(true), Source: "live"}},
		{"long and escaped strings", `{"app":"` + long + `","func":"f\"\\\u00e9\n","end_us":2000000000000000,"duration_us":999999999,"invocation_id":"` +
			strings.Repeat("x", 128) + `","provider":"azure","region":"northeurope"}`,
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: strings.Repeat("x", 128), App: long, Func: "f\"\\é\n",
				StartUs: 2000000000000000 - 999999999, EndUs: 2000000000000000, DurationUs: 999999999},
				Provider: proto.String("azure"), Region: proto.String("eu-west"), Source: "live"}},
		{"derived id, escaped app", `{"app":"\u0061","func":"f","end_us":10,"duration_us":3}`,
			&stratapb.Observation{Arrival: &stratapb.Arrival{InvocationId: telemetry.InvocationID("a", "f", 10, 3), App: "a", Func: "f",
				StartUs: 7, EndUs: 10, DurationUs: 3}, Source: "live"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, runID := range []string{"", testRunID, strings.Repeat("r", 300)} {
				b := telemetry.Batch{RunID: runID}
				if err := b.DecodeJSON([]byte(tc.rec)); err != nil || b.Len() != 1 {
					t.Fatalf("%d records, errors %v, %v", b.Len(), b.Errors, err)
				}
				want := proto.Clone(tc.want).(*stratapb.Observation)
				want.Arrival.RunId = runID
				m, err := proto.Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				e := b.At(0)
				if !bytes.Equal(e.Value, m) {
					var got stratapb.Observation
					err := proto.Unmarshal(e.Value, &got)
					t.Fatalf("run id %q: encoded\n%x (%v, %v)\nproto.Marshal of\n%x (%v)", runID, e.Value, &got, err, m, want)
				}
				if string(e.Key) != want.Arrival.App {
					t.Errorf("key %q, want the app %q", e.Key, want.Arrival.App)
				}
			}
			r := decodeJSON(t, tc.rec)
			if !proto.Equal(r.Observations[0], tc.want) {
				t.Errorf("Result:\n got %v\nwant %v", r.Observations[0], tc.want)
			}
		})
	}
}

// TestBatchOTLP checks the batch of an OTLP request against its Result:
// ids from attributes and from trace and span ids, resource attributes,
// skipped and rejected spans.
func TestBatchOTLP(t *testing.T) {
	spans := []spanSpec{
		{name: "a", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 5000, traceByte: 1,
			attrs: map[string]any{"faas.invocation_id": "x", "faas.coldstart": true, "cloud.region": "us-west-2"}},
		{name: "b", kind: ptrace.SpanKindInternal, start: t0NS, end: t0NS + 5000, traceByte: 2},
		{name: "c", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 7000, traceByte: 3, status: ptrace.StatusCodeError},
		{name: "d", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS - 1, traceByte: 4},
		{name: "e", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1000},
	}
	req := request(t, []map[string]any{lambdaResource()}, [][]spanSpec{spans})
	for ct, body := range encodings(t, req) {
		r := decodeOTLP(t, body, ct)
		if len(r.Observations) != 3 || len(r.Errors) != 1 || r.Skipped != 1 {
			t.Fatalf("%s: %d observations, errors %v, %d skipped", ct, len(r.Observations), r.Errors, r.Skipped)
		}
	}
}

// TestBatchReuse decodes requests one after another into one batch and
// checks that each leaves nothing of the one before.
func TestBatchReuse(t *testing.T) {
	var b telemetry.Batch
	bodies := []string{
		"[" + strings.Repeat(fullRecord+",", 99) + fullRecord + "]",
		minRecord,
		`[{"app":""},` + minRecord + `]`,
		"",
		fullRecord + "\nnope\n",
	}
	for _, body := range bodies {
		if err := b.DecodeJSON([]byte(body)); err != nil {
			t.Fatal(err)
		}
		var fresh telemetry.Batch
		if err := fresh.DecodeJSON([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if b.Total != fresh.Total || b.Len() != fresh.Len() || !slices.EqualFunc(b.Errors, fresh.Errors, func(x, y telemetry.RecordError) bool {
			return x.Index == y.Index && x.Reason == y.Reason && bytes.Equal(x.Raw, y.Raw)
		}) {
			t.Fatalf("body %.40q: reused batch %d/%d/%v, fresh %d/%d/%v", body, b.Total, b.Len(), b.Errors, fresh.Total, fresh.Len(), fresh.Errors)
		}
		for i := range b.Len() {
			if x, y := b.At(i), fresh.At(i); x.Index != y.Index || !bytes.Equal(x.Value, y.Value) || !bytes.Equal(x.Key, y.Key) {
				t.Fatalf("body %.40q, record %d differs in the reused batch", body, i)
			}
		}
	}
	if err := b.DecodeJSON([]byte("[1,")); err == nil || b.Len() != 0 || b.Total != 0 || len(b.Errors) != 0 {
		t.Fatalf("a refused body left %d records, %d errors (err %v)", b.Len(), len(b.Errors), err)
	}
}

// TestBatchAllocations bounds the allocations of decoding JSON into a
// batch that decoded the same kind of request before: none per record
// (the few left are the request's).
func TestBatchAllocations(t *testing.T) {
	body := benchJSON(false)
	b := telemetry.Batch{RunID: testRunID}
	if err := b.DecodeJSON(body); err != nil || b.Len() != benchRecords {
		t.Fatalf("%d records, errors %v, %v", b.Len(), b.Errors, err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := b.DecodeJSON(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 5 {
		t.Errorf("decoding %d records into a used batch: %v allocations, want at most 5", benchRecords, allocs)
	}
}

// checkFlat decodes a JSON body with DecodeJSON and with the general path
// alone, and fails unless the two agree in every respect: the flat path
// may only ever be faster.
func checkFlat(t testing.TB, body []byte) {
	t.Helper()
	flat, general := telemetry.Batch{RunID: testRunID}, telemetry.Batch{RunID: testRunID}
	ferr, gerr := flat.DecodeJSON(body), telemetry.DecodeJSONGeneral(&general, body)
	if fmt.Sprint(ferr) != fmt.Sprint(gerr) {
		t.Fatalf("body %q: error %v, general path %v", body, ferr, gerr)
	}
	if flat.Total != general.Total || flat.Len() != general.Len() || !slices.EqualFunc(flat.Errors, general.Errors, func(x, y telemetry.RecordError) bool {
		return x.Index == y.Index && x.Line == y.Line && x.Field == y.Field && x.Reason == y.Reason && bytes.Equal(x.Raw, y.Raw)
	}) {
		t.Fatalf("body %q: Total %d, %d records, errors %+v; general path %d, %d, %+v", body, flat.Total, flat.Len(), flat.Errors,
			general.Total, general.Len(), general.Errors)
	}
	for i := range flat.Len() {
		x, y := flat.At(i), general.At(i)
		if x.Index != y.Index || x.StartUS != y.StartUS || x.EndUS != y.EndUS || !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) {
			t.Fatalf("body %q: record %d differs from the general path's", body, i)
		}
	}
}

// TestFlatPath checks bodies around every way off the flat path against
// the general path, and that the common bodies take it.
func TestFlatPath(t *testing.T) {
	const base = `"app":"a","func":"f","end_us":1000,"duration_us":10`
	records := []string{
		`{` + base + `}`,
		fullRecord,
		minRecord,
		`{}`,
		`{ "app" : "a" , "func":"f",` + "\t\r\n" + `"end_us":1000,"duration_us":10 }`,
		`{` + base + `,"invocation_id":"\u0041"}`,
		`{` + base + `,"invocation_id":"a\"b"}`,
		`{` + base + `,"invocation_id":"é€😀"}`,
		"{" + base + ",\"invocation_id\":\"\xff\"}",
		"{" + base + ",\"invocation_id\":\"a\x01\"}",
		`{` + base + `,"invocation_id":"0123456789abcdef0123456789abcdef"}`,
		`{` + base + `,"invocation_id":""}`,
		`{` + base + `,"invocation_id":null}`,
		`{` + base + `,"app":"b"}`,
		`{` + base + `,"apps":"b"}`,
		`{"ap\u0070":"a","func":"f","end_us":1000,"duration_us":10}`,
		`{` + base + `,"start_us":990}`,
		`{` + base + `,"start_us":991}`,
		`{` + base + `,"start_us":0990}`,
		`{` + base + `,"start_us":990.0}`,
		`{` + base + `,"start_us":9.9e2}`,
		`{` + base + `,"start_us":-}`,
		`{"app":"a","func":"f","end_us":9223372036854775807,"duration_us":9223372036854775807,"start_us":-0}`,
		`{"app":"a","func":"f","end_us":9223372036854775808,"duration_us":0}`,
		`{"app":"a","func":"f","end_us":-9223372036854775808,"duration_us":0}`,
		`{"app":"a","func":"f","end_us":922337203685477580,"duration_us":00}`,
		`{"app":"a","func":"f","end_us":1000,"duration_us":-01}`,
		`{"app":"a","func":"f","end_us":1000,"duration_us":1E1}`,
		`{"app":"a","func":"f","end_us":1000,"duration_us":1-1}`,
		`{"duration_us":10,"end_us":1000,"func":"f","app":"a","app":"a"}`,
		`{"func":"f","app":"a","end_us":1000,"duration_us":10,"provider":"gcp","memory_mb":1024,"warm_instances":2}`,
		`{` + base + `,"start_us":[990]}`,
		`{` + base + `,"start_us":{"a":1}}`,
		`{` + base + `,"latency_ms":-0,"cost_usd":1e-7,"carbon_g":0.5E+2,"cpu_busy_ms":2}`,
		`{` + base + `,"latency_ms":1e999}`,
		`{` + base + `,"latency_ms":"1"}`,
		`{` + base + `,"cold_start":true,"failed":false}`,
		`{` + base + `,"cold_start":truex}`,
		`{` + base + `,"cold_start":tru}`,
		`{` + base + `,"cold_start":nul}`,
		`{` + base + `,"cold_start":1}`,
		`{` + base + `,"provider":"aws","region":"us-east-1","memory_mb":128}`,
		`{` + base + `,"provider":"ibm"}`,
		`{` + base + `,"memory_mb":0}`,
		`{` + base + `,}`,
		`{` + base + ` "x":1}`,
		`{` + base,
		`{` + base + `}}`,
		`{"app" "a"}`,
		`{"app":}`,
		`{"app`,
		`[` + `{` + base + `}` + `]`,
		`7`,
		`"x"`,
		`null`,
	}
	for _, r := range records {
		checkFlat(t, []byte(r))
		checkFlat(t, []byte("["+r+"]"))
		checkFlat(t, []byte("[ "+minRecord+" , "+r+" ,"+fullRecord+"]"))
		checkFlat(t, []byte(minRecord+"\n"+r+"\r\n"+fullRecord))
		checkFlat(t, []byte("["+r+","))
	}
	for _, body := range []string{"[]", " [ ] ", "[] x", "[],", "[" + minRecord + "] ]", "[" + minRecord + "]x", "[" + minRecord + minRecord + "]",
		"[" + minRecord + ",]", "[,]", "[", "[ ", "\n\n" + minRecord + "\n\n"} {
		checkFlat(t, []byte(body))
	}
	// The common bodies take the flat path.
	for _, body := range [][]byte{benchJSON(false), []byte("[" + fullRecord + ",\n " + minRecord + "]"), []byte("[]")} {
		var b telemetry.Batch
		if !telemetry.DecodeFlatArray(&b, body) {
			t.Errorf("body %.60q… did not take the flat path", body)
		}
	}
	var b telemetry.Batch
	if telemetry.DecodeFlatArray(&b, []byte("["+minRecord+",{}]")) || b.Len() != 0 || b.Total != 0 {
		t.Errorf("a body with a rejected record took the flat path, or left %d records", b.Len())
	}
}

package telemetry_test

import (
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/schemas/stratapb"
)

const (
	t0NS = 1_700_000_000_000_000_000 // a span start, Unix nanoseconds
	mib  = 1 << 20
)

// spanSpec describes one span of a test request.
type spanSpec struct {
	name       string
	kind       ptrace.SpanKind
	start, end uint64
	status     ptrace.StatusCode
	attrs      map[string]any
	traceByte  byte // fills the trace and span ids; 0 leaves them empty
}

// request builds an export request: one resource per attribute map in res,
// each with one scope holding spans.
func request(t testing.TB, res []map[string]any, spans [][]spanSpec) ptraceotlp.ExportRequest {
	t.Helper()
	td := ptrace.NewTraces()
	for i, ra := range res {
		rs := td.ResourceSpans().AppendEmpty()
		if err := rs.Resource().Attributes().FromRaw(ra); err != nil {
			t.Fatal(err)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("test")
		for _, sp := range spans[i] {
			s := ss.Spans().AppendEmpty()
			s.SetName(sp.name)
			s.SetKind(sp.kind)
			s.SetStartTimestamp(pcommon.Timestamp(sp.start))
			s.SetEndTimestamp(pcommon.Timestamp(sp.end))
			s.Status().SetCode(sp.status)
			if sp.traceByte != 0 {
				var tid pcommon.TraceID
				var sid pcommon.SpanID
				for j := range tid {
					tid[j] = sp.traceByte
				}
				for j := range sid {
					sid[j] = sp.traceByte + 1
				}
				s.SetTraceID(tid)
				s.SetSpanID(sid)
			}
			if err := s.Attributes().FromRaw(sp.attrs); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// encodings returns the request as protobuf and as JSON.
func encodings(t testing.TB, req ptraceotlp.ExportRequest) map[string][]byte {
	t.Helper()
	pb, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	js, err := req.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"application/x-protobuf": pb, "application/json; charset=utf-8": js}
}

func decodeOTLP(t *testing.T, body []byte, ct string) telemetry.Result {
	t.Helper()
	r, err := telemetry.DecodeOTLP(body, ct)
	if err != nil {
		t.Fatalf("DecodeOTLP(%s): %v", ct, err)
	}
	checkResult(t, r)
	checkBatch(t, r, func(b *telemetry.Batch) error { return b.DecodeOTLP(body, ct) })
	return r
}

// lambdaResource is what the AWS Lambda OpenTelemetry layer puts on the
// resource: the function, its memory in bytes, provider and region.
func lambdaResource() map[string]any {
	return map[string]any{
		"service.name": "shop", "faas.name": "checkout", "faas.max_memory": int64(512 * mib),
		"cloud.provider": "aws", "cloud.region": "us-east-1",
	}
}

func TestDecodeOTLPMapping(t *testing.T) {
	res := []map[string]any{lambdaResource(), {"faas.name": "resize", "cloud.provider": "gcp", "cloud.region": "europe-west1"}}
	spans := [][]spanSpec{{
		// 0: a server span with an invocation id; the span's region and
		// cold start override and extend the resource's.
		{name: "checkout", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 250_000_999, status: ptrace.StatusCodeOk, traceByte: 1,
			attrs: map[string]any{"faas.invocation_id": "req-1", "faas.coldstart": true, "cloud.region": "us-west-2"}},
		// skipped: an internal span under it.
		{name: "db", kind: ptrace.SpanKindInternal, start: t0NS + 1000, end: t0NS + 2000, traceByte: 1},
		// skipped: a client span.
		{name: "http get", kind: ptrace.SpanKindClient, start: t0NS + 1000, end: t0NS + 2000, traceByte: 1,
			attrs: map[string]any{"http.method": "GET"}},
		// 1: faas.trigger on a consumer span; id from trace and span id;
		// memory in MiB on the span; failed.
		{name: "queue", kind: ptrace.SpanKindConsumer, start: t0NS, end: t0NS + 2_000_000, status: ptrace.StatusCodeError, traceByte: 0xab,
			attrs: map[string]any{"faas.trigger": "pubsub", "faas.max_memory": int64(256)}},
		// 2: unknown region.
		{name: "bad region", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1000, traceByte: 3,
			attrs: map[string]any{"cloud.region": "mars-1"}},
		// 3: provider outside strata's three.
		{name: "bad provider", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1000, traceByte: 4,
			attrs: map[string]any{"cloud.provider": "alibaba_cloud"}},
		// 4: end before start.
		{name: "backwards", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS - 1, traceByte: 5},
	}, {
		// 5: server span, app falls back to faas.name, region a GCP id.
		{name: "resize", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 999, traceByte: 6},
		// skipped: a server span of a resource without faas.name would be
		// an invocation here, but a producer span is not.
		{name: "publish", kind: ptrace.SpanKindProducer, start: t0NS, end: t0NS + 999, traceByte: 6},
	}}
	req := request(t, res, spans)
	want := []*stratapb.Observation{{
		Arrival: &stratapb.Arrival{InvocationId: "req-1", App: "shop", Func: "checkout",
			StartUs: (t0NS+250_000_999)/1000 - 250_000, EndUs: (t0NS + 250_000_999) / 1000, DurationUs: 250_000},
		Provider: proto.String("aws"), Region: proto.String("us-west"), MemoryMb: proto.Int32(512),
		LatencyMs: proto.Float64(250.000999), ColdStart: proto.Bool(true), Failed: proto.Bool(false), Source: "live",
	}, {
		Arrival: &stratapb.Arrival{InvocationId: strings.Repeat("ab", 16) + strings.Repeat("ac", 8), App: "shop", Func: "checkout",
			StartUs: t0NS / 1000, EndUs: t0NS/1000 + 2000, DurationUs: 2000},
		Provider: proto.String("aws"), Region: proto.String("us-east"), MemoryMb: proto.Int32(256),
		LatencyMs: proto.Float64(2), Failed: proto.Bool(true), Source: "live",
	}, {
		Arrival: &stratapb.Arrival{InvocationId: strings.Repeat("06", 16) + strings.Repeat("07", 8), App: "resize", Func: "resize",
			StartUs: t0NS / 1000, EndUs: t0NS / 1000, DurationUs: 0},
		Provider: proto.String("gcp"), Region: proto.String("eu-west"),
		LatencyMs: proto.Float64(0.000999), Failed: proto.Bool(false), Source: "live",
	}}
	wantErrs := []struct {
		index        int
		field, why   string
		rawSpanName  string
		rawAttribute string
	}{
		{2, "cloud.region", "want a metro", "bad region", `"cloud.region":"mars-1"`},
		{3, "cloud.provider", "want aws, azure or gcp", "bad provider", `"cloud.provider":"alibaba_cloud"`},
		{4, "end_time_unix_nano", "before start_time_unix_nano", "backwards", `"faas.name":"checkout"`},
	}
	for ct, body := range encodings(t, req) {
		t.Run(ct, func(t *testing.T) {
			r := decodeOTLP(t, body, ct)
			if r.Total != 6 || r.Skipped != 3 {
				t.Errorf("Total %d, Skipped %d: want 6 and 3", r.Total, r.Skipped)
			}
			if !equalInts(r.Index, []int{0, 1, 5}) || len(r.Observations) != len(want) {
				t.Fatalf("Index %v, errors %v", r.Index, r.Errors)
			}
			for i, o := range r.Observations {
				if !proto.Equal(o, want[i]) {
					t.Errorf("observation %d:\n got %v\nwant %v", i, o, want[i])
				}
			}
			if len(r.Errors) != len(wantErrs) {
				t.Fatalf("errors %v", r.Errors)
			}
			for i, w := range wantErrs {
				e := r.Errors[i]
				if e.Index != w.index || e.Field != w.field || !strings.Contains(e.Reason, w.why) || e.Line != 0 {
					t.Errorf("error %d: %+v, want index %d field %s reason with %q", i, e, w.index, w.field, w.why)
				}
				raw := string(e.Raw)
				if !strings.Contains(raw, `"name":"`+w.rawSpanName+`"`) || !strings.Contains(raw, w.rawAttribute) || !json.Valid(e.Raw) {
					t.Errorf("error %d: Raw %s", i, raw)
				}
			}
		})
	}
}

func TestDecodeOTLPFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		res, attrs map[string]any
		start, end uint64
		field, why string
	}{
		{"unknown region", nil, map[string]any{"cloud.region": "westeurope"}, t0NS, t0NS + 1, "cloud.region", "region id of aws"},
		{"region of another provider", nil, map[string]any{"cloud.region": "eastus"}, t0NS, t0NS + 1, "cloud.region", "region id of aws"},
		{"unknown provider", nil, map[string]any{"cloud.provider": "heroku"}, t0NS, t0NS + 1, "cloud.provider", "want aws"},
		{"provider not a string", nil, map[string]any{"cloud.provider": int64(1)}, t0NS, t0NS + 1, "cloud.provider", "want a string"},
		{"faas.name not a string", nil, map[string]any{"faas.name": true}, t0NS, t0NS + 1, "faas.name", "want a string"},
		{"empty faas.name", nil, map[string]any{"faas.name": ""}, t0NS, t0NS + 1, "faas.name", "empty"},
		{"missing faas.name", map[string]any{"service.name": "shop"}, nil, t0NS, t0NS + 1, "faas.name", "missing"},
		// Without service.name the app falls back to faas.name: the missing
		// attribute is faas.name, not service.name.
		{"faas.trigger without faas.name or service.name", map[string]any{"cloud.provider": "aws"}, nil, t0NS, t0NS + 1, "faas.name", "required attribute is missing"},
		{"invocation id without faas.name", map[string]any{}, map[string]any{"faas.invocation_id": "x"}, t0NS, t0NS + 1, "faas.name", "required attribute is missing"},
		{"missing faas.name before a bad end", map[string]any{}, nil, t0NS, 0, "faas.name", "missing"},
		{"service.name not a string", nil, map[string]any{"service.name": int64(3)}, t0NS, t0NS + 1, "service.name", "is a Int attribute: want a string"},
		{"empty service.name", nil, map[string]any{"service.name": ""}, t0NS, t0NS + 1, "service.name", "empty"},
		{"long faas.name as the app", map[string]any{}, map[string]any{"faas.name": strings.Repeat("f", 300)}, t0NS, t0NS + 1, "faas.name", "at most 256"},
		{"long faas.name with service.name", nil, map[string]any{"faas.name": strings.Repeat("f", 300)}, t0NS, t0NS + 1, "faas.name", "at most 256"},
		{"faas.name not UTF-8", map[string]any{}, map[string]any{"faas.name": "\xff"}, t0NS, t0NS + 1, "faas.name", "UTF-8"},
		{"region not a string", nil, map[string]any{"cloud.region": []any{"us-east-1"}}, t0NS, t0NS + 1, "cloud.region", "is a Slice attribute: want a string"},
		{"app from empty faas.name", map[string]any{}, map[string]any{"faas.name": ""}, t0NS, t0NS + 1, "faas.name", "empty"},
		{"long service.name", nil, map[string]any{"service.name": strings.Repeat("s", 300)}, t0NS, t0NS + 1, "service.name", "at most 256"},
		{"long invocation id", nil, map[string]any{"faas.invocation_id": strings.Repeat("i", 129)}, t0NS, t0NS + 1, "faas.invocation_id", "at most 128"},
		{"invocation id not a string", nil, map[string]any{"faas.invocation_id": int64(7)}, t0NS, t0NS + 1, "faas.invocation_id", "want a string"},
		{"coldstart not a bool", nil, map[string]any{"faas.coldstart": "true"}, t0NS, t0NS + 1, "faas.coldstart", "want a bool"},
		{"max_memory not an int", nil, map[string]any{"faas.max_memory": 128.0}, t0NS, t0NS + 1, "faas.max_memory", "want an int"},
		{"max_memory zero", nil, map[string]any{"faas.max_memory": int64(0)}, t0NS, t0NS + 1, "faas.max_memory", "want 1 to"},
		{"max_memory huge", nil, map[string]any{"faas.max_memory": int64(1) << 60}, t0NS, t0NS + 1, "faas.max_memory", "is 1152921504606846976: want 1 to 2251799813685247"},
		{"max_memory negative", nil, map[string]any{"faas.max_memory": int64(-512)}, t0NS, t0NS + 1, "faas.max_memory", "is -512: want 1 to"},
		{"zero end", nil, nil, t0NS, 0, "end_time_unix_nano", "zero"},
		{"zero start", nil, nil, 0, t0NS, "start_time_unix_nano", "zero"},
		{"end before start", nil, nil, t0NS, t0NS - 1000, "end_time_unix_nano", "before"},
		{"end before 1 µs", nil, nil, 1, 999, "end_time_unix_nano", "is 999: want a positive time"},
		{"end out of range", nil, nil, t0NS, 1 << 63, "end_time_unix_nano", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.res
			if res == nil {
				res = lambdaResource()
			}
			attrs := map[string]any{"faas.trigger": "http"}
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			req := request(t, []map[string]any{res}, [][]spanSpec{{{name: "s", kind: ptrace.SpanKindServer, start: tc.start, end: tc.end, traceByte: 9, attrs: attrs}}})
			for ct, body := range encodings(t, req) {
				r := decodeOTLP(t, body, ct)
				if len(r.Errors) != 1 {
					t.Fatalf("%s: observations %v, errors %v", ct, r.Observations, r.Errors)
				}
				if e := r.Errors[0]; e.Field != tc.field || !strings.Contains(e.Reason, tc.why) {
					t.Errorf("%s: error %v, want field %s, reason with %q", ct, e, tc.field, tc.why)
				}
			}
		})
	}
}

func TestDecodeOTLPRaw(t *testing.T) {
	// A rejected span's Raw is JSON: its fields, its own attributes and
	// the resource attributes the decoder reads, not the others.
	name := "n\"a\\m\x01e\xff\u2028é"
	res := lambdaResource()
	res["host.name"] = "h"
	res["service.name"] = strings.Repeat("s", 300) // rejected, and cut in Raw
	req := request(t, []map[string]any{res}, [][]spanSpec{{{name: name, kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1000, traceByte: 2,
		attrs: map[string]any{"cloud.region": "us-west-2", "list": []any{int64(1), "x"}}}}})
	for ct, body := range encodings(t, req) {
		r := decodeOTLP(t, body, ct)
		if len(r.Errors) != 1 || r.Errors[0].Field != "service.name" {
			t.Fatalf("%s: errors %v", ct, r.Errors)
		}
		var raw struct {
			Name       string            `json:"name"`
			TraceID    string            `json:"trace_id"`
			SpanID     string            `json:"span_id"`
			Kind       string            `json:"kind"`
			Start      uint64            `json:"start_time_unix_nano"`
			End        uint64            `json:"end_time_unix_nano"`
			Status     string            `json:"status"`
			Attributes map[string]string `json:"attributes"`
		}
		if err := json.Unmarshal(r.Errors[0].Raw, &raw); err != nil {
			t.Fatalf("%s: Raw %s: %v", ct, r.Errors[0].Raw, err)
		}
		want := map[string]string{"cloud.region": "us-west-2", "list": `[1,"x"]`, "service.name": strings.Repeat("s", 256) + "…",
			"faas.name": "checkout", "faas.max_memory": "536870912", "cloud.provider": "aws"}
		if raw.Name != strings.ToValidUTF8(name, "\uFFFD") || raw.TraceID != strings.Repeat("02", 16) || raw.SpanID != strings.Repeat("03", 8) ||
			raw.Kind != "Server" || raw.Start != t0NS || raw.End != t0NS+1000 || raw.Status != "Unset" || len(raw.Attributes) != len(want) {
			t.Errorf("%s: Raw %s", ct, r.Errors[0].Raw)
		}
		for k, v := range want {
			if raw.Attributes[k] != v {
				t.Errorf("%s: attribute %s = %q, want %q", ct, k, raw.Attributes[k], v)
			}
		}
	}
}

func TestDecodeOTLPMemoryUnits(t *testing.T) {
	for _, tc := range []struct {
		attr int64
		want int32
	}{{128, 128}, {1024, 1024}, {mib - 1, mib - 1}, {mib, 1}, {128 * mib, 128}, {3008 * mib, 3008}, {128*mib + 5, 128}} {
		res := lambdaResource()
		res["faas.max_memory"] = tc.attr
		req := request(t, []map[string]any{res}, [][]spanSpec{{{name: "s", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1000}}})
		for ct, body := range encodings(t, req) {
			r := decodeOTLP(t, body, ct)
			if len(r.Observations) != 1 || r.Observations[0].GetMemoryMb() != tc.want {
				t.Errorf("%s: faas.max_memory %d: got %v %v, want %d MB", ct, tc.attr, r.Observations, r.Errors, tc.want)
			}
		}
	}
}

func TestDecodeOTLPIDs(t *testing.T) {
	// No trace or span id: the id is derived as for JSON records.
	req := request(t, []map[string]any{lambdaResource()}, [][]spanSpec{{
		{name: "s", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 5000},
		{name: "s", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 7000, traceByte: 0x10},
		// A resource's faas.invocation_id is ignored (it would be shared).
	}})
	req.Traces().ResourceSpans().At(0).Resource().Attributes().PutStr("faas.invocation_id", "shared")
	ids := map[string][]string{}
	for ct, body := range encodings(t, req) {
		r := decodeOTLP(t, body, ct)
		for _, o := range r.Observations {
			ids[ct] = append(ids[ct], o.GetArrival().GetInvocationId())
		}
		// The same span, decoded again, keeps its id.
		again := decodeOTLP(t, body, ct)
		if !proto.Equal(again.Observations[1], r.Observations[1]) {
			t.Errorf("%s: retried span decodes differently", ct)
		}
	}
	pb, js := ids["application/x-protobuf"], ids["application/json; charset=utf-8"]
	want := []string{telemetry.InvocationID("shop", "checkout", t0NS/1000+5, 5), strings.Repeat("10", 16) + strings.Repeat("11", 8)}
	if len(pb) != 2 || len(js) != 2 || pb[0] != want[0] || js[0] != want[0] || pb[1] != want[1] || js[1] != want[1] {
		t.Errorf("ids proto %v json %v, want %v", pb, js, want)
	}
}

func TestDecodeOTLPBodyErrors(t *testing.T) {
	req := request(t, []map[string]any{lambdaResource()}, [][]spanSpec{{{name: "s", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1}}})
	pb, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     string
	}{
		{"unsupported content type", "text/plain", pb, "unsupported content type"},
		{"protobuf as grpc", "application/grpc", pb, "unsupported content type"},
		{"no content type", "", pb, "content type"},
		{"truncated protobuf", "application/x-protobuf", pb[:len(pb)-3], "application/x-protobuf body"},
		{"not JSON", "application/json", []byte("{nope"), "application/json body"},
		{"JSON as protobuf", "application/x-protobuf", []byte(`{"resourceSpans":[]}`), "application/x-protobuf body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := telemetry.DecodeOTLP(tc.body, tc.ct)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	r, err := telemetry.DecodeOTLP(nil, "application/x-protobuf")
	if err != nil || r.Total != 0 {
		t.Errorf("empty request: %+v, %v", r, err)
	}
}

func TestPartialSuccess(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		b, err := telemetry.PartialSuccess(3, "3 spans rejected: record 2: cloud.region: unknown", asJSON)
		if err != nil {
			t.Fatal(err)
		}
		resp := ptraceotlp.NewExportResponse()
		if asJSON {
			err = resp.UnmarshalJSON(b)
		} else {
			err = resp.UnmarshalProto(b)
		}
		if err != nil {
			t.Fatalf("json=%v: %v", asJSON, err)
		}
		ps := resp.PartialSuccess()
		if ps.RejectedSpans() != 3 || !strings.HasPrefix(ps.ErrorMessage(), "3 spans rejected") {
			t.Errorf("json=%v: rejected %d, message %q", asJSON, ps.RejectedSpans(), ps.ErrorMessage())
		}
		if asJSON && !strings.Contains(string(b), `"rejectedSpans"`) {
			t.Errorf("JSON response %s lacks rejectedSpans", b)
		}
	}
	if _, err := telemetry.PartialSuccess(-1, "", false); err == nil {
		t.Error("PartialSuccess(-1) succeeded")
	}
}

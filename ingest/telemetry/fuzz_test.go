package telemetry_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/strata-rl/strata/ingest/telemetry"
)

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte("[" + fullRecord + "," + minRecord + "]"))
	f.Add([]byte(fullRecord + "\n" + minRecord + "\n\n"))
	f.Add([]byte(minRecord))
	f.Add([]byte(`{"app":"a","func":"f","end_us":1000,"duration_us":2000}` + "\n" + `["x"]` + "\nnope\n"))
	f.Add([]byte(`[{"app":"a\u00e9","func":"f","end_us":1e3,"duration_us":1,"region":"eastus","latency_ms":-0}, 7, null]`))
	f.Add([]byte(`{"App":"a","func":"f","end_us":1000,"duration_us":10,"start_us":990,"provider":"gcp","region":"us-east1","invocation_id":""}`))
	f.Add([]byte("[" + minRecord))
	// Nesting around the depth limit and far beyond it.
	const limit = telemetry.MaxJSONDepth
	for _, n := range []int{limit - 1, limit, limit + 1, 10_000} {
		f.Add(nested("[", "", "]", n))
		f.Add(nested("[", "", "", n))
		f.Add(append([]byte("["+minRecord+","), nested(`{"a":`, "1", "}", n-1)...))
		f.Add([]byte(minRecord + "\n" + string(nested(`{"start_us":[`, "", "]}", n/2)) + "\n" + fullRecord))
	}
	f.Add(nested("[", `"[[[\"\\",{"a":"]]"}`, "]", limit-1))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFlat(t, body)
		r, err := telemetry.DecodeJSON(body)
		// The pre-scan must agree with encoding/json: an array body is
		// refused exactly when it is not valid JSON or nests deeper than
		// MaxJSONDepth.
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
			valid := json.Valid(body)
			if want := !valid || jsonDepth(body) > limit; (err != nil) != want {
				t.Fatalf("array body %q: error %v, but encoding/json says valid=%v, depth %d", body, err, valid, jsonDepth(body))
			}
		}
		var b telemetry.Batch
		if berr := b.DecodeJSON(body); (berr != nil) != (err != nil) || berr != nil && (b.Len() != 0 || b.Total != 0 || len(b.Errors) != 0) {
			t.Fatalf("Batch.DecodeJSON: %v, %d records; DecodeJSON: %v", berr, b.Len(), err)
		}
		if err != nil {
			if r.Total != 0 || len(r.Observations) != 0 || len(r.Errors) != 0 {
				t.Fatalf("error %v with a non-empty result", err)
			}
			return
		}
		checkResult(t, r)
		checkBatch(t, r, func(b *telemetry.Batch) error { return b.DecodeJSON(body) })
		if bytes.IndexByte(body, '\n') < 0 && len(r.Observations) == 1 && r.Total == 1 {
			agreesWithEncodingJSON(t, body, r)
		}
	})
}

// agreesWithEncodingJSON checks a record DecodeJSON accepted against
// encoding/json's reading of it into Record.
func agreesWithEncodingJSON(t *testing.T, body []byte, r telemetry.Result) {
	t.Helper()
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var recs []json.RawMessage
		if err := json.Unmarshal(body, &recs); err != nil || len(recs) != 1 {
			t.Fatalf("accepted array does not hold one record for encoding/json: %v", err)
		}
		body = recs[0]
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var rec telemetry.Record
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("accepted record %q fails encoding/json: %v", body, err)
	}
	o := r.Observations[0]
	a := o.GetArrival()
	if a.GetApp() != rec.App || a.GetFunc() != rec.Func || a.GetEndUs() != rec.EndUS || a.GetDurationUs() != rec.DurationUS {
		t.Fatalf("arrival %v, encoding/json %+v", a, rec)
	}
	wantID := rec.InvocationID
	if wantID == "" {
		wantID = telemetry.InvocationID(rec.App, rec.Func, rec.EndUS, rec.DurationUS)
	}
	if a.GetInvocationId() != wantID {
		t.Fatalf("id %q, want %q", a.GetInvocationId(), wantID)
	}
	if (rec.Provider != nil) != (o.Provider != nil) || (rec.Provider != nil && *rec.Provider != o.GetProvider()) {
		t.Fatalf("provider %v, encoding/json %v", o.Provider, rec.Provider)
	}
	if (rec.Region != nil) != (o.Region != nil) {
		t.Fatalf("region %v, encoding/json %v", o.Region, rec.Region)
	}
	eqI := func(name string, x, y *int32) {
		if (x != nil) != (y != nil) || (x != nil && *x != *y) {
			t.Fatalf("%s differs from encoding/json: %v vs %v", name, x, y)
		}
	}
	eqI("memory_mb", rec.MemoryMB, o.MemoryMb)
	eqI("warm_instances", rec.WarmInstances, o.WarmInstances)
	eqI("total_instances", rec.TotalInstances, o.TotalInstances)
	eqF := func(name string, x, y *float64) {
		if (x != nil) != (y != nil) || (x != nil && *x != *y) {
			t.Fatalf("%s differs from encoding/json: %v vs %v", name, x, y)
		}
	}
	eqF("latency_ms", rec.LatencyMS, o.LatencyMs)
	eqF("cpu_busy_ms", rec.CPUBusyMS, o.CpuBusyMs)
	eqF("queue_wait_ms", rec.QueueWaitMS, o.QueueWaitMs)
	eqF("memory_used_mb", rec.MemoryUsedMB, o.MemoryUsedMb)
	eqF("cost_usd", rec.CostUSD, o.CostUsd)
	eqF("carbon_g", rec.CarbonG, o.CarbonG)
	eqB := func(name string, x, y *bool) {
		if (x != nil) != (y != nil) || (x != nil && *x != *y) {
			t.Fatalf("%s differs from encoding/json: %v vs %v", name, x, y)
		}
	}
	eqB("cold_start", rec.ColdStart, o.ColdStart)
	eqB("failed", rec.Failed, o.Failed)
}

func FuzzDecodeOTLP(f *testing.F) {
	reqs := []struct {
		res   []map[string]any
		spans [][]spanSpec
	}{
		{[]map[string]any{lambdaResource()}, [][]spanSpec{{
			{name: "a", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 5000, traceByte: 1,
				attrs: map[string]any{"faas.invocation_id": "x", "faas.coldstart": true, "cloud.region": "us-west-2"}},
			{name: "b", kind: ptrace.SpanKindInternal, start: t0NS, end: t0NS + 5000, traceByte: 2},
			{name: "c", kind: ptrace.SpanKindConsumer, start: t0NS, end: t0NS - 1, traceByte: 3, attrs: map[string]any{"faas.trigger": "pubsub"}},
		}}},
		{[]map[string]any{{"faas.name": "f", "cloud.provider": "azure", "cloud.region": "eastus", "faas.max_memory": int64(128)}, {"service.name": "x"}},
			[][]spanSpec{{{name: "d", kind: ptrace.SpanKindServer, start: t0NS, end: t0NS + 1}}, {{name: "e", kind: ptrace.SpanKindServer, start: 1, end: 2}}}},
	}
	for _, rq := range reqs {
		req := request(f, rq.res, rq.spans)
		pb, err := req.MarshalProto()
		if err != nil {
			f.Fatal(err)
		}
		js, err := req.MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pb, false)
		f.Add(js, true)
	}
	// Nesting around the depth limit and far beyond it.
	// A span attribute's AnyValue is at protobuf level 6 and JSON level 10;
	// a nested array value adds 2 and 3.
	for _, n := range []int{0, 1, 5000} {
		f.Add(deepAnyValue((telemetry.MaxOTLPDepth-6)/2+n), false)
		b := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":2,"attributes":[{"key":"faas.trigger","value":{"stringValue":"x"}},{"key":"k","value":`)
		b = append(b, nested(`{"arrayValue":{"values":[`, `{"boolValue":true}`, `]}}`, (telemetry.MaxOTLPDepth-10)/3+n)...)
		f.Add(append(b, `}]}]}]}]}`...), true)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		ct := "application/x-protobuf"
		if asJSON {
			ct = "application/json"
		}
		r, err := telemetry.DecodeOTLP(body, ct)
		var b telemetry.Batch
		if berr := b.DecodeOTLP(body, ct); (berr != nil) != (err != nil) || berr != nil && (b.Len() != 0 || b.Total != 0 || len(b.Errors) != 0) {
			t.Fatalf("Batch.DecodeOTLP: %v, %d records; DecodeOTLP: %v", berr, b.Len(), err)
		}
		if err != nil {
			return
		}
		checkResult(t, r)
		checkBatch(t, r, func(b *telemetry.Batch) error { return b.DecodeOTLP(body, ct) })
		for _, e := range r.Errors {
			if len(e.Raw) < 64<<10 && !json.Valid(e.Raw) {
				t.Fatalf("Raw is not JSON: %q", e.Raw)
			}
		}
	})
}

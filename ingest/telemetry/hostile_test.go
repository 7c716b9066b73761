package telemetry_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/strata-rl/strata/ingest/telemetry"
)

// allocated returns the bytes fn allocates, from runtime.MemStats.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileBodiesBounded decodes the bodies of the nesting bug reports
// and checks that each is refused with an error that says where, after
// work bounded by the body's size: no stack overflow, and the bytes
// allocated stay far below the body's size (the refusal comes within the
// first few hundred bytes).
func TestHostileBodiesBounded(t *testing.T) {
	if _, err := telemetry.DecodeJSON([]byte("[]")); err != nil { // loads the catalog
		t.Fatal(err)
	}
	const protobuf, otlpJSON = "application/x-protobuf", "application/json"
	deepOTLPJSON := append([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":`),
		nested(`{"arrayValue":{"values":[`, "{}", `]}}`, 4<<20/28)...)
	for _, tc := range []struct {
		name string
		body []byte
		ct   string // "": DecodeJSON
		want string
	}{
		{"2,000,000 nested arrays (the crash)", nested("[", "", "]", 2_000_000), "", "decoding telemetry JSON array: byte 33 (line 1, column 34): nesting deeper than 32 levels"},
		{"1 MB of unclosed arrays", nested("[", "", "", 1<<20), "", "byte 33 (line 1, column 34): nesting deeper than 32 levels"},
		{"unclosed objects and arrays", append([]byte("["), nested(`{"a":[`, "", "", 1<<20/6)...), "", "byte 97 (line 1, column 98): nesting deeper than 32 levels"},
		{"deep arrays on one JSON line", []byte(minRecord + "\n" + string(nested("[", "", "]", 1<<20))), "", ""},
		{"deep objects in a record", []byte(`{"app":"a","func":"f","x":` + string(nested(`{"y":`, "1", "}", 500_000)) + "}"), "", ""},
		// fastjson's error path quoted the whole unparsed rest of the body
		// at every level (550 MB for this one).
		{"bad literal at depth 32 before 1 MB", append(nested("[", "t", "", 32), make([]byte, 1<<20)...), "", "byte 34 (line 1, column 35): invalid character '\\x00' in literal true (expecting 'r')"},
		{"4 MB deep protobuf AnyValue", deepAnyValue(800_000), protobuf, "AnyValue.array_value nests messages deeper than 64 levels"},
		{"4 MB deep OTLP JSON AnyValue", deepOTLPJSON, otlpJSON, "nesting deeper than 64 levels"},
		{"1 MB of unclosed arrays as OTLP", nested("[", "", "", 1<<20), otlpJSON, "byte 65 (line 1, column 66): nesting deeper than 64 levels"},
		{"2,000,000 nested arrays as resourceSpans", append([]byte(`{"resourceSpans":`), append(nested("[", "", "]", 2_000_000), '}')...), otlpJSON,
			"byte 81 (line 1, column 82): nesting deeper than 64 levels"},
		// Without a bracket: once jsoniter has reported an error, it reads
		// on, and pdata took each `,"name":` for a nested message (320,000
		// levels deep in 8 MB), so a pre-scan that counted brackets alone
		// would not do.
		{"OTLP JSON recursion without brackets", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":` +
			strings.Repeat(`,"arrayValue":,"values":,`, 40_000)), otlpJSON, "byte 78 (line 1, column 79): invalid character ',' looking for beginning of value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				r   telemetry.Result
				err error
			)
			n := allocated(func() {
				if tc.ct == "" {
					r, err = telemetry.DecodeJSON(tc.body)
				} else {
					r, err = telemetry.DecodeOTLP(tc.body, tc.ct)
				}
			})
			if tc.want == "" { // JSON lines: the deep line is a record error
				if err != nil || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Reason, "nesting deeper than 32 levels") {
					t.Fatalf("error %v, result %+v", err, r.Errors)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			// The JSON lines case copies the deep line (64 KiB) for
			// RecordError.Raw; the others allocate only the error.
			if limit := uint64(len(tc.body)) / 4; n > limit {
				t.Errorf("allocated %d bytes for a body of %d, want at most %d", n, len(tc.body), limit)
			}
			if tc.want != "" {
				allocs := testing.AllocsPerRun(3, func() {
					if tc.ct == "" {
						_, _ = telemetry.DecodeJSON(tc.body)
					} else {
						_, _ = telemetry.DecodeOTLP(tc.body, tc.ct)
					}
				})
				if allocs > 32 { // a few for the error message (more under -race), none per byte
					t.Errorf("%v allocations to refuse the body", allocs)
				}
			}
		})
	}
}

// kvProto encodes KeyValue{key, value: {string_value: val}}.
func kvProto(key, val string) []byte {
	var av, kv []byte
	av = protowire.AppendTag(av, fAnyString, protowire.BytesType)
	av = protowire.AppendString(av, val)
	kv = protowire.AppendTag(kv, fKVKey, protowire.BytesType)
	kv = protowire.AppendString(kv, key)
	kv = protowire.AppendTag(kv, fKVValue, protowire.BytesType)
	return protowire.AppendBytes(kv, av)
}

// fieldBytes appends field num holding v.
func fieldBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// protoRequest encodes a request of one resource, whose fields (its
// attributes) are res, and one scope of spans (encoded Spans).
func protoRequest(res []byte, spans [][]byte) []byte {
	var ss, rs []byte
	for _, s := range spans {
		ss = fieldBytes(ss, fSSSpans, s)
	}
	rs = fieldBytes(rs, fRSResource, res)
	rs = fieldBytes(rs, fRSScopeSpans, ss)
	return fieldBytes(nil, fReqResourceSpans, rs)
}

// attrsAndSpans returns a request whose resource has n attributes "a",
// then faas.name, and m server spans; with rejected, the spans have no
// times, so that every one is rejected. Before the decoder indexed a
// resource's attributes once, each span looked them all up again.
func attrsAndSpans(n, m int, rejected bool) []byte {
	var res []byte
	for range n {
		res = fieldBytes(res, fResAttributes, kvProto("a", ""))
	}
	res = fieldBytes(res, fResAttributes, kvProto("faas.name", "f"))
	var span []byte
	span = protowire.AppendTag(span, 6, protowire.VarintType) // kind
	span = protowire.AppendVarint(span, 2)                    // server
	if !rejected {
		span = protowire.AppendTag(span, 7, protowire.Fixed64Type)
		span = protowire.AppendFixed64(span, t0NS)
		span = protowire.AppendTag(span, 8, protowire.Fixed64Type)
		span = protowire.AppendFixed64(span, t0NS+1000)
	}
	spans := make([][]byte, m)
	for i := range spans {
		spans[i] = span
	}
	return protoRequest(res, spans)
}

// TestDecodeOTLPLinearInAttributes checks that the work on a request of
// many resource attributes and many spans grows with their sum, not their
// product: doubling both doubles the bytes allocated (it quadrupled, at
// 5 GB for a 100 KB body, when every rejected span rendered all of its
// resource's attributes).
func TestDecodeOTLPLinearInAttributes(t *testing.T) {
	const n = 4000
	var got [2]uint64
	for k, size := range []int{n, 2 * n} {
		body := attrsAndSpans(size, size, true)
		var r telemetry.Result
		got[k] = allocated(func() { r, _ = telemetry.DecodeOTLP(body, "application/x-protobuf") })
		if len(r.Errors) != size {
			t.Fatalf("%d errors, want %d", len(r.Errors), size)
		}
		if raw := string(r.Errors[0].Raw); !strings.Contains(raw, `"faas.name":"f"`) || strings.Contains(raw, `"a":`) {
			t.Errorf("Raw %s: want the resource's faas.name, not its other attributes", raw)
		}
	}
	if ratio := float64(got[1]) / float64(got[0]); ratio > 2.5 {
		t.Errorf("allocated %d bytes for %d attributes and spans, %d for twice as many: ×%.1f", got[0], n, got[1], ratio)
	}
	// Accepted spans looked every attribute up in the resource's list:
	// 10 lookups × 40,000 attributes × 40,000 spans would take minutes.
	r, err := telemetry.DecodeOTLP(attrsAndSpans(40_000, 40_000, false), "application/x-protobuf")
	if err != nil || len(r.Observations) != 40_000 {
		t.Fatalf("error %v, %d observations", err, len(r.Observations))
	}
}

// hostileBodyBytes is the size of the hostile bodies, ingest's default
// --max-body.
const hostileBodyBytes = 8 << 20

// fill repeats unit between head and tail to about size bytes.
func fill(head, unit, sep, tail string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + len(unit))
	b.WriteString(head)
	for first := true; b.Len()+len(unit)+len(sep)+len(tail) <= size; first = false {
		if !first {
			b.WriteString(sep)
		}
		b.WriteString(unit)
	}
	b.WriteString(tail)
	return b.Bytes()
}

// repeatField returns field num holding unit, repeated to about size
// bytes.
func repeatField(num protowire.Number, unit []byte, size int) []byte {
	one := fieldBytes(nil, num, unit)
	return bytes.Repeat(one, size/len(one))
}

// hostileBodies are the worst bodies for each decoder that come to mind,
// of about size bytes each.
func hostileBodies(size int) []struct {
	name, ct string // ct "": DecodeJSON
	body     []byte
} {
	const pb, js = "application/x-protobuf", "application/json"
	deepRecord := `{"start_us":` + string(nested("[", "", "]", telemetry.MaxJSONDepth-2)) + `}`
	escaped := strings.Repeat(`\u00e9`, size/6-10)
	validRecord := `{"invocation_id":"0a1b2c3d4e5f00000000000000000001","app":"app-001","func":"func-1","end_us":1700000000001000,` +
		`"duration_us":2000,"provider":"aws","region":"us-east-1","memory_mb":512,"latency_ms":2.250,"cold_start":false,"cost_usd":0.0000021,"carbon_g":0.00012}`

	// OTLP: a span attribute whose value nests arrays to the limit.
	deepAttr := nestProto(func() []protowire.Number {
		f := []protowire.Number{fSpanAttributes, fKVValue}
		for range (telemetry.MaxOTLPDepth - 6) / 2 {
			f = append(f, fAnyArray, fArrayValues)
		}
		return f
	}(), nil)
	deepSpan := bytes.Repeat(deepAttr, size/len(deepAttr))
	validSpan := func() []byte {
		var s []byte
		s = fieldBytes(s, 1, bytes.Repeat([]byte{7}, 16))
		s = fieldBytes(s, 2, bytes.Repeat([]byte{8}, 8))
		s = fieldBytes(s, 5, []byte("handler"))
		s = protowire.AppendTag(s, 6, protowire.VarintType)
		s = protowire.AppendVarint(s, 2)
		s = protowire.AppendTag(s, 7, protowire.Fixed64Type)
		s = protowire.AppendFixed64(s, t0NS)
		s = protowire.AppendTag(s, 8, protowire.Fixed64Type)
		s = protowire.AppendFixed64(s, t0NS+250_000)
		s = fieldBytes(s, fSpanAttributes, kvProto("faas.invocation_id", "req-0000000001"))
		s = fieldBytes(s, fSpanAttributes, kvProto("faas.trigger", "http"))
		return s
	}()
	lambda := fieldBytes(nil, fResAttributes, kvProto("service.name", "shop"))
	lambda = fieldBytes(lambda, fResAttributes, kvProto("faas.name", "checkout"))
	lambda = fieldBytes(lambda, fResAttributes, kvProto("cloud.provider", "aws"))
	lambda = fieldBytes(lambda, fResAttributes, kvProto("cloud.region", "us-east-1"))
	repeatSpan := func(span []byte) [][]byte {
		one := len(fieldBytes(nil, fSSSpans, span))
		spans := make([][]byte, (size-len(lambda)-16)/one)
		for i := range spans {
			spans[i] = span
		}
		return spans
	}
	serverSpan := []byte{0x30, 0x02} // kind: server, no times: rejected
	emptySpan := []byte{}
	jsonSpans := func(span string) []byte {
		return fill(`{"resourceSpans":[{"resource":{"attributes":[{"key":"faas.name","value":{"stringValue":"f"}}]},"scopeSpans":[{"spans":[`,
			span, ",", `]}]}]}`, size)
	}
	deepJSONValue := string(nested(`{"arrayValue":{"values":[`, "{}", `]}}`, (telemetry.MaxOTLPDepth-10)/3))

	return []struct {
		name, ct string
		body     []byte
	}{
		{"json/valid records", "", fill("[", validRecord, ",", "]", size)},
		{"json/records nested to the limit", "", fill("[", deepRecord, ",", "]", size)},
		{"json/arrays past the limit", "", nested("[", "", "", size)},
		{"json/tiny records [{},{},…]", "", fill("[", "{}", ",", "]", size)},
		{"json/tiny values [0,0,…]", "", fill("[", "0", ",", "]", size)},
		{"json/tiny lines {}\\n", "", fill("", "{}", "\n", "", size)},
		{"json/tiny lines 0\\n", "", fill("{}\n", "0", "\n", "", size)},
		{"json/lines past the limit", "", fill("{}\n", strings.Repeat("[", telemetry.MaxJSONDepth+1), "\n", "", size)},
		{"json/blank lines, one record", "", append(bytes.Repeat([]byte("\n"), size-len(minRecord)), minRecord...)},
		{"json/huge string", "", []byte(`[{"app":"` + strings.Repeat("x", size-20) + `"}]`)},
		{"json/huge escaped string", "", []byte(`[{"app":"` + escaped + `"}]`)},
		{"otlp-proto/valid spans", pb, protoRequest(lambda, repeatSpan(validSpan))},
		{"otlp-proto/attributes nested to the limit", pb, protoRequest(nil, [][]byte{deepSpan})},
		{"otlp-proto/AnyValue past the limit", pb, deepAnyValue(size / 10)},
		{"otlp-proto/empty span attributes", pb, protoRequest(nil, [][]byte{repeatField(fSpanAttributes, nil, size)})},
		{"otlp-proto/tiny resource attributes", pb, protoRequest(repeatField(fResAttributes, kvProto("a", ""), size), nil)},
		{"otlp-proto/empty spans", pb, protoRequest(nil, repeatSpan(emptySpan))},
		{"otlp-proto/rejected server spans", pb, protoRequest(lambda, repeatSpan(serverSpan))},
		{"otlp-proto/one rejected span, then empty spans", pb, protoRequest(lambda, append([][]byte{serverSpan}, repeatSpan(emptySpan)[1:]...))},
		{"otlp-proto/empty resource spans", pb, repeatField(fReqResourceSpans, nil, size)},
		{"otlp-proto/half attributes, half rejected spans", pb, attrsAndSpans(size/2/9, size/2/4, true)},
		{"otlp-json/empty spans", js, jsonSpans(`{}`)},
		{"otlp-json/rejected server spans", js, jsonSpans(`{"kind":2}`)},
		{"otlp-json/attributes nested to the limit", js, fill(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[`,
			`{"key":"k","value":`+deepJSONValue+`}`, ",", `]}]}]}]}`, size)},
		{"otlp-json/huge string attribute", js, []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":2,"attributes":[{"key":"faas.name","value":{"stringValue":"` +
			strings.Repeat("x", size-200) + `"}}]}]}]}]}`)},
	}
}

// BenchmarkHostileBodies reports what the decoders allocate for hostile
// bodies of ingest's default size limit (8 MiB): B/op is the bytes
// allocated per body, alloc/byte the same per byte of the body. Run it with
//
//	go test -run '^$' -bench HostileBodies -benchtime 1x ./ingest/telemetry/
func BenchmarkHostileBodies(b *testing.B) {
	for _, h := range hostileBodies(hostileBodyBytes) {
		b.Run(h.name, func(b *testing.B) {
			b.SetBytes(int64(len(h.body)))
			b.ReportAllocs()
			var (
				r        telemetry.Result
				err      error
				before   runtime.MemStats
				after    runtime.MemStats
				allocSum uint64
			)
			for b.Loop() {
				runtime.ReadMemStats(&before)
				if h.ct == "" {
					r, err = telemetry.DecodeJSON(h.body)
				} else {
					r, err = telemetry.DecodeOTLP(h.body, h.ct)
				}
				runtime.ReadMemStats(&after)
				allocSum += after.TotalAlloc - before.TotalAlloc
			}
			b.ReportMetric(float64(allocSum)/float64(b.N)/float64(len(h.body)), "alloc/byte")
			outcome := fmt.Sprintf("%d records: %d accepted, %d rejected, %d skipped", r.Total, len(r.Observations), len(r.Errors), r.Skipped)
			if err != nil {
				outcome = "error: " + err.Error()
				if len(outcome) > 120 {
					outcome = outcome[:120] + "…"
				}
			}
			b.Logf("%d bytes: %s", len(h.body), outcome)
		})
	}
}

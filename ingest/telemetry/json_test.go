package telemetry_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// fullRecord sets every field of the schema.
const fullRecord = `{"invocation_id":"inv-1","app":"shop","func":"checkout","end_us":1700000000250000,` +
	`"duration_us":250000,"start_us":1700000000000000,"provider":"aws","region":"us-east-1","memory_mb":512,` +
	`"latency_ms":261.5,"cpu_busy_ms":200,"queue_wait_ms":1.5,"memory_used_mb":180.25,"cold_start":true,` +
	`"warm_instances":3,"total_instances":4,"cost_usd":0.0000021,"carbon_g":0.00012,"failed":false}`

// minRecord sets the required fields only.
const minRecord = `{"app":"shop","func":"cart","end_us":1700000001000000,"duration_us":1000}`

func wantFull() *stratapb.Observation {
	return &stratapb.Observation{
		Arrival: &stratapb.Arrival{InvocationId: "inv-1", App: "shop", Func: "checkout",
			StartUs: 1700000000000000, EndUs: 1700000000250000, DurationUs: 250000},
		Provider: proto.String("aws"), Region: proto.String("us-east"), MemoryMb: proto.Int32(512),
		LatencyMs: proto.Float64(261.5), CpuBusyMs: proto.Float64(200), QueueWaitMs: proto.Float64(1.5),
		MemoryUsedMb: proto.Float64(180.25), ColdStart: proto.Bool(true), WarmInstances: proto.Int32(3),
		TotalInstances: proto.Int32(4), CostUsd: proto.Float64(0.0000021), CarbonG: proto.Float64(0.00012),
		Failed: proto.Bool(false), Source: "live",
	}
}

func wantMin() *stratapb.Observation {
	return &stratapb.Observation{
		Arrival: &stratapb.Arrival{InvocationId: telemetry.InvocationID("shop", "cart", 1700000001000000, 1000),
			App: "shop", Func: "cart", StartUs: 1700000000999000, EndUs: 1700000001000000, DurationUs: 1000},
		Source: "live",
	}
}

// checkResult checks the Result invariants every decode must keep.
func checkResult(t testing.TB, r telemetry.Result) {
	t.Helper()
	if r.Total != len(r.Observations)+len(r.Errors) {
		t.Fatalf("Total %d != %d observations + %d errors", r.Total, len(r.Observations), len(r.Errors))
	}
	if len(r.Index) != len(r.Observations) {
		t.Fatalf("%d indexes for %d observations", len(r.Index), len(r.Observations))
	}
	seen := make([]bool, r.Total)
	for i, idx := range r.Index {
		if i > 0 && idx <= r.Index[i-1] {
			t.Fatalf("Index not strictly increasing: %v", r.Index)
		}
		if idx < 0 || idx >= r.Total || seen[idx] {
			t.Fatalf("Index %d out of range or repeated (Total %d)", idx, r.Total)
		}
		seen[idx] = true
	}
	for i, e := range r.Errors {
		if i > 0 && e.Index <= r.Errors[i-1].Index {
			t.Fatalf("error indexes not strictly increasing: %d after %d", e.Index, r.Errors[i-1].Index)
		}
		if e.Index < 0 || e.Index >= r.Total || seen[e.Index] {
			t.Fatalf("error index %d out of range or shared with an observation (Total %d)", e.Index, r.Total)
		}
		seen[e.Index] = true
		if e.Reason == "" {
			t.Fatalf("error %v has no reason", e)
		}
		if len(e.Raw) > 64<<10 {
			t.Fatalf("error Raw is %d bytes", len(e.Raw))
		}
	}
	// The decoders count the records first and allocate the errors once,
	// for the records from the first rejected one on.
	if len(r.Errors) > 0 && cap(r.Errors) != r.Total-r.Errors[0].Index {
		t.Fatalf("%d errors of %d records from %d: capacity %d", len(r.Errors), r.Total, r.Errors[0].Index, cap(r.Errors))
	}
	for _, o := range r.Observations {
		if _, err := features.EventFromObservation(o); err != nil {
			t.Fatalf("observation %v fails the feature consumer: %v", o, err)
		}
		if o.GetSource() != "live" || o.GetArrival().GetRunId() != "" || o.GetArrival().GetInvocationId() == "" {
			t.Fatalf("observation %v: want Source live, no run id, an invocation id", o)
		}
	}
}

func decodeJSON(t *testing.T, body string) telemetry.Result {
	t.Helper()
	r, err := telemetry.DecodeJSON([]byte(body))
	if err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	checkResult(t, r)
	checkBatch(t, r, func(b *telemetry.Batch) error { return b.DecodeJSON([]byte(body)) })
	checkFlat(t, []byte(body))
	return r
}

func TestDecodeJSONValid(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []*stratapb.Observation
	}{
		{"array", "[" + fullRecord + ",\n " + minRecord + "]", []*stratapb.Observation{wantFull(), wantMin()}},
		{"array with space", " \n[ " + minRecord + " ] \n", []*stratapb.Observation{wantMin()}},
		{"empty array", "[]", nil},
		{"empty body", " \n", nil},
		{"json lines", fullRecord + "\n" + minRecord + "\n", []*stratapb.Observation{wantFull(), wantMin()}},
		{"json lines, CRLF, no final newline", fullRecord + "\r\n" + minRecord, []*stratapb.Observation{wantFull(), wantMin()}},
		{"null optional fields", `{"app":"shop","func":"cart","end_us":1700000001000000,"duration_us":1000,"provider":null,"latency_ms":null,"invocation_id":null}`,
			[]*stratapb.Observation{wantMin()}},
		{"escaped strings", `{"app":"sh\u006fp","func":"cart","end_us":1700000001000000,"duration_us":1000}`,
			[]*stratapb.Observation{wantMin()}},
		{"escaped key", `{"\u0061pp":"shop","func":"cart","end_us":1700000001000000,"duration_us":1000}`,
			[]*stratapb.Observation{wantMin()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeJSON(t, tc.body)
			if len(r.Errors) != 0 {
				t.Fatalf("errors: %v", r.Errors)
			}
			if len(r.Observations) != len(tc.want) {
				t.Fatalf("got %d observations, want %d", len(r.Observations), len(tc.want))
			}
			for i, o := range r.Observations {
				if !proto.Equal(o, tc.want[i]) {
					t.Errorf("observation %d:\n got %v\nwant %v", i, o, tc.want[i])
				}
				if r.Index[i] != i {
					t.Errorf("Index[%d] = %d", i, r.Index[i])
				}
			}
		})
	}
}

func TestDecodeJSONRegions(t *testing.T) {
	for _, tc := range []struct{ provider, region, want string }{
		{"", "us-east", "us-east"},
		{"aws", "ap-southeast", "ap-southeast"},
		{"aws", "us-west-2", "us-west"},
		{"azure", "northeurope", "eu-west"},
		{"gcp", "asia-southeast1", "ap-southeast"},
		{"", "eastus", "us-east"},
		{"", "europe-west1", "eu-west"},
	} {
		rec := `{"app":"a","func":"f","end_us":10,"duration_us":1,"region":"` + tc.region + `"`
		if tc.provider != "" {
			rec += `,"provider":"` + tc.provider + `"`
		}
		r := decodeJSON(t, rec+"}")
		if len(r.Observations) != 1 {
			t.Fatalf("%s/%s: %v", tc.provider, tc.region, r.Errors)
		}
		if got := r.Observations[0].GetRegion(); got != tc.want {
			t.Errorf("%s/%s: region %q, want %q", tc.provider, tc.region, got, tc.want)
		}
	}
}

func TestDecodeJSONFieldErrors(t *testing.T) {
	const base = `"app":"a","func":"f","end_us":1000,"duration_us":10`
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name, rec, field, reason string
	}{
		{"missing app", `{"func":"f","end_us":1000,"duration_us":10}`, "app", "missing"},
		{"missing func", `{"app":"a","end_us":1000,"duration_us":10}`, "func", "missing"},
		{"missing end_us", `{"app":"a","func":"f","duration_us":10}`, "end_us", "missing"},
		{"missing duration_us", `{"app":"a","func":"f","end_us":1000}`, "duration_us", "missing"},
		{"null app", `{"app":null,"func":"f","end_us":1000,"duration_us":10}`, "app", "null"},
		{"empty app", `{"app":"","func":"f","end_us":1000,"duration_us":10}`, "app", "empty"},
		{"long app", `{"app":"` + long + `","func":"f","end_us":1000,"duration_us":10}`, "app", "at most 256"},
		{"app not UTF-8", "{\"app\":\"\xff\",\"func\":\"f\",\"end_us\":1000,\"duration_us\":10}", "app", "UTF-8"},
		{"app number", `{"app":1,"func":"f","end_us":1000,"duration_us":10}`, "app", "want a string"},
		{"empty func", `{"app":"a","func":"","end_us":1000,"duration_us":10}`, "func", "empty"},
		{"long func", `{"app":"a","func":"` + long + `","end_us":1000,"duration_us":10}`, "func", "at most 256"},
		{"func object", `{"app":"a","func":{},"end_us":1000,"duration_us":10}`, "func", "an object"},
		{"zero end", `{"app":"a","func":"f","end_us":0,"duration_us":0}`, "end_us", "positive"},
		{"negative end", `{"app":"a","func":"f","end_us":-5,"duration_us":0}`, "end_us", "positive"},
		{"end string", `{"app":"a","func":"f","end_us":"1000","duration_us":10}`, "end_us", "want an integer"},
		{"end fraction", `{"app":"a","func":"f","end_us":1000.5,"duration_us":10}`, "end_us", "want an integer"},
		{"end exponent", `{"app":"a","func":"f","end_us":1e3,"duration_us":10}`, "end_us", "want an integer"},
		{"end overflow", `{"app":"a","func":"f","end_us":9223372036854775808,"duration_us":10}`, "end_us", "out of range"},
		{"negative duration", `{"app":"a","func":"f","end_us":1000,"duration_us":-1}`, "duration_us", "≥ 0"},
		{"duration past end", `{"app":"a","func":"f","end_us":1000,"duration_us":1001}`, "duration_us", "more than end_us"},
		{"duration bool", `{"app":"a","func":"f","end_us":1000,"duration_us":true}`, "duration_us", "want an integer"},
		{"start mismatch", `{` + base + `,"start_us":900}`, "start_us", "want end_us − duration_us = 990"},
		{"start array", `{` + base + `,"start_us":[990]}`, "start_us", "want an integer"},
		{"unknown provider", `{` + base + `,"provider":"ibm"}`, "provider", "want aws, azure or gcp"},
		{"provider upper case", `{` + base + `,"provider":"AWS"}`, "provider", "want aws, azure or gcp"},
		{"provider number", `{` + base + `,"provider":1}`, "provider", "want a string"},
		{"unknown region", `{` + base + `,"region":"mars-1"}`, "region", "want a metro"},
		{"region of another provider", `{` + base + `,"provider":"aws","region":"eastus"}`, "region", "region id of aws"},
		{"zero memory", `{` + base + `,"memory_mb":0}`, "memory_mb", "want 1 to"},
		{"negative memory", `{` + base + `,"memory_mb":-128}`, "memory_mb", "want 1 to"},
		{"huge memory", `{` + base + `,"memory_mb":2147483648}`, "memory_mb", "want 1 to"},
		{"fractional memory", `{` + base + `,"memory_mb":128.5}`, "memory_mb", "want an integer"},
		{"negative latency", `{` + base + `,"latency_ms":-1}`, "latency_ms", "finite number ≥ 0"},
		{"infinite latency", `{` + base + `,"latency_ms":1e400}`, "latency_ms", "out of range"},
		{"latency string", `{` + base + `,"latency_ms":"1"}`, "latency_ms", "want a number"},
		{"negative cpu", `{` + base + `,"cpu_busy_ms":-0.5}`, "cpu_busy_ms", "≥ 0"},
		{"negative queue", `{` + base + `,"queue_wait_ms":-2}`, "queue_wait_ms", "≥ 0"},
		{"negative memory used", `{` + base + `,"memory_used_mb":-2}`, "memory_used_mb", "≥ 0"},
		{"negative cost", `{` + base + `,"cost_usd":-1e-9}`, "cost_usd", "≥ 0"},
		{"negative carbon", `{` + base + `,"carbon_g":-3}`, "carbon_g", "≥ 0"},
		{"negative warm", `{` + base + `,"warm_instances":-1}`, "warm_instances", "want 0 to"},
		{"negative total", `{` + base + `,"total_instances":-1}`, "total_instances", "want 0 to"},
		{"total too big", `{` + base + `,"total_instances":4294967296}`, "total_instances", "want 0 to"},
		{"cold start string", `{` + base + `,"cold_start":"yes"}`, "cold_start", "want true or false"},
		{"failed number", `{` + base + `,"failed":1}`, "failed", "want true or false"},
		{"long invocation id", `{` + base + `,"invocation_id":"` + strings.Repeat("i", 129) + `"}`, "invocation_id", "at most 128"},
		{"invocation id number", `{` + base + `,"invocation_id":7}`, "invocation_id", "want a string"},
		{"unknown field", `{` + base + `,"memory":128}`, "memory", "unknown field"},
		{"field case matters", `{"App":"a","func":"f","end_us":1000,"duration_us":10}`, "App", "unknown field"},
		{"duplicate field", `{` + base + `,"app":"b"}`, "app", "duplicate field"},
		{"not an object", `["a", 1]`, "", "record is an array: want a JSON object"},
		{"not JSON", `{` + base + `,}`, "", "not valid JSON"},
		{"two objects on a line", `{` + base + `} {` + base + `}`, "", "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := minRecord + "\n\n" + tc.rec + "\n"
			r := decodeJSON(t, body)
			if len(r.Observations) != 1 || len(r.Errors) != 1 {
				t.Fatalf("got %d observations and errors %v, want 1 and 1 error", len(r.Observations), r.Errors)
			}
			e := r.Errors[0]
			if e.Index != 1 || e.Line != 3 || e.Field != tc.field || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("got %+v (%v), want index 1, line 3, field %q, reason containing %q", e, e, tc.field, tc.reason)
			}
			if string(e.Raw) != tc.rec {
				t.Errorf("Raw = %q, want the line", e.Raw)
			}
		})
	}
}

func TestDecodeJSONMixed(t *testing.T) {
	bad := `{"app":"a","func":"f","end_us":1000,"duration_us":2000}`
	t.Run("lines", func(t *testing.T) {
		body := bad + "\n" + fullRecord + "\n  \n" + bad + "\n" + minRecord + "\n" + "oops" + "\n"
		r := decodeJSON(t, body)
		if got, want := r.Index, []int{1, 3}; !equalInts(got, want) {
			t.Errorf("Index %v, want %v", got, want)
		}
		type loc struct{ index, line int }
		var got []loc
		for _, e := range r.Errors {
			got = append(got, loc{e.Index, e.Line})
		}
		want := []loc{{0, 1}, {2, 4}, {4, 6}}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("error locations %v, want %v", got, want)
		}
		if r.Total != 5 || !proto.Equal(r.Observations[0], wantFull()) || !proto.Equal(r.Observations[1], wantMin()) {
			t.Errorf("Total %d, observations %v", r.Total, r.Observations)
		}
	})
	t.Run("array", func(t *testing.T) {
		body := "[" + bad + "," + fullRecord + ",7," + bad + "," + minRecord + "]"
		r := decodeJSON(t, body)
		if got, want := r.Index, []int{1, 4}; !equalInts(got, want) {
			t.Errorf("Index %v, want %v", got, want)
		}
		if len(r.Errors) != 3 || r.Errors[0].Index != 0 || r.Errors[1].Index != 2 || r.Errors[2].Index != 3 {
			t.Fatalf("errors %v", r.Errors)
		}
		if r.Errors[1].Line != 0 || string(r.Errors[1].Raw) != "7" || !strings.Contains(r.Errors[1].Reason, "is a number") {
			t.Errorf("error %+v", r.Errors[1])
		}
		if r.Errors[0].Field != "duration_us" || string(r.Errors[0].Raw) != bad {
			t.Errorf("error %+v", r.Errors[0])
		}
	})
}

func TestDecodeJSONBodyErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"truncated array", "[" + minRecord + ",\n" + minRecord[:20], "line 2, column 21"},
		{"array trailing comma", "[" + minRecord + ",]", "byte 76 (line 1, column 77)"},
		{"array then garbage", "[]x", "byte 3"},
		{"not JSON", "  hello", "byte 2 (line 1, column 3)"},
		{"number", "42", "want a JSON array of records or JSON lines"},
		{"binary", "\x00\x01", "byte 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := telemetry.DecodeJSON([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeJSONRawTruncated(t *testing.T) {
	rec := `{"app":"a","func":"f","end_us":1000,"duration_us":10,"cold_start":"` + strings.Repeat("y", 70<<10) + `"}`
	r := decodeJSON(t, rec)
	if len(r.Errors) != 1 || len(r.Errors[0].Raw) != 64<<10 || r.Errors[0].Field != "cold_start" {
		t.Fatalf("errors %v (raw %d bytes)", r.Errors, len(r.Errors[0].Raw))
	}
}

func TestInvocationID(t *testing.T) {
	// An independent rendering of the documented encoding.
	ref := func(app, fn string, end, dur int64) string {
		var b []byte
		b = binary.BigEndian.AppendUint64(b, uint64(len(app)))
		b = append(b, app...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(fn)))
		b = append(b, fn...)
		b = binary.BigEndian.AppendUint64(b, uint64(end))
		b = binary.BigEndian.AppendUint64(b, uint64(dur))
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:16])
	}
	long := strings.Repeat("z", 1000)
	for _, tc := range []struct {
		app, fn  string
		end, dur int64
	}{{"shop", "cart", 1700000001000000, 1000}, {"", "", 0, 0}, {long, long, -1, 1 << 62}} {
		got := telemetry.InvocationID(tc.app, tc.fn, tc.end, tc.dur)
		if got != ref(tc.app, tc.fn, tc.end, tc.dur) || len(got) != 32 {
			t.Errorf("InvocationID(%.10q, %.10q, %d, %d) = %s, want %s", tc.app, tc.fn, tc.end, tc.dur, got, ref(tc.app, tc.fn, tc.end, tc.dur))
		}
	}
	if telemetry.InvocationID("a", "bc", 1, 1) == telemetry.InvocationID("ab", "c", 1, 1) {
		t.Error("ids of (a, bc) and (ab, c) collide")
	}
}

func TestDecodeJSONRetryStable(t *testing.T) {
	body := "[" + minRecord + "," + fullRecord + "]"
	r1, r2 := decodeJSON(t, body), decodeJSON(t, minRecord+"\n"+fullRecord)
	for i := range r1.Observations {
		if !proto.Equal(r1.Observations[i], r2.Observations[i]) {
			t.Errorf("retry %d: %v != %v", i, r1.Observations[i], r2.Observations[i])
		}
	}
	if r1.Observations[0].GetArrival().GetInvocationId() != telemetry.InvocationID("shop", "cart", 1700000001000000, 1000) {
		t.Errorf("derived id %s", r1.Observations[0].GetArrival().GetInvocationId())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

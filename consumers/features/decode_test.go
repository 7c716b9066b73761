package features_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// validObservation returns a fully populated observation that
// EventFromObservation accepts.
func validObservation() *stratapb.Observation {
	return &stratapb.Observation{
		Arrival: &stratapb.Arrival{
			InvocationId: "0123456789abcdef0123456789abcdef", App: "app", Func: "fn",
			StartUs: 1_000_000, EndUs: 1_250_000, DurationUs: 250_000, Row: 3, RunId: "run",
		},
		Provider:       proto.String("aws"),
		Region:         proto.String("eu-west"),
		MemoryMb:       proto.Int32(512),
		LatencyMs:      proto.Float64(260),
		CpuBusyMs:      proto.Float64(200),
		QueueWaitMs:    proto.Float64(0),
		MemoryUsedMb:   proto.Float64(128.5),
		ColdStart:      proto.Bool(true),
		WarmInstances:  proto.Int32(2),
		TotalInstances: proto.Int32(3),
		CostUsd:        proto.Float64(1e-6),
		CarbonG:        proto.Float64(0.01),
		Failed:         proto.Bool(false),
		Source:         "twin",
	}
}

func TestEventFromObservationAccepts(t *testing.T) {
	e, err := features.EventFromObservation(validObservation())
	if err != nil {
		t.Fatal(err)
	}
	want := features.Event{
		ID: "0123456789abcdef0123456789abcdef", App: "app", Func: "fn", StartUS: 1_000_000, DurationUS: 250_000,
		HasLatency: true, LatencyMS: 260, HasCPU: true, CPUBusyMS: 200, HasQueue: true, QueueWaitMS: 0,
		HasMemory: true, MemoryUsed: 128.5, MemoryMB: 512, Instances: 3, HasCold: true, Cold: true,
		HasCost: true, CostUSD: 1e-6, HasCarbon: true, CarbonG: 0.01, Provider: "aws", Region: "eu-west",
	}
	if e != want {
		t.Errorf("EventFromObservation = %+v\nwant %+v", e, want)
	}

	// A bare trace arrival (replay --observed) carries no optional values.
	bare := &stratapb.Observation{Arrival: &stratapb.Arrival{App: "a", Func: "f", EndUs: 5, DurationUs: 5}, Provider: proto.String("azure"), Source: "trace"}
	e, err = features.EventFromObservation(bare)
	if err != nil {
		t.Fatal(err)
	}
	if e != (features.Event{App: "a", Func: "f", StartUS: 0, DurationUS: 5, Provider: "azure"}) {
		t.Errorf("bare observation gave %+v", e)
	}
}

func TestEventFromObservationRejects(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(o *stratapb.Observation)
		field string // the error must name it
	}{
		{"missing arrival", func(o *stratapb.Observation) { o.Arrival = nil }, "arrival"},
		{"empty app", func(o *stratapb.Observation) { o.Arrival.App = "" }, "arrival.app"},
		{"empty func", func(o *stratapb.Observation) { o.Arrival.Func = "" }, "arrival.func"},
		{"negative duration", func(o *stratapb.Observation) {
			o.Arrival.DurationUs = -1
			o.Arrival.StartUs = o.Arrival.EndUs + 1
		}, "arrival.duration_us"},
		{"start is not end minus duration", func(o *stratapb.Observation) { o.Arrival.StartUs++ }, "arrival.start_us"},
		{"NaN latency", func(o *stratapb.Observation) { o.LatencyMs = proto.Float64(math.NaN()) }, "latency_ms"},
		{"infinite latency", func(o *stratapb.Observation) { o.LatencyMs = proto.Float64(math.Inf(1)) }, "latency_ms"},
		{"negative cpu", func(o *stratapb.Observation) { o.CpuBusyMs = proto.Float64(-1) }, "cpu_busy_ms"},
		{"negative queue wait", func(o *stratapb.Observation) { o.QueueWaitMs = proto.Float64(-0.5) }, "queue_wait_ms"},
		{"NaN memory used", func(o *stratapb.Observation) { o.MemoryUsedMb = proto.Float64(math.NaN()) }, "memory_used_mb"},
		{"negative cost", func(o *stratapb.Observation) { o.CostUsd = proto.Float64(-0.01) }, "cost_usd"},
		{"infinite carbon", func(o *stratapb.Observation) { o.CarbonG = proto.Float64(math.Inf(-1)) }, "carbon_g"},
		{"memory_mb 0", func(o *stratapb.Observation) { o.MemoryMb = proto.Int32(0) }, "memory_mb"},
		{"negative memory_mb", func(o *stratapb.Observation) { o.MemoryMb = proto.Int32(-128) }, "memory_mb"},
		{"negative total instances", func(o *stratapb.Observation) { o.TotalInstances = proto.Int32(-1) }, "total_instances"},
		{"end before start through int64 overflow", func(o *stratapb.Observation) {
			o.Arrival.EndUs, o.Arrival.DurationUs = math.MinInt64, math.MaxInt64
			o.Arrival.StartUs = 1 // end_us - duration_us wraps around to 1
		}, "arrival"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := validObservation()
			tc.edit(o)
			// The check must hold after the wire round trip too.
			b, err := proto.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			var dec stratapb.Observation
			if err := proto.Unmarshal(b, &dec); err != nil {
				t.Fatal(err)
			}
			for _, in := range []*stratapb.Observation{o, &dec} {
				e, err := features.EventFromObservation(in)
				if err == nil {
					t.Fatalf("accepted %+v", e)
				}
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("error %q does not name %s", err, tc.field)
				}
				if e != (features.Event{}) {
					t.Errorf("rejected observation still returned %+v", e)
				}
			}
		})
	}
}

// FuzzObservationDecode decodes arbitrary bytes as an Observation, the way
// the feature service reads strata.telemetry.v1, and validates it. Nothing
// may panic, and every accepted event must be usable by the windows.
func FuzzObservationDecode(f *testing.F) {
	for _, o := range []*stratapb.Observation{
		validObservation(),
		{Arrival: &stratapb.Arrival{App: "a", Func: "f", EndUs: 5, DurationUs: 5}},
		{Arrival: &stratapb.Arrival{App: "a", Func: "f", StartUs: -3, EndUs: -1, DurationUs: 2}, LatencyMs: proto.Float64(math.NaN())},
		{Arrival: &stratapb.Arrival{App: "a", Func: "f", StartUs: 1, EndUs: 0, DurationUs: -1}},
		{MemoryMb: proto.Int32(0)},
	} {
		b, err := proto.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		var o stratapb.Observation
		if err := proto.Unmarshal(data, &o); err != nil {
			return
		}
		e, err := features.EventFromObservation(&o)
		if err != nil {
			if err.Error() == "" || e != (features.Event{}) {
				t.Fatalf("rejection %q returned %+v", err, e)
			}
			return
		}
		a := o.GetArrival()
		if e.App == "" || e.Func == "" || e.App != a.GetApp() || e.Func != a.GetFunc() {
			t.Fatalf("accepted event with app %q func %q from arrival %v", e.App, e.Func, a)
		}
		if e.DurationUS < 0 || e.DurationUS != a.GetDurationUs() || e.StartUS != a.GetEndUs()-a.GetDurationUs() {
			t.Fatalf("accepted event with start %d duration %d from arrival %v", e.StartUS, e.DurationUS, a)
		}
		for _, v := range []struct {
			name string
			has  bool
			v    float64
			in   *float64
		}{
			{"latency_ms", e.HasLatency, e.LatencyMS, o.LatencyMs},
			{"cpu_busy_ms", e.HasCPU, e.CPUBusyMS, o.CpuBusyMs},
			{"queue_wait_ms", e.HasQueue, e.QueueWaitMS, o.QueueWaitMs},
			{"memory_used_mb", e.HasMemory, e.MemoryUsed, o.MemoryUsedMb},
			{"cost_usd", e.HasCost, e.CostUSD, o.CostUsd},
			{"carbon_g", e.HasCarbon, e.CarbonG, o.CarbonG},
		} {
			if v.has != (v.in != nil) {
				t.Fatalf("%s: Has=%v but present=%v", v.name, v.has, v.in != nil)
			}
			if math.IsNaN(v.v) || math.IsInf(v.v, 0) || v.v < 0 || (!v.has && v.v != 0) {
				t.Fatalf("accepted %s = %v (has %v)", v.name, v.v, v.has)
			}
		}
		if e.MemoryMB < 0 || (o.MemoryMb != nil && e.MemoryMB <= 0) || e.Instances < 0 {
			t.Fatalf("accepted memory tier %d, instances %d", e.MemoryMB, e.Instances)
		}
		if e.HasCold != (o.ColdStart != nil) || e.Cold != o.GetColdStart() {
			t.Fatalf("cold start %v/%v from %v", e.HasCold, e.Cold, o.ColdStart)
		}
	})
}

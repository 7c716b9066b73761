package schemas

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

func TestCheckObservation(t *testing.T) {
	valid := func() *stratapb.Observation {
		return &stratapb.Observation{
			Arrival:   &stratapb.Arrival{App: "app", Func: "fn", StartUs: 1_000_000, EndUs: 1_250_000, DurationUs: 250_000},
			MemoryMb:  proto.Int32(512),
			LatencyMs: proto.Float64(260),
		}
	}
	if err := CheckObservation(valid()); err != nil {
		t.Fatalf("valid observation rejected: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(o *stratapb.Observation)
		field string // the error must name it
	}{
		{"missing arrival", func(o *stratapb.Observation) { o.Arrival = nil }, "arrival"},
		{"empty app", func(o *stratapb.Observation) { o.Arrival.App = "" }, "arrival.app"},
		{"start is not end minus duration", func(o *stratapb.Observation) { o.Arrival.StartUs++ }, "arrival.start_us"},
		{"NaN latency", func(o *stratapb.Observation) { o.LatencyMs = proto.Float64(math.NaN()) }, "latency_ms"},
		{"negative carbon", func(o *stratapb.Observation) { o.CarbonG = proto.Float64(-1) }, "carbon_g"},
		{"memory_mb 0", func(o *stratapb.Observation) { o.MemoryMb = proto.Int32(0) }, "memory_mb"},
		{"negative total instances", func(o *stratapb.Observation) { o.TotalInstances = proto.Int32(-1) }, "total_instances"},
	}
	for _, tc := range cases {
		o := valid()
		tc.edit(o)
		err := CheckObservation(o)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.field)
		}
	}
}

package schemas

import (
	"math"
	"testing"
)

func TestVectors(t *testing.T) {
	tr := TacticalRow{App: "a", Func: "f", RequestRate: 2, LatencyMeanMS: Some(120), CostUSD: Some(0.5),
		CPUUtil: Some(0.25), ColdStartRate: Some(0.1), Provider: "azure", Trend: -0.5}
	v := tr.Vector()
	want := []float32{120, 0.5, 2, 0, 0.25, 0, 0.1, 0, 1, 0, -0.5}
	if len(v) != TacticalDim {
		t.Fatalf("tactical vector has %d values, want %d", len(v), TacticalDim)
	}
	for i := range want {
		if v[i] != want[i] {
			t.Fatalf("tactical vector %v, want %v", v, want)
		}
	}
	sr := StrategicRow{App: "a", Functions: 3, Invocations: 10, ActiveHours: 4}
	sv := sr.Vector()
	if len(sv) != StrategicDim || sv[4] != 10 || sv[11] != 3 || sv[12] != 4 || sv[10] < 0 || sv[10] >= 1 {
		t.Fatalf("strategic vector %v", sv)
	}
	if again := sr.Vector(); again[10] != sv[10] {
		t.Fatal("app embedding is not stable")
	}
	var or OperationalRow
	or.RequestRate[SeqLen-1], or.HourSin[0] = 3, 0.5
	ov := or.Vector()
	if len(ov) != OperationalDim || ov[0*5+4] != 0.5 || ov[(SeqLen-1)*5] != 3 {
		t.Fatalf("operational vector %v", ov)
	}
	if !Finite(ov) || Finite([]float32{1, float32(math.NaN())}) || Finite([]float32{float32(math.Inf(1))}) {
		t.Fatal("Finite is wrong")
	}
}

package schemas_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// agreeWithProto fails unless d decodes data as proto.Unmarshal does: both
// refuse it, or both give equal messages.
func agreeWithProto(t *testing.T, d *schemas.ObservationDecoder, data []byte) {
	t.Helper()
	var want stratapb.Observation
	wantErr := proto.Unmarshal(data, &want)
	got, err := d.Decode(data)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("decoding %x: error %v, proto.Unmarshal's %v", data, err, wantErr)
	case err != nil:
		if err.Error() != wantErr.Error() {
			t.Fatalf("decoding %x: error %q, proto.Unmarshal's %q", data, err, wantErr)
		}
	case !proto.Equal(got, &want):
		t.Fatalf("decoding %x:\n got %v\nwant %v", data, got, &want)
	}
}

func randomObservation(r *rand.Rand) *stratapb.Observation {
	str := func() string {
		return []string{"", "a", "aws", "eu-west", "é-ü", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}[r.IntN(6)]
	}
	i64 := func() int64 { return []int64{0, 1, -1, math.MaxInt64, math.MinInt64, r.Int64()}[r.IntN(6)] }
	f64 := func() float64 {
		return []float64{0, math.Copysign(0, -1), 1.5, -2, math.NaN(), math.Inf(1), r.Float64() * 1e6}[r.IntN(7)]
	}
	i32 := func() int32 { return []int32{0, 128, -7, math.MaxInt32, math.MinInt32}[r.IntN(5)] }
	o := &stratapb.Observation{Source: str()}
	if r.IntN(5) > 0 {
		o.Arrival = &stratapb.Arrival{InvocationId: str(), App: str(), Func: str(), StartUs: i64(), EndUs: i64(), DurationUs: i64(), Row: i64(), RunId: str()}
	}
	maybe := func() bool { return r.IntN(2) == 0 }
	if maybe() {
		o.Provider = proto.String(str())
	}
	if maybe() {
		o.Region = proto.String(str())
	}
	for _, p := range []**int32{&o.MemoryMb, &o.WarmInstances, &o.TotalInstances} {
		if maybe() {
			*p = proto.Int32(i32())
		}
	}
	for _, p := range []**float64{&o.LatencyMs, &o.CpuBusyMs, &o.QueueWaitMs, &o.MemoryUsedMb, &o.CostUsd, &o.CarbonG} {
		if maybe() {
			*p = proto.Float64(f64())
		}
	}
	for _, p := range []**bool{&o.ColdStart, &o.Failed} {
		if maybe() {
			*p = proto.Bool(maybe())
		}
	}
	return o
}

// TestObservationDecoderAgreesWithProto holds ObservationDecoder to
// proto.Unmarshal: random observations (zeros, signed zeros, NaN, extreme
// integers, every optional field present or not), each truncated at every
// length, with unknown fields, a repeated arrival (merged), fields repeated
// (the last wins), wrong wire types and invalid UTF-8 in each string —
// decoded one after another by the same decoder.
func TestObservationDecoderAgreesWithProto(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var d schemas.ObservationDecoder
	for range 2000 {
		o := randomObservation(r)
		data, err := proto.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		agreeWithProto(t, &d, data)
		if r.IntN(10) == 0 {
			for n := range len(data) {
				agreeWithProto(t, &d, data[:n])
			}
		}
		other, err := proto.Marshal(randomObservation(r))
		if err != nil {
			t.Fatal(err)
		}
		agreeWithProto(t, &d, append(append([]byte{}, data...), other...)) // fields repeated, arrivals merged
		agreeWithProto(t, &d, protowire.AppendVarint(protowire.AppendTag(append([]byte{}, data...), 99, protowire.VarintType), 5))
		agreeWithProto(t, &d, protowire.AppendVarint(protowire.AppendTag(append([]byte{}, data...), 5, protowire.VarintType), 5))
	}
	for _, num := range []protowire.Number{2, 3, 15} {
		agreeWithProto(t, &d, protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte{0xff, 'a'}))
	}
	for _, num := range []protowire.Number{1, 2, 3, 8} {
		arr := protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte{'a', 0xc3})
		agreeWithProto(t, &d, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), arr))
	}
}

// TestObservationDecoderKeepsStrings checks that the strings of a decoded
// observation are its own: a later Decode does not change them.
func TestObservationDecoderKeepsStrings(t *testing.T) {
	var d schemas.ObservationDecoder
	data, err := proto.Marshal(&stratapb.Observation{Arrival: &stratapb.Arrival{App: "app-one", Func: "f"}, Region: proto.String("eu-west")})
	if err != nil {
		t.Fatal(err)
	}
	o, err := d.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	app, region := o.GetArrival().GetApp(), o.GetRegion()
	for i := range data {
		data[i] = 0
	}
	if _, err := d.Decode([]byte{}); err != nil {
		t.Fatal(err)
	}
	if app != "app-one" || region != "eu-west" {
		t.Fatalf("kept strings changed to %q, %q", app, region)
	}
}

// FuzzObservationDecoder holds ObservationDecoder to proto.Unmarshal on
// arbitrary bytes.
func FuzzObservationDecoder(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		data, err := proto.Marshal(randomObservation(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d schemas.ObservationDecoder
		agreeWithProto(t, &d, data)
		agreeWithProto(t, &d, data) // reused
	})
}

// BenchmarkObservationDecoder decodes a twin observation with the decoder
// and with proto.Unmarshal.
func BenchmarkObservationDecoder(b *testing.B) {
	data, err := proto.Marshal(&stratapb.Observation{
		Arrival: &stratapb.Arrival{InvocationId: "0123456789abcdef0123456789abcdef", App: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Func: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", StartUs: 1e12, EndUs: 1e12 + 5e5, DurationUs: 5e5, Row: 77, RunId: "run"},
		Provider: proto.String("aws"), Region: proto.String("eu-west"), MemoryMb: proto.Int32(512), LatencyMs: proto.Float64(120.5),
		CpuBusyMs: proto.Float64(80), QueueWaitMs: proto.Float64(0), MemoryUsedMb: proto.Float64(200), ColdStart: proto.Bool(false),
		WarmInstances: proto.Int32(2), TotalInstances: proto.Int32(2), CostUsd: proto.Float64(1e-6), CarbonG: proto.Float64(0.01),
		Failed: proto.Bool(false), Source: "twin",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ObservationDecoder", func(b *testing.B) {
		var d schemas.ObservationDecoder
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o stratapb.Observation
			if err := proto.Unmarshal(data, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
}

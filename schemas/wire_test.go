package schemas_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// randomValue returns a value for field fd of m: zeros, signed zeros,
// NaN, infinities, extremes and ordinary values for numbers; empty, ASCII
// and multi-byte strings; a random message (possibly empty) for a message.
func randomValue(t *testing.T, rng *rand.Rand, m protoreflect.Message, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"", "r1", "operational", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "gCO₂e é"}[rng.IntN(5)])
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, rng.Int64N(1 << 40)}[rng.IntN(6)])
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32([]int32{0, 1, -1, math.MaxInt32, math.MinInt32, rng.Int32N(1000)}[rng.IntN(6)])
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, -rng.Float64(), rng.Float64() * 1e6}[rng.IntN(8)])
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rng.IntN(2) == 0)
	case protoreflect.MessageKind:
		sub := m.NewField(fd).Message()
		randomFields(t, rng, sub)
		return protoreflect.ValueOfMessage(sub)
	default:
		t.Fatalf("field %s has kind %v, which the encoders' test does not generate: extend the test and the encoder", fd.FullName(), fd.Kind())
		return protoreflect.Value{}
	}
}

// randomFields sets each field of m with probability 0.7.
func randomFields(t *testing.T, rng *rand.Rand, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for j := range fields.Len() {
		if fd := fields.Get(j); rng.IntN(10) < 7 {
			m.Set(fd, randomValue(t, rng, m, fd))
		}
	}
}

// TestWireEncodersEqualMarshal checks that AppendReward, AppendArrival and
// AppendObservation write the bytes deterministic proto.Marshal writes:
// for each field alone, set (for an optional field, to its zero value too)
// — a field added to the schema and not to the encoder fails here — for
// random messages with random fields set, after a prefix already in the
// buffer, for a message with unknown fields, and that both refuse a string
// that is not valid UTF-8.
func TestWireEncodersEqualMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func() proto.Message
		enc  func([]byte, proto.Message) ([]byte, error)
		bad  proto.Message // a string field not valid UTF-8
	}{
		{"reward", func() proto.Message { return &stratapb.Reward{} },
			func(b []byte, m proto.Message) ([]byte, error) { return schemas.AppendReward(b, m.(*stratapb.Reward)) },
			&stratapb.Reward{RunId: "r", App: "a\xffb"}},
		{"arrival", func() proto.Message { return &stratapb.Arrival{} },
			func(b []byte, m proto.Message) ([]byte, error) {
				return schemas.AppendArrival(b, m.(*stratapb.Arrival))
			},
			&stratapb.Arrival{InvocationId: "i", Func: "\xc3"}},
		{"observation", func() proto.Message { return &stratapb.Observation{} },
			func(b []byte, m proto.Message) ([]byte, error) {
				return schemas.AppendObservation(b, m.(*stratapb.Observation))
			},
			&stratapb.Observation{Arrival: &stratapb.Arrival{App: "\xff"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			check := func(name string, m proto.Message) {
				t.Helper()
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
				if err != nil {
					t.Fatalf("%s: proto.Marshal: %v", name, err)
				}
				prefix := []byte{0xde, 0xad}
				got, err := tc.enc(bytes.Clone(prefix), m)
				if err != nil {
					t.Fatalf("%s: encoder: %v", name, err)
				}
				if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
					t.Fatalf("%s: encoder wrote\n%x\nproto.Marshal\n%x\nfor %v", name, got[2:], want, m)
				}
				if len(m.ProtoReflect().GetUnknown()) == 0 {
					if n := schemas.WireSize(m); n != len(want) {
						t.Fatalf("%s: the encoder reserves %d bytes for an encoding of %d", name, n, len(want))
					}
				}
			}
			fields := tc.new().ProtoReflect().Descriptor().Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				for k := range 20 {
					m := tc.new()
					r := m.ProtoReflect()
					r.Set(fd, randomValue(t, rng, r, fd))
					check(fmt.Sprintf("%s alone, %d", fd.Name(), k), m)
				}
				if fd.HasPresence() && fd.Kind() != protoreflect.MessageKind {
					m := tc.new()
					m.ProtoReflect().Set(fd, fd.Default())
					check(string(fd.Name())+" set to its zero value", m)
				}
			}
			for i := range 2000 {
				m := tc.new()
				randomFields(t, rng, m.ProtoReflect())
				check(fmt.Sprintf("random message %d", i), m)
			}
			withUnknown := tc.new()
			withUnknown.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x07, 0x05}) // field 127, varint 5
			check("unknown fields", withUnknown)

			if _, err := proto.Marshal(tc.bad); err == nil {
				t.Fatal("proto.Marshal accepted invalid UTF-8: the test's premise is wrong")
			}
			if b, err := tc.enc(nil, tc.bad); err == nil {
				t.Fatalf("the encoder accepted invalid UTF-8 and wrote %x", b)
			}
		})
	}
	// An observation whose arrival carries unknown fields.
	o := &stratapb.Observation{Arrival: &stratapb.Arrival{App: "a"}, Source: "twin"}
	o.Arrival.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x07, 0x05})
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := schemas.AppendObservation(nil, o); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("observation with an arrival's unknown fields: %x, %v; want %x", got, err, want)
	}
}

// BenchmarkWireEncoders measures encoding a reward and an observation as
// the twin writes them, against proto.Marshal in the same run.
func BenchmarkWireEncoders(b *testing.B) {
	const app, fn = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	r := &stratapb.Reward{RunId: "qs14", Layer: "operational", Tick: 80000, TickMs: 1_200_000_000, App: app, Func: fn,
		Reward: 0.91, RCost: 0.95, RPerf: 0.88, RCarbon: 0.97, Invocations: 3, CostUsd: 1.2e-6, PrewarmCostUsd: 4e-7, CarbonG: 0.003,
		LatencyP50Ms: 140, LatencyP95Ms: 180, PredError: 1, OracleReward: 0.93, Regret: 0.02}
	o := &stratapb.Observation{
		Arrival: &stratapb.Arrival{InvocationId: "00000000-0000-0000-0000-000000000042", App: app, Func: fn, StartUs: 1_200_000_000, EndUs: 1_200_150_000,
			DurationUs: 150_000, Row: 42, RunId: "qs14"},
		Provider: proto.String("aws"), Region: proto.String("us-east"), MemoryMb: proto.Int32(1024), LatencyMs: proto.Float64(152.5),
		CpuBusyMs: proto.Float64(150), QueueWaitMs: proto.Float64(0), MemoryUsedMb: proto.Float64(300), ColdStart: proto.Bool(false),
		WarmInstances: proto.Int32(2), TotalInstances: proto.Int32(2), CostUsd: proto.Float64(2.5e-6), CarbonG: proto.Float64(0.01),
		Failed: proto.Bool(false), Source: "twin"}
	for _, tc := range []struct {
		name string
		m    proto.Message
		enc  func([]byte) ([]byte, error)
	}{
		{"reward", r, func(b []byte) ([]byte, error) { return schemas.AppendReward(b, r) }},
		{"observation", o, func(b []byte) ([]byte, error) { return schemas.AppendObservation(b, o) }},
	} {
		b.Run(tc.name+"/Append", func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = tc.enc(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/proto.Marshal", func(b *testing.B) {
			for b.Loop() {
				if _, err := (proto.MarshalOptions{Deterministic: true}).Marshal(tc.m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package schemas_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// randomValue returns a value of field fd's kind: zeros, signed zeros,
// NaN, infinities, extremes and ordinary values for numbers; empty, ASCII
// and multi-byte strings.
func randomValue(t *testing.T, rng *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"", "r1", "operational", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "gCO₂e é"}[rng.IntN(5)])
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, rng.Int64N(1 << 40)}[rng.IntN(6)])
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32([]int32{0, 1, -1, math.MaxInt32, math.MinInt32, rng.Int32N(1000)}[rng.IntN(6)])
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, -rng.Float64(), rng.Float64() * 1e6}[rng.IntN(8)])
	default:
		t.Fatalf("field %s has kind %v, which AppendReward's test does not generate: extend the test and the encoder", fd.FullName(), fd.Kind())
		return protoreflect.Value{}
	}
}

// TestAppendRewardEqualsMarshal checks that AppendReward writes the bytes
// deterministic proto.Marshal writes: for each field of strata.v1.Reward
// alone with a non-zero value (a field added to the schema and not to the
// encoder fails here), for random rewards with random fields set, after a
// prefix already in the buffer, for a reward with unknown fields, and that
// both refuse a string that is not valid UTF-8.
func TestAppendRewardEqualsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fields := (&stratapb.Reward{}).ProtoReflect().Descriptor().Fields()
	check := func(name string, r *stratapb.Reward) {
		t.Helper()
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			t.Fatalf("%s: proto.Marshal: %v", name, err)
		}
		prefix := []byte{0xde, 0xad}
		got, err := schemas.AppendReward(bytes.Clone(prefix), r)
		if err != nil {
			t.Fatalf("%s: AppendReward: %v", name, err)
		}
		if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
			t.Fatalf("%s: AppendReward wrote\n%x\nproto.Marshal\n%x", name, got[2:], want)
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		for range 20 {
			r := &stratapb.Reward{}
			v := randomValue(t, rng, fd)
			r.ProtoReflect().Set(fd, v)
			check(string(fd.Name()), r)
		}
	}
	for i := range 2000 {
		r := &stratapb.Reward{}
		for j := range fields.Len() {
			if fd := fields.Get(j); rng.IntN(10) < 7 {
				r.ProtoReflect().Set(fd, randomValue(t, rng, fd))
			}
		}
		check("random reward "+string(rune('0'+i%10)), r)
	}
	withUnknown := &stratapb.Reward{RunId: "r", Tick: 3}
	withUnknown.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x07, 0x05}) // field 127, varint 5
	check("unknown fields", withUnknown)

	bad := &stratapb.Reward{RunId: "r", App: "a\xffb"}
	if _, err := proto.Marshal(bad); err == nil {
		t.Fatal("proto.Marshal accepted invalid UTF-8: the test's premise is wrong")
	}
	if b, err := schemas.AppendReward(nil, bad); err == nil {
		t.Fatalf("AppendReward accepted invalid UTF-8 in app and wrote %x", b)
	}
}

// BenchmarkAppendReward measures encoding an operational reward as the
// twin writes it, against proto.Marshal in the same run.
func BenchmarkAppendReward(b *testing.B) {
	r := &stratapb.Reward{RunId: "qs14", Layer: "operational", Tick: 80000, TickMs: 1_200_000_000,
		App: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Func: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		Reward: 0.91, RCost: 0.95, RPerf: 0.88, RCarbon: 0.97, Invocations: 3, CostUsd: 1.2e-6, PrewarmCostUsd: 4e-7, CarbonG: 0.003,
		LatencyP50Ms: 140, LatencyP95Ms: 180, PredError: 1, OracleReward: 0.93, Regret: 0.02}
	b.Run("AppendReward", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = schemas.AppendReward(buf[:0], r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := (proto.MarshalOptions{Deterministic: true}).Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

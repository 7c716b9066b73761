package schemas

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// AppendReward appends the protobuf encoding of r (strata.v1.Reward) to b
// and returns the extended slice: the bytes
// proto.MarshalOptions{Deterministic: true}.Marshal gives — fields in
// number order, proto3 zeros left out (a double only when its bits are
// zero: -0 is written) — without the reflection-driven encoder. The twin
// writes one reward per active function and tick (17.4 M on the 14-day
// synthetic trace), and the generic encoder was most of its scorer's
// encoding time. Like proto.Marshal it refuses a string that is not valid
// UTF-8, naming the field; a reward carrying unknown fields (decoded from
// a newer writer) is encoded by proto.Marshal, which keeps them.
// TestAppendRewardEqualsMarshal holds it to proto.Marshal over every field
// of the message, so a field added to the schema and not here fails it.
func AppendReward(b []byte, r *stratapb.Reward) ([]byte, error) {
	if len(r.ProtoReflect().GetUnknown()) > 0 {
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, r)
	}
	var err error
	str := func(b []byte, num protowire.Number, name, v string) []byte {
		if v == "" {
			return b
		}
		if err == nil && !utf8.ValidString(v) {
			err = fmt.Errorf("encoding a reward: field %s is not valid UTF-8", name)
		}
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	i64 := func(b []byte, num protowire.Number, v int64) []byte {
		if v == 0 {
			return b
		}
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(v))
	}
	f64 := func(b []byte, num protowire.Number, v float64) []byte {
		bits := math.Float64bits(v)
		if bits == 0 {
			return b
		}
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), bits)
	}
	b = str(b, 1, "run_id", r.RunId)
	b = str(b, 2, "layer", r.Layer)
	b = i64(b, 3, r.Tick)
	b = i64(b, 4, r.TickMs)
	b = str(b, 5, "app", r.App)
	b = str(b, 6, "func", r.Func)
	b = f64(b, 7, r.Reward)
	b = f64(b, 8, r.RCost)
	b = f64(b, 9, r.RPerf)
	b = f64(b, 10, r.RCarbon)
	b = f64(b, 11, r.SlaPenalty)
	b = i64(b, 12, r.Invocations)
	b = i64(b, 13, r.ColdStarts)
	b = i64(b, 14, r.SlaViolations)
	b = f64(b, 15, r.CostUsd)
	b = f64(b, 16, r.PrewarmCostUsd)
	b = f64(b, 17, r.CarbonG)
	b = f64(b, 18, r.LatencyP50Ms)
	b = f64(b, 19, r.LatencyP95Ms)
	b = f64(b, 20, r.PredError)
	b = i64(b, 21, int64(r.Underprovisioned)) // int32: sign-extended, as protobuf writes it
	b = f64(b, 22, r.OracleReward)
	b = f64(b, 23, r.Regret)
	if err != nil {
		return nil, err
	}
	return b, nil
}

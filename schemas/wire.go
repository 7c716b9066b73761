package schemas

import (
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// The encoders below write the records the loop sends most — the twin's
// rewards (one per active function and tick: 17.4 M on the 14-day
// synthetic trace) and observations, and the replay's arrivals — without
// protobuf's reflection-driven encoder, which computes each message's size
// before writing it. Each writes the bytes
// proto.MarshalOptions{Deterministic: true}.Marshal writes: fields in
// number order; a proto3 field left out when zero (a double when its bits
// are zero: -0 is written); an optional field written whenever set; a
// message field whenever not nil. Like proto.Marshal they refuse a string
// that is not valid UTF-8, naming the field; a message carrying unknown
// fields (decoded from a newer writer) is left to proto.Marshal, which
// keeps them. Each first grows b by the message's size, so that appending
// to nil allocates once, the exact size, as proto.Marshal does.
// TestWireEncodersEqualMarshal holds each to proto.Marshal over
// every field of its message, so a field added to the schema and not here
// fails it.

// wire appends protobuf fields to b, keeping the first error.
type wire struct {
	b   []byte
	err error
	msg string // the message, for errors
}

func (w *wire) tag(num protowire.Number, t protowire.Type) {
	w.b = protowire.AppendTag(w.b, num, t)
}

func (w *wire) str(num protowire.Number, name, v string) {
	if v == "" {
		return
	}
	w.strAlways(num, name, v)
}

func (w *wire) strAlways(num protowire.Number, name, v string) {
	if w.err == nil && !utf8.ValidString(v) {
		w.err = fmt.Errorf("encoding %s: field %s is not valid UTF-8", w.msg, name)
	}
	w.tag(num, protowire.BytesType)
	w.b = protowire.AppendString(w.b, v)
}

func (w *wire) varint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	w.tag(num, protowire.VarintType)
	w.b = protowire.AppendVarint(w.b, v)
}

func (w *wire) f64(num protowire.Number, v float64) {
	if bits := math.Float64bits(v); bits != 0 {
		w.tag(num, protowire.Fixed64Type)
		w.b = protowire.AppendFixed64(w.b, bits)
	}
}

func (w *wire) optStr(num protowire.Number, name string, v *string) {
	if v != nil {
		w.strAlways(num, name, *v)
	}
}

// optI32 writes an optional int32: sign-extended, as protobuf does.
func (w *wire) optI32(num protowire.Number, v *int32) {
	if v != nil {
		w.tag(num, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, uint64(int64(*v)))
	}
}

func (w *wire) optF64(num protowire.Number, v *float64) {
	if v != nil {
		w.tag(num, protowire.Fixed64Type)
		w.b = protowire.AppendFixed64(w.b, math.Float64bits(*v))
	}
}

func (w *wire) optBool(num protowire.Number, v *bool) {
	if v != nil {
		w.tag(num, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, protowire.EncodeBool(*v))
	}
}

func (w *wire) done() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// AppendReward appends the encoding of r (strata.v1.Reward) to b and
// returns the extended slice.
func AppendReward(b []byte, r *stratapb.Reward) ([]byte, error) {
	if len(r.ProtoReflect().GetUnknown()) > 0 {
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, r)
	}
	w := wire{b: slices.Grow(b, rewardSize(r)), msg: "a reward"}
	w.str(1, "run_id", r.RunId)
	w.str(2, "layer", r.Layer)
	w.varint(3, uint64(r.Tick))
	w.varint(4, uint64(r.TickMs))
	w.str(5, "app", r.App)
	w.str(6, "func", r.Func)
	w.f64(7, r.Reward)
	w.f64(8, r.RCost)
	w.f64(9, r.RPerf)
	w.f64(10, r.RCarbon)
	w.f64(11, r.SlaPenalty)
	w.varint(12, uint64(r.Invocations))
	w.varint(13, uint64(r.ColdStarts))
	w.varint(14, uint64(r.SlaViolations))
	w.f64(15, r.CostUsd)
	w.f64(16, r.PrewarmCostUsd)
	w.f64(17, r.CarbonG)
	w.f64(18, r.LatencyP50Ms)
	w.f64(19, r.LatencyP95Ms)
	w.f64(20, r.PredError)
	w.varint(21, uint64(int64(r.Underprovisioned))) // int32: sign-extended
	w.f64(22, r.OracleReward)
	w.f64(23, r.Regret)
	return w.done()
}

// AppendArrival appends the encoding of a (strata.v1.Arrival) to b and
// returns the extended slice.
func AppendArrival(b []byte, a *stratapb.Arrival) ([]byte, error) {
	if len(a.ProtoReflect().GetUnknown()) > 0 {
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, a)
	}
	w := wire{b: slices.Grow(b, arrivalSize(a)), msg: "an arrival"}
	w.arrival(a)
	return w.done()
}

// arrival writes a's fields.
func (w *wire) arrival(a *stratapb.Arrival) {
	w.str(1, "invocation_id", a.InvocationId)
	w.str(2, "app", a.App)
	w.str(3, "func", a.Func)
	w.varint(4, uint64(a.StartUs))
	w.varint(5, uint64(a.EndUs))
	w.varint(6, uint64(a.DurationUs))
	w.varint(7, uint64(a.Row))
	w.str(8, "run_id", a.RunId)
}

// The sizes of fields with numbers below 16 (a one-byte tag), as the
// encoders write them; 0 where they leave the field out.
func strSize(v string) int {
	if v == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(v))
}

func varintSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func f64Size(v float64) int {
	if math.Float64bits(v) == 0 {
		return 0
	}
	return 9
}

// rewardSize is the length of r's encoding (fields 16–23 take a two-byte
// tag).
func rewardSize(r *stratapb.Reward) int {
	n := strSize(r.RunId) + strSize(r.Layer) + varintSize(uint64(r.Tick)) + varintSize(uint64(r.TickMs)) +
		strSize(r.App) + strSize(r.Func) + f64Size(r.Reward) + f64Size(r.RCost) + f64Size(r.RPerf) + f64Size(r.RCarbon) +
		f64Size(r.SlaPenalty) + varintSize(uint64(r.Invocations)) + varintSize(uint64(r.ColdStarts)) +
		varintSize(uint64(r.SlaViolations)) + f64Size(r.CostUsd)
	for _, v := range [...]float64{r.PrewarmCostUsd, r.CarbonG, r.LatencyP50Ms, r.LatencyP95Ms, r.PredError, r.OracleReward, r.Regret} {
		if f := f64Size(v); f > 0 {
			n += f + 1
		}
	}
	if v := varintSize(uint64(int64(r.Underprovisioned))); v > 0 {
		n += v + 1
	}
	return n
}

// arrivalSize is the length of a's encoding.
func arrivalSize(a *stratapb.Arrival) int {
	return strSize(a.InvocationId) + strSize(a.App) + strSize(a.Func) + varintSize(uint64(a.StartUs)) +
		varintSize(uint64(a.EndUs)) + varintSize(uint64(a.DurationUs)) + varintSize(uint64(a.Row)) + strSize(a.RunId)
}

// observationSize is the length of o's encoding, na its arrival's.
func observationSize(o *stratapb.Observation, na int) int {
	n := 0
	if o.Arrival != nil {
		n += 1 + protowire.SizeBytes(na)
	}
	for _, s := range [...]*string{o.Provider, o.Region} {
		if s != nil {
			n += 1 + protowire.SizeBytes(len(*s))
		}
	}
	for _, v := range [...]*int32{o.MemoryMb, o.WarmInstances, o.TotalInstances} {
		if v != nil {
			n += 1 + protowire.SizeVarint(uint64(int64(*v)))
		}
	}
	for _, v := range [...]*float64{o.LatencyMs, o.CpuBusyMs, o.QueueWaitMs, o.MemoryUsedMb, o.CostUsd, o.CarbonG} {
		if v != nil {
			n += 9
		}
	}
	for _, v := range [...]*bool{o.ColdStart, o.Failed} {
		if v != nil {
			n += 2
		}
	}
	return n + strSize(o.Source)
}

// AppendObservation appends the encoding of o (strata.v1.Observation) to
// b and returns the extended slice.
func AppendObservation(b []byte, o *stratapb.Observation) ([]byte, error) {
	if len(o.ProtoReflect().GetUnknown()) > 0 || (o.Arrival != nil && len(o.Arrival.ProtoReflect().GetUnknown()) > 0) {
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, o)
	}
	na := 0
	if o.Arrival != nil {
		na = arrivalSize(o.Arrival)
	}
	w := wire{b: slices.Grow(b, observationSize(o, na)), msg: "an observation"}
	if a := o.Arrival; a != nil {
		w.tag(1, protowire.BytesType)
		w.b = protowire.AppendVarint(w.b, uint64(na))
		w.arrival(a)
	}
	w.optStr(2, "provider", o.Provider)
	w.optStr(3, "region", o.Region)
	w.optI32(4, o.MemoryMb)
	w.optF64(5, o.LatencyMs)
	w.optF64(6, o.CpuBusyMs)
	w.optF64(7, o.QueueWaitMs)
	w.optF64(8, o.MemoryUsedMb)
	w.optBool(9, o.ColdStart)
	w.optI32(10, o.WarmInstances)
	w.optI32(11, o.TotalInstances)
	w.optF64(12, o.CostUsd)
	w.optF64(13, o.CarbonG)
	w.optBool(14, o.Failed)
	w.str(15, "source", o.Source)
	return w.done()
}

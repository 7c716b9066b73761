package schemas

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// ObservationDecoder decodes telemetry records (strata.v1.Observation) into
// one message it reuses, as proto.Unmarshal decodes them into a new one.
// proto.Unmarshal allocated the message, its arrival and a pointer per
// optional field of every record — about a third of the feature service's
// time in the closed loop. Records in the form strata's encoders write —
// known fields, each of its wire type, the arrival once, valid UTF-8 — are
// decoded here; any other record (unknown fields, a repeated arrival to
// merge, malformed bytes) goes to proto.Unmarshal, so the result and the
// error are always proto.Unmarshal's (TestObservationDecoderAgreesWithProto,
// FuzzObservationDecoder).
//
// The zero ObservationDecoder is ready to use; it is not safe for
// concurrent use.
type ObservationDecoder struct {
	obs stratapb.Observation
	arr stratapb.Arrival
	// The optional fields' values, which obs points at.
	provider, region               string
	memoryMB, warm, total          int32
	latency, cpu, queue, mem, cost float64
	carbon                         float64
	cold, failed                   bool
}

// Decode returns the observation in data. A message decoded here is the
// decoder's and valid until the next Decode (its strings are its own and
// may be kept); one from proto.Unmarshal is new.
func (d *ObservationDecoder) Decode(data []byte) (*stratapb.Observation, error) {
	if o := d.fast(data); o != nil {
		return o, nil
	}
	o := &stratapb.Observation{}
	if err := proto.Unmarshal(data, o); err != nil {
		return nil, err
	}
	return o, nil
}

// fast decodes data into d's message, or returns nil for a record it
// leaves to proto.Unmarshal.
func (d *ObservationDecoder) fast(data []byte) *stratapb.Observation {
	o := &d.obs
	o.Arrival, o.Provider, o.Region, o.MemoryMb = nil, nil, nil, nil
	o.LatencyMs, o.CpuBusyMs, o.QueueWaitMs, o.MemoryUsedMb = nil, nil, nil, nil
	o.ColdStart, o.WarmInstances, o.TotalInstances = nil, nil, nil
	o.CostUsd, o.CarbonG, o.Failed, o.Source = nil, nil, nil, ""
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil
		}
		data = data[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 || o.Arrival != nil || !d.arrival(v) {
				return nil
			}
			o.Arrival, data = &d.arr, data[n:]
		case (num == 2 || num == 3 || num == 15) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 || !utf8.Valid(v) {
				return nil
			}
			data = data[n:]
			switch num {
			case 2:
				d.provider, o.Provider = known(v, "aws", "azure", "gcp"), &d.provider
			case 3:
				d.region, o.Region = known(v, PlacementMetros[:]...), &d.region
			default:
				o.Source = known(v, "twin", "trace", "live")
			}
		case (num == 4 || num == 9 || num == 10 || num == 11 || num == 14) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return nil
			}
			data = data[n:]
			switch num {
			case 4:
				d.memoryMB, o.MemoryMb = int32(v), &d.memoryMB
			case 9:
				d.cold, o.ColdStart = protowire.DecodeBool(v), &d.cold
			case 10:
				d.warm, o.WarmInstances = int32(v), &d.warm
			case 11:
				d.total, o.TotalInstances = int32(v), &d.total
			default:
				d.failed, o.Failed = protowire.DecodeBool(v), &d.failed
			}
		case (num >= 5 && num <= 8 || num == 12 || num == 13) && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(data)
			if n < 0 {
				return nil
			}
			data = data[n:]
			f := math.Float64frombits(v)
			switch num {
			case 5:
				d.latency, o.LatencyMs = f, &d.latency
			case 6:
				d.cpu, o.CpuBusyMs = f, &d.cpu
			case 7:
				d.queue, o.QueueWaitMs = f, &d.queue
			case 8:
				d.mem, o.MemoryUsedMb = f, &d.mem
			case 12:
				d.cost, o.CostUsd = f, &d.cost
			default:
				d.carbon, o.CarbonG = f, &d.carbon
			}
		default:
			return nil
		}
	}
	return o
}

// known returns v as a string: one of names when it is one (no
// allocation: most records name one of a few providers, regions and
// sources), a new string otherwise.
func known(v []byte, names ...string) string {
	for _, n := range names {
		if string(v) == n {
			return n
		}
	}
	return string(v)
}

// arrival decodes an arrival's bytes into d.arr, reporting false for one
// it leaves to proto.Unmarshal.
func (d *ObservationDecoder) arrival(data []byte) bool {
	a := &d.arr
	a.InvocationId, a.App, a.Func, a.RunId = "", "", "", ""
	a.StartUs, a.EndUs, a.DurationUs, a.Row = 0, 0, 0, 0
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false
		}
		data = data[n:]
		switch {
		case (num == 1 || num == 2 || num == 3 || num == 8) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(data)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			data = data[n:]
			switch num {
			case 1:
				a.InvocationId = string(v)
			case 2:
				a.App = string(v)
			case 3:
				a.Func = string(v)
			default:
				a.RunId = string(v)
			}
		case num >= 4 && num <= 7 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return false
			}
			data = data[n:]
			switch num {
			case 4:
				a.StartUs = int64(v)
			case 5:
				a.EndUs = int64(v)
			case 6:
				a.DurationUs = int64(v)
			default:
				a.Row = int64(v)
			}
		default:
			return false
		}
	}
	return true
}

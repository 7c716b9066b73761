package telemetry

import (
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// msgType is a message type of the OTLP trace export request, as far as
// the protobuf pre-scan follows it.
type msgType uint8

// The message types the protobuf pre-scan walks into: every one pdata's
// unmarshalling does, so that nothing it recurses into goes unchecked.
const (
	mRequest msgType = iota // ExportTraceServiceRequest
	mResourceSpans
	mResource
	mEntityRef
	mScopeSpans
	mScope // InstrumentationScope
	mSpan
	mEvent // Span.Event
	mLink  // Span.Link
	mStatus
	mKeyValue
	mAnyValue
	mArrayValue
	mKeyValueList
	numMsgTypes
)

// msgNames name the message types for errors, indexed by msgType.
var msgNames = [numMsgTypes]string{
	mRequest: "ExportTraceServiceRequest", mResourceSpans: "ResourceSpans", mResource: "Resource",
	mEntityRef: "EntityRef", mScopeSpans: "ScopeSpans", mScope: "InstrumentationScope", mSpan: "Span",
	mEvent: "Span.Event", mLink: "Span.Link", mStatus: "Status", mKeyValue: "KeyValue",
	mAnyValue: "AnyValue", mArrayValue: "ArrayValue", mKeyValueList: "KeyValueList",
}

// msgField is a message-typed field of the OTLP trace schema.
type msgField struct {
	parent msgType
	num    protowire.Number
	name   string
	child  msgType
}

// msgFields are the message-typed fields of the OTLP trace export request
// (opentelemetry-proto's collector/trace/v1, trace/v1, resource/v1 and
// common/v1, as go.opentelemetry.io/collector/pdata v1.71.0 reads them).
// The other fields are scalars, strings or bytes, and the pre-scan only
// skips them; pdata checks their wire types.
var msgFields = [...]msgField{
	{mRequest, 1, "resource_spans", mResourceSpans},
	{mResourceSpans, 1, "resource", mResource},
	{mResourceSpans, 2, "scope_spans", mScopeSpans},
	// The deprecated instrumentation_library_spans, which pdata reads as
	// scope spans and migrates.
	{mResourceSpans, 1000, "instrumentation_library_spans", mScopeSpans},
	{mResource, 1, "attributes", mKeyValue},
	{mResource, 3, "entity_refs", mEntityRef},
	{mScopeSpans, 1, "scope", mScope},
	{mScopeSpans, 2, "spans", mSpan},
	{mScope, 3, "attributes", mKeyValue},
	{mSpan, 9, "attributes", mKeyValue},
	{mSpan, 11, "events", mEvent},
	{mSpan, 13, "links", mLink},
	{mSpan, 15, "status", mStatus},
	{mEvent, 3, "attributes", mKeyValue},
	{mLink, 4, "attributes", mKeyValue},
	{mKeyValue, 2, "value", mAnyValue},
	{mAnyValue, 5, "array_value", mArrayValue},
	{mAnyValue, 6, "kvlist_value", mKeyValueList},
	{mArrayValue, 1, "values", mAnyValue},
	{mKeyValueList, 1, "values", mKeyValue},
}

// smallFields indexes msgFields by parent type and field number below 16,
// holding 1 + the index, or 0 where the field is not a message.
var smallFields = func() (t [numMsgTypes][16]uint8) {
	for k, f := range msgFields {
		if f.num < 16 {
			t[f.parent][f.num] = uint8(k + 1)
		}
	}
	return t
}()

// fieldOfMsg returns field num of messages of type t when it is a message,
// else nil.
func fieldOfMsg(t msgType, num protowire.Number) *msgField {
	if uint(num) < 16 {
		if k := smallFields[t][num]; k != 0 {
			return &msgFields[k-1]
		}
		return nil
	}
	return bigFieldOfMsg(t, num)
}

// bigFieldOfMsg is fieldOfMsg for field numbers from 16.
func bigFieldOfMsg(t msgType, num protowire.Number) *msgField {
	for k := range msgFields {
		if f := &msgFields[k]; f.parent == t && f.num == num {
			return f
		}
	}
	return nil
}

// checkOTLPProto checks the wire format of a binary protobuf OTLP trace
// export request (tags, wire types, lengths; no groups, which OTLP does not
// use) and that its messages nest at most MaxOTLPDepth levels, the request
// being level 1. It walks b once with an explicit stack, without recursion
// or allocation (except for the error), so it is linear in len(b); off in
// the error is the offset of the offending field's tag.
func checkOTLPProto(b []byte) *syntaxError {
	type frame struct {
		t   msgType
		end int // the offset just past the message
	}
	var stack [MaxOTLPDepth]frame
	depth, t, end := 1, mRequest, len(b) // the innermost open message: level, type, end
	for i := 0; ; {
		if i == end {
			if depth--; depth == 0 {
				return nil
			}
			t, end = stack[depth-1].t, stack[depth-1].end
			continue
		}
		start := i
		// The tag, a varint: one byte for fields 1 to 15.
		var tag uint64
		if c := b[i]; c < 0x80 {
			tag, i = uint64(c), i+1
		} else {
			v, n := protowire.ConsumeVarint(b[i:end])
			if n < 0 {
				return protoError(start, t, "field tag", wireError(n))
			}
			tag, i = v, i+n
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		if tag>>3 == 0 || tag>>3 > math.MaxInt32 {
			return &syntaxError{off: start, msg: fmt.Sprintf("%s: malformed field tag: invalid field number %d", msgNames[t], tag>>3)}
		}
		if typ == protowire.BytesType {
			var l uint64
			if i < end && b[i] < 0x80 {
				l, i = uint64(b[i]), i+1
			} else {
				v, n := protowire.ConsumeVarint(b[i:end])
				if n < 0 {
					return &syntaxError{off: start, msg: fmt.Sprintf("%s has a malformed length: %v", fieldLabel(t, num), wireError(n))}
				}
				l, i = v, i+n
			}
			if l > uint64(end-i) {
				return &syntaxError{off: start, msg: fmt.Sprintf("%s is %d bytes long, past the end of the %s (%d bytes left)",
					fieldLabel(t, num), l, msgNames[t], end-i)}
			}
			f := fieldOfMsg(t, num)
			if f == nil {
				i += int(l)
				continue
			}
			if depth == MaxOTLPDepth {
				return &syntaxError{off: start, msg: fmt.Sprintf("%s.%s nests messages deeper than %d levels",
					msgNames[t], f.name, MaxOTLPDepth), deep: true}
			}
			stack[depth-1] = frame{t, end}
			depth++
			t, end = f.child, i+int(l)
			continue
		}
		if fieldOfMsg(t, num) != nil {
			return &syntaxError{off: start, msg: fmt.Sprintf("%s (field %d) has wire type %d: want 2 (length-delimited)",
				fieldLabel(t, num), num, typ)}
		}
		n := 0
		switch typ {
		case protowire.VarintType:
			if i < end && b[i] < 0x80 {
				n = 1
			} else {
				_, n = protowire.ConsumeVarint(b[i:end])
			}
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b[i:end])
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b[i:end])
		case protowire.StartGroupType, protowire.EndGroupType:
			return &syntaxError{off: start, msg: fmt.Sprintf("%s has wire type %d: OTLP has no groups", fieldLabel(t, num), typ)}
		default:
			return &syntaxError{off: start, msg: fmt.Sprintf("%s has wire type %d: no such wire type", fieldLabel(t, num), typ)}
		}
		if n < 0 {
			return &syntaxError{off: start, msg: fmt.Sprintf("%s has a malformed value: %v", fieldLabel(t, num), wireError(n))}
		}
		i += n
	}
}

// protoError is a malformed element of a message of type t at offset off.
func protoError(off int, t msgType, what string, err string) *syntaxError {
	return &syntaxError{off: off, msg: fmt.Sprintf("%s: malformed %s: %s", msgNames[t], what, err)}
}

// wireError says what protowire's error code n means, without the
// "proto:" prefix of its errors.
func wireError(n int) string {
	msg := protowire.ParseError(n).Error()
	if rest, ok := strings.CutPrefix(msg, "proto:"); ok {
		return strings.TrimLeft(rest, " \u00a0")
	}
	return msg
}

// fieldLabel names field num of messages of type t for an error.
func fieldLabel(t msgType, num protowire.Number) string {
	if f := fieldOfMsg(t, num); f != nil {
		return msgNames[t] + "." + f.name
	}
	return fmt.Sprintf("%s field %d", msgNames[t], num)
}

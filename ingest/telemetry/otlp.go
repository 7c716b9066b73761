package telemetry

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Content types of OTLP/HTTP bodies.
const (
	// ContentTypeProtobuf is the content type of a binary protobuf OTLP body.
	ContentTypeProtobuf = "application/x-protobuf"
	// ContentTypeJSON is the content type of a JSON-encoded OTLP body.
	ContentTypeJSON = "application/json"
)

// Span fields named by OTLP record errors.
const (
	spanStart  = "start_time_unix_nano"
	spanEnd    = "end_time_unix_nano"
	spanStatus = "status"
)

// otlpNames name the source of each field of a span's draft, indexed by
// field (a constant table); app is service.name unless it fell back to
// faas.name.
var otlpNames = [numFields]string{
	fID: AttrInvocationID, fApp: AttrServiceName, fFunc: AttrFaaSName, fEnd: spanEnd,
	fDuration: spanEnd, fStart: spanStart, fProvider: AttrProvider, fRegion: AttrRegion,
	fMemory: AttrMaxMemory, fLatency: spanEnd, fColdStart: AttrColdStart, fFailed: spanStatus,
}

// mebibyte is the unit of faas.max_memory above which it is read as bytes.
const mebibyte = 1 << 20

// DecodeOTLP decodes an OTLP/HTTP trace export request, binary protobuf
// (contentType application/x-protobuf) or JSON (application/json), and maps
// its invocation spans to Observations following the OpenTelemetry FaaS and
// cloud semantic conventions (see docs/ingest-telemetry.md for the table).
//
// A span's attributes are its resource's, overridden by its own. A span is
// an invocation span when it has faas.invocation_id or faas.trigger itself,
// or is a server span and faas.name is present; other spans are counted in
// Result.Skipped and are neither accepted nor rejected. Invocation spans are
// numbered in request order (resource, scope, span) for Result.Index and
// RecordError.Index, and each is validated on its own like a JSON record.
//
// The error is non-nil only for an unsupported content type or a body that
// does not decode as an export request.
func DecodeOTLP(body []byte, contentType string) (Result, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return Result{}, fmt.Errorf("decoding OTLP traces: content type %s: %w", quote(contentType), err)
	}
	req := ptraceotlp.NewExportRequest()
	switch mt {
	case ContentTypeProtobuf:
		err = req.UnmarshalProto(body)
	case ContentTypeJSON:
		err = req.UnmarshalJSON(body)
	default:
		return Result{}, fmt.Errorf("decoding OTLP traces: unsupported content type %s: want %s or %s",
			quote(contentType), ContentTypeProtobuf, ContentTypeJSON)
	}
	if err != nil {
		return Result{}, fmt.Errorf("decoding OTLP traces: %s body of %d bytes: %w", mt, len(body), err)
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return Result{}, fmt.Errorf("decoding OTLP traces: loading the cloud catalog: %w", err)
	}
	var r Result
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				r.addSpan(spans.At(k), res, cat)
			}
		}
	}
	return r, nil
}

// spanAttrs looks attributes up on a span, then on its resource.
type spanAttrs struct {
	span, res pcommon.Map
}

func (a spanAttrs) get(key string) (pcommon.Value, bool) {
	if v, ok := a.span.Get(key); ok {
		return v, true
	}
	return a.res.Get(key)
}

// addSpan decodes one span into r, unless it is not an invocation span.
func (r *Result) addSpan(span ptrace.Span, res pcommon.Map, cat *cloud.Catalog) {
	a := spanAttrs{span.Attributes(), res}
	_, hasID := a.span.Get(AttrInvocationID)
	_, hasTrigger := a.span.Get(AttrTrigger)
	_, hasName := a.get(AttrFaaSName)
	if !hasID && !hasTrigger && (span.Kind() != ptrace.SpanKindServer || !hasName) {
		r.Skipped++
		return
	}
	index := r.Total
	var d draft
	appFromName, bad := d.fillSpan(span, a)
	if bad == nil {
		var o *stratapb.Observation
		if o, bad = d.observation(cat); bad == nil {
			r.accept(index, o)
			return
		}
	}
	if bad.f == fApp && appFromName {
		bad.name = AttrFaaSName
	}
	r.reject(index, 0, bad, &otlpNames, spanJSON(span, a))
}

// fillSpan fills d from an invocation span and reports whether app fell
// back to faas.name.
func (d *draft) fillSpan(span ptrace.Span, a spanAttrs) (appFromName bool, bad *badField) {
	for _, s := range [...]struct {
		f   field
		key string
	}{{fFunc, AttrFaaSName}, {fApp, AttrServiceName}, {fID, AttrInvocationID}, {fProvider, AttrProvider}, {fRegion, AttrRegion}} {
		v, ok := a.get(s.key)
		if s.f == fID {
			// A per-invocation attribute: a resource's would be shared by
			// all of its spans.
			v, ok = a.span.Get(s.key)
		}
		if !ok {
			continue
		}
		if v.Type() != pcommon.ValueTypeStr {
			return false, &badField{f: s.f, reason: fmt.Sprintf("is a %s attribute: want a string", v.Type())}
		}
		d.str[s.f] = v.Str()
		d.mark(s.f)
	}
	if !d.present(fApp) && d.present(fFunc) {
		d.str[fApp] = d.str[fFunc]
		d.mark(fApp)
		appFromName = true
	}

	startNS, endNS := uint64(span.StartTimestamp()), uint64(span.EndTimestamp())
	switch {
	case endNS == 0:
		return appFromName, &badField{f: fEnd, reason: "is zero: the span has no end time"}
	case startNS == 0:
		return appFromName, &badField{f: fStart, reason: "is zero: the span has no start time"}
	case endNS < startNS:
		return appFromName, &badField{f: fEnd, reason: fmt.Sprintf("is %d, before %s %d", endNS, spanStart, startNS)}
	case endNS > math.MaxInt64:
		return appFromName, &badField{f: fEnd, reason: fmt.Sprintf("is %d: out of range", endNS)}
	}
	d.num[fEnd], d.num[fDuration] = int64(endNS/1000), int64((endNS-startNS)/1000)
	d.mark(fEnd)
	d.mark(fDuration)
	d.flt[fLatency] = float64(endNS-startNS) / 1e6
	d.mark(fLatency)

	if v, ok := a.get(AttrColdStart); ok {
		if v.Type() != pcommon.ValueTypeBool {
			return appFromName, &badField{f: fColdStart, reason: fmt.Sprintf("is a %s attribute: want a bool", v.Type())}
		}
		d.bln[fColdStart] = v.Bool()
		d.mark(fColdStart)
	}
	if v, ok := a.get(AttrMaxMemory); ok {
		if v.Type() != pcommon.ValueTypeInt {
			return appFromName, &badField{f: fMemory, reason: fmt.Sprintf("is a %s attribute: want an int (bytes)", v.Type())}
		}
		mb := v.Int()
		if mb >= mebibyte {
			mb /= mebibyte
		}
		d.num[fMemory] = mb
		d.mark(fMemory)
	}
	d.bln[fFailed] = span.Status().Code() == ptrace.StatusCodeError
	d.mark(fFailed)

	if d.str[fID] == "" {
		if tid, sid := span.TraceID(), span.SpanID(); !tid.IsEmpty() || !sid.IsEmpty() {
			var b [48]byte
			hex.Encode(b[:32], tid[:])
			hex.Encode(b[32:], sid[:])
			d.str[fID] = string(b[:])
			d.mark(fID)
		}
	}
	return appFromName, nil
}

// spanJSON renders a rejected span for RecordError.Raw: its name, ids,
// kind, times, status and merged attributes, truncated to 64 KiB.
func spanJSON(span ptrace.Span, a spanAttrs) []byte {
	attrs := make(map[string]string, a.res.Len()+a.span.Len())
	for k, v := range a.res.All() {
		attrs[k] = v.AsString()
	}
	for k, v := range a.span.All() {
		attrs[k] = v.AsString()
	}
	b, err := json.Marshal(struct {
		Name       string            `json:"name"`
		TraceID    string            `json:"trace_id"`
		SpanID     string            `json:"span_id"`
		Kind       string            `json:"kind"`
		Start      uint64            `json:"start_time_unix_nano"`
		End        uint64            `json:"end_time_unix_nano"`
		Status     string            `json:"status"`
		Attributes map[string]string `json:"attributes"`
	}{span.Name(), span.TraceID().String(), span.SpanID().String(), span.Kind().String(),
		uint64(span.StartTimestamp()), uint64(span.EndTimestamp()), span.Status().Code().String(), attrs})
	if err != nil { // cannot happen: every value is a string or a number
		return []byte(span.Name())
	}
	return b
}

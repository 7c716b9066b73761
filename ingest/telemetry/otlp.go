package telemetry

import (
	"encoding/hex"
	"fmt"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/strata-rl/strata/cloud"
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
// does not decode as an export request. Before the body reaches pdata's
// (recursive) unmarshalling, a pre-scan that is linear in its size and does
// not recurse refuses a body that nests deeper than MaxOTLPDepth, a JSON
// body that is not valid JSON (RFC 8259) and a protobuf body whose wire
// format is malformed, naming the byte (for JSON also the line and column)
// at fault.
//
// DecodeOTLP is Batch.DecodeOTLP with each valid record read back from its
// encoding; the ingest service decodes into a Batch.
func DecodeOTLP(body []byte, contentType string) (Result, error) {
	var b Batch
	if err := b.DecodeOTLP(body, contentType); err != nil {
		return Result{}, err
	}
	return b.result()
}

// DecodeOTLP decodes and validates a body as the function DecodeOTLP does
// and encodes each valid record into b, which it empties first. On an
// error b is left empty.
func (b *Batch) DecodeOTLP(body []byte, contentType string) error {
	b.reset()
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("decoding OTLP traces: content type %s: %w", quote(contentType), err)
	}
	req := ptraceotlp.NewExportRequest()
	switch mt {
	case ContentTypeProtobuf:
		if e := checkOTLPProto(body); e != nil {
			return fmt.Errorf("decoding OTLP traces: %s body of %d bytes: byte %d: %s", mt, len(body), e.off, e.msg)
		}
		err = req.UnmarshalProto(body)
	case ContentTypeJSON:
		if _, e := checkJSON(body, MaxOTLPDepth); e != nil {
			return fmt.Errorf("decoding OTLP traces: %s body of %d bytes: %s: %s", mt, len(body), where(body, e.off), e.msg)
		}
		err = req.UnmarshalJSON(body)
	default:
		return fmt.Errorf("decoding OTLP traces: unsupported content type %s: want %s or %s",
			quote(contentType), ContentTypeProtobuf, ContentTypeJSON)
	}
	if err != nil {
		return fmt.Errorf("decoding OTLP traces: %s body of %d bytes: %w", mt, len(body), err)
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return fmt.Errorf("decoding OTLP traces: loading the cloud catalog: %w", err)
	}
	var (
		res         resAttrs
		invocations int
	)
	// Count the invocation spans first, so that the batch's buffers grow
	// once, to their size.
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		_, resName := rs.Resource().Attributes().Get(AttrFaaSName)
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j).Spans()
			for k := range ss.Len() {
				if invocationSpan(ss.At(k), resName) {
					invocations++
				}
			}
		}
	}
	var d draft
	for i := range rss.Len() {
		rs := rss.At(i)
		res.fill(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j).Spans()
			for k := range ss.Len() {
				b.addSpan(&d, ss.At(k), &res, cat, invocations-b.Total)
			}
		}
	}
	return nil
}

// attr identifies an attribute the decoder reads.
type attr uint8

// The attributes the decoder reads.
const (
	aServiceName attr = iota
	aFaaSName
	aInvocationID
	aColdStart
	aMaxMemory
	aTrigger
	aProvider
	aRegion
	numAttrs
)

// attrNames are the attributes' keys, indexed by attr.
var attrNames = [numAttrs]string{
	aServiceName: AttrServiceName, aFaaSName: AttrFaaSName, aInvocationID: AttrInvocationID,
	aColdStart: AttrColdStart, aMaxMemory: AttrMaxMemory, aTrigger: AttrTrigger,
	aProvider: AttrProvider, aRegion: AttrRegion,
}

// attrOf returns the attribute whose key is k, or numAttrs.
func attrOf(k string) attr {
	switch k {
	case AttrServiceName:
		return aServiceName
	case AttrFaaSName:
		return aFaaSName
	case AttrInvocationID:
		return aInvocationID
	case AttrColdStart:
		return aColdStart
	case AttrMaxMemory:
		return aMaxMemory
	case AttrTrigger:
		return aTrigger
	case AttrProvider:
		return aProvider
	case AttrRegion:
		return aRegion
	}
	return numAttrs
}

// attrSet holds the values of the attributes the decoder reads from one
// attribute map, found in one pass over it. pcommon.Map.Get scans the
// map, so looking a resource's attributes up anew for every one of its
// spans would cost the product of their numbers.
type attrSet struct {
	v  [numAttrs]pcommon.Value
	ok [numAttrs]bool
}

// fill sets s from m. Like pcommon.Map.Get, it takes the first of
// repeated keys.
func (s *attrSet) fill(m pcommon.Map) {
	*s = attrSet{}
	for k, v := range m.All() {
		if a := attrOf(k); a < numAttrs && !s.ok[a] {
			s.v[a], s.ok[a] = v, true
		}
	}
}

// resAttrs are a resource's attributes that the decoder reads.
type resAttrs struct {
	attrSet
	// raw renders the values for RecordError.Raw, cut to
	// maxRawAttrBytes; filled by the resource's first rejected span.
	raw      [numAttrs]string
	rendered bool
}

// maxRawAttrBytes bounds a resource attribute's value in a rejected span's
// RecordError.Raw, which repeats it for every rejected span.
const maxRawAttrBytes = 256

// fill sets r from m.
func (r *resAttrs) fill(m pcommon.Map) {
	r.attrSet.fill(m)
	r.raw, r.rendered = [numAttrs]string{}, false
}

// render fills r.raw once.
func (r *resAttrs) render() {
	if r.rendered {
		return
	}
	r.rendered = true
	for a := range numAttrs {
		if !r.ok[a] {
			continue
		}
		v := r.v[a].AsString()
		if len(v) > maxRawAttrBytes {
			v = strings.ToValidUTF8(v[:maxRawAttrBytes], "") + "…"
		}
		r.raw[a] = v
	}
}

// spanAttrs looks attributes up on a span, then on its resource.
type spanAttrs struct {
	span pcommon.Map
	own  attrSet
	res  *resAttrs
}

func (a *spanAttrs) get(k attr) (pcommon.Value, bool) {
	if a.own.ok[k] {
		return a.own.v[k], true
	}
	return a.res.v[k], a.res.ok[k]
}

// invocationSpan reports whether span is an invocation span, as addSpan
// decides it, given whether its resource has faas.name.
func invocationSpan(span ptrace.Span, resName bool) bool {
	server := span.Kind() == ptrace.SpanKindServer
	for k := range span.Attributes().All() {
		switch k {
		case AttrInvocationID, AttrTrigger:
			return true
		case AttrFaaSName:
			if server {
				return true
			}
		}
	}
	return server && resName
}

// addSpan decodes one span into b, through d, unless it is not an
// invocation span; left is the number of invocation spans of the request
// from this one on.
func (b *Batch) addSpan(d *draft, span ptrace.Span, res *resAttrs, cat *cloud.Catalog, left int) {
	a := spanAttrs{span: span.Attributes(), res: res}
	a.own.fill(a.span)
	_, hasName := a.get(aFaaSName)
	if !a.own.ok[aInvocationID] && !a.own.ok[aTrigger] && (span.Kind() != ptrace.SpanKindServer || !hasName) {
		b.Skipped++
		return
	}
	index := b.Total
	*d = draft{}
	appFromName, bad := d.fillSpan(span, &a)
	if bad == nil {
		if bad = b.accept(index, d, cat, left); bad == nil {
			return
		}
	}
	if bad.f == fApp && appFromName {
		bad.name = AttrFaaSName
	}
	b.rejectOwned(index, 0, bad, &otlpNames, spanJSON(span, &a), left)
}

// fillSpan fills d from an invocation span and reports whether app fell
// back to faas.name.
func (d *draft) fillSpan(span ptrace.Span, a *spanAttrs) (appFromName bool, bad *badField) {
	for _, s := range [...]struct {
		f field
		a attr
	}{{fFunc, aFaaSName}, {fApp, aServiceName}, {fID, aInvocationID}, {fProvider, aProvider}, {fRegion, aRegion}} {
		v, ok := a.get(s.a)
		if s.f == fID {
			// A per-invocation attribute: a resource's would be shared by
			// all of its spans.
			v, ok = a.own.v[s.a], a.own.ok[s.a]
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
	if !d.present(fFunc) {
		// Without faas.name there is no function, and no app either
		// unless service.name is set: the attribute at fault is faas.name.
		return false, &badField{f: fFunc, reason: "required attribute is missing"}
	}
	if !d.present(fApp) {
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
	case endNS < 1000:
		return appFromName, &badField{f: fEnd, reason: fmt.Sprintf("is %d: want a positive time in whole microseconds, at least 1000 ns after the Unix epoch", endNS)}
	}
	d.num[fEnd], d.num[fDuration] = int64(endNS/1000), int64((endNS-startNS)/1000)
	d.mark(fEnd)
	d.mark(fDuration)
	d.flt[fLatency] = float64(endNS-startNS) / 1e6
	d.mark(fLatency)

	if v, ok := a.get(aColdStart); ok {
		if v.Type() != pcommon.ValueTypeBool {
			return appFromName, &badField{f: fColdStart, reason: fmt.Sprintf("is a %s attribute: want a bool", v.Type())}
		}
		d.bln[fColdStart] = v.Bool()
		d.mark(fColdStart)
	}
	if v, ok := a.get(aMaxMemory); ok {
		if v.Type() != pcommon.ValueTypeInt {
			return appFromName, &badField{f: fMemory, reason: fmt.Sprintf("is a %s attribute: want an int (bytes)", v.Type())}
		}
		mb := v.Int()
		if mb >= mebibyte {
			mb /= mebibyte
		}
		if mb < 1 || mb > math.MaxInt32 {
			return appFromName, &badField{f: fMemory, reason: fmt.Sprintf("is %d: want 1 to %d (MiB below %d, bytes from it)",
				v.Int(), int64(math.MaxInt32+1)*mebibyte-1, mebibyte)}
		}
		d.num[fMemory] = mb
		d.mark(fMemory)
	}
	d.bln[fFailed] = span.Status().Code() == ptrace.StatusCodeError
	d.mark(fFailed)

	if d.str[fID] == "" {
		if tid, sid := span.TraceID(), span.SpanID(); !tid.IsEmpty() || !sid.IsEmpty() {
			hex.Encode(d.id[:32], tid[:])
			hex.Encode(d.id[32:], sid[:])
			d.idLen = len(d.id)
			d.mark(fID)
		}
	}
	return appFromName, nil
}

// spanJSON renders a rejected span for RecordError.Raw, cut to 64 KiB:
// {"name", "trace_id", "span_id", "kind", "start_time_unix_nano",
// "end_time_unix_nano", "status", "attributes"}, where the attributes are
// the span's own, in order, then those of its resource that the decoder
// reads and the span does not override, cut to 256 bytes each. The
// resource's other attributes are left out: repeated for every rejected
// span, they would cost the product of their number and the spans'.
func spanJSON(span ptrace.Span, a *spanAttrs) []byte {
	a.res.render()
	b := make([]byte, 0, min(256+64*a.span.Len(), maxRawBytes))
	b = append(b, `{"name":`...)
	b = appendJSONString(b, span.Name())
	b = append(b, `,"trace_id":"`...)
	if id := span.TraceID(); !id.IsEmpty() {
		b = hex.AppendEncode(b, id[:])
	}
	b = append(b, `","span_id":"`...)
	if id := span.SpanID(); !id.IsEmpty() {
		b = hex.AppendEncode(b, id[:])
	}
	b = append(b, `","kind":`...)
	b = appendJSONString(b, span.Kind().String())
	b = append(b, `,"start_time_unix_nano":`...)
	b = strconv.AppendUint(b, uint64(span.StartTimestamp()), 10)
	b = append(b, `,"end_time_unix_nano":`...)
	b = strconv.AppendUint(b, uint64(span.EndTimestamp()), 10)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, span.Status().Code().String())
	b = append(b, `,"attributes":{`...)
	first := true
	for k, v := range a.span.All() {
		if len(b) > maxRawBytes {
			break
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v.AsString())
	}
	for k, ok := range a.res.ok {
		if ok && !a.own.ok[k] {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, attrNames[k])
			b = append(b, ':')
			b = appendJSONString(b, a.res.raw[k])
		}
	}
	b = append(b, "}}"...)
	if len(b) > maxRawBytes {
		b = b[:maxRawBytes]
	}
	return b
}

// appendJSONString appends s to b as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

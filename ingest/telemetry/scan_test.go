package telemetry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/strata-rl/strata/ingest/telemetry"
)

// nested returns open×n + inner + close×n.
func nested(open, inner, close string, n int) []byte {
	var b bytes.Buffer
	b.Grow(n*(len(open)+len(close)) + len(inner))
	for range n {
		b.WriteString(open)
	}
	b.WriteString(inner)
	for range n {
		b.WriteString(close)
	}
	return b.Bytes()
}

// jsonDepth is encoding/json's reading of how deep valid JSON b nests
// arrays and objects.
func jsonDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// jsonSyntaxOffset is encoding/json's offset of the syntax error in b, or
// -1 when b is valid JSON.
func jsonSyntaxOffset(b []byte) int {
	var raw json.RawMessage
	err := json.Unmarshal(b, &raw)
	if err == nil {
		return -1
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return int(se.Offset)
	}
	panic(fmt.Sprintf("encoding/json: %v", err))
}

func TestCheckJSON(t *testing.T) {
	const limit = telemetry.MaxJSONDepth
	deepString := `"` + strings.Repeat("[{", 100) + `\"[[\\` + `"` // brackets and escapes inside a string
	for _, tc := range []struct {
		name   string
		body   []byte
		offset int  // -1: valid
		deep   bool // the error is the nesting
	}{
		{"arrays at the limit", nested("[", "", "]", limit), -1, false},
		{"arrays past the limit", nested("[", "", "]", limit+1), limit + 1, true},
		{"objects at the limit", nested(`{"a":`, "1", "}", limit), -1, false},
		{"objects past the limit", nested(`{"a":`, "1", "}", limit+1), 5*limit + 1, true},
		{"mixed past the limit", nested(`[{"k": [`, "", "]}]", limit/3+1), 8*(limit/3) + 8, true},
		{"space between", nested("[ \n", "", "\t]", limit), -1, false},
		{"brackets in strings do not count", nested("[", deepString, "]", limit), -1, false},
		{"brackets in keys do not count", nested(`{"[[{{": `, "null", "}", limit), -1, false},
		{"escaped backslash ends the string", nested("[", `"\\",[]`, "]", limit), limit + 6, true},
		{"escaped quote does not end the string", nested("[", `"\"[",1`, "]", limit), -1, false},
		{"unclosed at the limit", nested("[", "", "", limit), limit, false},
		{"unclosed past the limit", nested("[", "", "", 1<<16), limit + 1, true},
		{"unclosed objects past the limit", nested(`{"":`, "", "", 1<<14), 4*limit + 1, true},
		{"after a closed deep value", append(nested("[", "", "]", limit), "[[]]"...), 2*limit + 1, false},
		{"empty containers", []byte(`[{},[],{"a":[]},[[]]]`), -1, false},
		{"scalars", []byte(`[true,false,null,-0,1.5e+3,0.25,"x\u00e9\n"]`), -1, false},
		{"empty", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := telemetry.CheckJSON(tc.body, limit)
			if tc.offset < 0 {
				if !v.OK {
					t.Fatalf("refused %.80q: %+v", tc.body, v)
				}
				if !json.Valid(tc.body) || jsonDepth(tc.body) > limit {
					t.Fatalf("accepted, but encoding/json: valid %v, depth %d", json.Valid(tc.body), jsonDepth(tc.body))
				}
				return
			}
			if v.OK || v.Off != tc.offset || v.Deep != tc.deep {
				t.Fatalf("got %+v, want an error at offset %d (deep %v)", v, tc.offset, tc.deep)
			}
			if tc.deep && v.Msg != fmt.Sprintf("nesting deeper than %d levels", limit) {
				t.Errorf("message %q", v.Msg)
			}
			if !tc.deep {
				if want := jsonSyntaxOffset(tc.body); want != v.Off {
					t.Errorf("offset %d, encoding/json says %d", v.Off, want)
				}
			}
		})
	}
}

// TestCheckJSONSyntax checks that the pre-scan refuses what encoding/json
// refuses, at the same offset.
func TestCheckJSONSyntax(t *testing.T) {
	for _, body := range []string{
		``, ` `, `x`, `[`, `]`, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{1:2}`,
		`{"a" 1}`, `{"a":1 "b":2}`, `[1]]`, `[1]x`, `[]  x`, `"abc`, `"a\`, `"a\x"`, `"\u12"`, `"\u12g4"`, `"\u`,
		"\"a\x01\"", "\"tab\there\"", `tru`, `trux`, `true1`, `nul`, `nulL`, `fals`, `falsE`, `-`, `-x`, `--1`, `01`,
		`-01`, `1.`, `1.x`, `1.e5`, `1e`, `1e+`, `1e+x`, `1E-7`, `.5`, `+1`, `0x10`, `1_000`, `NaN`, `Infinity`,
		"\xef\xbb\xbf[]", "[\x00]", "[1,\n2,\n3,\n]", `{"a":[1,{"b":[}]}`, `[{"a":1}{"b":2}]`, `"\ud800"`,
		"\"\xff\xfe\"", `[1e400]`, `{"a":1}{"a":1}`, "[1]\n\n", "[\"\u2028\"]",
	} {
		b := []byte(body)
		v := telemetry.CheckJSON(b, telemetry.MaxJSONDepth)
		want := jsonSyntaxOffset(b)
		switch {
		case want < 0 && !v.OK:
			t.Errorf("%q: refused (%+v), but valid for encoding/json", body, v)
		case want >= 0 && v.OK:
			t.Errorf("%q: accepted, but encoding/json refuses it at %d", body, want)
		case want >= 0 && v.Off != want:
			t.Errorf("%q: error at %d (%s), encoding/json's at %d", body, v.Off, v.Msg, want)
		}
	}
}

// TestCheckJSONStringBytes checks every byte at every offset of the
// string scan's eight-byte words against encoding/json.
func TestCheckJSONStringBytes(t *testing.T) {
	for c := range 256 {
		for pos := range 18 {
			for _, tail := range []string{`"`, `xyzxyzxyzxyzxyz"`, `\u00e9\"\\"`, "\x01\""} {
				body := []byte(`["` + strings.Repeat("a", pos) + string(rune(0)) + tail + `]`)
				body[2+pos] = byte(c)
				v := telemetry.CheckJSON(body, telemetry.MaxJSONDepth)
				want := jsonSyntaxOffset(body)
				if v.OK != (want < 0) || !v.OK && v.Off != want {
					t.Fatalf("%q: %+v, encoding/json's error at %d", body, v, want)
				}
			}
		}
	}
}

// FuzzCheckJSON checks the JSON pre-scan against encoding/json: valid JSON
// passes iff it nests at most the limit deep; invalid JSON is refused, at
// encoding/json's offset unless the nesting went too deep first.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[1,2,{"b":null}]}`, `"\u00e9\\"`, `[1,`, `{"a" 1}`, `-1.5e-3`, `[[[[]]]]`, `{"a":{"b":{}}}`} {
		f.Add([]byte(s), uint8(3))
	}
	f.Add(nested("[", "", "]", 64), uint8(63))
	f.Add(nested("[", "", "]", 64), uint8(64))
	f.Add(nested(`{"a":[`, "", "]}", 20), uint8(40))
	f.Add(nested(`{"a":[`, "", "]}", 20), uint8(39))
	f.Add(nested("[", `"\\",[`, "]", 4), uint8(4))
	f.Fuzz(func(t *testing.T, body []byte, limit uint8) {
		l := 1 + int(limit)%64
		v := telemetry.CheckJSON(body, l)
		want := jsonSyntaxOffset(body)
		if want < 0 {
			d := jsonDepth(body)
			if v.OK != (d <= l) || (!v.OK && !v.Deep) {
				t.Fatalf("valid JSON of depth %d, limit %d: %+v", d, l, v)
			}
			var elems []json.RawMessage
			if d <= telemetry.MaxJSONDepth && json.Unmarshal(body, &elems) == nil && telemetry.CountJSON(body) != len(elems) {
				t.Fatalf("counted %d elements, encoding/json %d", telemetry.CountJSON(body), len(elems))
			}
			return
		}
		switch {
		case v.OK:
			t.Fatalf("accepted, but encoding/json refuses it at %d", want)
		case v.Deep && v.Off > want:
			t.Fatalf("too deep at %d, after encoding/json's error at %d", v.Off, want)
		case !v.Deep && v.Off != want:
			t.Fatalf("error at %d (%s), encoding/json's at %d", v.Off, v.Msg, want)
		}
	})
}

func TestDecodeJSONDepth(t *testing.T) {
	const limit = telemetry.MaxJSONDepth
	// A record whose start_us holds arrays nested to the limit (record
	// level 2, so limit−2 more) is rejected as a record, not the body.
	const prefix = `{"app":"a","func":"f","end_us":1000,"duration_us":10,"start_us":`
	deepField := prefix + string(nested("[", "", "]", limit-2)) + `}`
	// In the array below, the bracket of level limit+1 is start_us's
	// (limit−1)th.
	deepOff := 1 + len(minRecord) + 1 + len(prefix) + limit - 2 + 1
	t.Run("array at the limit", func(t *testing.T) {
		r := decodeJSON(t, "["+minRecord+","+deepField+"]")
		if len(r.Observations) != 1 || len(r.Errors) != 1 || r.Errors[0].Field != "start_us" {
			t.Fatalf("observations %v, errors %v", r.Observations, r.Errors)
		}
	})
	for _, tc := range []struct{ name, body, want string }{
		{"array past the limit", "[" + minRecord + "," + strings.Replace(deepField, "[", "[[", 1) + "]",
			fmt.Sprintf("byte %d (line 1, column %d): nesting deeper than 32 levels", deepOff, deepOff+1)},
		{"crash body", string(nested("[", "", "]", 2_000_000)), "byte 33 (line 1, column 34): nesting deeper than 32 levels"},
		{"unclosed arrays", string(nested("[", "", "", 1<<20)), "byte 33 (line 1, column 34): nesting deeper than 32 levels"},
		{"unclosed arrays on line 2", "[\n" + string(nested("[", "", "", 1<<20)), "byte 34 (line 2, column 33): nesting deeper than 32 levels"},
		{"objects", "[" + string(nested(`{"a":`, "", "", 1<<16)), "byte 157 (line 1, column 158): nesting deeper than 32 levels"},
		{"too deep after a syntax error", "[" + minRecord + ",]" + string(nested("[", "", "", 100)), "byte 76 (line 1, column 77): invalid character ']' looking for beginning of value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := telemetry.DecodeJSON([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) || r.Total != 0 {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "decoding telemetry JSON array: ") {
				t.Errorf("error %v", err)
			}
		})
	}
	t.Run("JSON lines with one deep line", func(t *testing.T) {
		deepLine := strings.Replace(deepField, "[", "[[[", 1) // limit+1 levels
		body := minRecord + "\n" + deepLine + "\n" + fullRecord + "\n" + string(nested("[", "", "", 1<<20)) + "\n" + string(nested(`{"x":`, "1", "}", limit)) + "\n"
		r := decodeJSON(t, body)
		if len(r.Observations) != 2 || !equalInts(r.Index, []int{0, 2}) || len(r.Errors) != 3 {
			t.Fatalf("index %v, errors %v", r.Index, r.Errors)
		}
		for i, want := range []struct {
			index, line int
			reason      string
		}{
			{1, 2, fmt.Sprintf("record is too deep at column %d: nesting deeper than 32 levels", strings.Index(deepLine, "[")+limit)},
			{3, 4, "record is too deep at column 33: nesting deeper than 32 levels"},
			{4, 5, "unknown field"}, // exactly the limit: valid, so decoded
		} {
			e := r.Errors[i]
			if e.Index != want.index || e.Line != want.line || !strings.Contains(e.Reason, want.reason) {
				t.Errorf("error %d: %+v, want index %d, line %d, reason %q", i, e, want.index, want.line, want.reason)
			}
		}
		if len(r.Errors[1].Raw) != 64<<10 {
			t.Errorf("deep line's Raw is %d bytes", len(r.Errors[1].Raw))
		}
	})
}

// Protobuf field numbers of the OTLP trace schema, for building bodies.
const (
	fReqResourceSpans = 1
	fRSResource       = 1
	fRSScopeSpans     = 2
	fRSDeprecated     = 1000
	fResAttributes    = 1
	fSSScope          = 1
	fSSSpans          = 2
	fScopeAttributes  = 3
	fSpanAttributes   = 9
	fSpanEvents       = 11
	fSpanLinks        = 13
	fSpanStatus       = 15
	fEventAttributes  = 3
	fLinkAttributes   = 4
	fKVKey            = 1
	fKVValue          = 2
	fAnyString        = 1
	fAnyArray         = 5
	fAnyKvlist        = 6
	fArrayValues      = 1
	fKvlistValues     = 1
)

// nestProto returns fields[0]{fields[1]{… inner}}, every level a
// length-delimited field holding the next, built in linear time.
func nestProto(fields []protowire.Number, inner []byte) []byte {
	size := make([]int, len(fields)+1)
	size[len(fields)] = len(inner)
	for k := len(fields) - 1; k >= 0; k-- {
		size[k] = protowire.SizeTag(fields[k]) + protowire.SizeBytes(size[k+1])
	}
	b := make([]byte, 0, size[0])
	for k, f := range fields {
		b = protowire.AppendTag(b, f, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size[k+1]))
	}
	return append(b, inner...)
}

// spanAttrPath is the path from the request to a span attribute's AnyValue
// (level 6).
var spanAttrPath = []protowire.Number{fReqResourceSpans, fRSScopeSpans, fSSSpans, fSpanAttributes, fKVValue}

// deepAnyValue returns a request whose span attribute value holds n nested
// array values: its deepest message is at level 6+2n.
func deepAnyValue(n int) []byte {
	f := append([]protowire.Number(nil), spanAttrPath...)
	for range n {
		f = append(f, fAnyArray, fArrayValues)
	}
	return nestProto(f, nil)
}

func TestCheckOTLPProto(t *testing.T) {
	const limit = telemetry.MaxOTLPDepth
	repeat := func(n int, f ...protowire.Number) []protowire.Number {
		var out []protowire.Number
		for range n {
			out = append(out, f...)
		}
		return out
	}
	path := func(parts ...[]protowire.Number) []protowire.Number {
		var out []protowire.Number
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	pn := func(f ...protowire.Number) []protowire.Number { return f }
	kvString := func() []byte { // KeyValue{key:"k", value:{string_value:"v"}}
		var av, kv []byte
		av = protowire.AppendTag(av, fAnyString, protowire.BytesType)
		av = protowire.AppendString(av, "v")
		kv = protowire.AppendTag(kv, fKVKey, protowire.BytesType)
		kv = protowire.AppendString(kv, "k")
		kv = protowire.AppendTag(kv, fKVValue, protowire.BytesType)
		return protowire.AppendBytes(kv, av)
	}
	levels := (limit - 6) / 2 // nested arrays whose deepest AnyValue is at the limit
	for _, tc := range []struct {
		name string
		body []byte
		want string // "": accepted
	}{
		{"empty request", nil, ""},
		{"arrays at the limit", deepAnyValue(levels), ""},
		{"arrays past the limit", nestProto(path(spanAttrPath, repeat(levels, fAnyArray, fArrayValues), pn(fAnyArray)), nil),
			"AnyValue.array_value nests messages deeper than 64 levels"},
		{"crash-sized arrays", deepAnyValue(800_000), "AnyValue.array_value nests messages deeper than 64 levels"},
		// kvlist: AnyValue → KeyValueList → KeyValue → AnyValue, 3 levels.
		{"kvlists at the limit", nestProto(path(spanAttrPath, repeat((limit-6)/3, fAnyKvlist, fKvlistValues, fKVValue)), nil), ""},
		{"kvlists past the limit", nestProto(path(spanAttrPath, repeat((limit-6)/3+1, fAnyKvlist, fKvlistValues, fKVValue)), nil),
			"nests messages deeper than 64 levels"},
		{"resource attributes", nestProto(path(pn(fReqResourceSpans, fRSResource, fResAttributes, fKVValue), repeat(limit, fAnyArray, fArrayValues)), nil),
			"ArrayValue.values nests messages deeper than 64 levels"},
		{"scope attributes", nestProto(path(pn(fReqResourceSpans, fRSScopeSpans, fSSScope, fScopeAttributes, fKVValue), repeat(limit, fAnyArray, fArrayValues)), nil),
			"nests messages deeper than 64 levels"},
		{"event attributes", nestProto(path(pn(fReqResourceSpans, fRSScopeSpans, fSSSpans, fSpanEvents, fEventAttributes, fKVValue), repeat(limit, fAnyArray, fArrayValues)), nil),
			"nests messages deeper than 64 levels"},
		{"link attributes", nestProto(path(pn(fReqResourceSpans, fRSScopeSpans, fSSSpans, fSpanLinks, fLinkAttributes, fKVValue), repeat(limit, fAnyArray, fArrayValues)), nil),
			"nests messages deeper than 64 levels"},
		{"deprecated instrumentation_library_spans", nestProto(path(pn(fReqResourceSpans, fRSDeprecated, fSSSpans, fSpanAttributes, fKVValue), repeat(limit, fAnyArray, fArrayValues)), nil),
			"nests messages deeper than 64 levels"},
		{"status", nestProto(pn(fReqResourceSpans, fRSScopeSpans, fSSSpans, fSpanStatus), []byte{0x18, 0x02}), ""},
		{"a string attribute", nestProto(pn(fReqResourceSpans, fRSScopeSpans, fSSSpans, fSpanAttributes), kvString()), ""},
		{"truncated tag", []byte{0x80}, "ExportTraceServiceRequest: malformed field tag: unexpected EOF"},
		{"field number 0", []byte{0x02, 0x00}, "malformed field tag"},
		{"truncated length", []byte{0x0a, 0x85}, "ExportTraceServiceRequest.resource_spans has a malformed length: unexpected EOF"},
		{"length past the end", []byte{0x0a, 0x05, 0x12, 0x00}, "ExportTraceServiceRequest.resource_spans is 5 bytes long, past the end of the ExportTraceServiceRequest (2 bytes left)"},
		{"length past the end of the parent", nestProto(pn(fReqResourceSpans), []byte{0x12, 0x03, 0x12, 0x00}), "ResourceSpans.scope_spans is 3 bytes long"},
		{"message field as varint", []byte{0x08, 0x01}, "ExportTraceServiceRequest.resource_spans (field 1) has wire type 0: want 2"},
		{"group", []byte{0x1b, 0x1c}, "ExportTraceServiceRequest field 3 has wire type 3: OTLP has no groups"},
		{"end group", nestProto(pn(fReqResourceSpans), []byte{0x1c}), "ResourceSpans field 3 has wire type 4: OTLP has no groups"},
		{"message field as a group", []byte{0x0b, 0x0c}, "resource_spans (field 1) has wire type 3: want 2"},
		{"wire type 6", []byte{0x1e}, "field 3 has wire type 6: no such wire type"},
		{"truncated fixed64", []byte{0x19, 1, 2, 3}, "ExportTraceServiceRequest field 3 has a malformed value: unexpected EOF"},
		{"truncated unknown bytes", []byte{0x1a, 0x05, 0x00}, "ExportTraceServiceRequest field 3 is 5 bytes long, past the end of the ExportTraceServiceRequest (1 bytes left)"},
		{"varint overflow", []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, "ExportTraceServiceRequest field 3 has a malformed value: variable length integer overflow"},
		{"tag overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, "malformed field tag"},
		{"field number past 2³¹−1", protowire.AppendVarint(nil, 1<<34), "ExportTraceServiceRequest: malformed field tag: invalid field number 2147483648"},
		{"largest field number", protowire.AppendVarint(protowire.AppendTag(nil, 1<<31-1, protowire.VarintType), 1), ""},
		{"unknown fields", []byte{0x18, 0x01, 0x25, 1, 2, 3, 4, 0x29, 1, 2, 3, 4, 5, 6, 7, 8, 0x32, 0x01, 0x00}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := telemetry.CheckOTLPProto(tc.body)
			if tc.want == "" {
				if !v.OK {
					t.Fatalf("refused: %+v", v)
				}
				return
			}
			if v.OK || !strings.Contains(v.Msg, tc.want) {
				t.Fatalf("got %+v, want an error containing %q", v, tc.want)
			}
			if v.Deep != strings.Contains(tc.want, "deeper") {
				t.Errorf("deep %v", v.Deep)
			}
			if v.Off < 0 || v.Off >= max(len(tc.body), 1) {
				t.Errorf("offset %d out of the body (%d bytes)", v.Off, len(tc.body))
			}
		})
	}
	// The deep error names the tag of the field that opens level limit+1.
	body := deepAnyValue(levels + 1)
	v := telemetry.CheckOTLPProto(body)
	var want int
	for range limit - 1 {
		_, _, n := protowire.ConsumeTag(body[want:])
		_, m := protowire.ConsumeVarint(body[want+n:])
		want += n + m
	}
	if v.Off != want {
		t.Errorf("deep error at %d, want %d (the tag of level %d)", v.Off, want, limit+1)
	}
}

// refSchema is the OTLP trace schema's message-typed fields, transcribed
// from opentelemetry-proto independently of the decoder's table.
var refSchema = map[string]map[protowire.Number]string{
	"request":       {1: "resourceSpans"},
	"resourceSpans": {1: "resource", 2: "scopeSpans", 1000: "scopeSpans"},
	"resource":      {1: "keyValue", 3: "entityRef"},
	"entityRef":     {},
	"scopeSpans":    {1: "scope", 2: "span"},
	"scope":         {3: "keyValue"},
	"span":          {9: "keyValue", 11: "event", 13: "link", 15: "status"},
	"event":         {3: "keyValue"},
	"link":          {4: "keyValue"},
	"status":        {},
	"keyValue":      {2: "anyValue"},
	"anyValue":      {5: "arrayValue", 6: "keyValueList"},
	"arrayValue":    {1: "anyValue"},
	"keyValueList":  {1: "keyValue"},
}

// refProtoDepth is a recursive reference for the protobuf pre-scan: the
// nesting depth of message b of type typ, and whether its wire format is
// well formed (no groups).
func refProtoDepth(b []byte, typ string) (int, bool) {
	depth := 1
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if child, ok := refSchema[typ][num]; ok {
			if wt != protowire.BytesType {
				return 0, false
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, false
			}
			d, ok := refProtoDepth(v, child)
			if !ok {
				return 0, false
			}
			depth = max(depth, 1+d)
			b = b[n:]
			continue
		}
		if wt == protowire.StartGroupType || wt == protowire.EndGroupType {
			return 0, false
		}
		n = protowire.ConsumeFieldValue(num, wt, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return depth, true
}

// FuzzCheckOTLPProto checks the protobuf pre-scan against a recursive
// reference: it accepts exactly the well-formed bodies at most
// MaxOTLPDepth deep, and what it accepts never reaches pdata's recursion
// limit.
func FuzzCheckOTLPProto(f *testing.F) {
	req := request(f, []map[string]any{lambdaResource()}, [][]spanSpec{{
		{name: "s", kind: 2, start: t0NS, end: t0NS + 1, traceByte: 1, attrs: map[string]any{
			"faas.trigger": "http", "list": []any{int64(1), []any{"a", map[string]any{"k": []any{true}}}}}},
	}})
	f.Add(must(req.MarshalProto()))
	f.Add(deepAnyValue((telemetry.MaxOTLPDepth - 6) / 2))
	f.Add(deepAnyValue((telemetry.MaxOTLPDepth-6)/2 + 1))
	f.Add(deepAnyValue(200))
	f.Add([]byte{0x0a, 0x05, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		v := telemetry.CheckOTLPProto(body)
		d, ok := refProtoDepth(body, "request")
		if v.OK != (ok && d <= telemetry.MaxOTLPDepth) {
			t.Fatalf("pre-scan %+v, reference: well formed %v, depth %d", v, ok, d)
		}
		if !v.OK && !v.Deep && ok {
			t.Fatalf("pre-scan says malformed (%+v), the reference does not", v)
		}
		if v.OK {
			r, err := telemetry.DecodeOTLP(body, "application/x-protobuf")
			if err != nil && strings.Contains(err.Error(), "recursion") {
				t.Fatalf("pdata: %v", err)
			}
			if err == nil {
				checkResult(t, r)
			}
		}
	})
}

func TestDecodeOTLPDepth(t *testing.T) {
	const limit = telemetry.MaxOTLPDepth
	// A span attribute's value at JSON level 10; n nested array values add
	// 3 levels each.
	jsonBody := func(n int, unclosed bool) []byte {
		var b bytes.Buffer
		b.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"faas.name","value":{"stringValue":"f"}}]},` +
			`"scopeSpans":[{"spans":[{"name":"s","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000001000",` +
			`"attributes":[{"key":"list","value":`)
		for range n {
			b.WriteString(`{"arrayValue":{"values":[`)
		}
		if unclosed {
			return b.Bytes()
		}
		b.WriteString(`{"intValue":"1"}`)
		for range n {
			b.WriteString(`]}}`)
		}
		b.WriteString(`}]}]}]}]}`)
		return b.Bytes()
	}
	atLimit := (limit - 10) / 3
	if d := jsonDepth(jsonBody(atLimit, false)); d != 10+3*atLimit || d > limit || d+3 <= limit {
		t.Fatalf("test body's depth %d", d)
	}
	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     string // "": decodes, to one span
	}{
		{"JSON at the limit", "application/json", jsonBody(atLimit, false), ""},
		{"JSON past the limit", "application/json", jsonBody(atLimit+1, false), "nesting deeper than 64 levels"},
		{"JSON unclosed", "application/json", jsonBody(1<<16, true), "nesting deeper than 64 levels"},
		{"JSON not valid", "application/json", []byte(`{"resourceSpans":[}`), `byte 19 (line 1, column 20): invalid character '}' looking for beginning of value`},
		{"JSON trailing garbage", "application/json", []byte(`{"resourceSpans":[]} x`), `after top-level value`},
		{"protobuf at the limit", "application/x-protobuf", deepAnyValue((limit - 6) / 2), ""},
		{"protobuf past the limit", "application/x-protobuf", deepAnyValue((limit-6)/2 + 1), "byte 127: AnyValue.array_value nests messages deeper than 64 levels"},
		{"protobuf malformed", "application/x-protobuf", []byte{0x0a, 0x05, 0x12, 0x00}, "application/x-protobuf body of 4 bytes: byte 0: ExportTraceServiceRequest.resource_spans is 5 bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := telemetry.DecodeOTLP(tc.body, tc.ct)
			if tc.want == "" {
				if err != nil || r.Total+r.Skipped != 1 {
					t.Fatalf("error %v, result %+v", err, r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "decoding OTLP traces: "+tc.ct+" body of ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

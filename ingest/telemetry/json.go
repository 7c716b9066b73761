package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/strata-rl/strata/cloud"
)

// DecodeJSON decodes a body of strata's JSON telemetry schema (see Record):
// a JSON array of records when its first non-space byte is '[', else JSON
// lines, one record per line (blank lines are skipped and RecordError.Line
// is set). Each record is decoded and validated on its own, so one bad
// record is reported in Result.Errors and costs the others nothing.
//
// Field names match exactly (unlike encoding/json, case matters); an unknown
// or duplicate field, a value of the wrong type, or a missing required field
// rejects the record and names the field. null reads as absent for optional
// fields. Valid records become Observations with Source "live" and an empty
// RunId.
//
// The error is non-nil only when the body cannot be split into records at
// all: an array that is not valid JSON (truncated, say) or nests arrays and
// objects deeper than MaxJSONDepth, or a body that is neither an array nor
// JSON lines. It says what was wrong and at which byte, line and column
// (those just past the offending byte, as encoding/json counts). A JSON
// line that is not valid JSON or nests deeper than MaxJSONDepth rejects
// that record only. An empty body yields an empty Result.
//
// Syntax and depth are checked in one linear pass without recursion before
// any record is decoded, so the time and memory a body costs grow linearly
// with its size, however it is nested.
//
// DecodeJSON is Batch.DecodeJSON with each valid record read back from its
// encoding; the ingest service decodes into a Batch.
func DecodeJSON(body []byte) (Result, error) {
	var b Batch
	if err := b.DecodeJSON(body); err != nil {
		return Result{}, err
	}
	return b.result()
}

// DecodeJSON decodes and validates a body as the function DecodeJSON does
// and encodes each valid record into b, which it empties first. On an
// error b is left empty.
func (b *Batch) DecodeJSON(body []byte) error { return b.decodeJSON(body, true) }

// decodeJSON is DecodeJSON; with flat, it tries the flat path first (see
// flat.go), which gives the same result.
func (b *Batch) decodeJSON(body []byte, flat bool) error {
	b.reset()
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return fmt.Errorf("decoding telemetry JSON: loading the cloud catalog: %w", err)
	}
	i := skipSpace(body, 0)
	if i == len(body) {
		return nil
	}
	switch body[i] {
	case '[':
		if flat && b.decodeFlatArray(body, cat) {
			return nil
		}
		return b.decodeArray(body, cat)
	case '{':
		b.decodeLines(body, cat, flat)
		return nil
	default:
		return fmt.Errorf("decoding telemetry JSON: %s: found %s, want a JSON array of records or JSON lines",
			where(body, i), quoteByte(body[i]))
	}
}

// decodeArray decodes a body that holds one JSON array of records.
func (b *Batch) decodeArray(body []byte, cat *cloud.Catalog) error {
	n, e := checkJSON(body, MaxJSONDepth)
	if e != nil {
		return fmt.Errorf("decoding telemetry JSON array: %s: %s", where(body, e.off), e.msg)
	}
	// The body is valid JSON, so the scanning below need not check syntax.
	i := skipSpace(body, skipSpace(body, 0)+1)
	if body[i] == ']' {
		return nil
	}
	var d draft
	for index := 0; ; index++ {
		d = draft{}
		// The record's end is where its parsing ended; when it did not
		// parse, skipValue finds it.
		k, bad := b.decodeRecord(&d, index, body[i:], cat, n-index)
		end := i + k
		if k == 0 {
			end = skipValue(body, i)
		}
		if bad != nil {
			b.reject(index, 0, bad, &jsonNames, body[i:end], n-index)
		}
		i = skipSpace(body, end)
		if body[i] == ']' {
			return nil
		}
		i = skipSpace(body, i+1) // the comma
	}
}

// decodeLines decodes a body of JSON lines; with flat, each line on the
// flat path when it can.
func (b *Batch) decodeLines(body []byte, cat *cloud.Catalog, flat bool) {
	n := 0 // records: lines that are not blank
	for line, off := []byte(nil), 0; off < len(body); {
		if line, off = nextLine(body, off); skipSpace(line, 0) < len(line) {
			n++
		}
	}
	var (
		d             draft
		line          []byte
		index, lineNo int
	)
	for off := 0; off < len(body); {
		line, off = nextLine(body, off)
		lineNo++
		line = bytes.TrimSuffix(line, []byte{'\r'})
		j := skipSpace(line, 0)
		if j == len(line) {
			continue
		}
		if flat {
			d = draft{}
			if end := d.parseFlat(line, j, cat); end >= 0 && skipSpace(line, end) == len(line) &&
				b.accept(index, &d, cat, n-index) == nil {
				index++
				continue
			}
		}
		if _, e := checkJSON(line, MaxJSONDepth); e != nil {
			reason := fmt.Sprintf("record is not valid JSON at column %d: %s", e.off, e.msg)
			if e.deep {
				reason = fmt.Sprintf("record is too deep at column %d: %s", e.off, e.msg)
			}
			b.reject(index, lineNo, &badField{f: fieldNone, reason: reason}, &jsonNames, line, n-index)
			index++
			continue
		}
		d = draft{}
		if _, bad := b.decodeRecord(&d, index, line, cat, n-index); bad != nil {
			b.reject(index, lineNo, bad, &jsonNames, line, n-index)
		}
		index++
	}
}

// nextLine returns the line of body that starts at off, without its '\n',
// and the offset of the next.
func nextLine(body []byte, off int) ([]byte, int) {
	line := body[off:]
	if nl := bytes.IndexByte(line, '\n'); nl >= 0 {
		return line[:nl], off + nl + 1
	}
	return line, len(body)
}

// decodeRecord decodes, validates and appends record index, the valid
// JSON value rec starts with, into d and then b, or returns why it is not
// valid; left is as for Batch.accept. It returns the length of the record
// when it parsed as one, else 0.
func (b *Batch) decodeRecord(d *draft, index int, rec []byte, cat *cloud.Catalog, left int) (int, *badField) {
	n, bad := d.parseJSON(rec, cat)
	if bad != nil {
		return 0, bad
	}
	return n, b.accept(index, d, cat, left)
}

// parseJSON fills d from the JSON value rec starts with, valid JSON,
// checking field names and JSON types (validate checks the values), and
// returns the index just past it.
func (d *draft) parseJSON(rec []byte, cat *cloud.Catalog) (int, *badField) {
	i := skipSpace(rec, 0)
	if rec[i] != '{' {
		return 0, &badField{f: fieldNone, reason: notAnObject(rec[i])}
	}
	var seen uint32
	i = skipSpace(rec, i+1)
	if rec[i] == '}' {
		return i + 1, nil
	}
	for {
		kEnd, esc := scanString(rec, i)
		key := rec[i+1 : kEnd-1]
		if esc {
			var s string
			if err := json.Unmarshal(rec[i:kEnd], &s); err != nil {
				return 0, &badField{f: fieldNone, reason: "field name cannot be decoded: " + err.Error()}
			}
			key = []byte(s)
		}
		i = skipSpace(rec, skipSpace(rec, kEnd)+1) // the colon
		var vEnd int
		esc = false
		if rec[i] == '"' {
			vEnd, esc = scanString(rec, i)
		} else {
			vEnd = skipValue(rec, i)
		}
		f := fieldOf(key)
		if f == fieldNone {
			return 0, &badField{name: fieldName(key), reason: "unknown field"}
		}
		if seen&(1<<uint(f)) != 0 {
			return 0, &badField{f: f, reason: "duplicate field"}
		}
		seen |= 1 << uint(f)
		if bad := d.setJSON(f, rec[i:vEnd], esc, false, cat); bad != nil {
			return 0, bad
		}
		i = skipSpace(rec, vEnd)
		if rec[i] == '}' {
			return i + 1, nil
		}
		i = skipSpace(rec, i+1) // the comma
	}
}

// setJSON stores the JSON value v of field f; for a string, esc reports
// whether v holds escapes and valid that it is known to be valid UTF-8.
func (d *draft) setJSON(f field, v []byte, esc, valid bool, cat *cloud.Catalog) *badField {
	if v[0] == 'n' { // null
		if required(f) {
			return &badField{f: f, reason: "is null: the field is required"}
		}
		return nil
	}
	switch kinds[f] {
	case kString:
		if v[0] != '"' {
			return &badField{f: f, reason: fmt.Sprintf("is %s: want a string", kindOf(v[0]))}
		}
		if !valid && !utf8.Valid(v) {
			return &badField{f: f, reason: "is not valid UTF-8"}
		}
		s := v[1 : len(v)-1]
		if esc {
			var u string
			if err := json.Unmarshal(v, &u); err != nil {
				return &badField{f: f, reason: "cannot be decoded: " + err.Error()}
			}
			d.str[f] = u
		} else if f == fProvider || f == fRegion {
			d.str[f] = canonical(cat, s)
		} else {
			d.raw[f] = s // app, func, invocation_id: a view of the body
		}
	case kInt:
		n, reason := parseInt(v)
		if reason != "" {
			return &badField{f: f, reason: reason}
		}
		d.num[f] = n
	case kFloat:
		if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
			return &badField{f: f, reason: fmt.Sprintf("is %s: want a number", kindOf(v[0]))}
		}
		x, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return &badField{f: f, reason: fmt.Sprintf("is %s: out of range", cut(v))}
		}
		d.flt[f] = x
	case kBool:
		switch v[0] {
		case 't':
			d.bln[f] = true
		case 'f':
			d.bln[f] = false
		default:
			return &badField{f: f, reason: fmt.Sprintf("is %s: want true or false", kindOf(v[0]))}
		}
	}
	d.mark(f)
	return nil
}

// parseInt parses a JSON number that must be an integer within int64; the
// reason is empty on success.
func parseInt(v []byte) (int64, string) {
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return 0, fmt.Sprintf("is %s: want an integer", kindOf(v[0]))
	}
	neg := v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Sprintf("is %s: want an integer", cut(v))
		}
		if n > (1<<63)/10 {
			return 0, fmt.Sprintf("is %s: out of range", cut(v))
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n), ""
	case !neg && n < 1<<63:
		return int64(n), ""
	}
	return 0, fmt.Sprintf("is %s: out of range", cut(v))
}

// fieldOf returns the field whose JSON name is key, or fieldNone.
func fieldOf(key []byte) field {
	switch string(key) {
	case "invocation_id":
		return fID
	case "app":
		return fApp
	case "func":
		return fFunc
	case "end_us":
		return fEnd
	case "duration_us":
		return fDuration
	case "start_us":
		return fStart
	case "provider":
		return fProvider
	case "region":
		return fRegion
	case "memory_mb":
		return fMemory
	case "latency_ms":
		return fLatency
	case "cpu_busy_ms":
		return fCPUBusy
	case "queue_wait_ms":
		return fQueueWait
	case "memory_used_mb":
		return fMemoryUsed
	case "cold_start":
		return fColdStart
	case "warm_instances":
		return fWarm
	case "total_instances":
		return fTotal
	case "cost_usd":
		return fCost
	case "carbon_g":
		return fCarbon
	case "failed":
		return fFailed
	}
	return fieldNone
}

// fieldName renders an unknown field's name for RecordError.Field: valid
// UTF-8, at most 128 bytes.
func fieldName(key []byte) string {
	const limit = 128
	if len(key) > limit {
		return string(bytes.ToValidUTF8(key[:limit], []byte("\uFFFD"))) + "…"
	}
	return string(bytes.ToValidUTF8(key, []byte("\uFFFD")))
}

// cut renders a JSON token for a reason, at most 32 bytes.
func cut(v []byte) string {
	const limit = 32
	if len(v) > limit {
		return string(v[:limit]) + "…"
	}
	return string(v)
}

// kindOf names the JSON type of the value that starts with c.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// notAnObject is the reason for a record that is not an object but the
// JSON value that starts with c (a constant, not built for every record of
// a body like [0,0,…]).
func notAnObject(c byte) string {
	switch c {
	case '"':
		return "record is a string: want a JSON object"
	case '[':
		return "record is an array: want a JSON object"
	case 't', 'f':
		return "record is a boolean: want a JSON object"
	case 'n':
		return "record is null: want a JSON object"
	}
	return "record is a number: want a JSON object"
}

// skipSpace returns the index of the first non-space byte of b at or after
// i, or len(b).
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string that starts at b[i]
// (a '"') and whether it holds escapes. b must be valid JSON.
func scanString(b []byte, i int) (int, bool) {
	q := bytes.IndexByte(b[i+1:], '"')
	if q < 0 {
		return len(b), false
	}
	if bytes.IndexByte(b[i+1:i+1+q], '\\') < 0 {
		return i + q + 2, false
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(b), true
}

// skipValue returns the index just past the JSON value that starts at
// b[i]. b must be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = scanString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// where locates byte offset off of body: "byte 12 (line 2, column 3)".
func where(body []byte, off int) string {
	off = min(max(off, 0), len(body))
	line := 1 + bytes.Count(body[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(body[:off], '\n')
	return fmt.Sprintf("byte %d (line %d, column %d)", off, line, col)
}

// quoteByte renders a byte for an error message.
func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

package telemetry

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"

	"github.com/strata-rl/strata/cloud"
)

// The flat path decodes the common body in one pass: a JSON array (or
// JSON lines) of valid records, each an object of known, distinct fields
// whose values are numbers, true, false, null or strings without escapes.
// It checks the syntax of all it reads as the pre-scan (checkJSON) would,
// so the body needs no pre-scan, and it gives up at the first thing of
// any other kind, valid or not: a record that is rejected, an escape, a
// nested value, a syntax error. The general path then decodes the body
// (JSON lines: the line) from the start, and says what is wrong. Either
// way the result is the general path's.

// decodeFlatArray decodes body, whose first non-space byte is '[', on the
// flat path into b, which is empty, and reports whether it could; when it
// could not, b is empty again.
func (b *Batch) decodeFlatArray(body []byte, cat *cloud.Catalog) bool {
	i := skipSpace(body, skipSpace(body, 0)+1)
	if i < len(body) && body[i] == ']' {
		return skipSpace(body, i+1) == len(body)
	}
	var d draft
	for index := 0; ; index++ {
		d = draft{}
		end := d.parseFlat(body, i, cat)
		if end < 0 || b.accept(index, &d, cat, 1) != nil {
			break
		}
		if i = skipSpace(body, end); i == len(body) {
			break
		}
		if body[i] == ']' {
			if skipSpace(body, i+1) == len(body) {
				return true
			}
			break
		}
		if body[i] != ',' {
			break
		}
		i = skipSpace(body, i+1)
	}
	b.reset()
	return false
}

// parseFlat fills d from the record at b[i:] when it is flat (see above)
// and returns the index just past it, or -1 when it is not.
func (d *draft) parseFlat(b []byte, i int, cat *cloud.Catalog) int {
	if i >= len(b) || b[i] != '{' {
		return -1
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return i + 1
	}
	var seen uint32
	next := fID // the field that follows the last in the schema's order, which clients tend to keep
	for i < len(b) && b[i] == '"' {
		// A known field's name holds no escape or control character: up
		// to the next quote, it is a valid JSON string as it stands.
		q := bytes.IndexByte(b[i+1:], '"')
		if q < 0 {
			return -1
		}
		key := b[i+1 : i+1+q]
		f := next
		if f >= numFields || string(key) != jsonNames[f] {
			f = fieldOf(key)
		}
		if f == fieldNone || seen&(1<<uint(f)) != 0 {
			return -1
		}
		seen |= 1 << uint(f)
		next = f + 1
		if i = skipSpace(b, i+q+2); i >= len(b) || b[i] != ':' {
			return -1
		}
		if i = skipSpace(b, i+1); i >= len(b) {
			return -1
		}
		var end int
		if c := b[i]; kinds[f] == kInt && (c == '-' || '0' <= c && c <= '9') {
			var n int64
			if n, end = flatInt(b, i); end < 0 {
				return -1
			}
			d.num[f] = n
			d.mark(f)
		} else {
			var valid bool
			if end, valid = flatValue(b, i); end < 0 || d.setJSON(f, b[i:end], false, valid, cat) != nil {
				return -1
			}
		}
		if i = skipSpace(b, end); i >= len(b) {
			return -1
		}
		switch b[i] {
		case '}':
			return i + 1
		case ',':
			i = skipSpace(b, i+1)
		default:
			return -1
		}
	}
	return -1
}

// maxFlatDigits is the most digits flatInt reads: any 18 fit in an int64.
const maxFlatDigits = 18

// flatInt reads the JSON number at b[i] (a '-' or a digit) when it is an
// integer within int64, as setJSON would, and returns it and the index
// just past it; -1 for anything else (a fraction, an exponent, leading
// zeros, too many digits), which the general path reads or rejects.
func flatInt(b []byte, i int) (int64, int) {
	neg := b[i] == '-'
	if neg {
		i++
	}
	start := i
	var n int64
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	switch {
	case i-start > maxFlatDigits: // perhaps out of range: the general path says
		return 0, -1
	case i == start, b[start] == '0' && i-start > 1:
		return 0, -1
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, -1
	}
	if neg {
		n = -n
	}
	return n, i
}

// flatValue returns the index just past the value at b[i] when it is a
// number, true, false, null or a string without escapes or control
// characters, and for a string whether it is valid UTF-8; -1 otherwise.
func flatValue(b []byte, i int) (int, bool) {
	switch c := b[i]; {
	case c == '"':
		return plainString(b, i)
	case c == '-' || '0' <= c && c <= '9':
		end, e := checkJSONNumber(b, i)
		if e != nil {
			return -1, false
		}
		return end, false
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(b[i:], []byte(lit)) {
			return i + len(lit), false
		}
	}
	return -1, false
}

// plainString returns the index just past the JSON string that starts at
// b[i] (a '"') when it holds no escape and no control character, and
// whether it is valid UTF-8; -1 when it holds either, or does not end. It
// reads eight bytes at a time, as checkJSONString does, and notes on the
// way whether any byte is beyond ASCII: an ASCII string is valid UTF-8.
func plainString(b []byte, i int) (int, bool) {
	start := i + 1
	var high uint64 // the high bits of the bytes read
	for i = start; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := special(x); m != 0 {
			k := bits.TrailingZeros64(m) >> 3
			high |= x & highs & (1<<(8*k) - 1)
			i += k
			break
		}
		high |= x & highs
	}
	if i+8 > len(b) {
		for ; i < len(b) && plain[b[i]]; i++ {
			high |= uint64(b[i] & 0x80)
		}
	}
	if i >= len(b) || b[i] != '"' {
		return -1, false
	}
	return i + 1, high == 0 || utf8.Valid(b[start:i])
}

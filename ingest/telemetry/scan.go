package telemetry

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Nesting limits. A body nested deeper is refused whole, before anything
// recursive reads it, by a pre-scan that runs in one pass, without
// recursion and in time and memory linear in the body's size.
const (
	// MaxJSONDepth is the deepest nesting of JSON arrays and objects that
	// DecodeJSON accepts; the outermost array or object is level 1. Records
	// are flat objects, so a JSON array of records needs 2 levels and a
	// JSON line 1; the rest leaves room for a field of the wrong type (an
	// array, say), which rejects that record only.
	MaxJSONDepth = 32
	// MaxOTLPDepth is the deepest nesting that DecodeOTLP accepts. For a
	// JSON body it counts arrays and objects as MaxJSONDepth does: a span
	// attribute's value is at level 10 (event and link attributes' at 12)
	// and every nested arrayValue adds 3 levels (a kvlistValue 4), so a
	// span attribute can nest 18 array values. For a protobuf body it
	// counts messages, ExportTraceServiceRequest being level 1: a span
	// attribute's AnyValue is at level 6 and every nested array_value adds
	// 2 (a kvlist_value 3), so 29 fit. A request's protobuf encoding is
	// never deeper than its JSON one, so whatever passes as JSON passes as
	// protobuf.
	MaxOTLPDepth = 64
)

// The JSON pre-scan keeps one bit per open container in a uint64.
const _ = uint(64 - max(MaxJSONDepth, MaxOTLPDepth))

// syntaxError is why and where a pre-scan refused a body.
type syntaxError struct {
	// off locates the error. In JSON it is where encoding/json's
	// SyntaxError.Offset puts it: the number of bytes read when it was
	// found, the offending byte included; len(body) when the body ended
	// too soon. In protobuf it is the offset of the offending field's tag.
	off int
	msg string
	// deep is set when the body nests deeper than the limit.
	deep bool
}

// errEOF is the error of a body that ends inside a value.
func errEOF(b []byte) *syntaxError {
	return &syntaxError{off: len(b), msg: "unexpected end of JSON input"}
}

// errChar is the error of an unexpected byte b[i].
func errChar(b []byte, i int, context string) *syntaxError {
	return &syntaxError{off: i + 1, msg: "invalid character " + quoteByte(b[i]) + " " + context}
}

// checkJSON checks that b holds exactly one JSON value, as encoding/json
// reads it (RFC 8259; invalid UTF-8 in strings is let through), whose
// arrays and objects nest at most maxDepth (≤ 64) levels, and counts the
// values directly inside the outermost array or object (the records of an
// array body). It reads b once, from left to right, without recursion or
// allocation (except for the error), and reports the first error at the
// offset where encoding/json reports it; a body nested too deep is refused
// at the bracket that opens level maxDepth+1.
func checkJSON(b []byte, maxDepth int) (elems int, _ *syntaxError) {
	var (
		objects uint64 // bit d is set when the container at level d+1 is an object
		depth   int
		e       *syntaxError
	)
	i := skipSpace(b, 0)
	for {
		// b[i:] starts a value.
		if i >= len(b) {
			return elems, errEOF(b)
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxDepth {
				return elems, &syntaxError{off: i + 1, msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth), deep: true}
			}
			if c == '{' {
				objects |= 1 << depth
			} else {
				objects &^= 1 << depth
			}
			depth++
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' and ']' follow '{' and '[' by 2
				i++
				depth--
				break
			}
			if c == '{' {
				if i, e = checkJSONKey(b, i); e != nil {
					return elems, e
				}
			}
			continue
		case '"':
			if i, e = checkJSONString(b, i); e != nil {
				return elems, e
			}
		case 't':
			if i, e = checkJSONLiteral(b, i, "true"); e != nil {
				return elems, e
			}
		case 'f':
			if i, e = checkJSONLiteral(b, i, "false"); e != nil {
				return elems, e
			}
		case 'n':
			if i, e = checkJSONLiteral(b, i, "null"); e != nil {
				return elems, e
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return elems, errChar(b, i, "looking for beginning of value")
			}
			if i, e = checkJSONNumber(b, i); e != nil {
				return elems, e
			}
		}
		// A value ended at b[i]: close containers until another value
		// is due.
		for {
			i = skipSpace(b, i)
			if depth == 1 {
				elems++
			}
			if depth == 0 {
				if i < len(b) {
					return elems, errChar(b, i, "after top-level value")
				}
				return elems, nil
			}
			if i >= len(b) {
				return elems, errEOF(b)
			}
			object := objects&(1<<(depth-1)) != 0
			c := b[i]
			if c == ',' {
				i = skipSpace(b, i+1)
				if object {
					if i, e = checkJSONKey(b, i); e != nil {
						return elems, e
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				i++
				depth--
				continue
			}
			if object {
				return elems, errChar(b, i, "after object key:value pair")
			}
			return elems, errChar(b, i, "after array element")
		}
	}
}

// checkJSONKey checks an object key and its colon at b[i:] and returns the
// index of the value that follows.
func checkJSONKey(b []byte, i int) (int, *syntaxError) {
	if i >= len(b) {
		return i, errEOF(b)
	}
	if b[i] != '"' {
		return i, errChar(b, i, "looking for beginning of object key string")
	}
	i, e := checkJSONString(b, i)
	if e != nil {
		return i, e
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, errEOF(b)
	}
	if b[i] != ':' {
		return i, errChar(b, i, "after object key")
	}
	return skipSpace(b, i+1), nil
}

// plain marks the bytes that stand for themselves in a JSON string: all
// but '"', '\\' and the control characters (invalid UTF-8 is let through,
// as encoding/json does).
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Constants of the eight-bytes-at-a-time string scan.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special flags the bytes of x (eight bytes of a string, little-endian)
// that are a '"', a '\\' or a control character (below 0x20) with their high
// bit: that of ((v - ones) &^ v) flags a zero byte of v, and that of
// ((x - 0x20·ones) &^ x) a byte of x below 0x20. A borrow can flag a byte
// above a flagged one falsely, never the lowest.
func special(x uint64) uint64 {
	q, bs := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs) & highs
}

// checkJSONString checks the string that starts at b[i] (a '"') and returns
// the index just past it.
func checkJSONString(b []byte, i int) (int, *syntaxError) {
	for i++; ; i++ {
		// Find the next special byte: eight bytes at a time, then one at
		// a time near the end.
		for i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i+8 > len(b) {
			for i < len(b) && plain[b[i]] {
				i++
			}
			if i >= len(b) {
				return i, errEOF(b)
			}
		}
		switch b[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i++
			if i >= len(b) {
				return i, errEOF(b)
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for range 4 {
					i++
					if i >= len(b) {
						return i, errEOF(b)
					}
					if h := b[i]; (h < '0' || h > '9') && (h|0x20 < 'a' || h|0x20 > 'f') {
						return i, errChar(b, i, `in \u hexadecimal character escape`)
					}
				}
			default:
				return i, errChar(b, i, "in string escape code")
			}
		default:
			return i, errChar(b, i, "in string literal")
		}
	}
}

// checkJSONLiteral checks that lit (true, false or null) starts at b[i] and
// returns the index just past it.
func checkJSONLiteral(b []byte, i int, lit string) (int, *syntaxError) {
	for k := 1; k < len(lit); k++ {
		if i+k >= len(b) {
			return i + k, errEOF(b)
		}
		if b[i+k] != lit[k] {
			return i + k, errChar(b, i+k, fmt.Sprintf("in literal %s (expecting %s)", lit, quoteByte(lit[k])))
		}
	}
	return i + len(lit), nil
}

// checkJSONNumber checks the number that starts at b[i] (a '-' or a digit):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns the index
// just past it.
func checkJSONNumber(b []byte, i int) (int, *syntaxError) {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return i, errEOF(b)
		}
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return i, errChar(b, i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) {
			return i, errEOF(b)
		}
		if b[i] < '0' || b[i] > '9' {
			return i, errChar(b, i, "in numeric literal")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return i, errEOF(b)
		}
		if b[i] < '0' || b[i] > '9' {
			return i, errChar(b, i, "in numeric literal")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	return i, nil
}

package gobsafe

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"strings"
	"testing"
)

type snap struct {
	Version int
	Counts  map[string]int64
	Rows    []string
}

// encode gob-encodes s.
func encode(t *testing.T, s snap) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecode decodes a value whole, refuses a map whose claimed count the
// data does not back (without allocating it: the test would hang or run
// out of memory) and names a destination it cannot use.
func TestDecode(t *testing.T) {
	want := snap{Version: 3, Counts: map[string]int64{"a": 1, "b": 2}, Rows: []string{"x", "y"}}
	data := encode(t, want)
	var got snap
	if err := Decode(data, &got, "Version"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}

	// A one-entry map's count rewritten as 2³² − 1 (gob's unsigned form:
	// 0xfc, then four bytes) in the value's message, the stream's last: its
	// length (one byte, under 0x80) grows by four.
	one := encode(t, snap{Version: 3, Counts: map[string]int64{"a": 1}})
	last := 0
	for off := 0; off < len(one); off += 1 + int(one[off]) {
		if one[off] >= 0x80 {
			t.Fatalf("a message of over 127 bytes in % x", one)
		}
		last = off
	}
	i := last + bytes.Index(one[last:], []byte{0x01, 0x01, 'a'}) // count 1, key "a" (length 1)
	if i < last {
		t.Fatalf("no map count in % x", one[last:])
	}
	bomb := append(append(append([]byte{}, one[:i]...), 0xfc, 0xff, 0xff, 0xff, 0xff), one[i+1:]...)
	bomb[last] += 4
	var b snap
	if err := Decode(bomb, &b, "Version"); err == nil {
		t.Fatalf("a map claiming 4 billion entries decoded: %+v", b)
	}

	for _, c := range []struct {
		v    any
		keep string
		want string
	}{
		{&got, "Missing", "no field Missing"},
		{got, "Version", "pointer to a struct"},
		{nil, "Version", "pointer to a struct"},
	} {
		if err := Decode(data, c.v, c.keep); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode into %T keeping %s: %v, want an error naming %q", c.v, c.keep, err, c.want)
		}
	}
}

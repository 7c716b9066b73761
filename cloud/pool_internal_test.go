package cloud

import (
	"slices"
	"testing"
)

// TestInsertNEqualsRepeatedInserts checks that adding n copies of an
// instance at once leaves the pool as n single inserts do.
func TestInsertNEqualsRepeatedInserts(t *testing.T) {
	base := []instance{{freeAt: 10, busyFrom: 5}, {freeAt: 20, busyFrom: 20}, {freeAt: 20, busyFrom: 25}, {freeAt: 30, busyFrom: 1}}
	tests := []struct {
		name string
		in   instance
		n    int
	}{
		{"front", instance{freeAt: 1, busyFrom: 1}, 3},
		{"between equal freeAt", instance{freeAt: 20, busyFrom: 22}, 2},
		{"equal to one held", instance{freeAt: 20, busyFrom: 20}, 4},
		{"end", instance{freeAt: 40, busyFrom: 40}, 1},
		{"none", instance{freeAt: 15, busyFrom: 15}, 0},
		{"negative", instance{freeAt: 15, busyFrom: 15}, -2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			one := &Pool{inst: slices.Clone(base)}
			for range tc.n {
				one.insert(tc.in)
			}
			many := &Pool{inst: slices.Clone(base)}
			many.insertN(tc.in, tc.n)
			if !slices.Equal(one.inst, many.inst) {
				t.Fatalf("insertN gave %v, %d inserts %v", many.inst, tc.n, one.inst)
			}
		})
	}
}

// TestPoolBinaryRoundTrip checks that a pool decoded from its encoding is
// the pool encoded, and that damaged encodings are refused with an error.
func TestPoolBinaryRoundTrip(t *testing.T) {
	pl := Placement{Provider: AWS, Metro: 2, Tier: 3}
	pools := []*Pool{
		NewPool(pl, 0),
		{placement: pl, now: 1_234_567, inst: []instance{{freeAt: -5, busyFrom: -9}, {freeAt: 10, busyFrom: 5}, {freeAt: 10, busyFrom: 7}}, pcPaid: []int64{99, 1 << 40}},
	}
	for _, p := range pools {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var q Pool
		if err := q.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if q.placement != p.placement || q.now != p.now || !slices.Equal(q.inst, p.inst) || !slices.Equal(q.pcPaid, p.pcPaid) {
			t.Fatalf("decoded %+v, encoded %+v", q, *p)
		}
	}
	good, _ := pools[1].MarshalBinary()
	unordered := &Pool{placement: pl, inst: []instance{{freeAt: 10}, {freeAt: 5}}}
	bad, _ := unordered.MarshalBinary()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{9}, good[1:]...)},
		{"invalid placement", append([]byte{1, 200}, good[2:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"huge length", []byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"instances out of order", bad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var q Pool
			if err := q.UnmarshalBinary(tc.b); err == nil {
				t.Fatalf("decoded %+v from a damaged encoding", q)
			}
		})
	}
}

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

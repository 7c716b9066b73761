package train

import (
	"math"
	"slices"
	"testing"
)

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "200,100, 400", want: []int{100, 200, 400}},
		{in: "100,100", want: []int{100}},
		{in: "12500", want: []int{12500}},
		{in: "100,0", wantErr: true},
		{in: "100,-5", wantErr: true},
		{in: "100,,200", wantErr: true},
		{in: "1e5", wantErr: true},
	} {
		got, err := parseSizes(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseSizes(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestGainPerDoubling(t *testing.T) {
	for _, tc := range []struct {
		a, b   float64
		na, nb int
		want   float64
	}{
		{a: 1, b: 0.9, na: 100, nb: 200, want: 0.1},
		{a: 1, b: 0.81, na: 100, nb: 400, want: 0.1}, // two doublings of 10 % each
		{a: 1, b: 1.1, na: 100, nb: 200, want: -0.1},
		{a: 2, b: 2, na: 5, nb: 7, want: 0},
	} {
		if got := gainPerDoubling(tc.a, tc.b, tc.na, tc.nb); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("gainPerDoubling(%v, %v, %d, %d) = %v, want %v", tc.a, tc.b, tc.na, tc.nb, got, tc.want)
		}
	}
}

func TestFlatFrom(t *testing.T) {
	pts := func(gains ...float64) []curvePoint {
		out := []curvePoint{{Gain: math.NaN()}}
		for _, g := range gains {
			out = append(out, curvePoint{Gain: g})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		pts  []curvePoint
		want int
	}{
		{name: "flattens after two steps", pts: pts(0.3, 0.1, 0.01, 0.015), want: 2},
		{name: "still improving at the end", pts: pts(0.3, 0.01, 0.05), want: -1},
		{name: "flat from the start", pts: pts(0.01, -0.02), want: 0},
		{name: "a dip then a gain is not flat", pts: pts(0.01, 0.3, 0.001), want: 2},
		{name: "one size", pts: pts(), want: -1},
	} {
		if got := flatFrom(tc.pts, 0.02); got != tc.want {
			t.Errorf("%s: flatFrom = %d, want %d", tc.name, got, tc.want)
		}
	}
}

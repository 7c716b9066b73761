package schemas

import "github.com/strata-rl/strata/schemas/stratapb"

// WireSize returns the size the encoders reserve for m, for
// TestWireEncodersEqualMarshal.
func WireSize(m any) int {
	switch m := m.(type) {
	case *stratapb.Reward:
		return rewardSize(m)
	case *stratapb.Arrival:
		return arrivalSize(m)
	case *stratapb.Observation:
		na := 0
		if m.Arrival != nil {
			na = arrivalSize(m.Arrival)
		}
		return observationSize(m, na)
	}
	return -1
}

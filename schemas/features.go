package schemas

import (
	"fmt"
	"slices"
	"strings"
)

// FeatureSet names the layout of a layer's state vector: which features,
// in which order. The twin writes it into every transition, learners refuse
// transitions of another set, and checkpoints record the set their network
// was trained on, so a policy builds the vectors its network expects.
// Sets are versioned and never change once published; a new layout is a
// new name.
type FeatureSet string

// The feature sets.
const (
	// StrategicSeed is the seed's strategic state (StrategicRow.Vector,
	// StrategicDim values).
	StrategicSeed FeatureSet = "strategic/seed-v1"
	// TacticalSeed is the seed's tactical state (TacticalRow.Vector,
	// TacticalDim values): 7 tactical metrics, the provider one-hot and
	// the workload trend.
	TacticalSeed FeatureSet = "tactical/seed-v1"
	// TacticalPlacement is TacticalSeed followed by the function's current
	// placement and its descriptors: the one-hot of the metro it ran in
	// (PlacementMetros order), the one-hot of its memory tier
	// (PlacementTiersMB order; all 0 when the telemetry does not say), the
	// duration mean and p95 in ms, the peak 15 s request rate and the
	// hour's carbon in g — TacticalPlacementDim values. Without the
	// placement a policy cannot tell which action keeps a function where
	// it is.
	TacticalPlacement FeatureSet = "tactical/placement-v1"
	// OperationalSeed is the seed's operational sequence
	// (OperationalRow.Vector, OperationalDim values).
	OperationalSeed FeatureSet = "operational/seed-v1"
)

// TacticalPlacementDim is TacticalPlacement's size.
const TacticalPlacementDim = TacticalDim + len(PlacementMetros) + len(PlacementTiersMB) + 4

// PlacementMetros are the metros of TacticalPlacement's one-hot, in the
// cloud catalog's order (cloud.Metro; a test checks they agree).
var PlacementMetros = [...]string{"us-east", "us-west", "eu-west", "ap-southeast"}

// PlacementTiersMB are the memory tiers of TacticalPlacement's one-hot, in
// the catalog's order (cloud.TierMB).
var PlacementTiersMB = [...]int32{128, 256, 512, 1024, 2048, 3008}

// featureSets lists every set with its layer and size.
var featureSets = []struct {
	set   FeatureSet
	layer Layer
	dim   int
}{
	{StrategicSeed, Strategic, StrategicDim},
	{TacticalSeed, Tactical, TacticalDim},
	{TacticalPlacement, Tactical, TacticalPlacementDim},
	{OperationalSeed, Operational, OperationalDim},
}

// DefaultFeatureSet returns the layer's default set: the seed's.
func DefaultFeatureSet(l Layer) FeatureSet {
	switch l {
	case Strategic:
		return StrategicSeed
	case Tactical:
		return TacticalSeed
	default:
		return OperationalSeed
	}
}

// FeatureSets returns the names of layer l's sets.
func FeatureSets(l Layer) []string {
	var out []string
	for _, f := range featureSets {
		if f.layer == l {
			out = append(out, string(f.set))
		}
	}
	return out
}

// ParseFeatureSet returns layer l's set named s: its full name or the part
// after "<layer>/" ("placement-v1"); "" is the layer's default.
func ParseFeatureSet(l Layer, s string) (FeatureSet, error) {
	if s == "" {
		return DefaultFeatureSet(l), nil
	}
	for _, f := range featureSets {
		if f.layer == l && (string(f.set) == s || strings.TrimPrefix(string(f.set), string(l)+"/") == s) {
			return f.set, nil
		}
	}
	return "", fmt.Errorf("unknown %s feature set %q: want one of %s", l, s, strings.Join(FeatureSets(l), ", "))
}

// Layer returns the layer whose state the set describes ("" for an unknown
// set).
func (f FeatureSet) Layer() Layer {
	for _, s := range featureSets {
		if s.set == f {
			return s.layer
		}
	}
	return ""
}

// Dim returns the set's vector size (0 for an unknown set).
func (f FeatureSet) Dim() int {
	for _, s := range featureSets {
		if s.set == f {
			return s.dim
		}
	}
	return 0
}

// Validate reports an unknown set or one of another layer than l.
func (f FeatureSet) Validate(l Layer) error {
	if f.Layer() != l {
		return fmt.Errorf("feature set %q is not one of the %s sets (%s)", f, l, strings.Join(FeatureSets(l), ", "))
	}
	return nil
}

// TacticalLog1p returns, for set f, which of its features a scaler should
// log1p-transform: the heavy-tailed ones (latency, cost, request rate,
// queue depth; for TacticalPlacement also the durations, the peak rate
// and the carbon); nil for a set that is not tactical.
func TacticalLog1p(f FeatureSet) []bool {
	if f.Layer() != Tactical {
		return nil
	}
	log1p := make([]bool, f.Dim())
	for _, i := range []int{0, 1, 2, 5} {
		log1p[i] = true
	}
	if f == TacticalPlacement {
		for i := TacticalPlacementDim - 4; i < TacticalPlacementDim; i++ {
			log1p[i] = true
		}
	}
	return log1p
}

// AppendFeatures appends r's state vector in set f to dst: raw values
// (unscaled), 0 for what is missing, every value finite when r's are.
func (r *TacticalRow) AppendFeatures(dst []float32, f FeatureSet) []float32 {
	dst = append(dst, r.Vector()...)
	if f != TacticalPlacement {
		return dst
	}
	n := len(dst)
	dst = append(dst, make([]float32, TacticalPlacementDim-TacticalDim)...)
	v := dst[n:]
	if m := slices.Index(PlacementMetros[:], r.Region); m >= 0 {
		v[m] = 1
	}
	if t := slices.Index(PlacementTiersMB[:], r.MemoryMB); t >= 0 {
		v[len(PlacementMetros)+t] = 1
	}
	d := v[len(PlacementMetros)+len(PlacementTiersMB):]
	d[0], d[1], d[2], d[3] = float32(r.DurationMeanMS), float32(r.DurationP95MS), float32(r.PeakRate), or0(r.CarbonG)
	return dst
}

// PlacementOf returns the metro and tier indices (PlacementMetros and
// PlacementTiersMB order) a TacticalPlacement state vector says the
// function ran in, and false when the state does not say (a function with
// no invocations in the hour, or a vector of another set).
func PlacementOf(v []float32) (metro, tier int, ok bool) {
	if len(v) != TacticalPlacementDim {
		return 0, 0, false
	}
	metro = slices.Index(v[TacticalDim:TacticalDim+len(PlacementMetros)], 1)
	tier = slices.Index(v[TacticalDim+len(PlacementMetros):TacticalDim+len(PlacementMetros)+len(PlacementTiersMB)], 1)
	return metro, tier, metro >= 0 && tier >= 0
}

package schemas

import (
	"fmt"
	"math"
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
	// StrategicPlacement is StrategicSeed followed by what tells apps'
	// best providers apart (docs/agents.md): the one-hots of the provider
	// (aws, azure, gcp) and the metro (PlacementMetros order) most of the
	// day's invocations ran on (all 0 when the telemetry does not say),
	// the memory tier in MB they ran at, the app's memory peak so far in
	// MB, the day's CPU and memory utilisation, and the sine and cosine of
	// the app's busiest UTC hour of day (where its users are; both 0
	// before any traffic) — StrategicPlacementDim values. The extra
	// values join the seed's 4 app-context values in the DQN's app
	// encoder.
	StrategicPlacement FeatureSet = "strategic/placement-v1"
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
	// TacticalPlacementV2 is TacticalPlacement followed by what tells
	// functions' best placements apart (docs/agents.md): the function's
	// memory peak so far in MB (how much memory it needs), the sine and
	// cosine of its app's busiest UTC hour of day (where its users are;
	// both 0 before any traffic) and of the hour of day the state is for
	// (the grids' daily carbon cycle) — TacticalPlacementV2Dim values.
	TacticalPlacementV2 FeatureSet = "tactical/placement-v2"
	// OperationalSeed is the seed's operational sequence
	// (OperationalRow.Vector, OperationalDim values).
	OperationalSeed FeatureSet = "operational/seed-v1"
)

// strategicMetrics is the number of strategic metrics that open a
// strategic vector (StrategicRow.Vector); the app-id embedding follows.
const strategicMetrics = 10

// StrategicPlacementDim is StrategicPlacement's size.
const StrategicPlacementDim = StrategicDim + 3 + len(PlacementMetros) + 6

// TacticalPlacementDim is TacticalPlacement's size.
const TacticalPlacementDim = TacticalDim + len(PlacementMetros) + len(PlacementTiersMB) + 4

// TacticalPlacementV2Dim is TacticalPlacementV2's size.
const TacticalPlacementV2Dim = TacticalPlacementDim + 5

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
	{StrategicPlacement, Strategic, StrategicPlacementDim},
	{TacticalSeed, Tactical, TacticalDim},
	{TacticalPlacement, Tactical, TacticalPlacementDim},
	{TacticalPlacementV2, Tactical, TacticalPlacementV2Dim},
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

// FeatureGroup is a named range [From, To) of a feature set's vector: the
// unit an ablation leaves out.
type FeatureGroup struct {
	Name     string
	From, To int
}

// FeatureGroups returns the named groups of a set's vector, in order
// (nil for an operational set). Tactical: "seed" (the seed's 11 values),
// then for the placement sets "placement" (metro and tier one-hots) and
// "descriptors" (durations, peak rate, carbon), then for
// TacticalPlacementV2 "memory-peak", "users-hour" and "hour". Strategic:
// "metrics" (the 10 strategic metrics), "app-id" (the app id's hash
// embedding), "context" (function count, active hours, cold-start rate),
// then for StrategicPlacement "placement" (its 13 values).
func FeatureGroups(f FeatureSet) []FeatureGroup {
	if f.Layer() == Strategic {
		gs := []FeatureGroup{{"metrics", 0, strategicMetrics}, {"app-id", strategicMetrics, strategicMetrics + 1},
			{"context", strategicMetrics + 1, StrategicDim}}
		if f == StrategicPlacement {
			gs = append(gs, FeatureGroup{"placement", StrategicDim, StrategicPlacementDim})
		}
		return gs
	}
	if f.Layer() != Tactical {
		return nil
	}
	gs := []FeatureGroup{{"seed", 0, TacticalDim}}
	if !f.HasPlacement() {
		return gs
	}
	one := TacticalDim + len(PlacementMetros) + len(PlacementTiersMB)
	gs = append(gs, FeatureGroup{"placement", TacticalDim, one}, FeatureGroup{"descriptors", one, TacticalPlacementDim})
	if f == TacticalPlacementV2 {
		gs = append(gs, FeatureGroup{"memory-peak", TacticalPlacementDim, TacticalPlacementDim + 1},
			FeatureGroup{"users-hour", TacticalPlacementDim + 1, TacticalPlacementDim + 3},
			FeatureGroup{"hour", TacticalPlacementDim + 3, TacticalPlacementV2Dim})
	}
	return gs
}

// AblatedIndices returns the vector indices of set f's groups named in
// groups, in increasing order; an unknown name is an error that lists the
// set's groups.
func AblatedIndices(f FeatureSet, groups []string) ([]int, error) {
	all := FeatureGroups(f)
	var idx []int
	for _, name := range groups {
		i := slices.IndexFunc(all, func(g FeatureGroup) bool { return g.Name == name })
		if i < 0 {
			names := make([]string, len(all))
			for k, g := range all {
				names[k] = g.Name
			}
			return nil, fmt.Errorf("feature set %s has no group %q: want one of %s", f, name, strings.Join(names, ", "))
		}
		for j := all[i].From; j < all[i].To; j++ {
			idx = append(idx, j)
		}
	}
	slices.Sort(idx)
	return slices.Compact(idx), nil
}

// HasPlacement reports whether the set's vectors say where the function
// ran (TacticalPlacement and TacticalPlacementV2; PlacementOf reads it).
func (f FeatureSet) HasPlacement() bool {
	return f == TacticalPlacement || f == TacticalPlacementV2
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
// queue depth; for the placement sets also the durations, the peak rate
// and the carbon, and for TacticalPlacementV2 the memory peak); nil for a
// set that is not tactical.
func TacticalLog1p(f FeatureSet) []bool {
	if f.Layer() != Tactical {
		return nil
	}
	log1p := make([]bool, f.Dim())
	for _, i := range []int{0, 1, 2, 5} {
		log1p[i] = true
	}
	if f.HasPlacement() {
		for i := TacticalPlacementDim - 4; i < TacticalPlacementDim; i++ {
			log1p[i] = true
		}
	}
	if f == TacticalPlacementV2 {
		log1p[TacticalPlacementDim] = true
	}
	return log1p
}

// StrategicLog1p returns, for strategic set f, which of its features a
// scaler should log1p-transform: the seed's heavy-tailed, non-negative
// ones (cost, carbon, latency mean and p95, invocations, request rate,
// peak hourly rate, duration mean and p95, the function count) and for
// StrategicPlacement the memory tier and the memory peak; nil for a set
// that is not strategic.
func StrategicLog1p(f FeatureSet) []bool {
	if f.Layer() != Strategic {
		return nil
	}
	log1p := make([]bool, f.Dim())
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 8, 9, 11} {
		log1p[i] = true
	}
	if f == StrategicPlacement {
		m := StrategicDim + 3 + len(PlacementMetros)
		log1p[m], log1p[m+1] = true, true
	}
	return log1p
}

// AppendFeatures appends r's state vector in strategic set f to dst: raw
// values (unscaled), 0 for what is missing, every value finite when r's
// are.
func (r *StrategicRow) AppendFeatures(dst []float32, f FeatureSet) []float32 {
	dst = append(dst, r.Vector()...)
	if f != StrategicPlacement {
		return dst
	}
	n := len(dst)
	dst = append(dst, make([]float32, StrategicPlacementDim-StrategicDim)...)
	v := dst[n:]
	providerOneHot(v[:3], r.Provider)
	if m := slices.Index(PlacementMetros[:], r.Region); m >= 0 {
		v[3+m] = 1
	}
	d := v[3+len(PlacementMetros):]
	d[0], d[1], d[2], d[3] = float32(r.MemoryMB), float32(r.MemoryPeakMB), or0(r.CPUUtil), or0(r.MemoryUtil)
	if r.AppPeakHour >= 0 && r.AppPeakHour < 24 {
		users := hourCircle(r.AppPeakHour)
		d[4], d[5] = users[0], users[1]
	}
	return dst
}

// AppendFeatures appends r's state vector in set f to dst: raw values
// (unscaled), 0 for what is missing, every value finite when r's are.
func (r *TacticalRow) AppendFeatures(dst []float32, f FeatureSet) []float32 {
	dst = append(dst, r.Vector()...)
	if !f.HasPlacement() {
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
	if f != TacticalPlacementV2 {
		return dst
	}
	var users [2]float32
	if r.AppPeakHour >= 0 && r.AppPeakHour < 24 {
		users = hourCircle(r.AppPeakHour)
	}
	now := hourCircle(r.Hour)
	return append(dst, float32(r.MemoryPeakMB), users[0], users[1], now[0], now[1])
}

// hourCircle returns the sine and cosine of hour of day h: adjacent hours
// are near each other, 23 beside 0.
func hourCircle(h int32) [2]float32 {
	a := 2 * math.Pi * float64(h) / 24
	return [2]float32{float32(math.Sin(a)), float32(math.Cos(a))}
}

// ProviderOf returns the provider index (0 aws, 1 azure, 2 gcp: the
// strategic action order) of a StrategicPlacement vector, or false when v
// is not one or names no provider.
func ProviderOf(v []float32) (int, bool) {
	if len(v) != StrategicPlacementDim {
		return 0, false
	}
	p := slices.Index(v[StrategicDim:StrategicDim+3], 1)
	return p, p >= 0
}

// PlacementOf returns the metro and tier indices (PlacementMetros and
// PlacementTiersMB order) a TacticalPlacement or TacticalPlacementV2 state
// vector says the function ran in, and false when the state does not say
// (a function with no invocations in the hour, or a vector of another set).
func PlacementOf(v []float32) (metro, tier int, ok bool) {
	if len(v) != TacticalPlacementDim && len(v) != TacticalPlacementV2Dim {
		return 0, 0, false
	}
	metro = slices.Index(v[TacticalDim:TacticalDim+len(PlacementMetros)], 1)
	tier = slices.Index(v[TacticalDim+len(PlacementMetros):TacticalDim+len(PlacementMetros)+len(PlacementTiersMB)], 1)
	return metro, tier, metro >= 0 && tier >= 0
}

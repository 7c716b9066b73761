package ppo

import (
	"fmt"
	"math"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// State-dependent action masks of Config.Mask (docs/agents.md, "The
// memory mask").
const (
	// MaskNone masks nothing beyond the providers' Availability (the
	// seed's PPO, and the meaning of an empty Config.Mask).
	MaskNone = "none"
	// MaskMemory also rules out every tier smaller than the memory the
	// function has been seen using (MemoryMask).
	MaskMemory = "memory"
)

// ParseMask returns the mask named s ("" is MaskNone) or an error naming
// the valid values.
func ParseMask(s string) (string, error) {
	switch s {
	case "", MaskNone:
		return MaskNone, nil
	case MaskMemory:
		return MaskMemory, nil
	}
	return "", fmt.Errorf("%w: unknown action mask %q (want %s or %s)", ErrConfig, s, MaskNone, MaskMemory)
}

// CheckMask reports a mask that is unknown or that feature set f cannot
// support: MaskMemory reads the memory peak from the state, which only
// schemas.TacticalPlacementV2 holds.
func CheckMask(mask string, f schemas.FeatureSet) error {
	m, err := ParseMask(mask)
	if err != nil {
		return err
	}
	if m == MaskMemory && f != schemas.TacticalPlacementV2 {
		return fmt.Errorf("%w: the %s mask reads the memory peak, which feature set %s lacks (use %s)", ErrConfig, MaskMemory, f, schemas.TacticalPlacementV2)
	}
	return nil
}

// MemoryMask clears, in mask (Actions flags, metro·6 + tier), every action
// whose tier is smaller than peakMB, the largest memory the function has
// been seen using (TacticalRow.MemoryPeakMB): the twin fails every
// invocation of a function whose working set exceeds its tier (an
// out-of-memory failure, an SLA violation), and a function that used
// peakMB has a working set of at least that. The telemetry caps the
// reported memory at the tier, so the peak never exceeds the largest tier
// and never rules out a tier that fits. A peak of 0 (none reported yet)
// or one that would leave no action allowed changes nothing. It reports
// whether it cleared any allowed action.
func MemoryMask(mask []bool, peakMB float64) bool {
	if !(peakMB > 0) || len(mask) != Actions {
		return false
	}
	small := func(a int) bool { return float64(cloud.Tier(a%cloud.NumTiers).MB()) < peakMB }
	left, cleared := 0, 0
	for a, ok := range mask {
		if ok {
			if small(a) {
				cleared++
			} else {
				left++
			}
		}
	}
	if left == 0 || cleared == 0 {
		return false
	}
	for a := range mask {
		if small(a) {
			mask[a] = false
		}
	}
	return true
}

// ActedMask returns the action mask a policy of c acted under in a raw
// state of c's feature set (Policy.Decide): avail's flags for the state's
// provider (none with a nil avail or a state of another width), less,
// with MaskMemory, the tiers below the state's memory peak; nil when
// nothing is masked. The learner gives it to each transition, so that
// PPO's ratio uses the distribution the policy sampled from.
func (c Config) ActedMask(avail *Availability, state []float32) []bool {
	f := c.Features()
	var mask []bool
	if avail != nil && len(state) == f.Dim() {
		mask = avail.Mask(ProviderOfState(state, cloud.AWS))
	}
	if c.Mask == MaskMemory {
		if peak, ok := PeakOfState(state, f); ok {
			if mask == nil {
				mask = AllAvailable().Mask(ProviderOfState(state, cloud.AWS))
			}
			MemoryMask(mask, peak)
		}
	}
	return mask
}

// PeakOfState returns the memory peak of a raw tactical state vector of
// feature set f (TacticalRow.AppendFeatures), or false when f holds none.
func PeakOfState(state []float32, f schemas.FeatureSet) (float64, bool) {
	if f != schemas.TacticalPlacementV2 || len(state) != schemas.TacticalPlacementV2Dim {
		return 0, false
	}
	return float64(state[schemas.TacticalPlacementDim]), true
}

// Availability marks, per provider, which of the 24 tactical actions
// (metro·6 + tier) the provider offers. A forbidden action gets
// probability 0 in Decide (the network's action mask) and a transition
// that took one is rejected by the learner.
//
// With the embedded catalog every action is available on every provider:
// Azure's Consumption plan stops at 1536 MB, but the catalog prices the
// 2048 and 3008 MB tiers on Flex Consumption and the twin runs them there
// (docs/cloud-model.md). CatalogAvailability therefore masks nothing
// today; the mask plumbing stays for a catalog that lacks a combination.
type Availability struct {
	allowed [cloud.NumProviders][Actions]bool
}

// AllAvailable returns an Availability that allows every action on every
// provider.
func AllAvailable() *Availability {
	a := &Availability{}
	for p := range a.allowed {
		for i := range a.allowed[p] {
			a.allowed[p][i] = true
		}
	}
	return a
}

// CatalogAvailability derives the available actions from a catalog: an
// action is available on a provider when the provider's region in the
// metro has a finite, positive request and GB-second price (for GCP,
// either its 1st-gen or 2nd-gen prices) and, for Azure tiers the
// Consumption plan lacks, a Flex Consumption instance size.
func CatalogAvailability(cat *cloud.Catalog) *Availability {
	a := &Availability{}
	ok := func(s cloud.Sourced) bool { return s.Value > 0 && !math.IsInf(s.Value, 0) }
	for p := range cloud.Provider(cloud.NumProviders) {
		for m := range cloud.Metro(cloud.NumMetros) {
			r := cat.RegionOf(p, m)
			priced := ok(r.RequestUSD) && ok(r.GBSecondUSD)
			if p == cloud.GCP {
				priced = priced || (ok(r.RequestUSD) && ok(r.Gen2GiBSecondUSD) && ok(r.Gen2VCPUSecondUSD))
			}
			for t := range cloud.Tier(cloud.NumTiers) {
				tierOK := true
				if p == cloud.Azure && !cat.Tiers[t].AzureConsumption {
					tierOK = ok(cat.Tiers[t].AzureFlexMB) && ok(r.FlexGBSecondUSD)
				}
				a.allowed[p][int(m)*cloud.NumTiers+int(t)] = priced && tierOK
			}
		}
	}
	return a
}

// Set allows or forbids action on provider p.
func (a *Availability) Set(p cloud.Provider, action int, allowed bool) {
	a.allowed[p][action] = allowed
}

// Allowed reports whether provider p offers action.
func (a *Availability) Allowed(p cloud.Provider, action int) bool {
	return int(p) < cloud.NumProviders && action >= 0 && action < Actions && a.allowed[p][action]
}

// Count returns how many actions provider p offers.
func (a *Availability) Count(p cloud.Provider) int {
	return countAllowed(a.allowed[p][:])
}

// All reports whether every provider offers every action (no mask is
// needed).
func (a *Availability) All() bool {
	for p := range cloud.Provider(cloud.NumProviders) {
		if a.Count(p) != Actions {
			return false
		}
	}
	return true
}

// Mask returns provider p's 24 flags, true where allowed, as a new slice
// (for Transition.Mask).
func (a *Availability) Mask(p cloud.Provider) []bool {
	return append([]bool(nil), a.allowed[p][:]...)
}

// ProviderOfState returns the provider of a raw tactical state vector (its
// one-hot, features 7–9, schemas.TacticalRow.Vector), or def when the
// one-hot is all zero: the provider Decide masks the row's actions for.
func ProviderOfState(state []float32, def cloud.Provider) cloud.Provider {
	if len(state) >= 10 {
		for p := range cloud.Provider(cloud.NumProviders) {
			if state[7+int(p)] == 1 {
				return p
			}
		}
	}
	return def
}

package cloud

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// SrcOverride is the Src of a catalog number replaced by WithPrices.
const SrcOverride = "OVERRIDE"

// Setting is one named change to a Config, as a configuration file states
// it: Name is a parameter of Params ("slo_percentile", "reward.w_cost"),
// Key the provider, metro or runtime of a parameter indexed by one ("aws",
// "us-east", "python"; "" for the others) and Value the new value as text:
// a number, true or false, or a name.
type Setting struct {
	Name, Key, Value string
}

func (s Setting) String() string {
	if s.Key == "" {
		return s.Name
	}
	return s.Name + "." + s.Key
}

// Param is one parameter of Config that a Setting may change.
type Param struct {
	// Name is the parameter's name in settings and configuration files.
	Name string
	// Field is the Config field it sets.
	Field string
	// Keys are the names it is indexed by (providers, metros or runtimes),
	// nil for a parameter of one value.
	Keys []string
	set  func(c *Config, i int, v string) error
}

// OverrideError reports the override at fault in a list given to
// Config.Override or Catalog.WithPrices.
type OverrideError struct {
	// Index is the override's position in the list; −1 when the list is
	// invalid only as a whole (each override alone is valid).
	Index int
	// Name names the override (Setting.String, Price.String).
	Name string
	Err  error
}

func (e *OverrideError) Error() string {
	if e.Index < 0 {
		return "overrides together: " + e.Err.Error()
	}
	return e.Name + ": " + e.Err.Error()
}

func (e *OverrideError) Unwrap() error { return e.Err }

func parseFloat(v string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a number", ErrInvalidConfig, v)
	}
	return f, nil
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a whole number", ErrInvalidConfig, v)
	}
	return n, nil
}

func floatParam(name, field string, p func(*Config) *float64) Param {
	return Param{Name: name, Field: field, set: func(c *Config, _ int, v string) error {
		f, err := parseFloat(v)
		if err == nil {
			*p(c) = f
		}
		return err
	}}
}

func intParam(name, field string, p func(*Config) *int) Param {
	return Param{Name: name, Field: field, set: func(c *Config, _ int, v string) error {
		n, err := parseInt(v)
		if err == nil {
			*p(c) = n
		}
		return err
	}}
}

func boolParam(name, field string, p func(*Config) *bool) Param {
	return Param{Name: name, Field: field, set: func(c *Config, _ int, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%w: %q is not true or false", ErrInvalidConfig, v)
		}
		*p(c) = b
		return nil
	}}
}

// floatsParam is a parameter indexed by keys, p giving the array as a
// slice.
func floatsParam(name, field string, keys []string, p func(*Config) []float64) Param {
	return Param{Name: name, Field: field, Keys: keys, set: func(c *Config, i int, v string) error {
		f, err := parseFloat(v)
		if err == nil {
			p(c)[i] = f
		}
		return err
	}}
}

var carbonModes = []CarbonMode{CarbonHourlyLCA, CarbonHourlyDirect, CarbonStatic}

// params are the parameters, in Config's order. Epoch and TickUS are set
// by the pipeline (--trace-epoch, the operational tick), and CarbonColumns
// follow carbon_mode.
var params = []Param{
	{Name: "seed", Field: "Seed", set: func(c *Config, _ int, v string) error {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %q is not a whole number", ErrInvalidConfig, v)
		}
		c.Seed = n
		return nil
	}},
	{Name: "reference_provider", Field: "ReferenceProvider", set: func(c *Config, _ int, v string) error {
		p, err := ParseProvider(strings.TrimSpace(v))
		if err == nil {
			c.ReferenceProvider = p
		}
		return err
	}},
	{Name: "reference_memory_mb", Field: "ReferenceTier", set: func(c *Config, _ int, v string) error {
		mb, err := parseInt(v)
		if err != nil {
			return err
		}
		t, err := TierOf(mb)
		if err == nil {
			c.ReferenceTier = t
		}
		return err
	}},
	floatParam("max_usable_vcpu", "MaxUsableVCPU", func(c *Config) *float64 { return &c.MaxUsableVCPU }),
	floatsParam("keep_alive_min", "KeepAliveMin", providerNames[:], func(c *Config) []float64 { return c.KeepAliveMin[:] }),
	intParam("max_instances", "MaxInstances", func(c *Config) *int { return &c.MaxInstances }),
	boolParam("bill_cold_start", "BillColdStart", func(c *Config) *bool { return &c.BillColdStart }),
	boolParam("warm_start_overhead", "WarmStartOverhead", func(c *Config) *bool { return &c.WarmStartOverhead }),
	boolParam("aws_pc_duration_price", "AWSPCDurationPrice", func(c *Config) *bool { return &c.AWSPCDurationPrice }),
	boolParam("gcp_gen2", "GCPGen2", func(c *Config) *bool { return &c.GCPGen2 }),
	{Name: "carbon_mode", Field: "CarbonMode", set: func(c *Config, _ int, v string) error {
		for _, m := range carbonModes {
			if m.String() == strings.TrimSpace(v) {
				c.CarbonMode, c.CarbonColumns = m, DefaultCarbonColumns(m)
				return nil
			}
		}
		return fmt.Errorf("%w: carbon mode %q (want hourly-lca, hourly-direct or static)", ErrUnknownName, v)
	}},
	boolParam("carbon_utilisation_from_profile", "CarbonUtilisationFromProfile", func(c *Config) *bool { return &c.CarbonUtilisationFromProfile }),
	floatParam("carbon_utilisation", "CarbonUtilisation", func(c *Config) *float64 { return &c.CarbonUtilisation }),
	boolParam("carbon_prewarm", "CarbonPrewarm", func(c *Config) *bool { return &c.CarbonPrewarm }),
	floatParam("slo_floor_ms", "SLOFloorMS", func(c *Config) *float64 { return &c.SLOFloorMS }),
	floatParam("slo_multiplier", "SLOMultiplier", func(c *Config) *float64 { return &c.SLOMultiplier }),
	floatParam("slo_percentile", "SLOPercentile", func(c *Config) *float64 { return &c.SLOPercentile }),
	floatParam("slo_network_allowance_ms", "SLONetworkAllowanceMS", func(c *Config) *float64 { return &c.SLONetworkAllowanceMS }),
	floatParam("user_peak_local_hour", "UserPeakLocalHour", func(c *Config) *float64 { return &c.UserPeakLocalHour }),
	floatsParam("metro_utc_offset_h", "MetroUTCOffsetH", metroNames[:], func(c *Config) []float64 { return c.MetroUTCOffsetH[:] }),
	floatParam("working_set_median_mb", "WorkingSetMedianMB", func(c *Config) *float64 { return &c.WorkingSetMedianMB }),
	floatParam("working_set_sigma", "WorkingSetSigma", func(c *Config) *float64 { return &c.WorkingSetSigma }),
	floatParam("working_set_min_mb", "WorkingSetMinMB", func(c *Config) *float64 { return &c.WorkingSetMinMB }),
	floatParam("working_set_max_mb", "WorkingSetMaxMB", func(c *Config) *float64 { return &c.WorkingSetMaxMB }),
	intParam("cpu_bound_alpha", "CPUBoundAlpha", func(c *Config) *int { return &c.CPUBoundAlpha }),
	intParam("cpu_bound_beta", "CPUBoundBeta", func(c *Config) *int { return &c.CPUBoundBeta }),
	floatsParam("runtime_mix", "RuntimeMix", runtimeNames[:], func(c *Config) []float64 { return c.RuntimeMix[:] }),
	floatParam("reward.w_cost", "Reward.WCost", func(c *Config) *float64 { return &c.Reward.WCost }),
	floatParam("reward.w_perf", "Reward.WPerf", func(c *Config) *float64 { return &c.Reward.WPerf }),
	floatParam("reward.w_carbon", "Reward.WCarbon", func(c *Config) *float64 { return &c.Reward.WCarbon }),
	floatParam("reward.sla_penalty", "Reward.SLAPenalty", func(c *Config) *float64 { return &c.Reward.SLAPenalty }),
	floatParam("reward.max_reward", "Reward.MaxReward", func(c *Config) *float64 { return &c.Reward.MaxReward }),
	floatParam("reward.max_cost_usd", "Reward.MaxCostUSD", func(c *Config) *float64 { return &c.Reward.MaxCostUSD }),
	floatParam("reward.max_latency_ms", "Reward.MaxLatencyMS", func(c *Config) *float64 { return &c.Reward.MaxLatencyMS }),
	floatParam("reward.max_carbon_g", "Reward.MaxCarbonG", func(c *Config) *float64 { return &c.Reward.MaxCarbonG }),
	floatParam("reward.epsilon", "Reward.Epsilon", func(c *Config) *float64 { return &c.Reward.Epsilon }),
}

// Params lists the parameters of Config a Setting may change, in Config's
// order; the reward's are named "reward.<name>". Epoch and TickUS are not
// among them (the pipeline sets them), nor CarbonColumns (carbon_mode sets
// the mode's default columns).
func Params() []Param { return slices.Clone(params) }

// Set applies one setting to c, without validating c as a whole (Override
// does). An error wraps ErrUnknownName for an unknown parameter or key and
// ErrInvalidConfig for a value that does not parse.
func (c *Config) Set(s Setting) error {
	i := slices.IndexFunc(params, func(p Param) bool { return p.Name == s.Name })
	if i < 0 {
		return fmt.Errorf("%w: no parameter %q", ErrUnknownName, s.Name)
	}
	p, k := params[i], 0
	switch {
	case p.Keys == nil && s.Key != "":
		return fmt.Errorf("%w: %s takes one value, not one per %q", ErrInvalidConfig, s.Name, s.Key)
	case p.Keys != nil && s.Key == "":
		return fmt.Errorf("%w: %s takes one value per %s", ErrInvalidConfig, s.Name, strings.Join(p.Keys, ", "))
	case p.Keys != nil:
		if k = slices.Index(p.Keys, s.Key); k < 0 {
			return fmt.Errorf("%w: %s has no %q (want one of %s)", ErrUnknownName, s.Name, s.Key, strings.Join(p.Keys, ", "))
		}
	}
	return p.set(c, k, s.Value)
}

// Override applies sets to c in order and validates the result; on error
// c is left unchanged. The error is an *OverrideError naming the first
// setting that does not parse, or else the first one that alone makes c
// invalid (Index −1 when only their combination is).
func (c *Config) Override(sets []Setting) error {
	n := *c
	for i, s := range sets {
		if err := n.Set(s); err != nil {
			return &OverrideError{Index: i, Name: s.String(), Err: err}
		}
	}
	err := n.Validate()
	if err == nil {
		*c = n
		return nil
	}
	if c.Validate() == nil {
		for i, s := range sets {
			alone := *c
			_ = alone.Set(s) // it parsed above
			if aerr := alone.Validate(); aerr != nil {
				return &OverrideError{Index: i, Name: s.String(), Err: aerr}
			}
		}
	}
	return &OverrideError{Index: -1, Err: err}
}

// Price is one price override of a Catalog: the price Name (one of
// PriceNames) of Provider's region in Metro, or in every metro with
// AllMetros, becomes USD. TierMB names the memory tier of the per-tier
// keep-warm prices and is 0 for the others.
type Price struct {
	Provider  Provider
	Metro     Metro
	AllMetros bool
	Name      string
	TierMB    int
	USD       float64
}

func (p Price) String() string {
	m := "all"
	if !p.AllMetros {
		m = p.Metro.String()
	}
	s := p.Provider.String() + "/" + m + "/" + p.Name
	if p.TierMB != 0 {
		s += "/" + strconv.Itoa(p.TierMB)
	}
	return s
}

// priceField is a price of Region that WithPrices may replace: the prices
// the model bills with.
type priceField struct {
	name      string
	providers []Provider // nil: every provider
	perTier   bool
	at        func(r *Region, t Tier) *Sourced
}

var priceFields = []priceField{
	{name: "request_usd", at: func(r *Region, _ Tier) *Sourced { return &r.RequestUSD }},
	{name: "gb_second_usd", at: func(r *Region, _ Tier) *Sourced { return &r.GBSecondUSD }},
	{name: "keep_warm_usd_per_hour", perTier: true, at: func(r *Region, t Tier) *Sourced { return &r.KeepWarmUSDPerHour[t] }},
	{name: "pc_duration_gb_second_usd", providers: []Provider{AWS}, at: func(r *Region, _ Tier) *Sourced { return &r.PCDurationGBSecondUSD }},
	{name: "flex_gb_second_usd", providers: []Provider{Azure}, at: func(r *Region, _ Tier) *Sourced { return &r.FlexGBSecondUSD }},
	{name: "flex_request_usd", providers: []Provider{Azure}, at: func(r *Region, _ Tier) *Sourced { return &r.FlexRequestUSD }},
	{name: "ghz_second_usd", providers: []Provider{GCP}, at: func(r *Region, _ Tier) *Sourced { return &r.GHzSecondUSD }},
	{name: "gen2_vcpu_second_usd", providers: []Provider{GCP}, at: func(r *Region, _ Tier) *Sourced { return &r.Gen2VCPUSecondUSD }},
	{name: "gen2_gib_second_usd", providers: []Provider{GCP}, at: func(r *Region, _ Tier) *Sourced { return &r.Gen2GiBSecondUSD }},
	{name: "gen2_keep_warm_usd_per_hour", providers: []Provider{GCP}, perTier: true, at: func(r *Region, t Tier) *Sourced { return &r.Gen2KeepWarmUSDPerHour[t] }},
}

// PriceNames returns the names of provider p's prices that WithPrices
// replaces, and for each whether it is per memory tier.
func PriceNames(p Provider) (names []string, perTier []bool) {
	for _, f := range priceFields {
		if f.providers == nil || slices.Contains(f.providers, p) {
			names, perTier = append(names, f.name), append(perTier, f.perTier)
		}
	}
	return names, perTier
}

// WithPrices returns a copy of c with the prices ps in place of the
// catalog's, applied in order, each with Src SrcOverride and the catalog's
// value in its Note; c is not changed. A price must be finite and not
// negative, name a price of its provider and, per tier, a memory tier. The
// error is an *OverrideError naming the first price at fault.
func (c *Catalog) WithPrices(ps []Price) (*Catalog, error) {
	n := *c // the arrays are copied; Sources and Series are read-only
	for i, p := range ps {
		if err := n.setPrice(p); err != nil {
			return nil, &OverrideError{Index: i, Name: p.String(), Err: err}
		}
	}
	return &n, nil
}

func (c *Catalog) setPrice(p Price) error {
	if int(p.Provider) >= NumProviders || int(p.Metro) >= NumMetros {
		return fmt.Errorf("%w: provider %d or metro %d", ErrUnknownName, p.Provider, p.Metro)
	}
	i := slices.IndexFunc(priceFields, func(f priceField) bool { return f.name == p.Name })
	if i < 0 || (priceFields[i].providers != nil && !slices.Contains(priceFields[i].providers, p.Provider)) {
		names, _ := PriceNames(p.Provider)
		return fmt.Errorf("%w: %s has no price %q (want one of %s)", ErrUnknownName, p.Provider, p.Name, strings.Join(names, ", "))
	}
	f := priceFields[i]
	var t Tier
	switch {
	case f.perTier:
		var err error
		if t, err = TierOf(p.TierMB); err != nil {
			return fmt.Errorf("%s per memory tier: %w", p.Name, err)
		}
	case p.TierMB != 0:
		return fmt.Errorf("%w: %s is one price, not one per memory tier", ErrInvalidConfig, p.Name)
	}
	if math.IsNaN(p.USD) || math.IsInf(p.USD, 0) || p.USD < 0 {
		return fmt.Errorf("%w: price %v USD is negative or not finite", ErrInvalidConfig, p.USD)
	}
	for m := range Metro(NumMetros) {
		if !p.AllMetros && m != p.Metro {
			continue
		}
		s := f.at(&c.Regions[p.Provider][m], t)
		note := fmt.Sprintf("overrides the catalog's %v (%s)", s.Value, s.Src)
		if s.Src == SrcOverride {
			note = s.Note // overridden twice: keep the catalog's value
		}
		*s = Sourced{Value: p.USD, Src: SrcOverride, Note: note}
	}
	return nil
}

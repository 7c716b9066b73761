package cloud

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
)

// Provider is one of the three serverless providers the twin models.
type Provider uint8

// The providers, in the fixed order used by every array indexed by Provider.
const (
	// AWS is AWS Lambda.
	AWS Provider = iota
	// Azure is Azure Functions (Consumption plan; Flex Consumption for the
	// tiers Consumption lacks).
	Azure
	// GCP is Google Cloud Functions (1st gen by default).
	GCP
	// NumProviders is the number of providers.
	NumProviders = 3
)

var providerNames = [NumProviders]string{"aws", "azure", "gcp"}

// String returns the provider's lower-case name ("aws", "azure", "gcp"), the
// spelling used in schemas and tables.
func (p Provider) String() string {
	if int(p) < NumProviders {
		return providerNames[p]
	}
	return fmt.Sprintf("provider(%d)", uint8(p))
}

// ParseProvider returns the Provider named s ("aws", "azure" or "gcp").
func ParseProvider(s string) (Provider, error) {
	for i, n := range providerNames {
		if n == s {
			return Provider(i), nil
		}
	}
	return 0, fmt.Errorf("parsing provider %q: %w", s, ErrUnknownName)
}

// Metro is one of the four metropolitan areas where every provider has a
// region.
type Metro uint8

// The metros, in the fixed order used by every array indexed by Metro.
const (
	// USEast is the US east coast (N. Virginia / South Carolina).
	USEast Metro = iota
	// USWest is the US north-west (Oregon / Washington).
	USWest
	// EUWest is western Europe (Ireland / Belgium).
	EUWest
	// APSoutheast is Singapore.
	APSoutheast
	// NumMetros is the number of metros.
	NumMetros = 4
)

var metroNames = [NumMetros]string{"us-east", "us-west", "eu-west", "ap-southeast"}

// String returns the metro's name as the catalog spells it ("us-east", …).
func (m Metro) String() string {
	if int(m) < NumMetros {
		return metroNames[m]
	}
	return fmt.Sprintf("metro(%d)", uint8(m))
}

// ParseMetro returns the Metro named s ("us-east", "us-west", "eu-west" or
// "ap-southeast").
func ParseMetro(s string) (Metro, error) {
	for i, n := range metroNames {
		if n == s {
			return Metro(i), nil
		}
	}
	return 0, fmt.Errorf("parsing metro %q: %w", s, ErrUnknownName)
}

// Tier is the index of a memory tier in [TierMB].
type Tier uint8

// NumTiers is the number of memory tiers.
const NumTiers = 6

// TierMB lists the memory tiers in MB, indexed by Tier.
var TierMB = [NumTiers]int{128, 256, 512, 1024, 2048, 3008}

// MB returns the tier's memory in MB.
func (t Tier) MB() int {
	if int(t) < NumTiers {
		return TierMB[t]
	}
	return 0
}

// TierOf returns the Tier of mb megabytes, or an error when mb is not one of
// [TierMB].
func TierOf(mb int) (Tier, error) {
	for i, v := range TierMB {
		if v == mb {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("finding memory tier %d MB: %w", mb, ErrUnknownName)
}

// Runtime is a function's language runtime, which sets its cold-start latency.
type Runtime uint8

// The runtimes the cold-start data covers.
const (
	// JavaScript is Node.js.
	JavaScript Runtime = iota
	// Python is CPython.
	Python
	// DotNet is C#/.NET.
	DotNet
	// Java is a JVM runtime.
	Java
	// Go is a Go (custom/native) runtime.
	Go
	// NumRuntimes is the number of runtimes.
	NumRuntimes = 5
)

var runtimeNames = [NumRuntimes]string{"javascript", "python", "dotnet", "java", "go"}

// String returns the runtime's lower-case name.
func (r Runtime) String() string {
	if int(r) < NumRuntimes {
		return runtimeNames[r]
	}
	return fmt.Sprintf("runtime(%d)", uint8(r))
}

// Sentinel errors.
var (
	// ErrUnknownName is returned when a provider, metro, tier or column name
	// is not known.
	ErrUnknownName = errors.New("unknown name")
	// ErrInvalidConfig is wrapped by every Config.Validate error.
	ErrInvalidConfig = errors.New("invalid cloud config")
	// ErrInvalidInput is wrapped by errors about the arguments of Evaluate
	// and friends (unordered invocations, a pool for another placement…).
	ErrInvalidInput = errors.New("invalid input")
)

// Sourced is a number together with where it comes from: Src holds keys of
// the catalog's source table separated by ";" (see Catalog.Sources),
// "ASSUMED" when no source was found, or SrcOverride for a price a
// configuration replaced (Catalog.WithPrices).
type Sourced struct {
	// Value is the number, in the unit the field's documentation names.
	Value float64
	// Src names the source(s) of Value.
	Src string
	// Note is the catalog's remark on the value, if any.
	Note string
}

// UnmarshalJSON reads the catalog's {value, src, note} objects. A null value
// reads as NaN.
func (s *Sourced) UnmarshalJSON(b []byte) error {
	var raw struct {
		Value *float64 `json:"value"`
		Src   string   `json:"src"`
		Note  string   `json:"note"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s.Value = math.NaN()
	if raw.Value != nil {
		s.Value = *raw.Value
	}
	s.Src, s.Note = raw.Src, raw.Note
	return nil
}

// sourced builds a Sourced value.
func sourced(v float64, src, note string) Sourced { return Sourced{Value: v, Src: src, Note: note} }

// Region holds the prices and facts of one provider's region in one metro.
// Prices are USD; "GB" is 1024 MB as the providers bill it.
type Region struct {
	// Name is the provider's region name (e.g. "us-east-1").
	Name string
	// Location is the region's city or state.
	Location string
	// RequestUSD is the price of one request.
	RequestUSD Sourced
	// GBSecondUSD is the price of one GB-second of duration (for GCP the
	// memory component only; see GHzSecondUSD).
	GBSecondUSD Sourced
	// GHzSecondUSD is GCP 1st gen's CPU price per GHz-second (zero elsewhere).
	GHzSecondUSD Sourced
	// Gen2VCPUSecondUSD and Gen2GiBSecondUSD are GCP 2nd gen's prices per
	// vCPU-second and GiB-second (zero elsewhere).
	Gen2VCPUSecondUSD, Gen2GiBSecondUSD Sourced
	// GranularityMS is the billing granularity of duration: billed time is
	// rounded up to a multiple of it.
	GranularityMS Sourced
	// MinBilledMS is the minimum billed duration per execution.
	MinBilledMS Sourced
	// PricingTier is GCP's regional pricing tier (1 or 2); zero elsewhere.
	PricingTier Sourced
	// StaticGCO2PerKWh is the catalog's static (CCF) grid factor, used when
	// the carbon mode is CarbonStatic.
	StaticGCO2PerKWh Sourced
	// PUE is the data centre's power usage effectiveness.
	PUE Sourced
	// PCPriceGBSecondUSD is AWS Provisioned Concurrency's price per GB-second
	// of configured capacity (AWS only).
	PCPriceGBSecondUSD Sourced
	// PCDurationGBSecondUSD is AWS's duration price for executions served by
	// Provisioned Concurrency (AWS only).
	PCDurationGBSecondUSD Sourced
	// PCBlockSeconds is the rounding of AWS Provisioned Concurrency time (AWS
	// only; 300 s).
	PCBlockSeconds Sourced
	// FlexGBSecondUSD, FlexRequestUSD, FlexGranularityMS and FlexMinBilledMS
	// are Azure Flex Consumption's on-demand prices and billing rules, used
	// for the tiers the Consumption plan lacks (Azure only).
	FlexGBSecondUSD, FlexRequestUSD, FlexGranularityMS, FlexMinBilledMS Sourced
	// MemoryRoundingMB and MaxBilledMemoryMB are Azure Consumption's memory
	// billing rules (Azure only).
	MemoryRoundingMB, MaxBilledMemoryMB Sourced
	// KeepWarmUSDPerHour is the price of keeping one idle instance of each
	// tier warm for one hour: AWS Provisioned Concurrency, Azure Flex
	// always-ready baseline, GCP 1st gen minimum instances.
	KeepWarmUSDPerHour [NumTiers]Sourced
	// Gen2KeepWarmUSDPerHour is the same for GCP 2nd gen minimum instances.
	Gen2KeepWarmUSDPerHour [NumTiers]Sourced
}

// TierFacts holds what the catalog says about one memory tier.
type TierFacts struct {
	// VCPU is the CPU share (in vCPUs) an instance of the tier gets, per
	// provider.
	VCPU [NumProviders]Sourced
	// GCPBilledMB is the GCP 1st gen tier that bills the tier (3008 MB is
	// billed as 4096 MB).
	GCPBilledMB Sourced
	// GCPGHz is GCP 1st gen's clock allocation for the tier, in GHz.
	GCPGHz Sourced
	// AzureConsumption reports whether Azure's Consumption plan offers the
	// tier (it stops at 1536 MB).
	AzureConsumption bool
	// AzureFlexMB is the Azure Flex Consumption instance size used for the
	// tier when Consumption lacks it.
	AzureFlexMB Sourced
}

// CarbonCoefficients are the Cloud Carbon Footprint per-provider coefficients.
type CarbonCoefficients struct {
	// MinWattsPerVCPU and MaxWattsPerVCPU are the power of one vCPU at 0 %
	// and 100 % utilisation.
	MinWattsPerVCPU, MaxWattsPerVCPU Sourced
	// MemoryKWhPerGBHour is the energy of one GB-hour of memory.
	MemoryKWhPerGBHour Sourced
	// AvgUtilisation is CCF's default CPU utilisation.
	AvgUtilisation Sourced
}

// Catalog is the typed, sourced content of the embedded catalog and carbon
// series. A Catalog is read-only after construction and safe for concurrent
// use.
type Catalog struct {
	// Version is the catalog's version string.
	Version string
	// Regions holds each provider's region in each metro.
	Regions [NumProviders][NumMetros]Region
	// Tiers holds the facts of each memory tier.
	Tiers [NumTiers]TierFacts
	// Carbon holds the CCF coefficients per provider.
	Carbon [NumProviders]CarbonCoefficients
	// ColdStartS is the median cold-start latency in seconds per provider and
	// runtime. Where the catalog has no measurement for a runtime the
	// provider's slowest measured runtime is used and Src says so.
	ColdStartS [NumProviders][NumRuntimes]Sourced
	// WarmStartMS is the median warm-start overhead per provider (2018).
	WarmStartMS [NumProviders]Sourced
	// KeepAliveMin is the provider's free keep-alive: minutes an idle
	// instance stays warm after its last execution ends.
	KeepAliveMin [NumProviders]Sourced
	// MetroRTTMS is the round-trip time between metros in ms.
	MetroRTTMS [NumMetros][NumMetros]Sourced
	// UserAccessRTTMS is the last-mile RTT from users to their nearest metro.
	UserAccessRTTMS Sourced
	// Sources maps each source key to its title.
	Sources map[string]string
	// Series is the hourly carbon-intensity data.
	Series *CarbonSeries
}

//go:embed data/catalog.json
var catalogJSON []byte

var (
	defaultOnce sync.Once
	defaultCat  *Catalog
	defaultErr  error
)

// DefaultCatalog returns the catalog parsed from the embedded files. It is
// parsed once, on first use; every call returns the same read-only value.
func DefaultCatalog() (*Catalog, error) {
	defaultOnce.Do(func() {
		defaultCat, defaultErr = ParseCatalog(catalogJSON, carbonCSV)
	})
	return defaultCat, defaultErr
}

// Region names per provider and metro, as the catalog keys them.
var regionNames = [NumProviders][NumMetros]string{
	AWS:   {"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"},
	Azure: {"eastus", "westus2", "northeurope", "southeastasia"},
	GCP:   {"us-east1", "us-west1", "europe-west1", "asia-southeast1"},
}

// cold-start keys of the catalog per provider and runtime; "" = not measured.
var coldStartKeys = [NumProviders][NumRuntimes]string{
	AWS:   {"javascript", "python", "", "java", "go"},
	Azure: {"javascript_linux", "python_linux", "csharp_linux", "", ""},
	GCP:   {"javascript", "python", "", "", "go"},
}

type rawCatalog struct {
	Version     string                     `json:"catalog_version"`
	MemoryTiers map[string]json.RawMessage `json:"memory_tiers"`
	Providers   struct {
		AWS   rawProvider `json:"aws"`
		Azure rawProvider `json:"azure"`
		GCP   rawProvider `json:"gcp"`
	} `json:"providers"`
	Latency struct {
		MetroRTT struct {
			Value map[string]map[string]float64 `json:"value"`
			Src   string                        `json:"src"`
			Note  string                        `json:"note"`
		} `json:"metro_rtt_ms"`
		UserAccess Sourced `json:"user_access_rtt_ms"`
	} `json:"latency"`
	ColdStart struct {
		ByProviderRuntime struct {
			Value map[string]map[string]struct {
				Median *float64 `json:"median_s"`
			} `json:"value"`
			Src string `json:"src"`
		} `json:"by_provider_runtime"`
		WarmStart struct {
			Value map[string]float64 `json:"value"`
			Src   string             `json:"src"`
			Note  string             `json:"note"`
		} `json:"warm_start_median_ms"`
		KeepAlive struct {
			AWS struct {
				Value struct {
					Policy *float64 `json:"policy_cited_ATC20"`
				} `json:"value"`
				Src  string `json:"src"`
				Note string `json:"note"`
			} `json:"aws"`
			Azure struct {
				Value struct {
					Policy *float64 `json:"fixed_policy_ATC20"`
				} `json:"value"`
				Src  string `json:"src"`
				Note string `json:"note"`
			} `json:"azure"`
			GCP struct {
				Value struct {
					Observed *float64 `json:"observed_2021"`
				} `json:"value"`
				Src  string `json:"src"`
				Note string `json:"note"`
			} `json:"gcp"`
		} `json:"keep_alive_idle_timeout_min"`
	} `json:"cold_start"`
	Sources  map[string]struct{ Title string } `json:"sources"`
	KeepWarm map[string]json.RawMessage        `json:"keep_warm"`
}

type rawProvider struct {
	Carbon struct {
		MinW   Sourced `json:"min_watts_per_vcpu"`
		MaxW   Sourced `json:"max_watts_per_vcpu"`
		Mem    Sourced `json:"memory_kwh_per_gb_h"`
		AvgU   Sourced `json:"avg_cpu_utilization"`
		PUE    Sourced `json:"pue"`
		PUEFlt Sourced `json:"pue_fleet"`
	} `json:"carbon"`
	Regions map[string]rawRegion `json:"regions"`
}

type rawRegion struct {
	Location     string  `json:"location"`
	Metro        string  `json:"metro"`
	PriceGBs     Sourced `json:"price_gb_s"`
	PriceRequest Sourced `json:"price_request"`
	Granularity  Sourced `json:"billing_granularity_ms"`
	MinBilled    Sourced `json:"min_billed_ms"`
	PricingTier  Sourced `json:"pricing_tier"`
	Grid         Sourced `json:"grid_gco2_per_kwh"`
	PUE          Sourced `json:"pue"`
	MemRounding  Sourced `json:"memory_rounding_mb"`
	MaxBilledMem Sourced `json:"max_billed_memory_mb"`
	FlexPriceGBs Sourced `json:"flex_price_gb_s"`
	FlexPriceReq Sourced `json:"flex_price_request"`
	Gen1         struct {
		GHz Sourced `json:"price_ghz_s"`
	} `json:"gen1"`
	Gen2 struct {
		VCPU Sourced `json:"price_vcpu_s"`
		GiB  Sourced `json:"price_gib_s"`
	} `json:"gen2"`
	KeepWarm struct {
		PCPrice     Sourced `json:"pc_price_gb_s"`
		PCDuration  Sourced `json:"pc_duration_price_gb_s"`
		PCBlock     Sourced `json:"pc_billing_granularity_s"`
		FlexMin     Sourced `json:"flex_min_billed_ms"`
		FlexGranKey Sourced `json:"flex_billing_granularity_ms"`
	} `json:"keep_warm"`
}

type rawTier struct {
	AWSVCPU    Sourced `json:"aws_vcpu"`
	GCPVCPU    Sourced `json:"gcp_vcpu"`
	AzureVCPU  Sourced `json:"azure_consumption_vcpu_share"`
	GCPTierMB  Sourced `json:"gcp_gen1_tier_mb"`
	GCPGHz     Sourced `json:"gcp_gen1_ghz"`
	AzureFlex  Sourced `json:"azure_flex_instance_mb"`
	AzureAvail struct {
		Value bool `json:"value"`
	} `json:"azure_consumption_available"`
}

type rawKeepWarmTable struct {
	Value map[string]map[string]float64 `json:"value"`
	Src   string                        `json:"src"`
	Note  string                        `json:"note"`
}

// ParseCatalog parses a catalog JSON document and an hourly carbon CSV (the
// formats of the embedded files) into a Catalog, checking that every
// provider × metro × tier the model needs is present and finite.
func ParseCatalog(catalog, carbon []byte) (*Catalog, error) {
	var raw rawCatalog
	if err := json.Unmarshal(catalog, &raw); err != nil {
		return nil, fmt.Errorf("loading catalog: %w", err)
	}
	c := &Catalog{Version: raw.Version, Sources: make(map[string]string, len(raw.Sources))}
	for k, v := range raw.Sources {
		c.Sources[k] = v.Title
	}
	provs := [NumProviders]rawProvider{raw.Providers.AWS, raw.Providers.Azure, raw.Providers.GCP}
	for p := range Provider(NumProviders) {
		rp := provs[p]
		c.Carbon[p] = CarbonCoefficients{
			MinWattsPerVCPU: rp.Carbon.MinW, MaxWattsPerVCPU: rp.Carbon.MaxW,
			MemoryKWhPerGBHour: rp.Carbon.Mem, AvgUtilisation: rp.Carbon.AvgU,
		}
		for m := range Metro(NumMetros) {
			name := regionNames[p][m]
			rr, ok := rp.Regions[name]
			if !ok {
				return nil, fmt.Errorf("loading catalog: region %s of %s: %w", name, p, ErrUnknownName)
			}
			if rr.Metro != m.String() {
				return nil, fmt.Errorf("loading catalog: region %s is in metro %q, want %q", name, rr.Metro, m)
			}
			r := Region{
				Name: name, Location: rr.Location,
				RequestUSD: rr.PriceRequest, GBSecondUSD: rr.PriceGBs,
				GranularityMS: rr.Granularity, MinBilledMS: rr.MinBilled,
				PricingTier: rr.PricingTier, StaticGCO2PerKWh: rr.Grid, PUE: rr.PUE,
			}
			switch p {
			case AWS:
				r.PCPriceGBSecondUSD = rr.KeepWarm.PCPrice
				r.PCDurationGBSecondUSD = rr.KeepWarm.PCDuration
				r.PCBlockSeconds = rr.KeepWarm.PCBlock
			case Azure:
				r.FlexGBSecondUSD, r.FlexRequestUSD = rr.FlexPriceGBs, rr.FlexPriceReq
				r.FlexGranularityMS, r.FlexMinBilledMS = rr.KeepWarm.FlexGranKey, rr.KeepWarm.FlexMin
				r.MemoryRoundingMB, r.MaxBilledMemoryMB = rr.MemRounding, rr.MaxBilledMem
			case GCP:
				r.GHzSecondUSD = rr.Gen1.GHz
				r.Gen2VCPUSecondUSD, r.Gen2GiBSecondUSD = rr.Gen2.VCPU, rr.Gen2.GiB
				// GCP bills 100 ms increments with no further minimum.
				r.MinBilledMS = sourced(rr.Granularity.Value, rr.Granularity.Src, "one 100 ms increment (rounding up)")
			}
			c.Regions[p][m] = r
		}
	}
	if err := c.parseTiers(raw.MemoryTiers); err != nil {
		return nil, err
	}
	if err := c.parseKeepWarm(raw.KeepWarm); err != nil {
		return nil, err
	}
	if err := c.parseLatency(&raw); err != nil {
		return nil, err
	}
	if err := c.parseColdStarts(&raw); err != nil {
		return nil, err
	}
	series, err := parseCarbonCSV(carbon)
	if err != nil {
		return nil, fmt.Errorf("loading catalog: %w", err)
	}
	c.Series = series
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("loading catalog: %w", err)
	}
	return c, nil
}

func (c *Catalog) parseTiers(tiers map[string]json.RawMessage) error {
	for t, mb := range TierMB {
		b, ok := tiers[fmt.Sprint(mb)]
		if !ok {
			return fmt.Errorf("loading catalog: memory tier %d: %w", mb, ErrUnknownName)
		}
		var rt rawTier
		if err := json.Unmarshal(b, &rt); err != nil {
			return fmt.Errorf("loading catalog: memory tier %d: %w", mb, err)
		}
		f := TierFacts{
			GCPBilledMB: rt.GCPTierMB, GCPGHz: rt.GCPGHz,
			AzureConsumption: rt.AzureAvail.Value, AzureFlexMB: rt.AzureFlex,
		}
		f.VCPU[AWS], f.VCPU[Azure], f.VCPU[GCP] = rt.AWSVCPU, rt.AzureVCPU, rt.GCPVCPU
		if f.AzureConsumption {
			f.AzureFlexMB = Sourced{}
		}
		c.Tiers[t] = f
	}
	return nil
}

func (c *Catalog) parseKeepWarm(kw map[string]json.RawMessage) error {
	tables := []struct {
		key  string
		p    Provider
		gen2 bool
		reg  [NumMetros]string
	}{
		{"aws_pc_idle_usd_per_instance_hour", AWS, false, regionNames[AWS]},
		{"azure_flex_always_ready_idle_usd_per_instance_hour", Azure, false, regionNames[Azure]},
		{"gcp_gen1_min_instance_idle_usd_per_instance_hour", GCP, false, regionNames[GCP]},
		{"gcp_gen2_min_instance_idle_usd_per_instance_hour", GCP, true, regionNames[GCP]},
	}
	for _, tb := range tables {
		var raw rawKeepWarmTable
		b, ok := kw[tb.key]
		if !ok {
			return fmt.Errorf("loading catalog: keep_warm.%s: %w", tb.key, ErrUnknownName)
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return fmt.Errorf("loading catalog: keep_warm.%s: %w", tb.key, err)
		}
		for m := range Metro(NumMetros) {
			row, ok := raw.Value[tb.reg[m]]
			if !ok {
				return fmt.Errorf("loading catalog: keep_warm.%s region %s: %w", tb.key, tb.reg[m], ErrUnknownName)
			}
			for t, mb := range TierMB {
				v, ok := row[fmt.Sprint(mb)]
				if !ok {
					return fmt.Errorf("loading catalog: keep_warm.%s %s %d MB: %w", tb.key, tb.reg[m], mb, ErrUnknownName)
				}
				s := sourced(v, raw.Src, raw.Note)
				if tb.gen2 {
					c.Regions[tb.p][m].Gen2KeepWarmUSDPerHour[t] = s
				} else {
					c.Regions[tb.p][m].KeepWarmUSDPerHour[t] = s
				}
			}
		}
	}
	return nil
}

func (c *Catalog) parseLatency(raw *rawCatalog) error {
	rtt := raw.Latency.MetroRTT
	for a := range Metro(NumMetros) {
		for b := range Metro(NumMetros) {
			v, ok := rtt.Value[a.String()][b.String()]
			if !ok {
				return fmt.Errorf("loading catalog: metro RTT %s→%s: %w", a, b, ErrUnknownName)
			}
			c.MetroRTTMS[a][b] = sourced(v, rtt.Src, rtt.Note)
		}
	}
	c.UserAccessRTTMS = raw.Latency.UserAccess
	return nil
}

func (c *Catalog) parseColdStarts(raw *rawCatalog) error {
	cs := raw.ColdStart.ByProviderRuntime
	for p := range Provider(NumProviders) {
		meas := cs.Value[p.String()]
		// Slowest measured runtime of the provider, the fallback.
		slowKey, slow := "", -1.0
		for r := range Runtime(NumRuntimes) {
			k := coldStartKeys[p][r]
			if k == "" {
				continue
			}
			e, ok := meas[k]
			if !ok || e.Median == nil {
				return fmt.Errorf("loading catalog: cold start %s/%s: %w", p, k, ErrUnknownName)
			}
			c.ColdStartS[p][r] = sourced(*e.Median, cs.Src, "median, "+k)
			if *e.Median > slow {
				slowKey, slow = k, *e.Median
			}
		}
		for r := range Runtime(NumRuntimes) {
			if coldStartKeys[p][r] == "" {
				c.ColdStartS[p][r] = sourced(slow, "ASSUMED",
					fmt.Sprintf("no %s measurement for %s; the provider's slowest measured runtime (%s) is used", r, p, slowKey))
			}
		}
		ws, ok := raw.ColdStart.WarmStart.Value[p.String()]
		if !ok {
			return fmt.Errorf("loading catalog: warm start %s: %w", p, ErrUnknownName)
		}
		c.WarmStartMS[p] = sourced(ws, raw.ColdStart.WarmStart.Src, raw.ColdStart.WarmStart.Note)
	}
	ka := raw.ColdStart.KeepAlive
	if ka.AWS.Value.Policy == nil || ka.Azure.Value.Policy == nil || ka.GCP.Value.Observed == nil {
		return fmt.Errorf("loading catalog: keep-alive: %w", ErrUnknownName)
	}
	c.KeepAliveMin[AWS] = sourced(*ka.AWS.Value.Policy, "S-WILD", "fixed policy cited by ATC'20 (docs/baselines.md keep-alive default); "+ka.AWS.Note)
	c.KeepAliveMin[Azure] = sourced(*ka.Azure.Value.Policy, "S-WILD", "fixed policy cited by ATC'20; "+ka.Azure.Note)
	c.KeepAliveMin[GCP] = sourced(*ka.GCP.Value.Observed, "S-SHILKOV", "observed 2021; "+ka.GCP.Note)
	return nil
}

// check verifies that every number the model uses is present and finite.
func (c *Catalog) check() error {
	bad := func(what string, s Sourced) error {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 || s.Src == "" {
			return fmt.Errorf("%s is missing or not a non-negative number (%v, src %q)", what, s.Value, s.Src)
		}
		return nil
	}
	var errs []error
	add := func(what string, s Sourced) {
		if err := bad(what, s); err != nil {
			errs = append(errs, err)
		}
	}
	for p := range Provider(NumProviders) {
		cc := c.Carbon[p]
		add(p.String()+" min watts", cc.MinWattsPerVCPU)
		add(p.String()+" max watts", cc.MaxWattsPerVCPU)
		add(p.String()+" memory kWh/GB-h", cc.MemoryKWhPerGBHour)
		add(p.String()+" keep-alive", c.KeepAliveMin[p])
		for m := range Metro(NumMetros) {
			r := &c.Regions[p][m]
			n := r.Name
			add(n+" request price", r.RequestUSD)
			add(n+" GB-s price", r.GBSecondUSD)
			add(n+" granularity", r.GranularityMS)
			add(n+" minimum billed", r.MinBilledMS)
			add(n+" grid factor", r.StaticGCO2PerKWh)
			add(n+" PUE", r.PUE)
			for t := range Tier(NumTiers) {
				add(fmt.Sprintf("%s keep-warm %d MB", n, t.MB()), r.KeepWarmUSDPerHour[t])
			}
			switch p {
			case AWS:
				add(n+" PC price", r.PCPriceGBSecondUSD)
				add(n+" PC duration price", r.PCDurationGBSecondUSD)
				add(n+" PC block", r.PCBlockSeconds)
			case Azure:
				add(n+" flex GB-s price", r.FlexGBSecondUSD)
				add(n+" flex request price", r.FlexRequestUSD)
				add(n+" flex granularity", r.FlexGranularityMS)
				add(n+" flex minimum", r.FlexMinBilledMS)
				add(n+" memory rounding", r.MemoryRoundingMB)
				add(n+" max billed memory", r.MaxBilledMemoryMB)
			case GCP:
				add(n+" GHz-s price", r.GHzSecondUSD)
				add(n+" gen2 vCPU-s price", r.Gen2VCPUSecondUSD)
				add(n+" gen2 GiB-s price", r.Gen2GiBSecondUSD)
				add(n+" pricing tier", r.PricingTier)
				for t := range Tier(NumTiers) {
					add(fmt.Sprintf("%s gen2 keep-warm %d MB", n, t.MB()), r.Gen2KeepWarmUSDPerHour[t])
				}
			}
		}
		for r := range Runtime(NumRuntimes) {
			add(fmt.Sprintf("%s cold start %s", p, r), c.ColdStartS[p][r])
		}
	}
	for t := range Tier(NumTiers) {
		f := c.Tiers[t]
		for p := range Provider(NumProviders) {
			add(fmt.Sprintf("%s vCPU at %d MB", p, t.MB()), f.VCPU[p])
		}
		add(fmt.Sprintf("GCP billed MB at %d MB", t.MB()), f.GCPBilledMB)
		add(fmt.Sprintf("GCP GHz at %d MB", t.MB()), f.GCPGHz)
		if !f.AzureConsumption {
			add(fmt.Sprintf("Azure Flex instance at %d MB", t.MB()), f.AzureFlexMB)
		}
	}
	for a := range Metro(NumMetros) {
		for b := range Metro(NumMetros) {
			add(fmt.Sprintf("RTT %s→%s", a, b), c.MetroRTTMS[a][b])
		}
	}
	add("user access RTT", c.UserAccessRTTMS)
	return errors.Join(errs...)
}

// RegionOf returns the region of provider p in metro m.
func (c *Catalog) RegionOf(p Provider, m Metro) *Region { return &c.Regions[p][m] }

package cloud_test

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/cloud"
)

func TestConfigOverride(t *testing.T) {
	def := cloud.DefaultConfig()
	tests := []struct {
		name  string
		sets  []cloud.Setting
		check func(c cloud.Config) bool
		// On error: the sentinel wrapped, the index at fault and a
		// substring of the message.
		wantErr   error
		wantIndex int
		wantMsg   string
	}{
		{name: "reward weight", sets: []cloud.Setting{{Name: "reward.w_cost", Value: "0.6"}},
			check: func(c cloud.Config) bool { return c.Reward.WCost == 0.6 && c.Reward.WPerf == def.Reward.WPerf }},
		{name: "later wins", sets: []cloud.Setting{{Name: "slo_floor_ms", Value: "500"}, {Name: "slo_floor_ms", Value: "700"}},
			check: func(c cloud.Config) bool { return c.SLOFloorMS == 700 }},
		{name: "per provider", sets: []cloud.Setting{{Name: "keep_alive_min", Key: "aws", Value: "12.5"}},
			check: func(c cloud.Config) bool {
				return c.KeepAliveMin[cloud.AWS] == 12.5 && c.KeepAliveMin[cloud.GCP] == def.KeepAliveMin[cloud.GCP]
			}},
		{name: "per metro", sets: []cloud.Setting{{Name: "metro_utc_offset_h", Key: "eu-west", Value: "1"}},
			check: func(c cloud.Config) bool { return c.MetroUTCOffsetH[cloud.EUWest] == 1 }},
		{name: "whole runtime mix", sets: []cloud.Setting{
			{Name: "runtime_mix", Key: "javascript", Value: "0.3"}, {Name: "runtime_mix", Key: "python", Value: "0.4"}},
			check: func(c cloud.Config) bool { return c.RuntimeMix[cloud.Python] == 0.4 }},
		{name: "names and booleans", sets: []cloud.Setting{{Name: "reference_provider", Value: "aws"}, {Name: "reference_memory_mb", Value: "2048"},
			{Name: "gcp_gen2", Value: "true"}, {Name: "seed", Value: "7"}},
			check: func(c cloud.Config) bool {
				return c.ReferenceProvider == cloud.AWS && c.ReferenceTier.MB() == 2048 && c.GCPGen2 && c.Seed == 7
			}},
		{name: "carbon mode sets its columns", sets: []cloud.Setting{{Name: "carbon_mode", Value: "hourly-direct"}},
			check: func(c cloud.Config) bool {
				return c.CarbonMode == cloud.CarbonHourlyDirect && c.CarbonColumns == cloud.DefaultCarbonColumns(cloud.CarbonHourlyDirect)
			}},
		{name: "unknown parameter", sets: []cloud.Setting{{Name: "slo_floor_ms", Value: "500"}, {Name: "slo_flor_ms", Value: "1"}},
			wantErr: cloud.ErrUnknownName, wantIndex: 1, wantMsg: `slo_flor_ms: unknown name: no parameter "slo_flor_ms"`},
		{name: "unknown provider", sets: []cloud.Setting{{Name: "keep_alive_min", Key: "ibm", Value: "1"}},
			wantErr: cloud.ErrUnknownName, wantMsg: `keep_alive_min has no "ibm" (want one of aws, azure, gcp)`},
		{name: "key on a single value", sets: []cloud.Setting{{Name: "max_instances", Key: "aws", Value: "5"}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "takes one value"},
		{name: "not a number", sets: []cloud.Setting{{Name: "reward.w_perf", Value: "lots"}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: `reward.w_perf: invalid cloud config: "lots" is not a number`},
		{name: "unknown carbon mode", sets: []cloud.Setting{{Name: "carbon_mode", Value: "hourly"}},
			wantErr: cloud.ErrUnknownName, wantMsg: "want hourly-lca, hourly-direct or static"},
		{name: "negative weight", sets: []cloud.Setting{{Name: "slo_floor_ms", Value: "500"}, {Name: "reward.w_carbon", Value: "-0.2"}},
			wantErr: cloud.ErrInvalidConfig, wantIndex: 1, wantMsg: "Reward.WCarbon -0.2 must be finite and non-negative"},
		{name: "out of range", sets: []cloud.Setting{{Name: "slo_percentile", Value: "1.5"}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "SLOPercentile 1.5 is outside (0, 1]"},
		{name: "mix that does not sum to 1", sets: []cloud.Setting{{Name: "runtime_mix", Key: "go", Value: "0.5"}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "RuntimeMix sums to"},
		{name: "valid alone, invalid together", sets: []cloud.Setting{{Name: "working_set_min_mb", Value: "500"}, {Name: "working_set_max_mb", Value: "400"}},
			wantErr: cloud.ErrInvalidConfig, wantIndex: -1, wantMsg: "overrides together: invalid cloud config: working-set clamp [500, 400] MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloud.DefaultConfig()
			err := c.Override(tt.sets)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !tt.check(c) {
					t.Fatalf("config after %v: %+v", tt.sets, c)
				}
				return
			}
			var oe *cloud.OverrideError
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &oe) || oe.Index != tt.wantIndex || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Override(%v) = %v (index %v), want %v at %d containing %q", tt.sets, err, oe, tt.wantErr, tt.wantIndex, tt.wantMsg)
			}
			if !reflect.DeepEqual(c, cloud.DefaultConfig()) {
				t.Fatalf("a failed Override changed the config: %+v", c)
			}
		})
	}
}

// TestParamsCoverConfig checks that each parameter sets the field it
// names and nothing else, and that every field of Config but those the
// pipeline sets has a parameter: an assumption added to Config cannot be
// left out of the configuration files.
func TestParamsCoverConfig(t *testing.T) {
	covered := map[string]bool{"Epoch": true, "TickUS": true, "CarbonColumns": true, "Reward": true}
	for _, p := range cloud.Params() {
		covered[p.Field] = true
		key, value := "", "0.25"
		if p.Keys != nil {
			key = p.Keys[len(p.Keys)-1]
		}
		switch p.Name {
		case "seed", "max_instances", "cpu_bound_alpha", "cpu_bound_beta":
			value = "5"
		case "reference_provider":
			value = "gcp"
		case "reference_memory_mb":
			value = "128"
		case "carbon_mode":
			value = "static"
		case "bill_cold_start", "warm_start_overhead", "gcp_gen2":
			value = "true"
		case "aws_pc_duration_price", "carbon_utilisation_from_profile", "carbon_prewarm":
			value = "false"
		}
		c := cloud.DefaultConfig()
		if err := c.Set(cloud.Setting{Name: p.Name, Key: key, Value: value}); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		var changed []string
		def, got := reflect.ValueOf(cloud.DefaultConfig()), reflect.ValueOf(c)
		for i := range def.NumField() {
			name := def.Type().Field(i).Name
			if name == "Reward" {
				for j := range def.Field(i).NumField() {
					if !reflect.DeepEqual(def.Field(i).Field(j).Interface(), got.Field(i).Field(j).Interface()) {
						changed = append(changed, "Reward."+def.Field(i).Type().Field(j).Name)
					}
				}
				continue
			}
			if !reflect.DeepEqual(def.Field(i).Interface(), got.Field(i).Interface()) {
				changed = append(changed, name)
			}
		}
		want := []string{p.Field}
		if p.Name == "carbon_mode" {
			want = append(want, "CarbonColumns")
		}
		if !slices.Equal(changed, want) {
			t.Errorf("setting %s changed %v, want %v", p.Name, changed, want)
		}
	}
	cfg, rw := reflect.TypeFor[cloud.Config](), reflect.TypeFor[cloud.RewardConfig]()
	for i := range cfg.NumField() {
		if !covered[cfg.Field(i).Name] {
			t.Errorf("Config.%s has no parameter", cfg.Field(i).Name)
		}
	}
	for i := range rw.NumField() {
		if !covered["Reward."+rw.Field(i).Name] {
			t.Errorf("Config.Reward.%s has no parameter", rw.Field(i).Name)
		}
	}
}

func TestWithPrices(t *testing.T) {
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	before := *cat
	tests := []struct {
		name    string
		prices  []cloud.Price
		check   func(c *cloud.Catalog) bool
		wantErr error
		wantMsg string
	}{
		{name: "one region", prices: []cloud.Price{{Provider: cloud.AWS, Metro: cloud.EUWest, Name: "request_usd", USD: 1e-6}},
			check: func(c *cloud.Catalog) bool {
				r := c.Regions[cloud.AWS][cloud.EUWest].RequestUSD
				return r.Value == 1e-6 && r.Src == cloud.SrcOverride && strings.Contains(r.Note, "overrides the catalog's 2e-07") &&
					c.Regions[cloud.AWS][cloud.USEast].RequestUSD == cat.Regions[cloud.AWS][cloud.USEast].RequestUSD
			}},
		{name: "every metro, twice", prices: []cloud.Price{{Provider: cloud.GCP, AllMetros: true, Name: "ghz_second_usd", USD: 1},
			{Provider: cloud.GCP, AllMetros: true, Name: "ghz_second_usd", USD: 2}},
			check: func(c *cloud.Catalog) bool {
				for m := range cloud.Metro(cloud.NumMetros) {
					r := c.Regions[cloud.GCP][m].GHzSecondUSD
					if r.Value != 2 || !strings.Contains(r.Note, cat.Regions[cloud.GCP][m].GHzSecondUSD.Src) {
						return false
					}
				}
				return true
			}},
		{name: "per tier", prices: []cloud.Price{{Provider: cloud.Azure, Metro: cloud.USWest, Name: "keep_warm_usd_per_hour", TierMB: 2048, USD: 0}},
			check: func(c *cloud.Catalog) bool {
				kw := c.Regions[cloud.Azure][cloud.USWest].KeepWarmUSDPerHour
				return kw[4].Value == 0 && kw[3] == cat.Regions[cloud.Azure][cloud.USWest].KeepWarmUSDPerHour[3]
			}},
		{name: "negative", prices: []cloud.Price{{Provider: cloud.AWS, Metro: cloud.USEast, Name: "gb_second_usd", USD: -1}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "aws/us-east/gb_second_usd: invalid cloud config: price -1 USD is negative or not finite"},
		{name: "not finite", prices: []cloud.Price{{Provider: cloud.AWS, Metro: cloud.USEast, Name: "gb_second_usd", USD: math.Inf(1)}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "not finite"},
		{name: "another provider's price", prices: []cloud.Price{{Provider: cloud.AWS, Metro: cloud.USEast, Name: "flex_request_usd", USD: 1}},
			wantErr: cloud.ErrUnknownName, wantMsg: `aws has no price "flex_request_usd" (want one of request_usd, gb_second_usd, keep_warm_usd_per_hour, pc_duration_gb_second_usd)`},
		{name: "per tier without a tier", prices: []cloud.Price{{Provider: cloud.GCP, Metro: cloud.USEast, Name: "gen2_keep_warm_usd_per_hour", USD: 1}},
			wantErr: cloud.ErrUnknownName, wantMsg: "per memory tier"},
		{name: "a tier for a single price", prices: []cloud.Price{{Provider: cloud.GCP, Metro: cloud.USEast, Name: "request_usd", TierMB: 128, USD: 1}},
			wantErr: cloud.ErrInvalidConfig, wantMsg: "is one price, not one per memory tier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cat.WithPrices(tt.prices)
			if tt.wantErr != nil {
				var oe *cloud.OverrideError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &oe) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("WithPrices = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Fatalf("catalog after %v does not hold the prices", tt.prices)
			}
		})
	}
	if !reflect.DeepEqual(*cat, before) {
		t.Fatal("WithPrices changed the shared default catalog")
	}
}

// TestModelBillsOverriddenPrices builds a model over a catalog with a
// higher AWS price: the model bills it.
func TestModelBillsOverriddenPrices(t *testing.T) {
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r := cat.Regions[cloud.AWS][cloud.USEast]
	dear, err := cat.WithPrices([]cloud.Price{
		{Provider: cloud.AWS, Metro: cloud.USEast, Name: "request_usd", USD: 10 * r.RequestUSD.Value},
		{Provider: cloud.AWS, Metro: cloud.USEast, Name: "gb_second_usd", USD: 10 * r.GBSecondUSD.Value},
	})
	if err != nil {
		t.Fatal(err)
	}
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)}
	base, err := cloud.NewModel(cat, cloud.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.NewModel(dear, cloud.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, b := base.InvocationCostUSD(pl, 100_000, false), m.InvocationCostUSD(pl, 100_000, false)
	if math.Abs(b-10*a) > 1e-15 {
		t.Fatalf("cost at 10× the prices: %g, want 10 × %g", b, a)
	}
}

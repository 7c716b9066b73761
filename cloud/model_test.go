package cloud_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/strata-rl/strata/cloud"
)

const (
	sec  = int64(1_000_000)
	min1 = 60 * sec
	hour = 3600 * sec
)

func newModel(t testing.TB, edit func(*cloud.Config)) *cloud.Model {
	t.Helper()
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatalf("loading catalog: %v", err)
	}
	cfg := cloud.DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	m, err := cloud.NewModel(cat, cfg)
	if err != nil {
		t.Fatalf("creating model: %v", err)
	}
	return m
}

func tier(t testing.TB, mb int) cloud.Tier {
	t.Helper()
	tr, err := cloud.TierOf(mb)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// plainFn is a JavaScript function with no CPU-bound part (so its execution
// time is the same everywhere), a 100 MB working set and a generous SLO.
func plainFn() *cloud.Function {
	return &cloud.Function{App: "a", Func: "f", UserMetro: cloud.USEast, SLOMS: 10_000,
		Profile: cloud.Profile{WorkingSetMB: 100, CPUBoundFraction: 0, Runtime: cloud.JavaScript}}
}

func evaluate(t testing.TB, m *cloud.Model, fn *cloud.Function, pool *cloud.Pool, iv cloud.Interval, prewarm []int, reqs []cloud.Request) cloud.Result {
	t.Helper()
	res, err := m.Evaluate(fn, pool, iv, prewarm, reqs)
	if err != nil {
		t.Fatalf("evaluating: %v", err)
	}
	return res
}

func TestCatalogCoversEveryPlacement(t *testing.T) {
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for p := range cloud.Provider(cloud.NumProviders) {
		for mt := range cloud.Metro(cloud.NumMetros) {
			r := cat.RegionOf(p, mt)
			for _, s := range []cloud.Sourced{r.RequestUSD, r.GBSecondUSD, r.GranularityMS, r.MinBilledMS, r.PUE} {
				if s.Src == "" || !(s.Value > 0) {
					t.Errorf("%s %s: %+v has no value or source", p, mt, s)
				}
			}
			for tr := range cloud.Tier(cloud.NumTiers) {
				if s := r.KeepWarmUSDPerHour[tr]; s.Src == "" || !(s.Value > 0) {
					t.Errorf("%s %s %d MB keep-warm: %+v", p, mt, tr.MB(), s)
				}
			}
		}
	}
	tests := []struct {
		name string
		got  cloud.Sourced
		want float64
		src  string
	}{
		{"aws us-east-1 GB-s", cat.Regions[cloud.AWS][cloud.USEast].GBSecondUSD, 1.66667e-05, "S-AWS-PRICE;S-PT"},
		{"aws granularity", cat.Regions[cloud.AWS][cloud.USEast].GranularityMS, 1, "S-AWS-1MS"},
		{"azure minimum", cat.Regions[cloud.Azure][cloud.EUWest].MinBilledMS, 100, "S-AZ-METER"},
		{"gcp asia tier", cat.Regions[cloud.GCP][cloud.APSoutheast].PricingTier, 2, "S-GCF-LOC;S-FIREBASE"},
		{"gcp us-west tier", cat.Regions[cloud.GCP][cloud.USWest].PricingTier, 1, "S-GCF-LOC;S-FIREBASE"},
		{"gcp asia GHz-s", cat.Regions[cloud.GCP][cloud.APSoutheast].GHzSecondUSD, 1.4e-05, "S-GCF1-PRICE;S-FIREBASE"},
		{"aws PC block", cat.Regions[cloud.AWS][cloud.USEast].PCBlockSeconds, 300, "S-AWS-PC"},
		{"aws keep-alive", cat.KeepAliveMin[cloud.AWS], 10, "S-WILD"},
		{"azure keep-alive", cat.KeepAliveMin[cloud.Azure], 20, "S-WILD"},
		{"gcp keep-alive", cat.KeepAliveMin[cloud.GCP], 15, "S-SHILKOV"},
		{"aws vCPU 1024", cat.Tiers[3].VCPU[cloud.AWS], 0.5789, "S-AWS-MEM"},
		{"gcp 3008 billed as", cat.Tiers[5].GCPBilledMB, 4096, "ASSUMED"},
		{"azure 3008 flex", cat.Tiers[5].AzureFlexMB, 4096, "ASSUMED"},
		{"cold start aws python", cat.ColdStartS[cloud.AWS][cloud.Python], 0.215, "S-SHILKOV"},
		{"RTT us-east→ap", cat.MetroRTTMS[cloud.USEast][cloud.APSoutheast], 217.2, "ASSUMED"},
		{"memory kWh/GB-h", cat.Carbon[cloud.GCP].MemoryKWhPerGBHour, 0.000392, "S-CCF"},
		{"gcp PUE", cat.Regions[cloud.GCP][cloud.EUWest].PUE, 1.09, "S-CCF (PUE_TRAILING_TWELVE_MONTH)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.Value != tt.want || tt.got.Src != tt.src {
				t.Errorf("got %v (%s), want %v (%s)", tt.got.Value, tt.got.Src, tt.want, tt.src)
			}
		})
	}
	def := cloud.DefaultConfig()
	for p := range cloud.Provider(cloud.NumProviders) {
		if def.KeepAliveMin[p] != cat.KeepAliveMin[p].Value {
			t.Errorf("default keep-alive %s = %v, catalog %v", p, def.KeepAliveMin[p], cat.KeepAliveMin[p].Value)
		}
	}
	if cat.Sources["S-CCF"] == "" {
		t.Error("source S-CCF has no title")
	}
}

func TestInvocationCost(t *testing.T) {
	m := newModel(t, nil)
	tests := []struct {
		name     string
		pl       cloud.Placement
		execUS   int64
		billedUS int64
		want     float64
	}{
		{"aws 100ms 1024MB us-east-1", cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)},
			100_000, 100_000, 0.2e-6 + 0.1*1*0.0000166667},
		{"aws rounds up to 1ms", cloud.Placement{Provider: cloud.AWS, Metro: cloud.EUWest, Tier: tier(t, 128)},
			1_200, 2_000, 0.2e-6 + 0.002*0.125*0.0000166667},
		{"azure bills 30ms as 100ms", cloud.Placement{Provider: cloud.Azure, Metro: cloud.USEast, Tier: tier(t, 128)},
			30_000, 100_000, 2e-7 + 0.1*0.125*1.6e-5},
		{"azure 1ms above the minimum", cloud.Placement{Provider: cloud.Azure, Metro: cloud.USWest, Tier: tier(t, 1024)},
			250_500, 251_000, 2e-7 + 0.251*1*1.6e-5},
		{"azure 2048MB uses flex: 1000ms minimum", cloud.Placement{Provider: cloud.Azure, Metro: cloud.USEast, Tier: tier(t, 2048)},
			30_000, 1_000_000, 4e-7 + 1*2*2.6e-5},
		{"azure 3008MB uses the 4096MB flex instance", cloud.Placement{Provider: cloud.Azure, Metro: cloud.USEast, Tier: tier(t, 3008)},
			1_050_000, 1_100_000, 4e-7 + 1.1*4*2.6e-5},
		{"gcp tier 2 in asia-southeast1, 30ms → 100ms", cloud.Placement{Provider: cloud.GCP, Metro: cloud.APSoutheast, Tier: tier(t, 128)},
			30_000, 100_000, 4e-7 + 0.1*(0.125*3.5e-6+0.2*1.4e-5)},
		{"gcp tier 1 in us-east1, 130ms → 200ms", cloud.Placement{Provider: cloud.GCP, Metro: cloud.USEast, Tier: tier(t, 128)},
			130_000, 200_000, 4e-7 + 0.2*(0.125*2.5e-6+0.2*1e-5)},
		{"gcp 3008MB bills as 4096MB", cloud.Placement{Provider: cloud.GCP, Metro: cloud.USEast, Tier: tier(t, 3008)},
			100_000, 100_000, 4e-7 + 0.1*(4*2.5e-6+4.8*1e-5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.BilledUS(tt.pl, tt.execUS); got != tt.billedUS {
				t.Errorf("billed %d µs, want %d", got, tt.billedUS)
			}
			if got := m.InvocationCostUSD(tt.pl, tt.execUS, false); math.Abs(got-tt.want) > 1e-12*tt.want {
				t.Errorf("cost %.12g, want %.12g", got, tt.want)
			}
		})
	}
	// The derived per-100 ms prices of the catalog agree.
	cat := m.Catalog()
	got := m.InvocationCostUSD(cloud.Placement{Provider: cloud.GCP, Metro: cloud.APSoutheast, Tier: 0}, 30_000, false) - 4e-7
	if want := 3.2375e-07; math.Abs(got-want) > 1e-15 {
		t.Errorf("gcp tier 2 128MB per 100ms = %v, catalog table %v", got, want)
	}
	_ = cat
}

func TestEvaluateSingleAWSInvocation(t *testing.T) {
	m := newModel(t, nil)
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)}
	pool := cloud.NewPool(pl, 0)
	res := evaluate(t, m, plainFn(), pool, cloud.Interval{StartUS: 0, EndUS: 15 * sec}, nil,
		[]cloud.Request{{StartUS: 2 * sec, DurationUS: 100_000}})
	o := res.Outcomes[0]
	// Evaluated in float64 (Go constant arithmetic would be exact).
	req, secs, gb, price := 0.2e-6, 0.1, 1.0, 0.0000166667
	if want := req + secs*gb*price; o.CostUSD != want || res.Aggregate.CostUSD != want {
		t.Errorf("cost %v (aggregate %v), want exactly %v", o.CostUSD, res.Aggregate.CostUSD, want)
	}
	if !o.Cold || o.ColdStartMS != 264 {
		t.Errorf("cold %v %v ms, want a 264 ms cold start (AWS JavaScript median)", o.Cold, o.ColdStartMS)
	}
	// Latency = access 20 ms + RTT us-east→us-east 0 + cold 264 + exec 100.
	if want := 20.0 + 0 + 264 + 100; o.LatencyMS != want {
		t.Errorf("latency %v, want %v", o.LatencyMS, want)
	}
	if pool.Len() != 1 || pool.Now() != 15*sec {
		t.Errorf("pool has %d instances at %d, want 1 at %d", pool.Len(), pool.Now(), 15*sec)
	}
}

func TestPrewarm(t *testing.T) {
	m := newModel(t, nil)
	tests := []struct {
		name     string
		pl       cloud.Placement
		prewarm  []int
		wantCost float64 // pre-warm cost of the interval
	}{
		// One PC unit, 1024 MB, us-east-1: one 5-minute block at $0.015/h.
		{"aws one 5-minute block", cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)},
			[]int{1}, 0.015 * 300 / 3600},
		// Twenty ticks (5 minutes) still fit in one block; the 21st buys a second.
		{"aws 20 ticks in one block", cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)},
			repeat(1, 20), 0.015 * 300 / 3600},
		{"aws 21 ticks in two blocks", cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)},
			repeat(1, 21), 2 * 0.015 * 300 / 3600},
		{"azure always-ready per second", cloud.Placement{Provider: cloud.Azure, Metro: cloud.USEast, Tier: tier(t, 1024)},
			[]int{1}, 0.0288 * 15 / 3600},
		{"gcp tier 2 min instances, 2 held", cloud.Placement{Provider: cloud.GCP, Metro: cloud.APSoutheast, Tier: tier(t, 512)},
			[]int{2}, 2 * 0.010476 * 15 / 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := cloud.NewPool(tt.pl, 0)
			iv := cloud.Interval{StartUS: 0, EndUS: int64(len(tt.prewarm)) * 15 * sec}
			res := evaluate(t, m, plainFn(), pool, iv, tt.prewarm, []cloud.Request{{StartUS: 1 * sec, DurationUS: 50_000}})
			o := res.Outcomes[0]
			if o.Cold || !o.OnPrewarm {
				t.Errorf("cold %v, on pre-warm %v: want a warm start on the pre-warmed instance", o.Cold, o.OnPrewarm)
			}
			if got := res.Aggregate.PrewarmCostUSD; math.Abs(got-tt.wantCost) > 1e-15 {
				t.Errorf("pre-warm cost %.10g, want %.10g", got, tt.wantCost)
			}
			if got, want := res.Aggregate.CostUSD, res.Aggregate.PrewarmCostUSD+o.CostUSD; got != want {
				t.Errorf("total cost %v, want pre-warm + invocation %v", got, want)
			}
			if res.Aggregate.PrewarmCarbonG <= 0 {
				t.Errorf("pre-warm carbon %v, want > 0", res.Aggregate.PrewarmCarbonG)
			}
		})
	}
	// AWS executions on provisioned concurrency pay the PC duration price.
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)}
	res := evaluate(t, m, plainFn(), cloud.NewPool(pl, 0), cloud.Interval{StartUS: 0, EndUS: 15 * sec}, []int{1},
		[]cloud.Request{{StartUS: sec, DurationUS: 100_000}, {StartUS: sec + 10_000, DurationUS: 100_000}})
	if got, want := res.Outcomes[0].CostUSD, 2e-7+0.1*1*9.7222e-06; got != want {
		t.Errorf("PC-served cost %v, want %v", got, want)
	}
	if o := res.Outcomes[1]; !o.Cold || o.OnPrewarm || o.CostUSD != 2e-7+0.1*1*1.66667e-05 {
		t.Errorf("overflow invocation: cold %v, on PC %v, cost %v; want a cold on-demand start", o.Cold, o.OnPrewarm, o.CostUSD)
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		p    cloud.Provider
		keep int64
	}{{cloud.AWS, 10 * min1}, {cloud.Azure, 20 * min1}, {cloud.GCP, 15 * min1}}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			m := newModel(t, nil)
			pl := cloud.Placement{Provider: tt.p, Metro: cloud.USEast, Tier: tier(t, 512)}
			pool := cloud.NewPool(pl, 0)
			const d = 100_000
			end0 := sec + m.ExecUS(pl, plainFn().Profile, d) + int64(math.Round(m.ColdStartMS(tt.p, cloud.JavaScript)*1000))
			// Second call just inside the keep-alive (warm), third exactly at
			// the second's end + keep-alive (expired: cold).
			r2 := end0 + tt.keep - 1
			end2 := r2 + m.ExecUS(pl, plainFn().Profile, d)
			r3 := end2 + tt.keep
			reqs := []cloud.Request{{StartUS: sec, DurationUS: d}, {StartUS: r2, DurationUS: d}, {StartUS: r3, DurationUS: d}}
			res := evaluate(t, m, plainFn(), pool, cloud.Interval{StartUS: 0, EndUS: 2 * hour}, nil, reqs)
			if got := []bool{res.Outcomes[0].Cold, res.Outcomes[1].Cold, res.Outcomes[2].Cold}; !reflect.DeepEqual(got, []bool{true, false, true}) {
				t.Errorf("cold starts %v, want [true false true]", got)
			}
			if pool.Len() != 0 {
				t.Errorf("pool holds %d instances after the keep-alive, want 0", pool.Len())
			}
		})
	}
}

func TestPrewarmHoldsPastKeepAlive(t *testing.T) {
	m := newModel(t, nil)
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USWest, Tier: tier(t, 256)}
	pool := cloud.NewPool(pl, 0)
	// Hold one instance for 48 ticks (12 min); a call at 11.5 min is warm
	// although nothing ran for longer than the 10-minute keep-alive.
	res := evaluate(t, m, plainFn(), pool, cloud.Interval{StartUS: 0, EndUS: 12 * min1}, repeat(1, 48),
		[]cloud.Request{{StartUS: 690 * sec, DurationUS: 1000}})
	if res.Outcomes[0].Cold {
		t.Error("cold start on a held instance")
	}
	// Blocks: 0–5, 5–10, 10–15 min.
	if got, want := res.Aggregate.PrewarmCostUSD, 3*0.00375*300/3600; math.Abs(got-want) > 1e-15 {
		t.Errorf("pre-warm cost %v, want three blocks %v", got, want)
	}
}

func TestOutOfMemory(t *testing.T) {
	m := newModel(t, nil)
	fn := plainFn()
	fn.Profile.WorkingSetMB = 300
	tests := []struct {
		mb     int
		failed bool
	}{{128, true}, {256, true}, {512, false}, {3008, false}}
	for _, tt := range tests {
		pl := cloud.Placement{Provider: cloud.GCP, Metro: cloud.EUWest, Tier: tier(t, tt.mb)}
		res := evaluate(t, m, fn, cloud.NewPool(pl, 0), cloud.Interval{StartUS: 0, EndUS: 15 * sec}, nil,
			[]cloud.Request{{StartUS: 0, DurationUS: 10_000}})
		o := res.Outcomes[0]
		if o.Failed != tt.failed || o.Violated != tt.failed || (res.Aggregate.Failures == 1) != tt.failed {
			t.Errorf("%d MB: failed %v violated %v, want %v", tt.mb, o.Failed, o.Violated, tt.failed)
		}
	}
}

func TestCarbonHandCalculation(t *testing.T) {
	m := newModel(t, func(c *cloud.Config) {
		c.CarbonUtilisationFromProfile = false
		c.CarbonUtilisation = 0.5
	})
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)}
	// 2022-01-30T05:00Z is trace hour 5 under the default epoch; the CSV's
	// us_east_PJM_em_lca value for that hour is 519.96 g/kWh.
	at := 5*hour + 10*sec
	if got := m.IntensityGPerKWh(cloud.AWS, cloud.USEast, at); got != 519.96 {
		t.Fatalf("intensity %v, want 519.96 (CSV row 2022-01-30T05:00:00Z)", got)
	}
	h := 2.0 / 3600 // a 2 s execution
	kwh := 0.5789*(0.74+0.5*(3.5-0.74))*h/1000 + 1*0.000392*h
	want := kwh * 1.135 * 519.96
	pool := cloud.NewPool(pl, 5*hour)
	res := evaluate(t, m, plainFn(), pool, cloud.Interval{StartUS: 5 * hour, EndUS: 6 * hour}, []int{1},
		[]cloud.Request{{StartUS: at, DurationUS: 2 * sec}})
	if got := res.Outcomes[0].CarbonG; math.Abs(got-want) > 1e-12*want {
		t.Errorf("carbon %.15g g, want %.15g", got, want)
	}
	// Static mode uses the catalog's CCF factor for us-east-1.
	ms := newModel(t, func(c *cloud.Config) {
		c.CarbonMode = cloud.CarbonStatic
		c.CarbonUtilisationFromProfile = false
	})
	if got := ms.IntensityGPerKWh(cloud.AWS, cloud.USEast, at); got != 379.069 {
		t.Errorf("static intensity %v, want 379.069", got)
	}
	// GCP eu-west reads Belgium, AWS eu-west Ireland (LCA).
	if a, g := m.IntensityGPerKWh(cloud.AWS, cloud.EUWest, 5*hour), m.IntensityGPerKWh(cloud.GCP, cloud.EUWest, 5*hour); a != 482.24 || g != 147.03 {
		t.Errorf("eu-west intensities aws %v gcp %v, want 482.24 (IE) and 147.03 (BE)", a, g)
	}
}

func TestExecutionTime(t *testing.T) {
	m := newModel(t, nil)
	prof := cloud.Profile{WorkingSetMB: 64, CPUBoundFraction: 1}
	ref := int64(1_000_000)
	tests := []struct {
		name string
		pl   cloud.Placement
		want int64
	}{
		{"reference runs at its duration", cloud.Placement{Provider: cloud.Azure, Tier: tier(t, 1024)}, ref},
		{"aws 128MB is slower", cloud.Placement{Provider: cloud.AWS, Tier: tier(t, 128)}, int64(math.Round(1e6 * 0.6667 / 0.0724))},
		{"gcp 2048MB has 1 vCPU", cloud.Placement{Provider: cloud.GCP, Tier: tier(t, 2048)}, int64(math.Round(1e6 * 0.6667))},
		{"gcp 3008MB capped at 1 vCPU", cloud.Placement{Provider: cloud.GCP, Tier: tier(t, 3008)}, int64(math.Round(1e6 * 0.6667))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.ExecUS(tt.pl, prof, ref); got != tt.want {
				t.Errorf("exec %d µs, want %d", got, tt.want)
			}
		})
	}
	half := cloud.Profile{CPUBoundFraction: 0.5}
	if got, want := m.ExecUS(cloud.Placement{Provider: cloud.AWS, Tier: tier(t, 128)}, half, ref), int64(math.Round(1e6*(0.5+0.5*0.6667/0.0724))); got != want {
		t.Errorf("half CPU-bound at 128MB: %d, want %d", got, want)
	}
}

func TestQueueAtMaxInstances(t *testing.T) {
	m := newModel(t, func(c *cloud.Config) { c.MaxInstances = 1 })
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 1024)}
	res := evaluate(t, m, plainFn(), cloud.NewPool(pl, 0), cloud.Interval{StartUS: 0, EndUS: 15 * sec}, nil,
		[]cloud.Request{{StartUS: 0, DurationUS: 1 * sec}, {StartUS: 100_000, DurationUS: sec}, {StartUS: 200_000, DurationUS: sec}})
	o := res.Outcomes
	// First: cold 264 ms then 1 s → frees at 1.264 s. Second waits 1.164 s,
	// third waits for the second (frees at 2.264 s).
	if !o[0].Cold || !o[1].Queued || o[1].QueueWaitMS != 1164 || o[2].QueueWaitMS != 2064 {
		t.Errorf("outcomes %+v", o)
	}
	if res.Ticks[0].QueueDepth != 2 || res.Aggregate.Queued != 2 {
		t.Errorf("queue depth %d, queued %d; want 2, 2", res.Ticks[0].QueueDepth, res.Aggregate.Queued)
	}
}

func TestTelemetry(t *testing.T) {
	m := newModel(t, nil)
	fn := plainFn()
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: tier(t, 512)}
	pool := cloud.NewPool(pl, 0)
	// Two pre-warmed instances; two 3 s executions in tick 0, one of which
	// runs 1 s into tick 1.
	res := evaluate(t, m, fn, pool, cloud.Interval{StartUS: 0, EndUS: 30 * sec}, []int{2, 2},
		[]cloud.Request{{StartUS: sec, DurationUS: 3 * sec}, {StartUS: 13 * sec, DurationUS: 3 * sec}})
	t0, t1 := res.Ticks[0], res.Ticks[1]
	if t0.Instances != 2 || t0.BusySeconds != 5 || t1.BusySeconds != 1 {
		t.Fatalf("ticks %+v %+v", t0, t1)
	}
	if want := 5.0 / (2 * 15); t0.CPUUtil != want {
		t.Errorf("CPU util %v, want %v", t0.CPUUtil, want)
	}
	if want := 5.0 / 15 * 100 / (2 * 512); math.Abs(t0.MemoryUtil-want) > 1e-15 {
		t.Errorf("memory util %v, want %v", t0.MemoryUtil, want)
	}
	if t0.Invocations != 2 || t0.ColdStarts != 0 || t0.Prewarm != 2 {
		t.Errorf("tick 0 %+v", t0)
	}
}

func TestDeterminismAndClone(t *testing.T) {
	m := newModel(t, nil)
	fn := m.NewFunction("app", "fn", cloud.EUWest, []int64{100_000, 200_000})
	if fn != m.NewFunction("app", "fn", cloud.EUWest, []int64{200_000, 100_000}) {
		t.Error("same (app, func) gave different functions")
	}
	other := newModel(t, func(c *cloud.Config) { c.Seed = 2 }).Profile("app", "fn")
	if other == fn.Profile {
		t.Error("another seed drew the same profile")
	}
	pl := cloud.Placement{Provider: cloud.GCP, Metro: cloud.USWest, Tier: tier(t, 256)}
	reqs := []cloud.Request{{StartUS: 0, DurationUS: 500_000}, {StartUS: 10_000, DurationUS: 500_000}, {StartUS: 20 * sec, DurationUS: 7000}}
	start := cloud.NewPool(pl, 0)
	evaluate(t, m, &fn, start, cloud.Interval{StartUS: 0, EndUS: min1}, nil, reqs)
	a, b := start.Clone(), start.Clone()
	iv := cloud.Interval{StartUS: min1, EndUS: 2 * min1}
	next := []cloud.Request{{StartUS: min1 + sec, DurationUS: 100}, {StartUS: min1 + sec, DurationUS: 100}, {StartUS: min1 + 2*sec, DurationUS: 100}}
	ra := evaluate(t, m, &fn, a, iv, []int{0, 3}, next)
	rb := evaluate(t, m, &fn, b, iv, []int{0, 3}, next)
	if !reflect.DeepEqual(ra, rb) {
		t.Error("same inputs gave different results")
	}
	if start.Now() != min1 || start.Len() != 2 {
		t.Errorf("evaluating clones changed the original: now %d, %d instances", start.Now(), start.Len())
	}
	if a.Now() != 2*min1 || a.Len() != 3 {
		t.Errorf("clone after evaluation: now %d, %d instances; want %d, 3", a.Now(), a.Len(), 2*min1)
	}
	set := cloud.NewPoolSet()
	k := cloud.PoolKey{App: "app", Func: "fn", Placement: pl}
	set.Get(k, 0)
	c := set.Clone()
	evaluate(t, m, &fn, c.Get(k, 0), cloud.Interval{StartUS: 0, EndUS: min1}, nil, reqs)
	if set.Get(k, 0).Len() != 0 || c.Get(k, 0).Len() == 0 {
		t.Error("PoolSet.Clone is not independent")
	}
}

func TestProfileDistributions(t *testing.T) {
	m := newModel(t, nil)
	const n = 20000
	var ws []float64
	var fsum float64
	var rt [cloud.NumRuntimes]int
	for i := range n {
		p := m.Profile("app", string(rune('a'+i%26))+string(rune(i)))
		if p.WorkingSetMB < 16 || p.WorkingSetMB > 2900 || p.CPUBoundFraction <= 0 || p.CPUBoundFraction >= 1 {
			t.Fatalf("profile out of range: %+v", p)
		}
		ws = append(ws, p.WorkingSetMB)
		fsum += p.CPUBoundFraction
		rt[p.Runtime]++
	}
	below := 0
	for _, w := range ws {
		if w < 170 {
			below++
		}
	}
	if f := float64(below) / n; math.Abs(f-0.5) > 0.02 {
		t.Errorf("share of working sets below the 170 MB median = %v, want ≈ 0.5", f)
	}
	if mean := fsum / n; math.Abs(mean-0.4) > 0.01 {
		t.Errorf("mean CPU-bound fraction %v, want ≈ 0.4 (Beta(2,3))", mean)
	}
	if f := float64(rt[cloud.JavaScript]) / n; math.Abs(f-0.4) > 0.02 {
		t.Errorf("JavaScript share %v, want ≈ 0.4", f)
	}
}

func TestSLOAndUserMetro(t *testing.T) {
	m := newModel(t, nil)
	slo := []struct {
		name string
		d    []int64
		want float64
	}{
		{"no durations: floor", nil, 1000 + 100},
		{"short durations: floor", []int64{1000, 2000, 50_000}, 1000 + 100},
		{"p95 × 3", []int64{100_000, 200_000, 400_000, 500_000}, 3*500 + 100},
	}
	for _, tt := range slo {
		if got := m.SLO(tt.d); got != tt.want {
			t.Errorf("%s: SLO %v, want %v", tt.name, got, tt.want)
		}
	}
	users := []struct {
		peakUTC int
		want    cloud.Metro
	}{{19, cloud.USEast}, {22, cloud.USWest}, {14, cloud.EUWest}, {6, cloud.APSoutheast}, {20, cloud.USEast}}
	for _, tt := range users {
		var h [24]float64
		h[tt.peakUTC] = 10
		h[(tt.peakUTC+1)%24] = 5
		if got := m.UserMetro(h); got != tt.want {
			t.Errorf("peak %02d UTC: user metro %s, want %s", tt.peakUTC, got, tt.want)
		}
	}
	if got := cloud.HourOfDayUTC(cloud.DefaultConfig().Epoch, 25*hour+1); got != 1 {
		t.Errorf("hour of day %d, want 1", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*cloud.Config)
	}{
		{"negative keep-alive", func(c *cloud.Config) { c.KeepAliveMin[cloud.GCP] = -1 }},
		{"zero tick", func(c *cloud.Config) { c.TickUS = 0 }},
		{"no instances", func(c *cloud.Config) { c.MaxInstances = 0 }},
		{"runtime mix", func(c *cloud.Config) { c.RuntimeMix[0] = 0.9 }},
		{"NaN SLO floor", func(c *cloud.Config) { c.SLOFloorMS = math.NaN() }},
		{"utilisation above 1", func(c *cloud.Config) { c.CarbonUtilisation = 2 }},
		{"empty carbon column", func(c *cloud.Config) { c.CarbonColumns[cloud.AWS][cloud.USEast] = "" }},
		{"zero reward clip", func(c *cloud.Config) { c.Reward.MaxReward = 0 }},
		{"unknown reference tier", func(c *cloud.Config) { c.ReferenceTier = 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cloud.DefaultConfig()
			tt.edit(&cfg)
			if err := cfg.Validate(); !errors.Is(err, cloud.ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
	def := cloud.DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	cat, _ := cloud.DefaultCatalog()
	cfg := cloud.DefaultConfig()
	cfg.CarbonColumns[cloud.GCP][cloud.USEast] = "no_such_column"
	if _, err := cloud.NewModel(cat, cfg); !errors.Is(err, cloud.ErrUnknownName) {
		t.Errorf("NewModel with an unknown column: %v, want ErrUnknownName", err)
	}
}

func TestEvaluateRejectsBadInput(t *testing.T) {
	m := newModel(t, nil)
	pl := cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 0}
	iv := cloud.Interval{StartUS: min1, EndUS: 2 * min1}
	tests := []struct {
		name    string
		pool    *cloud.Pool
		iv      cloud.Interval
		prewarm []int
		reqs    []cloud.Request
	}{
		{"unordered", cloud.NewPool(pl, 0), iv, nil, []cloud.Request{{StartUS: min1 + 5, DurationUS: 1}, {StartUS: min1 + 4, DurationUS: 1}}},
		{"before interval", cloud.NewPool(pl, 0), iv, nil, []cloud.Request{{StartUS: 5, DurationUS: 1}}},
		{"after interval", cloud.NewPool(pl, 0), iv, nil, []cloud.Request{{StartUS: 2 * min1, DurationUS: 1}}},
		{"negative duration", cloud.NewPool(pl, 0), iv, nil, []cloud.Request{{StartUS: min1, DurationUS: -1}}},
		{"pool in the future", cloud.NewPool(pl, 2*min1), iv, nil, nil},
		{"empty interval", cloud.NewPool(pl, 0), cloud.Interval{StartUS: min1, EndUS: min1}, nil, nil},
		{"negative pre-warm", cloud.NewPool(pl, 0), iv, []int{-1}, nil},
		{"nil pool", nil, iv, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Evaluate(plainFn(), tt.pool, tt.iv, tt.prewarm, tt.reqs); !errors.Is(err, cloud.ErrInvalidInput) {
				t.Errorf("Evaluate() = %v, want ErrInvalidInput", err)
			}
		})
	}
}

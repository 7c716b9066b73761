package dataset

import "slices"

// Group is one of the seed's five feature groups.
type Group string

// The feature groups of seed §2.3, in the order the features are laid out.
const (
	// Temporal features place the invocation in time: hour, weekday,
	// cyclic encodings, the function's age and daily rhythm.
	Temporal Group = "temporal"
	// Workload features describe the function's arrivals: counts, gaps,
	// decayed rates, burstiness.
	Workload Group = "workload"
	// Performance features describe durations, concurrency, cold starts,
	// the SLO and queueing.
	Performance Group = "performance"
	// Cost features price the invocation and keep-warm capacity per
	// provider and memory tier.
	Cost Group = "cost"
	// Carbon features give grid carbon intensity and renewable share.
	Carbon Group = "carbon"
)

// Sources of feature values, as Feature.Source names them (joined with
// " + " when a feature combines several).
const (
	// SrcTrace is the trace itself: app, function, start, end, duration.
	SrcTrace = "trace"
	// SrcEpoch is the trace epoch (ASSUMED: grid.DefaultEpoch; the trace's
	// clock is shifted), which places trace time on the calendar.
	SrcEpoch = "ASSUMED epoch"
	// SrcCatalog is the cloud catalog (cloud/data/catalog.json).
	SrcCatalog = "catalog"
	// SrcCarbon is the hourly 2022 carbon-intensity series
	// (cloud/data/carbon_2022_hourly_by_metro.csv).
	SrcCarbon = "carbon data"
	// SrcRenewable is the hourly 2022 renewable-share series embedded here
	// (experiments/dataset/data/renewable_2022_hourly_by_metro.csv).
	SrcRenewable = "renewable data"
	// SrcAssumed marks a value that depends on an ASSUMED parameter of the
	// cloud model (cloud.Config, docs/cloud-model.md).
	SrcAssumed = "ASSUMED model parameter"
	// SrcDefinition marks a threshold chosen here (docs/dataset.md).
	SrcDefinition = "ASSUMED threshold"
)

// Feature describes one feature column.
type Feature struct {
	// Name is the Parquet column name.
	Name string `json:"name"`
	// Group is the seed's group.
	Group Group `json:"group"`
	// Unit is the unit of the raw value ("1" for a count or ratio, "0/1"
	// for a flag).
	Unit string `json:"unit"`
	// Source says where the value comes from (the Src constants).
	Source string `json:"source"`
	// Proxy marks a feature the trace and the data cannot give: it is
	// computed from the documented stand-in Definition names.
	Proxy bool `json:"proxy"`
	// Definition is the formula, in one sentence.
	Definition string `json:"definition"`
	// NoHistory is the value for a function's first invocation, or how it
	// is computed then.
	NoHistory string `json:"no_history"`
}

// Feature indices, in column order.
const (
	fHour = iota
	fMinute
	fDow
	fWeekend
	fHourSin
	fHourCos
	fWeekSin
	fWeekCos
	fTickOffset
	fFuncAge
	fHourShare
	fSameHourYesterday

	fNPrev
	fIAT
	fRate1m
	fRate15m
	fRate1h
	fIATCV
	fBurstiness
	fBurst

	fDurLast
	fDurEWMA
	fDurP50
	fDurP95
	fInflight
	fColdRef
	fColdRateRef
	fColdStartRef
	fSLO
	fQueueDepth

	fCostAWS
	fCostAzure
	fCostGCP
	fCost128
	fCost3008
	fHourCost
	fKeepWarmAWS
	fKeepWarmAzure
	fKeepWarmGCP

	fCIUSEast
	fCIUSWest
	fCIEUWest
	fCIAPSoutheast
	fCIMin
	fCarbonRef
	fRenewableUser
	fRenewableMax

	// NumFeatures is the number of features.
	NumFeatures
)

const (
	srcTime      = SrcTrace + " + " + SrcEpoch
	srcHist      = SrcTrace
	srcCostModel = SrcTrace + " + " + SrcCatalog + " + " + SrcAssumed
)

// features is the feature table; its order is the column order.
var features = [NumFeatures]Feature{
	fHour:       {"hour_of_day", Temporal, "h", srcTime, false, "UTC hour of day (0-23) of the start under the trace epoch", "uses no history"},
	fMinute:     {"minute_of_hour", Temporal, "min", srcTime, false, "minute of the hour (0-59) of the start", "uses no history"},
	fDow:        {"day_of_week", Temporal, "day", srcTime, false, "weekday of the start under the trace epoch, 0 = Sunday … 6 = Saturday", "uses no history"},
	fWeekend:    {"is_weekend", Temporal, "0/1", srcTime, false, "1 on Saturday and Sunday (UTC), else 0", "uses no history"},
	fHourSin:    {"hour_sin", Temporal, "1", srcTime, false, "sin(2π·s/86400), s = seconds of the UTC day of the start (fractional)", "uses no history"},
	fHourCos:    {"hour_cos", Temporal, "1", srcTime, false, "cos(2π·s/86400)", "uses no history"},
	fWeekSin:    {"week_sin", Temporal, "1", srcTime, false, "sin(2π·(86400·weekday + s)/604800)", "uses no history"},
	fWeekCos:    {"week_cos", Temporal, "1", srcTime, false, "cos(2π·(86400·weekday + s)/604800)", "uses no history"},
	fTickOffset: {"tick_offset_s", Temporal, "s", SrcTrace, false, "seconds since the start of the 15 s operational tick holding the start (start mod 15 s)", "uses no history"},
	fFuncAge:    {"func_age_h", Temporal, "h", srcHist, false, "hours since the function's first start in the trace", "0"},
	fHourShare: {"hour_share", Temporal, "1", srcHist, false,
		"share of the function's earlier invocations that started in the same UTC hour of day", "0"},
	fSameHourYesterday: {"same_hour_yesterday", Temporal, "1", srcHist, false,
		"invocations of the function that started in the trace-time hour (tactical tick) exactly 24 h before the start's", "0 (also on day 1)"},

	fNPrev: {"n_prev", Workload, "1", srcHist, false, "number of the function's earlier invocations", "0"},
	fIAT: {"iat_s", Workload, "s", srcHist, false,
		"seconds since the function's previous start", "seconds since trace time 0: the function has been idle at least that long as far as the trace shows"},
	fRate1m: {"rate_1m", Workload, "1/s", srcHist, false,
		"decayed arrival rate Σ exp(−(t−tᵢ)/τ)/τ over the function's earlier starts tᵢ, τ = 60 s", "0"},
	fRate15m: {"rate_15m", Workload, "1/s", srcHist, false, "the same with τ = 900 s", "0"},
	fRate1h:  {"rate_1h", Workload, "1/s", srcHist, false, "the same with τ = 3600 s", "0"},
	fIATCV: {"iat_cv", Workload, "1", srcHist, false,
		"coefficient of variation σ/μ (population σ) of the function's inter-arrival times up to and including this start", "0 (fewer than 2 gaps)"},
	fBurstiness: {"burstiness", Workload, "1", srcHist, false,
		"Goh–Barabási burstiness (σ−μ)/(σ+μ) of the same inter-arrival times, in [−1, 1]: −1 periodic, 0 Poisson, → 1 bursty", "0 (fewer than 2 gaps)"},
	fBurst: {"burst", Workload, "0/1", SrcTrace + " + " + SrcDefinition, false,
		"1 when rate_1m ≥ 3 × rate_1h and rate_1m ≥ 3/60 per s (a burst: three times the hourly rate, at least 3 a minute), else 0", "0"},

	fDurLast: {"dur_last_ms", Performance, "ms", srcHist, false,
		"duration of the function's invocation that ended last (by end, then row) among those ended by this start", "0 (none ended yet)"},
	fDurEWMA: {"dur_ewma_ms", Performance, "ms", srcHist, false,
		"exponentially weighted mean (α = 0.2, in (end, row) order, started at the first) of the durations of the function's invocations ended by this start", "0 (none ended yet)"},
	fDurP50: {"dur_p50_ms", Performance, "ms", srcHist, false,
		"median (nearest rank) of the durations ended by this start, on a log histogram with 2 % bins (value: the bin's geometric centre; durations under 1 ms: 0)", "0 (none ended yet)"},
	fDurP95: {"dur_p95_ms", Performance, "ms", srcHist, false, "95th percentile, the same way", "0 (none ended yet)"},
	fInflight: {"inflight", Performance, "1", srcHist, false,
		"the function's invocations running at this start: started before it in (start, row) order and ending after the start", "0"},
	fColdRef: {"cold_ref", Performance, "0/1", SrcTrace + " + " + SrcCatalog, false,
		"1 when this invocation finds no warm idle instance at the reference platform (the trace's own, Azure): instances busy for the trace durations, warm for the reference provider's free keep-alive (20 min) after their last end, most recently used first, no pre-warming; else 0", "1"},
	fColdRateRef: {"cold_rate_ref", Performance, "1", SrcTrace + " + " + SrcCatalog, false,
		"share of the function's earlier invocations with cold_ref = 1", "1 (no instance exists before a function's first invocation)"},
	fColdStartRef: {"cold_start_ms_ref", Performance, "ms", SrcCatalog + " + " + SrcAssumed, false,
		"the catalog's median cold-start latency at the reference provider (Azure) for the function's runtime, which the cloud model draws from hash(app, func) (ASSUMED runtime mix)", "uses no history"},
	fSLO: {"slo_ms", Performance, "ms", SrcTrace + " + " + SrcAssumed, false,
		"the cloud model's SLO formula on the durations ended by this start: max(1000 ms, 3 × dur_p95_ms) + 100 ms (ASSUMED floor, multiplier, allowance)", "1100 (the floor plus the allowance)"},
	fQueueDepth: {"queue_depth", Performance, "1", SrcTrace + " + " + SrcAssumed, true,
		"PROXY: the trace records no queueing; this is the queue the cloud model would form at the reference platform, max(0, inflight − MaxInstances) with MaxInstances = 1000 per pool (ASSUMED), so it is 0 unless a function runs more than 1000 at once", "0"},

	fCostAWS: {"cost_aws_usd", Cost, "USD", srcCostModel, false,
		"the model's price of one invocation at AWS, 1024 MB, in the app's user metro, for the expected execution: dur_ewma_ms scaled from the reference CPU share by the function's CPU-bound fraction (ASSUMED draw)", "the price of a 0 ms execution: the request price plus the provider's minimum billed duration, if any"},
	fCostAzure: {"cost_azure_usd", Cost, "USD", srcCostModel, false, "the same at Azure", "as cost_aws_usd"},
	fCostGCP:   {"cost_gcp_usd", Cost, "USD", srcCostModel, false, "the same at GCP (1st gen unless the model says 2nd)", "as cost_aws_usd"},
	fCost128: {"cost_128mb_min_usd", Cost, "USD", srcCostModel, false,
		"the cheapest provider's price of the same execution at 128 MB (its execution time scaled to that tier's CPU share), a memory cost factor", "as cost_aws_usd"},
	fCost3008: {"cost_3008mb_min_usd", Cost, "USD", srcCostModel, false, "the same at 3008 MB", "as cost_aws_usd"},
	fHourCost: {"hour_cost_min_usd", Cost, "USD", srcCostModel, false,
		"expected spend of the function over the next hour at its current rate at the cheapest provider: rate_1h × 3600 × min(cost_aws_usd, cost_azure_usd, cost_gcp_usd)", "0"},
	fKeepWarmAWS: {"keepwarm_aws_usd_h", Cost, "USD/h", SrcCatalog + " + " + SrcTrace, false,
		"the catalog's price of keeping one idle 1024 MB instance warm for an hour at AWS (provisioned concurrency) in the app's user metro", "at us-east (the user metro with no traffic)"},
	fKeepWarmAzure: {"keepwarm_azure_usd_h", Cost, "USD/h", SrcCatalog + " + " + SrcTrace, false, "the same at Azure (Flex always-ready)", "at us-east"},
	fKeepWarmGCP:   {"keepwarm_gcp_usd_h", Cost, "USD/h", SrcCatalog + " + " + SrcTrace, false, "the same at GCP (minimum instances)", "at us-east"},

	fCIUSEast:      {"ci_us_east", Carbon, "gCO2e/kWh", SrcCarbon + " + " + SrcEpoch, false, "grid carbon intensity of the start's hour at Azure's region in us-east (PJM, the zone of AWS's region too) by the cloud model's carbon mode (hourly life-cycle by default; the region's static factor in static mode)", "uses no history"},
	fCIUSWest:      {"ci_us_west", Carbon, "gCO2e/kWh", SrcCarbon + " + " + SrcEpoch, false, "the same in us-west (BPAT)", "uses no history"},
	fCIEUWest:      {"ci_eu_west", Carbon, "gCO2e/kWh", SrcCarbon + " + " + SrcEpoch, false, "the same in eu-west (Ireland)", "uses no history"},
	fCIAPSoutheast: {"ci_ap_southeast", Carbon, "gCO2e/kWh", SrcCarbon + " + " + SrcEpoch, false, "the same in ap-southeast (Singapore)", "uses no history"},
	fCIMin: {"ci_min", Carbon, "gCO2e/kWh", SrcCarbon + " + " + SrcEpoch, false,
		"the lowest intensity of the start's hour over the 12 provider regions (GCP's eu-west region is in Belgium)", "uses no history"},
	fCarbonRef: {"carbon_ref_g", Carbon, "gCO2e", SrcTrace + " + " + SrcCatalog + " + " + SrcCarbon + " + " + SrcAssumed, false,
		"the model's emissions (CCF energy × PUE × intensity of the hour) of the expected execution (dur_ewma_ms) at the reference platform (Azure, 1024 MB) in the app's user metro, at the function's CPU-bound fraction as utilisation (ASSUMED draw)", "0 (no expected execution yet)"},
	fRenewableUser: {"renewable_user_pct", Carbon, "%", SrcRenewable + " + " + SrcEpoch + " + " + SrcTrace, false,
		"renewable share of the grid in the app's user metro in the start's hour (the zone of the AWS/Azure region: PJM, BPAT, Ireland, Singapore)", "at us-east"},
	fRenewableMax: {"renewable_max_pct", Carbon, "%", SrcRenewable + " + " + SrcEpoch, false,
		"the highest renewable share of the start's hour over the five zones of the 12 regions (PJM, BPAT, Ireland, Belgium, Singapore)", "uses no history"},
}

// Features returns the feature table in column order.
func Features() []Feature { return slices.Clone(features[:]) }

// GroupSizes returns how many features each group holds, in group order.
func GroupSizes() []GroupSize {
	var out []GroupSize
	for _, f := range features {
		if len(out) == 0 || out[len(out)-1].Group != f.Group {
			out = append(out, GroupSize{Group: f.Group})
		}
		out[len(out)-1].Features++
	}
	return out
}

// GroupSize is the number of features of one group.
type GroupSize struct {
	// Group is the group.
	Group Group `json:"group"`
	// Features is its number of features.
	Features int `json:"features"`
}

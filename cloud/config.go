package cloud

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-rl/strata/schemas/grid"
)

// Config names every assumption of the model. Start from DefaultConfig and
// change fields; NewModel validates the result. docs/cloud-model.md lists
// each field with its default, source and effect.
type Config struct {
	// Seed is mixed into the hash of (app, func) that draws each function's
	// hidden Profile. Default 1.
	Seed uint64
	// Epoch is the wall-clock instant of trace time 0; it places invocations
	// in the hourly carbon series and in the day for the user-metro rule.
	// Default grid.DefaultEpoch (2022-01-30T00:00Z).
	Epoch time.Time
	// TickUS is the operational tick in microseconds: pre-warm counts and
	// telemetry are per tick. Default grid.OperationalTickUS (15 s).
	TickUS int64

	// ReferenceProvider and ReferenceTier name the configuration at which
	// the trace's durations are ASSUMED to have been measured: Azure (the
	// trace's platform) at 1024 MB, i.e. a CPU share of 0.6667 vCPU by the
	// catalog's Azure table. Execution time elsewhere scales from it.
	ReferenceProvider Provider
	ReferenceTier     Tier
	// MaxUsableVCPU caps the CPU share a function can use (ASSUMED 1.0:
	// functions are single-threaded, so shares above one vCPU do not speed
	// them up further).
	MaxUsableVCPU float64

	// KeepAliveMin is the free keep-alive per provider in minutes: an idle
	// instance expires this long after its last execution ends. Default AWS
	// 10 (S-WILD; docs/baselines.md#keepalive), Azure 20 (S-WILD), GCP 15 (S-SHILKOV),
	// the catalog's values.
	KeepAliveMin [NumProviders]float64
	// MaxInstances is the most instances one pool may hold (ASSUMED 1000,
	// AWS's default account concurrency). An invocation that finds no idle
	// instance starts a new one (cold) unless the pool is at this limit; then
	// it queues, first come first served, for the instance that frees first.
	MaxInstances int
	// BillColdStart bills the cold-start (init) time as duration (ASSUMED
	// false: in 2021 no provider billed the init phase of managed runtimes).
	BillColdStart bool
	// WarmStartOverhead adds the provider's median warm-start overhead
	// (S-ATC18, 2018: AWS 25 ms, GCP 79 ms, Azure 320 ms) to every
	// invocation's latency. Default false (a 2018 secondary quote).
	WarmStartOverhead bool
	// AWSPCDurationPrice bills executions served by provisioned concurrency
	// at AWS's reduced PC duration price (S-AWS-PC). Default true.
	AWSPCDurationPrice bool
	// GCPGen2 prices GCP as Cloud Run functions (2nd gen: vCPU-seconds +
	// GiB-seconds, gen2 idle prices) instead of 1st gen (GB-seconds +
	// GHz-seconds). Default false (1st gen, the 2021 product).
	GCPGen2 bool

	// CarbonMode selects hourly LCA (default), hourly direct or static
	// per-region grid intensity.
	CarbonMode CarbonMode
	// CarbonColumns names the carbon CSV column for each provider's region
	// in each metro. Default DefaultCarbonColumns(CarbonMode). Ignored for
	// CarbonStatic.
	CarbonColumns [NumProviders][NumMetros]string
	// CarbonUtilisationFromProfile sets the CPU utilisation u in the CCF
	// power formula to the function's CPU-bound fraction while it executes
	// (default true). When false, CarbonUtilisation is used.
	CarbonUtilisationFromProfile bool
	// CarbonUtilisation is the fixed utilisation used when
	// CarbonUtilisationFromProfile is false. Default 0.5 (CCF average).
	CarbonUtilisation float64
	// CarbonPrewarm charges pre-warmed instances' idle time (u = 0, memory
	// term included) to the function. Default true. Idle time kept by the
	// free keep-alive is never charged (the provider's choice, not billed).
	CarbonPrewarm bool

	// SLOFloorMS, SLOMultiplier, SLOPercentile and SLONetworkAllowanceMS
	// define the default SLO of a function:
	//   SLO = max(SLOFloorMS, SLOMultiplier × p(SLOPercentile) of its
	//         training-day durations) + SLONetworkAllowanceMS.
	// Defaults (ASSUMED): 1000 ms, 3, 0.95, 100 ms.
	SLOFloorMS, SLOMultiplier, SLOPercentile, SLONetworkAllowanceMS float64

	// UserPeakLocalHour is the local hour of day at which an app's users are
	// ASSUMED to be busiest (default 14, early afternoon). The user metro is
	// the metro whose local time puts the app's UTC peak hour closest to it.
	UserPeakLocalHour float64
	// MetroUTCOffsetH is each metro's UTC offset in hours during the trace
	// (late January/February: US eastern −5, US Pacific −8, Ireland 0,
	// Singapore +8).
	MetroUTCOffsetH [NumMetros]float64

	// WorkingSetMedianMB and WorkingSetSigma define the lognormal
	// distribution of a function's working-set memory (ASSUMED: median
	// 170 MB, 90th percentile 400 MB, after the memory figures reported for
	// the Azure 2019 trace in Serverless in the Wild; not verified offline).
	// Draws are clamped to [WorkingSetMinMB, WorkingSetMaxMB].
	WorkingSetMedianMB, WorkingSetSigma float64
	// WorkingSetMinMB and WorkingSetMaxMB clamp working-set draws (ASSUMED
	// 16 and 2900 MB, so that the largest tier always fits).
	WorkingSetMinMB, WorkingSetMaxMB float64
	// CPUBoundAlpha and CPUBoundBeta are the integer parameters of the Beta
	// distribution of the CPU-bound fraction (ASSUMED Beta(2, 3), mean 0.4).
	CPUBoundAlpha, CPUBoundBeta int
	// RuntimeMix is the probability of each Runtime (ASSUMED: JavaScript
	// 0.40, Python 0.30, .NET 0.15, Java 0.10, Go 0.05). It must sum to 1.
	RuntimeMix [NumRuntimes]float64

	// Reward holds the reward's weights, penalty and clipping bounds.
	Reward RewardConfig
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Seed:                         1,
		Epoch:                        grid.DefaultEpoch,
		TickUS:                       grid.OperationalTickUS,
		ReferenceProvider:            Azure,
		ReferenceTier:                3, // 1024 MB
		MaxUsableVCPU:                1.0,
		KeepAliveMin:                 [NumProviders]float64{AWS: 10, Azure: 20, GCP: 15},
		MaxInstances:                 1000,
		BillColdStart:                false,
		WarmStartOverhead:            false,
		AWSPCDurationPrice:           true,
		GCPGen2:                      false,
		CarbonMode:                   CarbonHourlyLCA,
		CarbonColumns:                DefaultCarbonColumns(CarbonHourlyLCA),
		CarbonUtilisationFromProfile: true,
		CarbonUtilisation:            0.5,
		CarbonPrewarm:                true,
		SLOFloorMS:                   1000,
		SLOMultiplier:                3,
		SLOPercentile:                0.95,
		SLONetworkAllowanceMS:        100,
		UserPeakLocalHour:            14,
		MetroUTCOffsetH:              [NumMetros]float64{USEast: -5, USWest: -8, EUWest: 0, APSoutheast: 8},
		WorkingSetMedianMB:           170,
		WorkingSetSigma:              0.668,
		WorkingSetMinMB:              16,
		WorkingSetMaxMB:              2900,
		CPUBoundAlpha:                2,
		CPUBoundBeta:                 3,
		RuntimeMix:                   [NumRuntimes]float64{JavaScript: 0.40, Python: 0.30, DotNet: 0.15, Java: 0.10, Go: 0.05},
		Reward:                       DefaultRewardConfig(),
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Validate reports every invalid field; each error wraps ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...))
	}
	if c.Epoch.IsZero() {
		bad("Epoch is unset")
	}
	if c.TickUS <= 0 {
		bad("TickUS %d is not positive", c.TickUS)
	}
	if int(c.ReferenceProvider) >= NumProviders {
		bad("ReferenceProvider %d is unknown", c.ReferenceProvider)
	}
	if int(c.ReferenceTier) >= NumTiers {
		bad("ReferenceTier %d is unknown", c.ReferenceTier)
	}
	if !finite(c.MaxUsableVCPU) || c.MaxUsableVCPU <= 0 {
		bad("MaxUsableVCPU %v is not positive", c.MaxUsableVCPU)
	}
	for p, k := range c.KeepAliveMin {
		if !finite(k) || k < 0 {
			bad("KeepAliveMin[%s] %v is negative or not finite", Provider(p), k)
		}
	}
	if c.MaxInstances < 1 {
		bad("MaxInstances %d is below 1", c.MaxInstances)
	}
	if c.CarbonMode > CarbonStatic {
		bad("CarbonMode %d is unknown", c.CarbonMode)
	}
	if c.CarbonMode != CarbonStatic {
		for p := range Provider(NumProviders) {
			for m := range Metro(NumMetros) {
				if c.CarbonColumns[p][m] == "" {
					bad("CarbonColumns[%s][%s] is empty", p, m)
				}
			}
		}
	}
	if !finite(c.CarbonUtilisation) || c.CarbonUtilisation < 0 || c.CarbonUtilisation > 1 {
		bad("CarbonUtilisation %v is outside [0, 1]", c.CarbonUtilisation)
	}
	if !finite(c.SLOFloorMS) || c.SLOFloorMS <= 0 {
		bad("SLOFloorMS %v is not positive", c.SLOFloorMS)
	}
	if !finite(c.SLOMultiplier) || c.SLOMultiplier <= 0 {
		bad("SLOMultiplier %v is not positive", c.SLOMultiplier)
	}
	if !finite(c.SLOPercentile) || c.SLOPercentile <= 0 || c.SLOPercentile > 1 {
		bad("SLOPercentile %v is outside (0, 1]", c.SLOPercentile)
	}
	if !finite(c.SLONetworkAllowanceMS) || c.SLONetworkAllowanceMS < 0 {
		bad("SLONetworkAllowanceMS %v is negative", c.SLONetworkAllowanceMS)
	}
	if !finite(c.UserPeakLocalHour) || c.UserPeakLocalHour < 0 || c.UserPeakLocalHour >= 24 {
		bad("UserPeakLocalHour %v is outside [0, 24)", c.UserPeakLocalHour)
	}
	for m, o := range c.MetroUTCOffsetH {
		if !finite(o) || o < -12 || o > 14 {
			bad("MetroUTCOffsetH[%s] %v is outside [-12, 14]", Metro(m), o)
		}
	}
	if !finite(c.WorkingSetMedianMB) || c.WorkingSetMedianMB <= 0 {
		bad("WorkingSetMedianMB %v is not positive", c.WorkingSetMedianMB)
	}
	if !finite(c.WorkingSetSigma) || c.WorkingSetSigma < 0 {
		bad("WorkingSetSigma %v is negative", c.WorkingSetSigma)
	}
	if !finite(c.WorkingSetMinMB) || !finite(c.WorkingSetMaxMB) || c.WorkingSetMinMB < 1 || c.WorkingSetMaxMB < c.WorkingSetMinMB {
		bad("working-set clamp [%v, %v] MB is empty or below 1 MB", c.WorkingSetMinMB, c.WorkingSetMaxMB)
	}
	if c.CPUBoundAlpha < 1 || c.CPUBoundBeta < 1 || c.CPUBoundAlpha+c.CPUBoundBeta > 64 {
		bad("CPU-bound Beta(%d, %d) needs integer parameters ≥ 1 summing to at most 64", c.CPUBoundAlpha, c.CPUBoundBeta)
	}
	sum := 0.0
	for r, w := range c.RuntimeMix {
		if !finite(w) || w < 0 {
			bad("RuntimeMix[%s] %v is negative", Runtime(r), w)
		}
		sum += w
	}
	if math.Abs(sum-1) > 1e-9 {
		bad("RuntimeMix sums to %v, want 1", sum)
	}
	if err := c.Reward.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

package cloud

import (
	"math"
	"slices"
	"time"
)

// Profile holds the properties of a function that the trace does not give.
// They are drawn by Model.Profile from the ASSUMED distributions named in
// Config, or set by the caller (e.g. for a sensitivity study).
type Profile struct {
	// WorkingSetMB is the memory the function needs; a memory tier below it
	// makes every invocation fail (out of memory).
	WorkingSetMB float64
	// CPUBoundFraction is the share of the reference duration that scales
	// with CPU share; the rest (I/O, waiting) does not.
	CPUBoundFraction float64
	// Runtime sets the cold-start latency.
	Runtime Runtime
}

// rng is a splitmix64 stream: tiny, fast and fully determined by its seed.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform draw in (0, 1).
func (r *rng) float() float64 { return (float64(r.next()>>11) + 0.5) / (1 << 53) }

// fnv64 hashes strings with FNV-1a, separating them by a zero byte.
func fnv64(seed uint64, parts ...string) uint64 {
	h := uint64(14695981039346656037) ^ seed
	h *= 1099511628211
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h *= 1099511628211 // the zero separator
	}
	return h
}

// Profile draws the hidden properties of function fn of app, deterministically
// from hash(app, fn) and Config.Seed:
//   - WorkingSetMB ~ LogNormal(ln WorkingSetMedianMB, WorkingSetSigma),
//     clamped to [WorkingSetMinMB, WorkingSetMaxMB];
//   - CPUBoundFraction ~ Beta(CPUBoundAlpha, CPUBoundBeta), drawn as the
//     α-th smallest of α+β−1 uniforms;
//   - Runtime ~ Categorical(RuntimeMix).
func (m *Model) Profile(app, fn string) Profile {
	c := &m.cfg
	r := rng{s: fnv64(c.Seed, app, fn)}
	// Box–Muller normal.
	u1, u2 := r.float(), r.float()
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	ws := math.Exp(math.Log(c.WorkingSetMedianMB) + c.WorkingSetSigma*z)
	ws = min(max(ws, c.WorkingSetMinMB), c.WorkingSetMaxMB)
	n := c.CPUBoundAlpha + c.CPUBoundBeta - 1
	var us [64]float64
	for i := range n {
		us[i] = r.float()
	}
	slices.Sort(us[:n])
	f := us[c.CPUBoundAlpha-1]
	u := r.float()
	rt := Runtime(NumRuntimes - 1)
	acc := 0.0
	for i, w := range c.RuntimeMix {
		acc += w
		if u < acc {
			rt = Runtime(i)
			break
		}
	}
	return Profile{WorkingSetMB: ws, CPUBoundFraction: f, Runtime: rt}
}

// Function is what the model needs to know about one function to evaluate
// its invocations.
type Function struct {
	// App and Func identify the function.
	App, Func string
	// Profile holds its hidden properties.
	Profile Profile
	// UserMetro is where its users are.
	UserMetro Metro
	// SLOMS is its latency objective in ms.
	SLOMS float64
}

// NewFunction returns the Function for (app, fn) with its drawn Profile, the
// given user metro and the default SLO computed from its training-day
// durations (microseconds, any order). See Model.SLO.
func (m *Model) NewFunction(app, fn string, user Metro, trainingDurationsUS []int64) Function {
	return Function{App: app, Func: fn, Profile: m.Profile(app, fn), UserMetro: user, SLOMS: m.SLO(trainingDurationsUS)}
}

// SLO returns the default latency objective in ms of a function whose
// training-day durations (microseconds) are given:
//
//	SLO = max(SLOFloorMS, SLOMultiplier × p(SLOPercentile)) + SLONetworkAllowanceMS
//
// with the nearest-rank percentile. Without durations the floor applies.
func (m *Model) SLO(durationsUS []int64) float64 {
	c := &m.cfg
	p := 0.0
	if n := len(durationsUS); n > 0 {
		d := slices.Clone(durationsUS)
		slices.Sort(d)
		k := int(math.Ceil(c.SLOPercentile*float64(n))) - 1
		k = min(max(k, 0), n-1)
		p = float64(d[k]) / 1000
	}
	return max(c.SLOFloorMS, c.SLOMultiplier*p) + c.SLONetworkAllowanceMS
}

// HourOfDayUTC returns the UTC hour of day (0–23) of trace time traceUS
// (microseconds) under epoch.
func HourOfDayUTC(epoch time.Time, traceUS int64) int {
	return epoch.Add(time.Duration(traceUS) * time.Microsecond).UTC().Hour()
}

// UserMetro infers an app's user metro from its traffic by UTC hour of day
// (hourCounts[h] = invocations starting in UTC hour h, e.g. counted with
// HourOfDayUTC under Config.Epoch). The rule: take the peak hour (the
// lowest hour on ties), convert it to each metro's local time with
// MetroUTCOffsetH, and pick the metro where it falls closest (circularly)
// to UserPeakLocalHour; ties go to the lower Metro. An app with no traffic
// gets USEast.
func (m *Model) UserMetro(hourCounts [24]float64) Metro {
	peak, best := -1, -1.0
	for h, v := range hourCounts {
		if v > best {
			peak, best = h, v
		}
	}
	if best <= 0 {
		return USEast
	}
	out, dist := USEast, math.Inf(1)
	for mt := range Metro(NumMetros) {
		local := math.Mod(float64(peak)+0.5+m.cfg.MetroUTCOffsetH[mt]+48, 24)
		d := math.Abs(local - (m.cfg.UserPeakLocalHour + 0.5))
		d = min(d, 24-d)
		if d < dist-1e-9 {
			out, dist = mt, d
		}
	}
	return out
}

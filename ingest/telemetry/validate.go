package telemetry

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Limits on one record.
const (
	// maxNameBytes bounds app and func.
	maxNameBytes = 256
	// maxIDBytes bounds invocation_id.
	maxIDBytes = 128
	// maxRawBytes bounds RecordError.Raw (the dead letter's payload limit).
	maxRawBytes = 64 << 10
	// sourceLive is the Observation.Source of every decoded record.
	sourceLive = "live"
)

// field identifies one value of a record, in the order of the JSON schema.
// Both decoders fill a draft indexed by field and share its validation.
type field int8

// The fields of a record. fieldNone marks an error about the record as a
// whole.
const (
	fieldNone field = iota - 1
	fID
	fApp
	fFunc
	fEnd
	fDuration
	fStart
	fProvider
	fRegion
	fMemory
	fLatency
	fCPUBusy
	fQueueWait
	fMemoryUsed
	fColdStart
	fWarm
	fTotal
	fCost
	fCarbon
	fFailed
	numFields
)

// kind is the JSON type a field takes.
type kind uint8

const (
	kString kind = iota
	kInt
	kFloat
	kBool
)

// jsonNames are the JSON field names, indexed by field (a constant table).
var jsonNames = [numFields]string{
	fID: "invocation_id", fApp: "app", fFunc: "func", fEnd: "end_us", fDuration: "duration_us",
	fStart: "start_us", fProvider: "provider", fRegion: "region", fMemory: "memory_mb",
	fLatency: "latency_ms", fCPUBusy: "cpu_busy_ms", fQueueWait: "queue_wait_ms",
	fMemoryUsed: "memory_used_mb", fColdStart: "cold_start", fWarm: "warm_instances",
	fTotal: "total_instances", fCost: "cost_usd", fCarbon: "carbon_g", fFailed: "failed",
}

// kinds are the fields' JSON types, indexed by field (a constant table).
var kinds = [numFields]kind{
	fID: kString, fApp: kString, fFunc: kString, fEnd: kInt, fDuration: kInt, fStart: kInt,
	fProvider: kString, fRegion: kString, fMemory: kInt, fLatency: kFloat, fCPUBusy: kFloat,
	fQueueWait: kFloat, fMemoryUsed: kFloat, fColdStart: kBool, fWarm: kInt, fTotal: kInt,
	fCost: kFloat, fCarbon: kFloat, fFailed: kBool,
}

// required reports whether a record must carry f.
func required(f field) bool {
	return f == fApp || f == fFunc || f == fEnd || f == fDuration
}

// floatFields are the optional float fields, in the JSON schema's order.
var floatFields = [...]field{fLatency, fCPUBusy, fQueueWait, fMemoryUsed, fCost, fCarbon}

// draft is one record's values before validation, whichever encoding they
// came from. A field is present when its bit is set in has; absent fields
// are "not observed".
type draft struct {
	has uint32
	str [numFields]string
	num [numFields]int64
	flt [numFields]float64
	bln [numFields]bool
}

func (d *draft) present(f field) bool { return d.has&(1<<uint(f)) != 0 }
func (d *draft) mark(f field)         { d.has |= 1 << uint(f) }

// badField is a validation failure: the field at fault (fieldNone for the
// record as a whole) and why.
type badField struct {
	f field
	// name overrides the field's name (unknown fields, OTLP attributes).
	name   string
	reason string
}

// obsBlock holds an Observation, its Arrival and the values its optional
// fields point to in one allocation.
type obsBlock struct {
	obs      stratapb.Observation
	arr      stratapb.Arrival
	provider string
	region   string
	ints     [3]int32 // memory_mb, warm_instances, total_instances
	flts     [len(floatFields)]float64
	cold     bool
	failed   bool
}

// observation validates d and builds its Observation. cat resolves region
// ids to metros.
func (d *draft) observation(cat *cloud.Catalog) (*stratapb.Observation, *badField) {
	for _, f := range [...]field{fApp, fFunc, fEnd, fDuration} {
		if !d.present(f) {
			return nil, &badField{f: f, reason: "required field is missing"}
		}
	}
	for _, f := range [...]field{fApp, fFunc} {
		if bad := checkString(f, d.str[f], maxNameBytes, false); bad != nil {
			return nil, bad
		}
	}
	end, dur := d.num[fEnd], d.num[fDuration]
	if end <= 0 {
		return nil, &badField{f: fEnd, reason: fmt.Sprintf("is %d: want a positive time in Unix microseconds", end)}
	}
	if dur < 0 {
		return nil, &badField{f: fDuration, reason: fmt.Sprintf("is %d: want ≥ 0", dur)}
	}
	if dur > end {
		return nil, &badField{f: fDuration, reason: fmt.Sprintf("is %d, more than end_us %d: the start would be negative", dur, end)}
	}
	if d.present(fStart) && d.num[fStart] != end-dur {
		return nil, &badField{f: fStart, reason: fmt.Sprintf("is %d: want end_us − duration_us = %d", d.num[fStart], end-dur)}
	}
	id := d.str[fID]
	if id != "" {
		if bad := checkString(fID, id, maxIDBytes, true); bad != nil {
			return nil, bad
		}
	} else {
		id = InvocationID(d.str[fApp], d.str[fFunc], end, dur)
	}

	b := new(obsBlock)
	o, a := &b.obs, &b.arr
	a.InvocationId, a.App, a.Func = id, d.str[fApp], d.str[fFunc]
	a.StartUs, a.EndUs, a.DurationUs = end-dur, end, dur
	o.Arrival, o.Source = a, sourceLive

	provider := -1
	if d.present(fProvider) {
		p, err := cloud.ParseProvider(d.str[fProvider])
		if err != nil {
			return nil, &badField{f: fProvider, reason: fmt.Sprintf("is %s: want aws, azure or gcp", quote(d.str[fProvider]))}
		}
		provider = int(p)
		b.provider = p.String()
		o.Provider = &b.provider
	}
	if d.present(fRegion) {
		m, ok := resolveRegion(cat, provider, d.str[fRegion])
		if !ok {
			return nil, &badField{f: fRegion, reason: regionReason(cat, provider, d.str[fRegion])}
		}
		b.region = m.String()
		o.Region = &b.region
	}
	for i, f := range [...]field{fMemory, fWarm, fTotal} {
		if !d.present(f) {
			continue
		}
		v, low := d.num[f], int64(0)
		if f == fMemory {
			low = 1
		}
		if v < low || v > math.MaxInt32 {
			return nil, &badField{f: f, reason: fmt.Sprintf("is %d: want %d to %d", v, low, math.MaxInt32)}
		}
		b.ints[i] = int32(v)
	}
	if d.present(fMemory) {
		o.MemoryMb = &b.ints[0]
	}
	if d.present(fWarm) {
		o.WarmInstances = &b.ints[1]
	}
	if d.present(fTotal) {
		o.TotalInstances = &b.ints[2]
	}
	dst := [len(floatFields)]**float64{&o.LatencyMs, &o.CpuBusyMs, &o.QueueWaitMs, &o.MemoryUsedMb, &o.CostUsd, &o.CarbonG}
	for i, f := range floatFields {
		if !d.present(f) {
			continue
		}
		v := d.flt[f]
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, &badField{f: f, reason: fmt.Sprintf("is %v: want a finite number ≥ 0", v)}
		}
		b.flts[i] = v + 0 // turns -0 into +0
		*dst[i] = &b.flts[i]
	}
	if d.present(fColdStart) {
		b.cold = d.bln[fColdStart]
		o.ColdStart = &b.cold
	}
	if d.present(fFailed) {
		b.failed = d.bln[fFailed]
		o.Failed = &b.failed
	}
	if err := schemas.CheckObservation(o); err != nil {
		return nil, &badField{f: fieldNone, reason: "rejected by the feature consumer's checks: " + err.Error()}
	}
	return o, nil
}

// checkString checks a string field's length and encoding; empty is allowed
// only when emptyOK.
func checkString(f field, s string, limit int, emptyOK bool) *badField {
	switch {
	case s == "" && !emptyOK:
		return &badField{f: f, reason: "is empty"}
	case len(s) > limit:
		return &badField{f: f, reason: fmt.Sprintf("is %d bytes long: want at most %d", len(s), limit)}
	case !utf8.ValidString(s):
		return &badField{f: f, reason: "is not valid UTF-8"}
	}
	return nil
}

// resolveRegion maps a metro name, or a catalog region id of provider (of
// any provider when provider < 0), to its metro.
func resolveRegion(cat *cloud.Catalog, provider int, s string) (cloud.Metro, bool) {
	for m := range cloud.Metro(cloud.NumMetros) {
		if m.String() == s {
			return m, true
		}
	}
	for p := range cloud.Provider(cloud.NumProviders) {
		if provider >= 0 && int(p) != provider {
			continue
		}
		for m := range cloud.Metro(cloud.NumMetros) {
			if cat.Regions[p][m].Name == s {
				return m, true
			}
		}
	}
	return 0, false
}

// regionReason says why s is not a region, listing what would be.
func regionReason(cat *cloud.Catalog, provider int, s string) string {
	ids := ""
	for p := range cloud.Provider(cloud.NumProviders) {
		if provider >= 0 && int(p) != provider {
			continue
		}
		for m := range cloud.Metro(cloud.NumMetros) {
			if ids != "" {
				ids += ", "
			}
			ids += cat.Regions[p][m].Name
		}
	}
	of := "any provider"
	if provider >= 0 {
		of = cloud.Provider(provider).String()
	}
	return fmt.Sprintf("is %s: want a metro (us-east, us-west, eu-west, ap-southeast) or a region id of %s (%s)", quote(s), of, ids)
}

// canonical returns the constant spelling of a provider, metro or catalog
// region name equal to b, so that decoding the common values allocates
// nothing; any other value is copied.
func canonical(cat *cloud.Catalog, b []byte) string {
	for p := range cloud.Provider(cloud.NumProviders) {
		if string(b) == p.String() {
			return p.String()
		}
		for m := range cloud.Metro(cloud.NumMetros) {
			if string(b) == cat.Regions[p][m].Name {
				return cat.Regions[p][m].Name
			}
		}
	}
	for m := range cloud.Metro(cloud.NumMetros) {
		if string(b) == m.String() {
			return m.String()
		}
	}
	return string(b)
}

// quote quotes s for a reason, cut to 64 bytes.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// truncRaw copies at most maxRawBytes of b for RecordError.Raw, so that the
// error does not keep the request's buffer alive.
func truncRaw(b []byte) []byte {
	if len(b) > maxRawBytes {
		b = b[:maxRawBytes]
	}
	return append([]byte(nil), b...)
}

// accept appends a valid record to r. left is the number of records from
// this one on, at most: the first observation makes room for all of them,
// so that a request of many records allocates the slices once.
func (r *Result) accept(index int, o *stratapb.Observation, left int) {
	r.Total++
	if r.Observations == nil {
		r.Observations = make([]*stratapb.Observation, 0, max(left, 1))
		r.Index = make([]int, 0, max(left, 1))
	}
	r.Observations = append(r.Observations, o)
	r.Index = append(r.Index, index)
}

// reject appends a rejected record to r. names maps bad's field to the
// encoding's name for it; raw is copied and truncated; left is as for
// accept.
func (r *Result) reject(index, line int, bad *badField, names *[numFields]string, raw []byte, left int) {
	r.rejectOwned(index, line, bad, names, truncRaw(raw), left)
}

// rejectOwned is reject for a raw of at most maxRawBytes that r may keep.
func (r *Result) rejectOwned(index, line int, bad *badField, names *[numFields]string, raw []byte, left int) {
	r.Total++
	e := RecordError{Index: index, Line: line, Field: bad.name, Reason: bad.reason, Raw: raw}
	if e.Field == "" && bad.f != fieldNone {
		e.Field = names[bad.f]
	}
	if r.Errors == nil {
		r.Errors = make([]RecordError, 0, max(left, 1))
	}
	r.Errors = append(r.Errors, e)
}

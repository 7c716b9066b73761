package telemetry

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/strata-rl/strata/cloud"
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
// are "not observed". validate checks the values and completes them (the
// start, the invocation id when none was given, the canonical provider and
// metro); appendObservation then encodes them.
type draft struct {
	has uint32
	str [numFields]string
	// raw holds the values of app, func and invocation_id that a JSON
	// body carries without escapes: views of the body, which the encoding
	// copies once (str would copy each of them once more), and valid
	// UTF-8 (setJSON checked). A field's value is raw[f] when that is not
	// nil, else str[f].
	raw [fFunc + 1][]byte
	num [numFields]int64
	flt [numFields]float64
	bln [numFields]bool
	// id holds a derived invocation id, in its first idLen bytes, when
	// the record came with none: 48 hex digits of an OTLP span's trace and
	// span ids, or InvocationID's 32.
	id    [48]byte
	idLen int
}

func (d *draft) present(f field) bool { return d.has&(1<<uint(f)) != 0 }
func (d *draft) mark(f field)         { d.has |= 1 << uint(f) }

// rawOf returns raw[f], or nil for the fields raw does not hold.
func (d *draft) rawOf(f field) []byte {
	if uint(f) < uint(len(d.raw)) {
		return d.raw[f]
	}
	return nil
}

// textLen is the length in bytes of string field f.
func (d *draft) textLen(f field) int {
	if r := d.rawOf(f); r != nil {
		return len(r)
	}
	return len(d.str[f])
}

// appendText appends string field f's value to b.
func (d *draft) appendText(b []byte, f field) []byte {
	if r := d.rawOf(f); r != nil {
		return append(b, r...)
	}
	return append(b, d.str[f]...)
}

// badField is a validation failure: the field at fault (fieldNone for the
// record as a whole) and why.
type badField struct {
	f field
	// name overrides the field's name (unknown fields, OTLP attributes).
	name   string
	reason string
}

// validate checks d as a record and completes it for appendObservation.
// cat resolves region ids to metros. Its checks include every one of
// schemas.CheckObservation (the feature consumer's), so that nothing
// ingest accepts is dropped downstream; the tests hold every accepted
// record of every decoded body to the feature consumer's checks.
func (d *draft) validate(cat *cloud.Catalog) *badField {
	for _, f := range [...]field{fApp, fFunc, fEnd, fDuration} {
		if !d.present(f) {
			return &badField{f: f, reason: "required field is missing"}
		}
	}
	for _, f := range [...]field{fApp, fFunc} {
		if bad := d.checkText(f, maxNameBytes, false); bad != nil {
			return bad
		}
	}
	end, dur := d.num[fEnd], d.num[fDuration]
	if end <= 0 {
		return &badField{f: fEnd, reason: fmt.Sprintf("is %d: want a positive time in Unix microseconds", end)}
	}
	if dur < 0 {
		return &badField{f: fDuration, reason: fmt.Sprintf("is %d: want ≥ 0", dur)}
	}
	if dur > end {
		return &badField{f: fDuration, reason: fmt.Sprintf("is %d, more than end_us %d: the start would be negative", dur, end)}
	}
	if d.present(fStart) && d.num[fStart] != end-dur {
		return &badField{f: fStart, reason: fmt.Sprintf("is %d: want end_us − duration_us = %d", d.num[fStart], end-dur)}
	}
	d.num[fStart] = end - dur
	if d.textLen(fID) > 0 {
		if bad := d.checkText(fID, maxIDBytes, true); bad != nil {
			return bad
		}
	} else if d.idLen == 0 {
		d.deriveID(end, dur)
	}

	provider := -1
	if d.present(fProvider) {
		p, err := cloud.ParseProvider(d.str[fProvider])
		if err != nil {
			return &badField{f: fProvider, reason: fmt.Sprintf("is %s: want aws, azure or gcp", quote(d.str[fProvider]))}
		}
		provider = int(p)
		d.str[fProvider] = p.String()
	}
	if d.present(fRegion) {
		m, ok := resolveRegion(cat, provider, d.str[fRegion])
		if !ok {
			return &badField{f: fRegion, reason: regionReason(cat, provider, d.str[fRegion])}
		}
		d.str[fRegion] = m.String()
	}
	for _, f := range [...]field{fMemory, fWarm, fTotal} {
		if !d.present(f) {
			continue
		}
		v, low := d.num[f], int64(0)
		if f == fMemory {
			low = 1
		}
		if v < low || v > math.MaxInt32 {
			return &badField{f: f, reason: fmt.Sprintf("is %d: want %d to %d", v, low, math.MaxInt32)}
		}
	}
	for _, f := range floatFields {
		if !d.present(f) {
			continue
		}
		v := d.flt[f]
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return &badField{f: f, reason: fmt.Sprintf("is %v: want a finite number ≥ 0", v)}
		}
		d.flt[f] = v + 0 // turns -0 into +0
	}
	return nil
}

// checkText checks string field f's length and encoding; empty is allowed
// only when emptyOK.
func (d *draft) checkText(f field, limit int, emptyOK bool) *badField {
	if r := d.rawOf(f); r != nil {
		return checkLen(f, len(r), limit, emptyOK) // valid UTF-8 already
	}
	return checkString(f, d.str[f], limit, emptyOK)
}

// checkLen checks the length n of string field f.
func checkLen(f field, n, limit int, emptyOK bool) *badField {
	switch {
	case n == 0 && !emptyOK:
		return &badField{f: f, reason: "is empty"}
	case n > limit:
		return &badField{f: f, reason: fmt.Sprintf("is %d bytes long: want at most %d", n, limit)}
	}
	return nil
}

// checkString checks a string field's length and encoding; empty is allowed
// only when emptyOK.
func checkString(f field, s string, limit int, emptyOK bool) *badField {
	if bad := checkLen(f, len(s), limit, emptyOK); bad != nil || utf8.ValidString(s) {
		return bad
	}
	return &badField{f: f, reason: "is not valid UTF-8"}
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

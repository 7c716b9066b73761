package telemetry

import (
	"fmt"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// Record is one invocation in strata's JSON telemetry schema, the body of
// POST /v1/telemetry (a JSON array of records, or JSON lines: one record
// per line). Times are Unix microseconds. app, func, end_us and
// duration_us are required; every other field is optional and absent means
// "not observed", never zero. When invocation_id is absent it is derived
// from app, func, end_us and duration_us (InvocationID), so a retried
// request carries the same ids and is harmless downstream.
type Record struct {
	InvocationID   string   `json:"invocation_id,omitempty"`
	App            string   `json:"app"`
	Func           string   `json:"func"`
	EndUS          int64    `json:"end_us"`
	DurationUS     int64    `json:"duration_us"`
	StartUS        *int64   `json:"start_us,omitempty"`
	Provider       *string  `json:"provider,omitempty"`
	Region         *string  `json:"region,omitempty"`
	MemoryMB       *int32   `json:"memory_mb,omitempty"`
	LatencyMS      *float64 `json:"latency_ms,omitempty"`
	CPUBusyMS      *float64 `json:"cpu_busy_ms,omitempty"`
	QueueWaitMS    *float64 `json:"queue_wait_ms,omitempty"`
	MemoryUsedMB   *float64 `json:"memory_used_mb,omitempty"`
	ColdStart      *bool    `json:"cold_start,omitempty"`
	WarmInstances  *int32   `json:"warm_instances,omitempty"`
	TotalInstances *int32   `json:"total_instances,omitempty"`
	CostUSD        *float64 `json:"cost_usd,omitempty"`
	CarbonG        *float64 `json:"carbon_g,omitempty"`
	Failed         *bool    `json:"failed,omitempty"`
}

// OpenTelemetry attribute names read from OTLP spans (FaaS and cloud
// semantic conventions).
const (
	AttrServiceName  = "service.name"
	AttrFaaSName     = "faas.name"
	AttrInvocationID = "faas.invocation_id"
	AttrColdStart    = "faas.coldstart"
	AttrMaxMemory    = "faas.max_memory"
	AttrTrigger      = "faas.trigger"
	AttrProvider     = "cloud.provider"
	AttrRegion       = "cloud.region"
)

// Result is what a decoder made of one request.
type Result struct {
	// Observations are the valid records in request order, with
	// Source "live"; Arrival.RunId is left empty for the caller to set.
	Observations []*stratapb.Observation
	// Index holds, for each observation, its record index in the request.
	Index []int
	// Errors are the rejected records, in request order.
	Errors []RecordError
	// Total counts the records (OTLP: the invocation spans) in the request;
	// Total = len(Observations) + len(Errors).
	Total int
	// Skipped counts OTLP spans that are not invocations (no FaaS
	// attributes and not a server span): neither accepted nor rejected.
	Skipped int
}

// RecordError says why one record of a request was rejected.
type RecordError struct {
	// Index is the record's 0-based index in the request (OTLP: the
	// invocation span's index in request order).
	Index int `json:"index"`
	// Line is the record's 1-based line for JSON lines, else 0.
	Line int `json:"line,omitempty"`
	// Field names the JSON field or OTLP attribute at fault; empty when the
	// record as a whole is.
	Field string `json:"field,omitempty"`
	// Reason says what was wrong.
	Reason string `json:"reason"`
	// Raw is the record's bytes (truncated to 64 KiB) for the dead letter.
	Raw []byte `json:"-"`
}

// Error formats the error as "record 3 (line 4): end_us: reason".
func (e RecordError) Error() string {
	loc := fmt.Sprintf("record %d", e.Index)
	if e.Line > 0 {
		loc += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Field != "" {
		return loc + ": " + e.Field + ": " + e.Reason
	}
	return loc + ": " + e.Reason
}

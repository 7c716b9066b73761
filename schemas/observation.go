package schemas

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// CheckObservation reports why an observed invocation
// (strata.telemetry.v1) is unusable, or nil. It rejects a record without
// an arrival, app or func, with a negative duration or end, a start that is
// not end minus duration, a non-finite or negative observation value, a
// memory tier that is not positive or a negative instance count. The
// feature consumer drops what it rejects, and live ingest refuses it at the
// door; the error names the offending field.
func CheckObservation(o *stratapb.Observation) error {
	a := o.GetArrival()
	if a == nil {
		return errors.New("observation has no arrival")
	}
	switch {
	case a.GetApp() == "":
		return errors.New("arrival.app is empty")
	case a.GetFunc() == "":
		return errors.New("arrival.func is empty")
	case a.GetDurationUs() < 0:
		return fmt.Errorf("arrival.duration_us is negative (%d)", a.GetDurationUs())
	case a.GetEndUs() < 0:
		return fmt.Errorf("arrival.end_us is negative (%d)", a.GetEndUs())
	case a.GetDurationUs() > a.GetEndUs():
		return fmt.Errorf("arrival.duration_us %d exceeds end_us %d: start would be negative", a.GetDurationUs(), a.GetEndUs())
	case a.GetStartUs() != a.GetEndUs()-a.GetDurationUs():
		return fmt.Errorf("arrival.start_us %d is not end_us %d minus duration_us %d", a.GetStartUs(), a.GetEndUs(), a.GetDurationUs())
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{
		{"latency_ms", o.LatencyMs},
		{"cpu_busy_ms", o.CpuBusyMs},
		{"queue_wait_ms", o.QueueWaitMs},
		{"memory_used_mb", o.MemoryUsedMb},
		{"cost_usd", o.CostUsd},
		{"carbon_g", o.CarbonG},
	} {
		if f.v == nil {
			continue
		}
		if v := *f.v; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("%s is %v: want a finite non-negative number", f.name, v)
		}
	}
	if o.MemoryMb != nil && o.GetMemoryMb() <= 0 {
		return fmt.Errorf("memory_mb is %d: want a positive tier", o.GetMemoryMb())
	}
	if o.TotalInstances != nil && o.GetTotalInstances() < 0 {
		return fmt.Errorf("total_instances is %d: want ≥ 0", o.GetTotalInstances())
	}
	return nil
}

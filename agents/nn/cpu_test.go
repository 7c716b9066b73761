package nn

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the benchmark's CPU time per operation (all threads)
// since start, and work/CPU-second as unit "<unit>/cpu-s": on a shared
// machine it moves less with the load than wall time does.
func reportCPU(b *testing.B, start time.Duration, work float64, unit string) {
	cpu := (cpuTime() - start).Seconds()
	if cpu <= 0 {
		return
	}
	b.ReportMetric(cpu*1e3/float64(b.N), "cpu-ms/op")
	if unit != "" {
		b.ReportMetric(work*float64(b.N)/cpu, unit+"/cpu-s")
	}
}

package pipeline

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// Profiles are the profiling flags of the commands that run the
// pipeline: a CPU profile, block and mutex profiles, a heap profile and an
// execution trace for `go tool trace`, each the file to write ("": none).
type Profiles struct {
	CPU, Block, Mutex, Trace, Mem string
	// What says what is profiled, in the flags' help.
	What string
	// started makes Start one-shot: a bench profiles its first measured
	// run only.
	started bool
}

// RegisterFlags registers the flags, each name preceded by prefix.
func (p *Profiles) RegisterFlags(fs *flag.FlagSet, prefix string) {
	what := p.What
	fs.StringVar(&p.CPU, prefix+"cpuprofile", p.CPU, "write a CPU profile of "+what+" to `FILE`")
	fs.StringVar(&p.Block, prefix+"blockprofile", p.Block, "write a blocking profile (every blocking event) of "+what+" to `FILE`")
	fs.StringVar(&p.Mutex, prefix+"mutexprofile", p.Mutex, "write a mutex contention profile (every event) of "+what+" to `FILE`")
	fs.StringVar(&p.Mem, prefix+"memprofile", p.Mem, "write a heap profile (live objects at the end, after a GC) of "+what+" to `FILE`")
	fs.StringVar(&p.Trace, prefix+"exectrace", p.Trace, "write an execution trace (go tool trace) of "+what+" to `FILE`")
}

// Start starts the profiles asked for and returns the function that stops
// them and writes them out. Only the first call profiles; later ones
// return a no-op.
func (p *Profiles) Start() (stop func() error, err error) {
	if p.started {
		return func() error { return nil }, nil
	}
	p.started = true
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	if p.CPU != "" {
		f, err := os.Create(p.CPU)
		if err != nil {
			return nil, fmt.Errorf("creating cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("starting cpu profile: %w", err)
		}
		stops = append(stops, func() error { pprof.StopCPUProfile(); return f.Close() })
	}
	if p.Trace != "" {
		f, err := os.Create(p.Trace)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("creating execution trace: %w", err), stopAll())
		}
		if err := trace.Start(f); err != nil {
			_ = f.Close()
			return nil, errors.Join(fmt.Errorf("starting execution trace: %w", err), stopAll())
		}
		stops = append(stops, func() error { trace.Stop(); return f.Close() })
	}
	if p.Mem != "" {
		stops = append(stops, func() error {
			f, err := os.Create(p.Mem)
			if err != nil {
				return fmt.Errorf("creating heap profile: %w", err)
			}
			runtime.GC()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				_ = f.Close()
				return fmt.Errorf("writing heap profile: %w", err)
			}
			return f.Close()
		})
	}
	for _, prof := range []struct {
		name, file string
		on, off    func()
	}{
		{"block", p.Block, func() { runtime.SetBlockProfileRate(1) }, func() { runtime.SetBlockProfileRate(0) }},
		{"mutex", p.Mutex, func() { runtime.SetMutexProfileFraction(1) }, func() { runtime.SetMutexProfileFraction(0) }},
	} {
		if prof.file == "" {
			continue
		}
		prof.on()
		stops = append(stops, func() error {
			prof.off()
			f, err := os.Create(prof.file)
			if err != nil {
				return fmt.Errorf("creating %s profile: %w", prof.name, err)
			}
			if err := pprof.Lookup(prof.name).WriteTo(f, 0); err != nil {
				_ = f.Close()
				return fmt.Errorf("writing %s profile: %w", prof.name, err)
			}
			return f.Close()
		})
	}
	return stopAll, nil
}

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// PipelineConfig configures the open-loop pipeline benchmark.
type PipelineConfig struct {
	// Config is where Kafka and NATS are (empty: embedded, a fresh pair
	// per run) and how the names are prefixed.
	pipeline.Config
	// Days days of synthetic trace of seed Seed, Apps apps (0: all).
	Days int
	Seed int64
	Apps int
	// RawSample distinct records are encoded for the raw ceiling.
	RawSample int
	// Runs is the number of runs of each side, interleaved.
	Runs int
	// Profiles profile the first pipeline run (nil: none).
	Profiles *pipeline.Profiles
	// StateRetention is the bytes of state batches each stream keeps.
	StateRetention int64
}

// Pipeline measures, in c.Runs interleaved rounds, the raw franz-go
// produce ceiling and the open loop (replay → features → NATS) on the
// synthetic trace, and prints the pipeline/raw ratio of the two sides'
// best runs last on stdout.
func Pipeline(ctx context.Context, c PipelineConfig, stdout io.Writer) error {
	if c.Runs < 1 || c.RawSample < 1 {
		return errors.New("strata bench pipeline: --runs and --raw-sample must be positive")
	}
	o := c.Config
	o.Epoch, o.LatenessUS, o.StateRetention = grid.DefaultEpoch, benchLatenessUS, c.StateRetention
	synth := func() (replay.Source, error) {
		return replay.NewSynth(replay.SynthConfig{Days: c.Days, Seed: c.Seed, Apps: c.Apps})
	}

	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; broker: %s\n", CPUModel(), runtime.NumCPU(), runtime.Version(), orDefault(strings.Join(c.Brokers, ","), "embedded kfake"))
	src, err := synth()
	if err != nil {
		return err
	}
	raw, err := EncodeRaw(src, c.RawSample)
	if err != nil {
		return err
	}
	prof := c.Profiles
	if prof == nil {
		prof = &pipeline.Profiles{}
	}
	var rawRate, pipeRate, pipeTickRate float64
	for i := range c.Runs {
		// Each round gets an environment of its own (with embedded
		// brokers, a fresh kfake and nats-server): the feature service
		// reads the telemetry topic from its start, so a later run on the
		// same broker would also read, and skip, the earlier runs'
		// records.
		e, err := pipeline.StartEnv(ctx, &o)
		if err != nil {
			return err
		}
		rate, err := raw.Run(ctx, stdout, e.Brokers, e.Partitions, i)
		if err != nil {
			e.Close()
			return err
		}
		rawRate = max(rawRate, rate)

		if src, err = synth(); err != nil {
			e.Close()
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		po := o
		po.Env = e
		stopProf, err := prof.Start()
		if err != nil {
			e.Close()
			return err
		}
		res, err := pipeline.OpenLoop(ctx, po, src, "synthetic", int64(c.Days)*grid.StrategicTickUS)
		if err = errors.Join(err, stopProf()); err != nil {
			e.Close()
			return err
		}
		rate = float64(res.Replay.Invocations) / res.Wall.Seconds()
		pipeRate = max(pipeRate, rate)
		ops := res.Features.Ticks[string(schemas.Operational)]
		pipeTickRate = max(pipeTickRate, float64(ops)/res.Wall.Seconds())
		fmt.Fprintf(stdout, "pipeline replay → features → NATS, run %d: %d invocations, %d operational ticks (%d state batches, %.1f MB, %.1f KB per batch) in %.2f s = %.0f invocations/s, %.0f ticks/s; peak RSS %s\n",
			i+1, res.Replay.Invocations, ops, res.Features.StatesPublished, float64(res.Features.StateBytes)/1e6,
			float64(res.Features.StateBytes)/1e3/float64(max(res.Features.StatesPublished, 1)),
			res.Wall.Seconds(), rate, float64(ops)/res.Wall.Seconds(), peakRSS())
		e.Close()
	}
	fmt.Fprintf(stdout, "raw ceiling (best run): %.0f records/s; pipeline (best run): %.0f invocations/s, %.0f ticks/s\n", rawRate, pipeRate, pipeTickRate)
	fmt.Fprintf(stdout, "pipeline/raw ratio: %.3f\n", pipeRate/rawRate)
	return nil
}

// resetPeakRSS resets the kernel's peak-RSS mark (Linux ≥ 4.0: writing 5 to
// /proc/self/clear_refs), so the pipeline phase is measured on its own.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads the process's peak resident set size (VmHWM) on Linux.
func peakRSS() string {
	return procStatus("VmHWM:")
}

// procStatus is the value of key in /proc/self/status.
func procStatus(key string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), key))
		}
	}
	return "unknown"
}

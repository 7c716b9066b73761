package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// LoopConfig configures the closed-loop benchmark.
type LoopConfig struct {
	// Config is where Kafka and NATS are (empty: embedded, a fresh pair
	// per run), how the names are prefixed, the trace epoch and the
	// logger.
	pipeline.Config
	Source Source
	// Strategic, Tactical and Operational name each layer's policy.
	Strategic, Tactical, Operational string
	// Placement is the placement before any decision.
	Placement cloud.Placement
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Transitions are the layers whose learner transitions the twin
	// writes (pipeline.DefaultTransitions in `strata bench loop`, as in
	// `strata run`).
	Transitions []schemas.Layer
	// Runs is the number of runs of each side, interleaved.
	Runs int
	// Profiles profile the closed loop's first run.
	Profiles *pipeline.Profiles
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
}

// Loop measures, in one process and in c.Runs interleaved rounds, the
// embedded closed loop's ticks per second over the trace, as `strata run`
// runs it without a store (replay, twin, features and the baseline policy
// workers on kfake and an in-process nats-server, or on c.Brokers and
// c.NATSURL), and its ceiling: the pure twin Engine, with the loop's
// engine configuration, replaying the decision batches the first round's
// loop evaluated each tick under (arrivals already in tick buckets, no
// brokers, no features, no policies). The ceiling does the loop's engine
// work exactly — idle functions held warm, every counterfactual behind the
// rewards — so its decision and reward digests must equal the loop's; the
// bench checks that. It prints every run, both sides' best rates and the
// ratio of the best runs as its last line on stdout. Every round sets the
// loop up afresh (policies keep state across the ticks they see) and gives
// it an environment of its own with embedded brokers.
func Loop(ctx context.Context, c LoopConfig, stdout io.Writer) error {
	if c.Runs < 1 {
		return errors.New("strata bench loop: --runs must be at least 1")
	}
	sf := c.Source.sources()
	o := pipeline.Config{Brokers: c.Brokers, NATSURL: c.NATSURL, Partitions: c.Partitions, Names: c.Names,
		Epoch: c.Epoch, LatenessUS: benchLatenessUS, Logger: c.Logger}
	// The cache keeps static-best's choices (if a layer runs it) from the
	// first round's setup for the others.
	lf := pipeline.LoopOptions{Strategic: c.Strategic, Tactical: c.Tactical, Operational: c.Operational, Placement: c.Placement,
		PolicySeed: c.PolicySeed, Transitions: c.Transitions, Source: sf, Cache: &pipeline.LoopCache{}, NewModel: c.NewModel}
	prof := c.Profiles
	if prof == nil {
		prof = &pipeline.Profiles{}
	}

	_, name, traceLen, closeSrc, err := sf.Open()
	if err != nil {
		return err
	}
	closeSrc()
	fmt.Fprintf(stdout, "machine: %s, %d cores, %s; trace: %s; broker: %s\n",
		CPUModel(), runtime.NumCPU(), runtime.Version(), name, orDefault(strings.Join(c.Brokers, ","), "embedded kfake"))
	// The ceiling's tick buckets are built (untimed) after each round's
	// loop and dropped before the next: held through a loop run, the whole
	// trace's arrivals (~0.5 GB on 14 days) would sit under the loop's
	// soft memory limit and make its GC run all the time.
	bucketTicks := func() ([][]twin.Arrival, error) {
		src, _, _, closeSrc, err := sf.Open()
		if err != nil {
			return nil, err
		}
		defer closeSrc()
		ticks, _, err := replayTicks(ctx, src, traceLen/grid.OperationalTickUS, benchLatenessUS)
		if err != nil {
			return nil, fmt.Errorf("replaying %s into tick buckets: %w", name, err)
		}
		return ticks, nil
	}

	// rec holds the first round's decision batches by tick, and ref that
	// round's run id and digests.
	var (
		rec                  map[int64][]*schemas.DecisionBatch
		ref                  twin.Stats
		refSum               pipeline.LoopSummary
		refRunID             string
		engineRate, loopRate float64
	)
	for i := range c.Runs {
		lo, names, err := pipeline.SetupLoop(ctx, lf, o, name, o.Epoch)
		if err != nil {
			return err
		}
		lo.RunID = pipeline.NewRunID()
		if rec == nil {
			rec = map[int64][]*schemas.DecisionBatch{}
			lo.Record = func(k int64, bs []*schemas.DecisionBatch) {
				if len(bs) > 0 {
					rec[k] = bs
				}
			}
		}

		// The closed loop, as `strata run --store ""` runs it, with the
		// hops' metrics on a registry of the round's own.
		reg := prometheus.NewRegistry()
		lo.Registerer = reg
		lsrc, _, _, closeLoopSrc, err := sf.Open()
		if err != nil {
			return err
		}
		runtime.GC()
		stopProf, err := prof.Start()
		if err != nil {
			closeLoopSrc()
			return err
		}
		res, err := pipeline.ClosedLoop(ctx, lo, lsrc, name, traceLen)
		closeLoopSrc()
		if perr := stopProf(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		sum := pipeline.NewLoopSummary(lo.Config, name, res, names)
		if i == 0 {
			refSum = sum
		}
		if err := loopSound(res.Features, sum, refSum); err != nil {
			return fmt.Errorf("closed loop, run %d: %w", i+1, err)
		}
		rate := float64(res.Twin.Ticks) / res.Wall.Seconds()
		loopRate = max(loopRate, rate)
		fmt.Fprintf(stdout, "closed loop (strategic %s, tactical %s, operational %s, no store), run %d: %d invocations, %d ticks, %d decisions, %d rewards in %.2f s = %.1f ticks/s\n",
			names[string(schemas.Strategic)], names[string(schemas.Tactical)], names[string(schemas.Operational)], i+1,
			res.Replay.Invocations, res.Twin.Ticks, res.Twin.Decisions, res.Twin.Rewards, res.Wall.Seconds(), rate)
		fmt.Fprintf(stdout, "  per tick, mean: %s\n", hopSummary(reg, res.Twin.Ticks))
		ticks, err := bucketTicks()
		if err != nil {
			return err
		}
		if i == 0 {
			ref, refRunID = res.Twin, lo.RunID
			if int64(len(ticks)) != ref.Ticks {
				return fmt.Errorf("the loop evaluated %d ticks, the trace has %d", ref.Ticks, len(ticks))
			}
		}

		// Ceiling: the pure engine replaying the first round's decisions.
		lo.RunID = refRunID
		runtime.GC()
		er, dg, err := engineRun(ctx, lo, ticks, rec)
		if err != nil {
			return fmt.Errorf("replaying %s through the twin engine: %w", name, err)
		}
		if dg.Decisions() != ref.DecisionsSHA256 || dg.Rewards() != ref.RewardsSHA256 {
			return fmt.Errorf("the engine replaying the loop's decisions wrote other tables than the loop: decisions %s vs %s, rewards %s vs %s",
				dg.Decisions(), ref.DecisionsSHA256, dg.Rewards(), ref.RewardsSHA256)
		}
		rate = float64(er.ticks) / er.wall.Seconds()
		engineRate = max(engineRate, rate)
		fmt.Fprintf(stdout, "twin engine alone (the loop's decisions replayed, digests equal the loop's), run %d: %d ticks, %d arrivals, %d decisions, %d rewards in %.2f s = %.0f ticks/s\n",
			i+1, er.ticks, er.arrivals, er.decisions, er.rewards, er.wall.Seconds(), rate)
	}
	fmt.Fprintf(stdout, "engine ceiling (best run): %.0f ticks/s; closed loop (best run): %.1f ticks/s\n", engineRate, loopRate)
	fmt.Fprintf(stdout, "loop/engine ratio: %.4f\n", loopRate/engineRate)
	return nil
}

// loopSound checks that a round's closed loop ran the loop `strata run`
// runs, which the ceiling cannot check: it replays the loop's own
// decisions, so its digests agree with whatever the loop decided. The
// feature service f must have windowed every observation before its tick
// closed (the twin writes a tick's telemetry before its watermark), and
// the round's summary sum — what `strata run --summary` writes — must be
// the first round's, ref, but for the run id, the digests that hash it and
// the timings (the loop is deterministic). A change that delayed the
// twin's observations behind their watermark once made the loop 25 %
// faster here with wrong states (README, "Closed loop", (25)).
func loopSound(f features.Stats, sum, ref pipeline.LoopSummary) error {
	if f.Late+f.Malformed > 0 {
		return fmt.Errorf("the feature service read %d observations after their tick closed and %d malformed: its states missed them", f.Late, f.Malformed)
	}
	if got, want := roundFigures(sum), roundFigures(ref); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("another summary than run 1's (the loop is deterministic):\n%+v\nrun 1:\n%+v", got, want)
	}
	return nil
}

// roundFigures is s without what differs between two rounds of the same
// loop: the run id, the digests (they hash it) and the timings.
func roundFigures(s pipeline.LoopSummary) pipeline.LoopSummary {
	s.RunID, s.DecisionsSHA256, s.RewardsSHA256 = "", "", ""
	s.WallSeconds, s.InvocationsPerSecond, s.HeldTicks, s.HeldSeconds = 0, 0, 0, 0
	return s
}

// engineRun times the pure twin Engine once over ticks, with a fresh
// engine configured as lo's loop (run id included), applying rec's
// decision batches at their ticks, with no brokers; it returns the
// digests of the decisions and rewards it produced.
func engineRun(ctx context.Context, lo pipeline.LoopConfig, ticks [][]twin.Arrival, rec map[int64][]*schemas.DecisionBatch) (engineResult, *twin.Digests, error) {
	cfg := lo.Engine
	cfg.RunID = lo.RunID
	eng, err := twin.NewEngine(lo.Model, cfg, lo.Profile)
	if err != nil {
		return engineResult{}, nil, err
	}
	dg := twin.NewDigests()
	r, err := runEngine(ctx, eng, ticks, func(k int64) []*schemas.DecisionBatch { return rec[k] }, dg)
	return r, dg, err
}

// hopSummary describes where a closed-loop run's ticks went, from the
// metrics the twin, the features and the workers recorded in reg: each
// hop's mean time per tick (histogram sum over ticks).
func hopSummary(reg prometheus.Gatherer, ticks int64) string {
	mfs, err := reg.Gather()
	if err != nil || ticks == 0 {
		return "(no metrics)"
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				name := mf.GetName()
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "layer" {
						name += "{" + lp.GetValue() + "}"
					}
				}
				sums[name] += h.GetSampleSum()
			}
		}
	}
	ms := func(name string) float64 { return sums[name] / float64(ticks) * 1e3 }
	var agents []string
	for _, l := range schemas.Layers {
		if v, ok := sums["strata_worker_tick_seconds{"+string(l)+"}"]; ok {
			agents = append(agents, fmt.Sprintf("%s %.3f", l, v/float64(ticks)*1e3))
		}
	}
	return fmt.Sprintf("twin evaluate %.3f ms + decision wait %.3f ms (scoring %.3f ms overlapped); features %.3f ms (encoding %.3f; watermarks read %.3f ms after produced, summed over partitions); agents %s ms",
		ms("strata_twin_evaluate_seconds"), ms("strata_twin_decision_wait_seconds"), ms("strata_twin_score_seconds"),
		ms("strata_features_watermark_seconds"), ms("strata_features_batch_encode_seconds"), ms("strata_features_watermark_delay_seconds"), strings.Join(agents, ", "))
}

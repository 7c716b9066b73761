package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

type loopFlags struct {
	strategic, tactical, operational string
	placement                        cloud.Placement
	policySeed                       int64
	summary                          string
	sources                          *sourceFlags
	store                            string // DuckDB file or ClickHouse DSN; "" for none
	args                             []string
	outcomes                         bool
	transitions                      []schemas.Layer
	// models is the directory the learned policies (dqn, ppo, lstm) load
	// their checkpoints from.
	models string
	// cache, if set, keeps static-best's choices across the runs of an
	// evaluation: they depend only on the trace's training days.
	cache *loopCache
	// learn, if set, makes the run a training episode of its learner: the
	// layers it trains follow its checkpoints (their policy names are
	// ignored).
	learn *pipeline.Learn
	// conf is the command's --config file: the cloud model's overrides
	// and what the runs row records of it (nil: the defaults).
	conf *roleConfig
}

// loopCache holds what setupLoop derives from the training days once.
type loopCache struct {
	static *twin.StaticChoices
}

// policyNames lists the policy names of layer l for the flag help: the
// agents' baselines plus, for strategic and tactical, the policies that run
// inside the twin.
func policyNames(l schemas.Layer) string {
	names := agents.Names(l)
	if l != schemas.Operational {
		names = append(names, string(twin.PolicyStaticBest), string(twin.PolicyOracle))
	}
	return strings.Join(names, ", ") + ", " + agents.LearnedName(l) + " (with --models)"
}

// policyExternal is pipeline.PolicyExternal, the policy name of a layer
// decided outside the process.
const policyExternal = pipeline.PolicyExternal

// parsePlacement parses provider/metro/memoryMB, e.g. aws/us-east/1024.
func parsePlacement(s string) (cloud.Placement, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: want provider/metro/memoryMB, e.g. aws/us-east/1024", s)
	}
	p, err := cloud.ParseProvider(parts[0])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	m, err := cloud.ParseMetro(parts[1])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	mb, err := strconv.Atoi(parts[2])
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: memory %q is not a number", s, parts[2])
	}
	t, err := cloud.TierOf(mb)
	if err != nil {
		return cloud.Placement{}, fmt.Errorf("parsing placement %q: %w", s, err)
	}
	return cloud.Placement{Provider: p, Metro: m, Tier: t}, nil
}

// loopSummary is the closed loop's --summary JSON: the open loop's fields
// plus the twin's figures.
type loopSummary struct {
	summary
	Policies          map[string]string          `json:"policies"`
	Layers            map[string]twin.LayerStats `json:"layers"`
	TwinTicks         int64                      `json:"twin_ticks"`
	CostPerMillionUSD float64                    `json:"cost_per_million_usd"`
	GCO2ePerMillion   float64                    `json:"gco2e_per_million"`
	LatencyP50MS      float64                    `json:"latency_p50_ms"`
	LatencyP95MS      float64                    `json:"latency_p95_ms"`
	LatencyP99MS      float64                    `json:"latency_p99_ms"`
	ColdStartRate     float64                    `json:"cold_start_rate"`
	SLAViolationRate  float64                    `json:"sla_violation_rate"`
	RewardsSHA256     string                     `json:"rewards_sha256"`
	DecisionsSHA256   string                     `json:"decisions_sha256"`
}

// setupLoop builds what a closed-loop run needs besides the pipeline: the
// cloud model (epoch o.epoch, lf.conf's overrides), the functions'
// properties and static-best's choices from the trace's training days
// (read again from lf.sources, under trainEpoch: the trace's own epoch,
// which differs from o.epoch only when the run replays a shifted window of
// it), the policies and the twin's configuration. It returns the policy
// name of each layer too.
func setupLoop(ctx context.Context, lf loopFlags, o pipeline.Config, name string, trainEpoch time.Time) (pipeline.LoopConfig, map[string]string, error) {
	var lo pipeline.LoopConfig
	newModel := lf.conf.newModel
	m, err := newModel(o.Epoch)
	if err != nil {
		return lo, nil, err
	}
	mTrain := m
	if !trainEpoch.Equal(o.Epoch) {
		if mTrain, err = newModel(trainEpoch); err != nil {
			return lo, nil, err
		}
	}
	// Pass 1: function properties from the training days (a second read of
	// the trace; the generator is deterministic, a file is read again).
	pre, _, _, closePre, err := lf.sources.open()
	if err != nil {
		return lo, nil, err
	}
	pb := twin.NewProfileBuilder(trainEpoch)
	for {
		in, err := pre.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			continue // counted and dead-lettered by the replay pass
		}
		if err != nil {
			closePre()
			return lo, nil, fmt.Errorf("deriving function properties from %s: %w", name, err)
		}
		pb.Add(in)
	}
	closePre()

	profile := pb.Build(mTrain)
	engCfg := twin.Config{DefaultPlacement: lf.placement, Reward: m.Config().Reward, Outcomes: lf.outcomes,
		Internal: map[schemas.Layer]twin.InternalPolicy{}, Transitions: map[schemas.Layer]bool{}}
	policies := map[schemas.Layer]worker.Policy{}
	names := map[string]string{}
	for l, n := range map[schemas.Layer]string{schemas.Strategic: lf.strategic, schemas.Tactical: lf.tactical, schemas.Operational: lf.operational} {
		names[string(l)] = n
		if n == "none" {
			continue
		}
		if lf.learn != nil && lf.learn.Learner.Trains(l) {
			continue // a follower of the learner's checkpoints (runClosedLoop)
		}
		if slices.Contains(lf.transitions, l) {
			engCfg.Transitions[l] = true
		}
		if n == policyExternal {
			policies[l] = pipeline.ExternalPolicy{}
			continue
		}
		if ip, ok := twin.ParseInternalPolicy(n); ok && l != schemas.Operational {
			engCfg.Internal[l] = ip
			continue
		}
		p, err := agents.New(n, l, agents.Options{Seed: lf.policySeed, Model: m, Epoch: o.Epoch, Models: lf.models})
		if err != nil {
			return lo, nil, err
		}
		policies[l] = p
	}
	if lf.cache != nil && lf.cache.static != nil {
		engCfg.Static = lf.cache.static
	} else if slices.Contains(slices.Collect(maps.Values(engCfg.Internal)), twin.PolicyStaticBest) {
		// Pass 2: static-best's choices, from the training days replayed
		// under the default placement.
		src2, _, _, close2, err := lf.sources.open()
		if err != nil {
			return lo, nil, err
		}
		t0 := time.Now()
		c, err := twin.TrainStatic(ctx, mTrain, engCfg, profile, src2, o.LatenessUS)
		close2()
		if err != nil {
			return lo, nil, err
		}
		engCfg.Static = c
		if lf.cache != nil {
			lf.cache.static = c
		}
		o.Logger.Info("static-best chosen on the training days", "apps", len(c.Providers), "functions", len(c.Placements), "seconds", time.Since(t0).Seconds())
	}
	var learn *pipeline.Learn
	if lf.learn != nil {
		lo := *lf.learn
		lo.AgentOpts = agents.Options{Seed: lf.policySeed, Model: m, Epoch: o.Epoch}
		learn = &lo
	}
	return pipeline.LoopConfig{Config: o, Model: m, Policies: policies, Profile: profile, Engine: engCfg, Learn: learn}, names, nil
}

// runLoopMain runs `strata run` in the closed loop: it derives the
// functions' properties from the trace's training days, then replays the
// trace through the twin, the features and the policy workers.
func runLoopMain(ctx context.Context, lf loopFlags, o pipeline.Config, src replay.Source, name string, traceLen int64, stdout io.Writer) error {
	lo, names, err := setupLoop(ctx, lf, o, name, o.Epoch)
	if err != nil {
		return err
	}
	lo.Run = &stratapb.Run{RunId: o.RunID, StartedUnixMs: time.Now().UnixMilli(), Source: name, Seed: lf.sources.seed,
		Speed: o.Speed.String(), StrategicPolicy: lf.strategic, TacticalPolicy: lf.tactical, OperationalPolicy: lf.operational,
		DefaultPlacement: fmt.Sprintf("%s/%s/%d", lf.placement.Provider, lf.placement.Metro, lf.placement.Tier.MB()),
		TraceEpoch:       o.Epoch.Format(time.RFC3339), ConfigJson: lf.conf.runJSON(lf.args)}
	if lf.store != "" {
		st, err := store.Open(ctx, lf.store)
		if err != nil {
			return err
		}
		defer func() { _ = st.Close() }()
		if err := st.EnsureSchema(ctx); err != nil {
			return err
		}
		lo.Store = st
	}
	res, err := pipeline.ClosedLoop(ctx, lo, src, name, traceLen)
	if err != nil {
		return err
	}
	t := res.Twin
	sum := newLoopSummary(o, name, res, names)
	fmt.Fprintf(stdout, "run %s (closed loop: strategic %s, tactical %s, operational %s): %d invocations from %s in %d ticks, %.1f s wall\n",
		sum.RunID, lf.strategic, lf.tactical, lf.operational, sum.Invocations, name, t.Ticks, sum.WallSeconds)
	fmt.Fprintf(stdout, "  cost %.2f USD per million, %.0f gCO2e per million, latency p50/p95/p99 %.0f/%.0f/%.0f ms, cold starts %.2f%%, SLA violations %.2f%%\n",
		sum.CostPerMillionUSD, sum.GCO2ePerMillion, sum.LatencyP50MS, sum.LatencyP95MS, sum.LatencyP99MS, 100*sum.ColdStartRate, 100*sum.SLAViolationRate)
	for _, l := range schemas.Layers {
		ls := t.Layers[string(l)]
		fmt.Fprintf(stdout, "  %-11s %-16s decisions %8d  rewards %8d  mean reward %.4f  mean regret %.4f\n", l, names[string(l)], ls.Decisions, ls.Rewards, ls.MeanReward, ls.MeanRegret)
	}
	if lf.store != "" {
		fmt.Fprintf(stdout, "  tables in %s: %d decisions, %d rewards written (query with: strata sql --store/--clickhouse …)\n",
			lf.store, res.Sink.Rows[schemas.TableDecisions], res.Sink.Rows[schemas.TableRewards])
	}
	if lf.summary != "" {
		return writeJSON(lf.summary, sum)
	}
	return nil
}

// newLoopSummary builds the closed loop's summary from its result.
func newLoopSummary(o pipeline.Config, name string, res pipeline.LoopResult, names map[string]string) loopSummary {
	t := res.Twin
	sum := loopSummary{summary: newSummary(o, name, res.Replay, res.Features, res.Wall), Policies: names, Layers: t.Layers, TwinTicks: t.Ticks,
		LatencyP50MS: t.LatencyP50MS, LatencyP95MS: t.LatencyP95MS, LatencyP99MS: t.LatencyP99MS,
		RewardsSHA256: t.RewardsSHA256, DecisionsSHA256: t.DecisionsSHA256}
	if n := float64(t.ScoredInvocations); n > 0 {
		sum.CostPerMillionUSD = t.CostUSD / n * 1e6
		sum.GCO2ePerMillion = t.CarbonG / n * 1e6
		sum.ColdStartRate = float64(t.ColdStarts) / n
		sum.SLAViolationRate = float64(t.Violations) / n
	}
	return sum
}

// loopBasics parses what every closed-loop command takes from its common
// flags: the logger, the trace epoch and the default placement.
func loopBasics(stderr io.Writer, cf commonFlags, placement string) (*slog.Logger, time.Time, cloud.Placement, error) {
	logger, err := newLogger(stderr, cf.logLevel)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	epoch, err := parseEpoch(cf.epoch)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	pl, err := parsePlacement(placement)
	if err != nil {
		return nil, time.Time{}, cloud.Placement{}, err
	}
	return logger, epoch, pl, nil
}

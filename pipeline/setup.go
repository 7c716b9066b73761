package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LoopOptions are what a closed-loop command decides besides the
// environment (Config): the policies, the trace, where the tables go and
// what the twin writes.
type LoopOptions struct {
	// Strategic, Tactical and Operational name each layer's policy: a
	// baseline, a policy that runs inside the twin (static-best, oracle),
	// a learned one (with Models), PolicyExternal, or "none".
	Strategic, Tactical, Operational string
	// Placement is the placement before any decision.
	Placement cloud.Placement
	// PolicySeed seeds the policies' random choices.
	PolicySeed int64
	// Source is the trace; SetupLoop reads its training days again.
	Source *Source
	// Store is a DuckDB file or a ClickHouse DSN; "" writes no tables.
	Store string
	// Retention is the sink's (sink.Config.Retention); 0 keeps every row.
	Retention time.Duration
	// SinkMaxLag is LoopConfig.SinkMaxLag.
	SinkMaxLag int64
	// Outcomes also writes per-invocation outcomes.
	Outcomes bool
	// Transitions are the layers whose learner transitions the twin writes.
	Transitions []schemas.Layer
	// FeatureSets are the feature sets of the transitions' states per
	// layer (default: each layer's seed set); a learner of the run imposes
	// its own.
	FeatureSets map[schemas.Layer]schemas.FeatureSet
	// Models is the directory the learned policies (dqn, ppo, lstm) load
	// their checkpoints from.
	Models string
	// Cache, if set, keeps static-best's choices across the runs of an
	// evaluation: they depend only on the trace's training days.
	Cache *LoopCache
	// Learn, if set, makes the run a training episode of its learner: the
	// layers it trains follow its checkpoints (their policy names are
	// ignored).
	Learn *Learn
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// RunJSON is the run's config_json before RunConfigJSON completes it.
	RunJSON string
	// Summary, if set, is the file RunLoop writes the run's JSON summary
	// to.
	Summary string
	// Checkpoint configures the twin's checkpoints (LoopConfig.Checkpoint).
	Checkpoint TwinCheckpoint
	// Shard makes this process one shard of the twin (LoopConfig.Shard).
	Shard TwinShard
	// ExternalFeatures leaves the features to other processes
	// (LoopConfig.ExternalFeatures).
	ExternalFeatures bool
	// Serving, if set, holds the guardrails the workers project every
	// decision onto and the layers' fallbacks (docs/guardrails.md).
	Serving *Serving
}

// LoopCache holds what SetupLoop derives from the training days once. It
// is safe for concurrent use: loops set up at once (strata eval
// --parallel) compute static-best's choices once between them.
type LoopCache struct {
	mu     sync.Mutex
	static *twin.StaticChoices
}

// staticChoices returns the cached choices, or computes and caches them.
// A nil cache computes them each time.
func (c *LoopCache) staticChoices(compute func() (*twin.StaticChoices, error)) (*twin.StaticChoices, error) {
	if c == nil {
		return compute()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.static != nil {
		return c.static, nil
	}
	s, err := compute()
	if err != nil {
		return nil, err
	}
	c.static = s
	return s, nil
}

// PolicyNames lists the policy names of layer l for the flag help: the
// agents' baselines plus, for strategic and tactical, the policies that run
// inside the twin.
func PolicyNames(l schemas.Layer) string {
	names := append(agents.Names(l), agents.Own(l)...)
	if l != schemas.Operational {
		names = append(names, string(twin.PolicyStaticBest), string(twin.PolicyOracle))
	}
	return strings.Join(names, ", ") + ", " + agents.LearnedName(l) + " (with --models); a name may carry overrides, NAME:key=value,key=value (docs/baselines.md)"
}

// ModelAt builds the cloud model with trace time 0 at epoch: with
// newModel, or the default catalog and configuration when it is nil.
func ModelAt(newModel func(time.Time) (*cloud.Model, error), epoch time.Time) (*cloud.Model, error) {
	if newModel != nil {
		return newModel(epoch)
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return nil, err
	}
	cfg := cloud.DefaultConfig()
	cfg.Epoch = epoch
	return cloud.NewModel(cat, cfg)
}

// SetupLoop builds what a closed-loop run needs besides the pipeline: the
// cloud model (epoch o.Epoch, lo.NewModel), the functions' properties and
// static-best's choices from the trace's training days (read again from
// lo.Source, under trainEpoch: the trace's own epoch, which differs from
// o.Epoch only when the run replays a shifted window of it), the policies
// and the twin's configuration. It returns the policy name of each layer
// too.
func SetupLoop(ctx context.Context, lo LoopOptions, o Config, name string, trainEpoch time.Time) (LoopConfig, map[string]string, error) {
	var lc LoopConfig
	m, err := ModelAt(lo.NewModel, o.Epoch)
	if err != nil {
		return lc, nil, err
	}
	mTrain := m
	if !trainEpoch.Equal(o.Epoch) {
		if mTrain, err = ModelAt(lo.NewModel, trainEpoch); err != nil {
			return lc, nil, err
		}
	}
	// Pass 1: function properties from the training days (a second read of
	// the trace; the generator is deterministic, a file is read again).
	pre, _, _, closePre, err := lo.Source.Open()
	if err != nil {
		return lc, nil, err
	}
	profile, err := twin.ProfileOf(pre, trainEpoch, mTrain)
	closePre()
	if err != nil {
		return lc, nil, fmt.Errorf("deriving function properties from %s: %w", name, err)
	}
	engCfg := twin.Config{DefaultPlacement: lo.Placement, Reward: m.Config().Reward, Outcomes: lo.Outcomes,
		Internal: map[schemas.Layer]twin.InternalPolicy{}, Transitions: map[schemas.Layer]bool{}}
	if err := lo.Serving.CheckLayers(map[schemas.Layer]string{schemas.Strategic: lo.Strategic, schemas.Tactical: lo.Tactical, schemas.Operational: lo.Operational}); err != nil {
		return lc, nil, err
	}
	if apps := lo.Serving.Outside(lo.Placement); len(apps) > 0 {
		// Guardrails constrain decisions; the placement before the first
		// one is the operator's (docs/guardrails.md).
		o.Logger.Warn("the default placement breaks the guardrails of some apps until their first decisions", "placement", FormatPlacement(lo.Placement), "apps", apps)
	}
	policies := map[schemas.Layer]worker.Policy{}
	names := map[string]string{}
	for l, n := range map[schemas.Layer]string{schemas.Strategic: lo.Strategic, schemas.Tactical: lo.Tactical, schemas.Operational: lo.Operational} {
		names[string(l)] = n
		if n == "none" {
			continue
		}
		if lo.Learn != nil && lo.Learn.Learner.Trains(l) {
			continue // a follower of the learner's checkpoints (ClosedLoop)
		}
		if slices.Contains(lo.Transitions, l) {
			engCfg.Transitions[l] = true
		}
		if n == PolicyExternal {
			policies[l] = ExternalPolicy{}
			continue
		}
		if ip, ok := twin.ParseInternalPolicy(n); ok && l != schemas.Operational {
			engCfg.Internal[l] = ip
			continue
		}
		aopts := agents.Options{Seed: lo.PolicySeed, Model: m, Epoch: o.Epoch, Models: lo.Models}
		p, err := agents.New(n, l, aopts)
		if err != nil {
			return lc, nil, err
		}
		if p, err = lo.Serving.Wrap(p, l, aopts); err != nil {
			return lc, nil, err
		}
		policies[l] = p
	}
	if slices.Contains(slices.Collect(maps.Values(engCfg.Internal)), twin.PolicyStaticBest) {
		// Pass 2: static-best's choices, from the training days replayed
		// under the default placement (once per cache).
		c, err := lo.Cache.staticChoices(func() (*twin.StaticChoices, error) {
			src2, _, _, close2, err := lo.Source.Open()
			if err != nil {
				return nil, err
			}
			defer close2()
			t0 := time.Now()
			c, err := twin.TrainStatic(ctx, mTrain, engCfg, profile, src2, o.LatenessUS)
			if err != nil {
				return nil, err
			}
			o.Logger.Info("static-best chosen on the training days", "apps", len(c.Providers), "functions", len(c.Placements), "seconds", time.Since(t0).Seconds())
			return c, nil
		})
		if err != nil {
			return lc, nil, err
		}
		engCfg.Static = c
	}
	var learn *Learn
	if lo.Learn != nil {
		l := *lo.Learn
		l.AgentOpts = agents.Options{Seed: lo.PolicySeed, Model: m, Epoch: o.Epoch}
		learn = &l
	}
	return LoopConfig{Config: o, Model: m, Policies: policies, Profile: profile, Engine: engCfg, Learn: learn, FeatureSets: lo.FeatureSets, Serving: lo.Serving,
		Checkpoint: lo.Checkpoint, Shard: lo.Shard, ExternalFeatures: lo.ExternalFeatures}, names, nil
}

// RunRow returns the runs row of a run of lo under o replaying the source
// named source with trace time 0 at epoch: its id, start (now), source and
// seeds, policies, placement, epoch, models and the digest of the
// checkpoints its learned layers serve (agents.ModelsDigest). The caller
// adds what only it knows (kind, label, days, configuration).
func RunRow(lo LoopOptions, o Config, source string, epoch time.Time) (*stratapb.Run, error) {
	digest, err := agents.ModelsDigest(lo.Models, map[schemas.Layer]string{
		schemas.Strategic: lo.Strategic, schemas.Tactical: lo.Tactical, schemas.Operational: lo.Operational})
	if err != nil {
		return nil, fmt.Errorf("recording run %s: %w", o.RunID, err)
	}
	return &stratapb.Run{RunId: o.RunID, StartedUnixMs: time.Now().UnixMilli(), Source: source, Seed: lo.Source.Seed,
		Speed: o.Speed.String(), StrategicPolicy: lo.Strategic, TacticalPolicy: lo.Tactical, OperationalPolicy: lo.Operational,
		DefaultPlacement: FormatPlacement(lo.Placement), TraceEpoch: epoch.Format(time.RFC3339), PolicySeed: lo.PolicySeed, Models: lo.Models,
		ModelsDigest: digest}, nil
}

// RunLoop runs `strata run` in the closed loop: it derives the functions'
// properties from the trace's training days, then replays src (named
// name, traceLenUS long when known) through the twin, the features and
// the policy workers, with the sink writing lo.Store. It prints the run's
// figures to w and writes lo.Summary.
func RunLoop(ctx context.Context, lo LoopOptions, o Config, src replay.Source, name string, traceLenUS int64, w io.Writer) error {
	lc, names, err := SetupLoop(ctx, lo, o, name, o.Epoch)
	if err != nil {
		return err
	}
	if lc.Run, err = RunRow(lo, o, name, o.Epoch); err != nil {
		return err
	}
	lc.Run.ConfigJson, lc.Run.Kind, lc.Run.FirstDay = WithServing(lo.RunJSON, lo.Serving), "run", 1
	var rec *Recorder
	if lo.Store != "" {
		st, err := store.Open(ctx, lo.Store, store.WithLogger(o.Logger.With("role", "store")))
		if err != nil {
			return err
		}
		defer func() { _ = st.Close() }()
		if err := st.EnsureSchema(ctx); err != nil {
			return err
		}
		rec = NewRecorder(st, lo.Store, true)
		rec.Apply(&lc, lc.Run, 0)
		lc.Retention, lc.SinkMaxLag = lo.Retention, lo.SinkMaxLag
	}
	res, err := ClosedLoop(ctx, lc, src, name, traceLenUS)
	if err != nil {
		return err
	}
	if rec != nil {
		if err := rec.Finish(ctx, lc.Run, res.Twin, res.Wall); err != nil {
			return err
		}
	}
	sum := NewLoopSummary(o, name, res, names)
	if lc.Shard.sharded() {
		// The figures are this shard's apps'.
		sum.TwinShard, sum.Invocations = fmt.Sprintf("%d/%d", lc.Shard.Index, lc.Shard.Count), res.Twin.Arrivals
	}
	sum.WriteText(w)
	if lc.ExternalFeatures {
		fmt.Fprintf(w, "  features: windowed by `strata features` processes outside this one (their counts are theirs to print)\n")
	}
	if lc.Shard.sharded() {
		fmt.Fprintf(w, "  twin shard %s: the figures above are this shard's apps' (%d invocations); the tables (strata sink) hold the whole run\n", sum.TwinShard, res.Twin.Arrivals)
	}
	if lo.Store != "" {
		fmt.Fprintf(w, "  tables in %s: %d decisions, %d rewards written (query with: strata sql --store/--clickhouse …)\n",
			secret.Redact(lo.Store), res.Sink.Rows[schemas.TableDecisions], res.Sink.Rows[schemas.TableRewards])
		if res.Twin.Held > 0 {
			fmt.Fprintf(w, "  backpressure: the twin held %d ticks for %.1f s while the sink was more than --sink-max-lag rows behind\n",
				res.Twin.Held, res.Twin.HeldSeconds)
		}
	}
	if lo.Summary != "" {
		return WriteJSON(lo.Summary, sum)
	}
	return nil
}

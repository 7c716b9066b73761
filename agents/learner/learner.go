package learner

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/notify"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Store receives what a learner publishes, namespaced by run id.
type Store interface {
	// PutCheckpoint stores c for runID's layer c.Layer.
	PutCheckpoint(ctx context.Context, runID string, c schemas.Checkpoint) error
	// PutProgress records that the learner has processed every
	// transition of runID's layer up to and including interval i.
	PutProgress(ctx context.Context, runID string, layer schemas.Layer, i int64) error
}

// Config configures a Learner.
type Config struct {
	// Layers are the layers trained: strategic (DQN) and/or tactical (PPO).
	Layers []schemas.Layer
	// DQN and PPO configure the two learners.
	DQN dqn.Config
	PPO ppo.Config
	// PPOSeed seeds the PPO network's initialisation and minibatch order.
	PPOSeed uint64
	// Availability gives the PPO action mask of each provider; nil allows
	// every action.
	Availability *ppo.Availability
	// SwitchPenalty, when positive, is training-time shaping: a tactical
	// transition whose action moves the function away from the metro and
	// memory tier its state says it ran in has its reward lowered by this
	// much before PPO sees it. It needs a tactical feature set that says
	// where the function ran (schemas.FeatureSet.HasPlacement; the seed's
	// state does not). The rewards the twin writes — the tables, every
	// evaluation — are DESIGN's, unchanged.
	SwitchPenalty float64
	// DQNCounterfactual, when true, adds to the DQN's replay buffer, beside
	// each strategic transition, one counterfactual transition per other
	// action: the same state and next state with the reward the twin
	// scored for that provider in hindsight (Transition.action_rewards).
	// The next state is the taken action's (the strategic state is the
	// app's workload, which the provider hardly changes), so it is an
	// approximation for γ > 0. Each added transition earns the DQN's
	// update credit, so the gradient steps per day triple as well.
	DQNCounterfactual bool
	// DQNSwitchPenalty, when positive, is training-time shaping for the
	// DQN as SwitchPenalty is for PPO: a strategic transition (taken or
	// counterfactual) whose action moves the app off the provider its
	// state says it ran on has its reward lowered by this much. It needs
	// schemas.StrategicPlacement, whose state names the provider. The
	// twin's rewards are unchanged.
	DQNSwitchPenalty float64
}

// DefaultConfig returns the seed's learners (docs/agents.md) for layers, seeded
// with seed.
func DefaultConfig(seed uint64, layers ...schemas.Layer) Config {
	d := dqn.DefaultConfig()
	d.Seed = seed
	return Config{Layers: layers, DQN: d, PPO: ppo.DefaultConfig(), PPOSeed: seed}
}

// Stats counts what a learner did, all runs together.
type Stats struct {
	// Transitions counts transitions received per layer, Markers the
	// end-of-interval markers, Intervals the intervals processed.
	Transitions, Markers, Intervals map[schemas.Layer]int64
	// Rejected counts transitions the layer's algorithm refused, by reason
	// ("non-finite", "invalid", "stale-version", "duplicate", "full").
	Rejected map[string]int64
	// Checkpoints counts published checkpoints per layer.
	Checkpoints map[schemas.Layer]int64
	// Shaped counts tactical transitions whose reward the switching
	// penalty lowered (Config.SwitchPenalty); DQNShaped the strategic
	// ones (Config.DQNSwitchPenalty).
	Shaped, DQNShaped int64
	// DQN and PPO are the algorithms' own counters.
	DQN dqn.Stats
	PPO ppo.Stats
}

// UpdateEvent describes one published checkpoint, for progress output.
type UpdateEvent struct {
	RunID   string
	Layer   schemas.Layer
	Version string
	InForce int64
	// PPO is set for a tactical update.
	PPO *ppo.UpdateStats
	// Loss is DQN's mean loss over the interval's gradient steps (0 when
	// none ran).
	Loss float64
}

// Learner trains the strategic DQN and the tactical PPO from transitions
// and publishes their checkpoints. Its learners live across runs
// (episodes): Begin starts the next. Safe for concurrent use.
type Learner struct {
	cfg   Config
	store Store
	log   *slog.Logger
	// OnUpdate, if set, is called after each checkpoint is published.
	OnUpdate func(UpdateEvent)

	mu    sync.Mutex
	dqn   *dqn.Learner
	ppo   *ppo.Learner
	run   string
	acc   map[schemas.Layer]map[int64]*intervalAcc
	next  map[schemas.Layer]int64
	stats Stats
	// done counts the intervals processed in the current run, per layer.
	done map[schemas.Layer]int64
	// changed is notified after every interval processed.
	changed notify.Signal
	// dqnVersion is the last DQN version published in this run.
	dqnVersion string
}

// intervalAcc gathers one interval's transitions until its marker's count
// is reached.
type intervalAcc struct {
	trs  []*stratapb.Transition
	want int64 // −1 until the marker arrives
}

// New returns a learner with fresh networks for cfg.Layers. reg, if not
// nil, receives its metrics.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Learner, error) {
	if len(cfg.Layers) == 0 {
		return nil, errors.New("creating learner: no layer to train")
	}
	if p := cfg.SwitchPenalty; p < 0 || math.IsNaN(p) || math.IsInf(p, 0) || p > 0 && !cfg.PPO.Features().HasPlacement() {
		return nil, fmt.Errorf("creating learner: a switching penalty of %v needs a finite value ≥ 0 and a tactical feature set with the placement (%s or %s; this learner's is %s)",
			p, schemas.TacticalPlacement, schemas.TacticalPlacementV2, cfg.PPO.Features())
	}
	if p := cfg.DQNSwitchPenalty; p < 0 || math.IsNaN(p) || math.IsInf(p, 0) || p > 0 && cfg.DQN.Features() != schemas.StrategicPlacement {
		return nil, fmt.Errorf("creating learner: a DQN switching penalty of %v needs a finite value ≥ 0 and the strategic feature set %s, whose state names the provider (this learner's is %s)",
			p, schemas.StrategicPlacement, cfg.DQN.Features())
	}
	l := &Learner{cfg: cfg, log: logger}
	l.stats = Stats{Transitions: map[schemas.Layer]int64{}, Markers: map[schemas.Layer]int64{}, Intervals: map[schemas.Layer]int64{},
		Rejected: map[string]int64{}, Checkpoints: map[schemas.Layer]int64{}}
	for _, layer := range cfg.Layers {
		var err error
		switch layer {
		case schemas.Strategic:
			l.dqn, err = dqn.NewLearner(cfg.DQN)
		case schemas.Tactical:
			l.ppo, err = ppo.NewLearner(cfg.PPO, cfg.PPOSeed)
		default:
			err = fmt.Errorf("layer %s is not trained from transitions (the operational LSTM is trained supervised: strata train-lstm)", layer)
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("creating learner: %w", err)
		}
	}
	if reg != nil {
		if err := reg.Register(collector{l}); err != nil {
			l.Close()
			return nil, fmt.Errorf("registering learner metrics: %w", err)
		}
	}
	return l, nil
}

// Close releases the networks.
func (l *Learner) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dqn != nil {
		l.dqn.Close()
	}
	if l.ppo != nil {
		l.ppo.Close()
	}
}

// Trains reports whether the learner trains layer.
func (l *Learner) Trains(layer schemas.Layer) bool {
	return (layer == schemas.Strategic && l.dqn != nil) || (layer == schemas.Tactical && l.ppo != nil)
}

// Begin starts run runID as episode (0-based; it sets DQN's ε), publishing
// to store: it drops what is pending of an earlier run and publishes each
// layer's current model as in force from interval 0 of runID.
func (l *Learner) Begin(ctx context.Context, runID string, episode int, store Store) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.run, l.store = runID, store
	l.done = map[schemas.Layer]int64{}
	l.acc = map[schemas.Layer]map[int64]*intervalAcc{}
	l.next = map[schemas.Layer]int64{}
	l.dqnVersion = ""
	if l.dqn != nil {
		l.dqn.SetEpisode(episode)
	}
	for _, layer := range l.cfg.Layers {
		if err := l.publish(ctx, layer, 0, nil, 0); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot returns layer's current model as a checkpoint file and its
// version.
func (l *Learner) Snapshot(layer schemas.Layer) ([]byte, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshot(layer)
}

func (l *Learner) snapshot(layer schemas.Layer) ([]byte, string, error) {
	var buf bytes.Buffer
	switch {
	case layer == schemas.Strategic && l.dqn != nil:
		if err := l.dqn.Save(&buf); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), l.dqn.Version(), nil
	case layer == schemas.Tactical && l.ppo != nil:
		if err := l.ppo.Save(&buf); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), l.ppo.Version(), nil
	}
	return nil, "", fmt.Errorf("snapshot of %s: the learner does not train this layer", layer)
}

// Changed returns a channel closed the next time the learner has
// processed an interval (Done counts it), for waiting on its progress with
// notify.Until instead of polling.
func (l *Learner) Changed() <-chan struct{} { return l.changed.Changed() }

// Done returns the number of intervals of layer processed in the current
// run.
func (l *Learner) Done(layer schemas.Layer) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done[layer]
}

// Stats returns a copy of the counters.
func (l *Learner) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.statsLocked()
}

// Handle takes one record of strata.transitions.v1. Records of other runs
// and of layers the learner does not train are ignored. When the record
// completes an interval (and every earlier one is complete), the
// intervals are trained on and published in order.
func (l *Learner) Handle(ctx context.Context, tr *stratapb.Transition) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	layer := schemas.Layer(tr.GetLayer())
	if tr.GetRunId() != l.run || l.run == "" || !l.Trains(layer) {
		return nil
	}
	if l.store == nil {
		return fmt.Errorf("handling a %s transition of %s: %w: the restored run was not resumed (Resume)", layer, l.run, ErrState)
	}
	m := l.acc[layer]
	if m == nil {
		m = map[int64]*intervalAcc{}
		l.acc[layer] = m
	}
	a := m[tr.GetTick()]
	if a == nil {
		a = &intervalAcc{want: -1}
		m[tr.GetTick()] = a
	}
	if tr.GetEndOfInterval() {
		l.stats.Markers[layer]++
		a.want = tr.GetCount()
		if _, ok := l.next[layer]; !ok {
			// Markers of a layer share a partition (key = layer), so the
			// first one names the run's first interval.
			l.next[layer] = tr.GetTick()
		}
	} else {
		l.stats.Transitions[layer]++
		a.trs = append(a.trs, tr)
	}
	for {
		i, ok := l.next[layer]
		if !ok {
			return nil
		}
		a := m[i]
		if a == nil || a.want < 0 || int64(len(a.trs)) < a.want {
			return nil
		}
		delete(m, i)
		l.next[layer] = i + 1
		if err := l.process(ctx, layer, i, a.trs); err != nil {
			return err
		}
		l.changed.Notify()
	}
}

// addDQN adds tr's state and next state to the DQN's replay buffer with
// action a and reward r; a rejected transition is counted, not an error.
func (l *Learner) addDQN(tr *stratapb.Transition, a int, r float32) error {
	if l.cfg.DQNSwitchPenalty > 0 {
		if p, ok := schemas.ProviderOf(tr.GetState()); ok && a != p {
			r -= float32(l.cfg.DQNSwitchPenalty)
			l.stats.DQNShaped++
		}
	}
	err := l.dqn.Add(dqn.Transition{State: tr.GetState(), Action: a, Reward: r, Next: tr.GetNextState(), Done: tr.GetDone()})
	if err != nil && !l.reject(err) {
		return err
	}
	return nil
}

// process trains on interval i's transitions of layer, then publishes a
// new checkpoint (if any) in force from i+1 and the progress i.
func (l *Learner) process(ctx context.Context, layer schemas.Layer, i int64, trs []*stratapb.Transition) error {
	slices.SortFunc(trs, func(a, b *stratapb.Transition) int {
		return cmp.Or(cmp.Compare(a.GetApp(), b.GetApp()), cmp.Compare(a.GetFunc(), b.GetFunc()))
	})
	want := l.FeatureSet(layer)
	for _, tr := range trs {
		if got := transitionFeatures(tr, layer); got != want {
			return fmt.Errorf("training %s on interval %d of %s: %w: the transition of %s/%s is in feature set %s, this learner's network reads %s (the twin and the learner must be configured with one set)",
				layer, i, l.run, ErrFeatureSet, tr.GetApp(), tr.GetFunc(), got, want)
		}
	}
	l.stats.Intervals[layer]++
	l.done[layer]++
	switch layer {
	case schemas.Strategic:
		before := l.dqn.Stats()
		for _, tr := range trs {
			if err := l.addDQN(tr, int(tr.GetAction()), float32(tr.GetReward())); err != nil {
				return fmt.Errorf("training DQN on day %d of %s: %w", i, l.run, err)
			}
			if ar := tr.GetActionRewards(); l.cfg.DQNCounterfactual && len(ar) == l.cfg.DQN.Net.Actions {
				for a, r := range ar {
					if a == int(tr.GetAction()) {
						continue
					}
					if err := l.addDQN(tr, a, r); err != nil {
						return fmt.Errorf("training DQN on day %d of %s (counterfactual action %d): %w", i, l.run, a, err)
					}
				}
			}
		}
		st := l.dqn.Stats()
		loss := 0.0
		if n := st.Steps - before.Steps; n > 0 {
			loss = (st.LossSum - before.LossSum) / float64(n)
		}
		if v := l.dqn.Version(); v != l.dqnVersion {
			if err := l.publish(ctx, layer, i+1, nil, loss); err != nil {
				return err
			}
		}
	case schemas.Tactical:
		var updates []ppo.UpdateStats
		for _, tr := range trs {
			pt := ppo.Transition{RunID: tr.GetRunId(), App: tr.GetApp(), Func: tr.GetFunc(), Tick: tr.GetTick(),
				State: tr.GetState(), Action: int(tr.GetAction()), Reward: float32(tr.GetReward()),
				NextState: tr.GetNextState(), Done: tr.GetDone(), LogProb: float32(tr.GetLogProb()), Value: float32(tr.GetValue()),
				PolicyVersion: tr.GetPolicyVersion(), ActionRewards: tr.GetActionRewards()}
			pt.Mask = l.cfg.PPO.ActedMask(l.cfg.Availability, pt.State)
			if l.cfg.SwitchPenalty > 0 {
				if m, t, ok := schemas.PlacementOf(pt.State); ok && pt.Action != m*cloud.NumTiers+t {
					pt.Reward -= float32(l.cfg.SwitchPenalty)
					l.stats.Shaped++
				}
			}
			if err := l.ppo.Add(pt); err != nil {
				if !l.reject(err) {
					return fmt.Errorf("training PPO on hour %d of %s: %w", i, l.run, err)
				}
				continue
			}
			if l.ppo.Ready() {
				us, err := l.ppo.Update()
				if err != nil {
					return fmt.Errorf("updating PPO after hour %d of %s: %w", i, l.run, err)
				}
				updates = append(updates, us)
			}
		}
		if len(updates) > 0 {
			if err := l.publish(ctx, layer, i+1, &updates[len(updates)-1], 0); err != nil {
				return err
			}
		}
	}
	if err := l.store.PutProgress(ctx, l.run, layer, i); err != nil {
		return fmt.Errorf("publishing %s progress %d of %s: %w", layer, i, l.run, err)
	}
	return nil
}

// ErrFeatureSet is returned (wrapped) for a transition whose state is in
// another feature set than the learner's network reads.
var ErrFeatureSet = errors.New("transition of another feature set")

// FeatureSet returns the feature set the learner's network of layer reads:
// the transitions it trains on must be in it.
func (l *Learner) FeatureSet(layer schemas.Layer) schemas.FeatureSet {
	switch layer {
	case schemas.Tactical:
		return l.cfg.PPO.Features()
	case schemas.Strategic:
		return l.cfg.DQN.Features()
	}
	return schemas.DefaultFeatureSet(layer)
}

// transitionFeatures returns the feature set of tr's state: the one it
// names, or the layer's seed set for a transition written before sets were
// named.
func transitionFeatures(tr *stratapb.Transition, layer schemas.Layer) schemas.FeatureSet {
	if f := tr.GetFeatureSet(); f != "" {
		return schemas.FeatureSet(f)
	}
	return schemas.DefaultFeatureSet(layer)
}

// reject counts an error of the algorithms' input checks and reports
// whether it was one (the transition is dropped, training goes on).
func (l *Learner) reject(err error) bool {
	var reason string
	switch {
	case errors.Is(err, dqn.ErrNonFinite), errors.Is(err, ppo.ErrNonFinite):
		reason = "non-finite"
	case errors.Is(err, dqn.ErrTransition), errors.Is(err, ppo.ErrInvalidTransition):
		reason = "invalid"
	case errors.Is(err, ppo.ErrStaleVersion):
		reason = "stale-version"
	case errors.Is(err, ppo.ErrDuplicate):
		reason = "duplicate"
	case errors.Is(err, ppo.ErrBufferFull):
		reason = "full"
	default:
		return false
	}
	l.stats.Rejected[reason]++
	if reason != "stale-version" {
		l.log.Debug("transition rejected", "reason", reason, "err", err)
	}
	return true
}

// publish stores layer's current model as in force from interval from.
func (l *Learner) publish(ctx context.Context, layer schemas.Layer, from int64, us *ppo.UpdateStats, loss float64) error {
	data, version, err := l.snapshot(layer)
	if err != nil {
		return fmt.Errorf("publishing %s checkpoint of %s: %w", layer, l.run, err)
	}
	if err := l.store.PutCheckpoint(ctx, l.run, schemas.Checkpoint{Layer: layer, Version: version, InForce: from, Data: data}); err != nil {
		return fmt.Errorf("publishing %s checkpoint %s of %s: %w", layer, version, l.run, err)
	}
	if layer == schemas.Strategic {
		l.dqnVersion = version
	}
	l.stats.Checkpoints[layer]++
	if l.OnUpdate != nil {
		l.OnUpdate(UpdateEvent{RunID: l.run, Layer: layer, Version: version, InForce: from, PPO: us, Loss: loss})
	}
	return nil
}

package dqn

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/nn"
)

// Stats counts what the learner did. The package keeps no global metrics;
// the learner service exports these.
type Stats struct {
	// Added is the number of transitions accepted into the buffer.
	Added uint64
	// RejectedNonFinite counts transitions rejected before the buffer
	// because a state, next state or reward was NaN or ±Inf.
	RejectedNonFinite uint64
	// RejectedInvalid counts transitions rejected for a wrong state width
	// or an action outside the network's range.
	RejectedInvalid uint64
	// RewardsClipped counts accepted transitions whose reward was clipped
	// to ±RewardClip.
	RewardsClipped uint64
	// Steps counts accepted gradient steps (each followed by a soft target
	// update).
	Steps uint64
	// RejectedSteps counts gradient steps the network rejected (non-finite
	// batch, loss or gradient norm; see Net for the reason).
	RejectedSteps uint64
	// TargetsClipped counts targets that hit a value bound.
	TargetsClipped uint64
	// LastLoss is the loss of the last accepted step (Huber by default).
	LastLoss float32
	// LossSum is the sum of the accepted steps' losses (for mean losses
	// over a span of steps).
	LossSum float64
	// ScalerFitted reports whether the input scaler is in place.
	ScalerFitted bool
	// Net is a copy of the online network's own counters.
	Net nn.TrainStats
}

// Learner is the DQN learner core: replay buffer, online and target
// Q-networks, ε schedule and input scaler. It does no I/O apart from
// Save. One learner serves all apps (one shared policy). It is not safe
// for concurrent use.
type Learner struct {
	cfg            Config
	online, target *nn.QNet
	buf            *Buffer
	episode        int
	credit         float64
	// fitRows collects the states of the first ScalerFit transitions; nil
	// once the scaler is in place.
	fitRows []float32
	stats   Stats

	batch   Batch
	targets []float32
	// ablated are the inputs cfg.Ablate leaves out.
	ablated []int
}

// NewLearner returns a learner with freshly initialised networks (the
// target a copy of the online network) and an empty buffer.
func NewLearner(cfg Config) (*Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating DQN learner: %w", err)
	}
	online, err := nn.NewQNet(cfg.Net, cfg.Seed, nn.WithBackend(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("creating DQN online network: %w", err)
	}
	target, err := nn.NewQNet(cfg.Net, cfg.Seed, nn.WithBackend(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("creating DQN target network: %w", err)
	}
	return newLearner(cfg, online, target)
}

// newLearner assembles a learner around existing networks, on the
// configured backend.
func newLearner(cfg Config, online, target *nn.QNet) (*Learner, error) {
	backend, err := nn.ParseBackend(string(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("creating DQN learner: %w", err)
	}
	for _, n := range []*nn.QNet{online, target} {
		if n.Backend() != backend {
			if err := n.SetBackend(backend); err != nil {
				return nil, fmt.Errorf("creating DQN learner: %w", err)
			}
		}
	}
	buf, err := NewBuffer(cfg.BufferSize, cfg.Net.Inputs(), cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("creating DQN learner: %w", err)
	}
	l := &Learner{cfg: cfg, online: online, target: target, buf: buf, ablated: cfg.Ablated()}
	if online.Scaler == nil {
		l.fitRows = make([]float32, 0, min(cfg.ScalerFit, 1<<16)*cfg.Net.Inputs())
	} else {
		target.Scaler = online.Scaler
		l.stats.ScalerFitted = true
	}
	return l, nil
}

// Config returns the learner's configuration.
func (l *Learner) Config() Config { return l.cfg }

// Online returns the online network (trained by TrainStep). Callers must
// not train it behind the learner's back.
func (l *Learner) Online() *nn.QNet { return l.online }

// Target returns the target network.
func (l *Learner) Target() *nn.QNet { return l.target }

// Buffer returns the replay buffer.
func (l *Learner) Buffer() *Buffer { return l.buf }

// Stats returns a copy of the counters.
func (l *Learner) Stats() Stats {
	s := l.stats
	s.Net = l.online.Stats
	return s
}

// Close releases the networks' compiled graphs.
func (l *Learner) Close() {
	l.online.Close()
	l.target.Close()
}

// SetEpisode sets the current episode (counted from 0), which fixes ε.
func (l *Learner) SetEpisode(e int) { l.episode = max(e, 0) }

// Episode returns the current episode.
func (l *Learner) Episode() int { return l.episode }

// Epsilon returns the exploration rate of the current episode.
func (l *Learner) Epsilon() float64 { return l.cfg.Epsilon(l.episode) }

// Version returns the policy version of the current weights and episode,
// "e<episode>-s<accepted gradient steps>": it changes whenever the
// weights or ε do, and equal learners give equal versions.
func (l *Learner) Version() string {
	return fmt.Sprintf("e%d-s%d", l.episode, l.stats.Steps)
}

// Scaler returns the input scaler, or nil before it is fitted.
func (l *Learner) Scaler() *nn.Scaler { return l.online.Scaler }

// SetScaler installs a scaler fitted elsewhere (on training days only) in
// place of the automatic fit. It must be set before the first transition
// is added, or on a learner whose scaler is not yet fitted.
func (l *Learner) SetScaler(s *nn.Scaler) error {
	if s == nil {
		return fmt.Errorf("setting DQN scaler: %w: nil scaler", ErrConfig)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("setting DQN scaler: %w", err)
	}
	if s.Dim != l.cfg.Net.Inputs() {
		return fmt.Errorf("setting DQN scaler: %w: %d features for %d inputs", ErrConfig, s.Dim, l.cfg.Net.Inputs())
	}
	if l.stats.ScalerFitted {
		return fmt.Errorf("setting DQN scaler: %w: the scaler is already in place", ErrConfig)
	}
	l.online.Scaler, l.target.Scaler = s, s
	l.fitRows = nil
	l.stats.ScalerFitted = true
	return nil
}

// Ready reports whether TrainStep can run: the buffer holds at least
// WarmUp transitions and the scaler is in place.
func (l *Learner) Ready() bool {
	return l.stats.ScalerFitted && l.buf.Len() >= l.cfg.WarmUp
}

// Add validates t and stores it in the replay buffer, then runs
// UpdatesPerTransition gradient steps once the learner is Ready. Only
// transitions of training days may be added: the first ScalerFit
// accepted ones also fit the input scaler, which is frozen from then on.
//
// A transition holding NaN or ±Inf is rejected with ErrNonFinite, and one
// of the wrong width or with an out-of-range action with ErrTransition;
// both are counted and never reach the buffer. A reward beyond
// ±RewardClip is clipped and counted. Gradient steps the network rejects
// are counted in Stats and do not make Add fail; other training errors
// do.
func (l *Learner) Add(t Transition) error {
	if t.Action < 0 || t.Action >= l.cfg.Net.Actions {
		l.stats.RejectedInvalid++
		return fmt.Errorf("adding DQN transition: %w: action %d of %d", ErrTransition, t.Action, l.cfg.Net.Actions)
	}
	clipped := false
	if r := float64(t.Reward); l.cfg.RewardClip > 0 && !math.IsInf(r, 0) && math.Abs(r) > l.cfg.RewardClip {
		t.Reward = float32(clamp(r, -l.cfg.RewardClip, l.cfg.RewardClip))
		clipped = true
	}
	if err := l.buf.Add(t); err != nil {
		if errors.Is(err, ErrNonFinite) {
			l.stats.RejectedNonFinite++
		} else {
			l.stats.RejectedInvalid++
		}
		return fmt.Errorf("adding DQN transition: %w", err)
	}
	l.stats.Added++
	if clipped {
		l.stats.RewardsClipped++
	}
	if err := l.collectScalerRows(t.State); err != nil {
		return err
	}
	if !l.Ready() {
		return nil
	}
	l.credit += l.cfg.UpdatesPerTransition
	for l.credit >= 1 {
		l.credit--
		if _, err := l.TrainStep(); err != nil && !errors.Is(err, ErrNonFinite) {
			return err
		}
	}
	return nil
}

// collectScalerRows keeps the state for the scaler fit and fits the
// scaler once ScalerFit states are in.
func (l *Learner) collectScalerRows(state []float32) error {
	if l.stats.ScalerFitted {
		return nil
	}
	l.fitRows = append(l.fitRows, state...)
	if len(l.fitRows) < l.cfg.ScalerFit*l.cfg.Net.Inputs() {
		return nil
	}
	sc, err := nn.FitScaler(l.cfg.ScalerKind, l.fitRows, l.cfg.Net.Inputs(), l.cfg.ScalerLog1p)
	if err != nil {
		return fmt.Errorf("fitting DQN input scaler: %w", err)
	}
	l.online.Scaler, l.target.Scaler = sc, sc
	l.fitRows = nil
	l.stats.ScalerFitted = true
	return nil
}

// TrainStep samples a minibatch, computes the clipped targets from the
// target network (Config.Targets), takes one gradient step on the online
// network's loss (nn's Huber by default) and soft-updates the target
// network by τ. It returns the loss. Before the learner is Ready it fails
// with ErrNotReady; a step the network rejects fails with ErrNonFinite
// (counted, weights and target unchanged).
func (l *Learner) TrainStep() (float32, error) {
	if !l.Ready() {
		return 0, fmt.Errorf("DQN training step: %w: %d of %d warm-up transitions, scaler fitted %v", ErrNotReady, l.buf.Len(), l.cfg.WarmUp, l.stats.ScalerFitted)
	}
	b, err := l.buf.Sample(&l.batch, l.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("DQN training step: %w", err)
	}
	sc := l.online.Scaler
	if _, err := sc.Transform(b.States, b.States); err != nil {
		return 0, fmt.Errorf("DQN training step: %w", err)
	}
	if _, err := sc.Transform(b.Next, b.Next); err != nil {
		return 0, fmt.Errorf("DQN training step: %w", err)
	}
	d := l.cfg.Net.Inputs()
	zeroInputs(b.States, d, l.ablated)
	zeroInputs(b.Next, d, l.ablated)
	qnext, err := l.target.Forward(b.Next)
	if err != nil {
		return 0, fmt.Errorf("DQN training step: target Q-values: %w", err)
	}
	targets, clipped, err := l.cfg.Targets(l.targets, b.Rewards, b.Dones, qnext)
	if err != nil {
		l.stats.RejectedSteps++
		return 0, fmt.Errorf("DQN training step: %w", err)
	}
	l.targets = targets
	loss, err := l.online.TrainStep(nn.QBatch{States: b.States, Actions: b.Actions, Targets: targets})
	if err != nil {
		if errors.Is(err, ErrNonFinite) {
			l.stats.RejectedSteps++
		}
		return loss, fmt.Errorf("DQN training step: %w", err)
	}
	if err := l.target.SoftUpdate(l.online, float32(l.cfg.Tau)); err != nil {
		return loss, fmt.Errorf("DQN training step: %w", err)
	}
	l.stats.Steps++
	l.stats.TargetsClipped += uint64(clipped)
	l.stats.LastLoss = loss
	l.stats.LossSum += float64(loss)
	return loss, nil
}

// QValues returns the online network's Q-values (B×Actions) of B raw
// states (scaled here), in evaluation mode.
func (l *Learner) QValues(states []float32) ([]float32, error) {
	x := append([]float32(nil), states...)
	if sc := l.online.Scaler; sc != nil {
		if _, err := sc.Transform(x, x); err != nil {
			return nil, fmt.Errorf("DQN Q-values: %w", err)
		}
	}
	zeroInputs(x, l.cfg.Net.Inputs(), l.ablated)
	q, err := l.online.Forward(x)
	if err != nil {
		return nil, fmt.Errorf("DQN Q-values: %w", err)
	}
	return q, nil
}

// Policy returns a serving policy on a snapshot of the online network's
// current weights, with the learner's version. With explore set it is
// ε-greedy at the current episode's ε (closed-loop training episodes);
// otherwise greedy (evaluation, ε = 0).
func (l *Learner) Policy(seed int64, explore bool) (*Policy, error) {
	eps := 0.0
	if explore {
		eps = l.Epsilon()
	}
	p, err := NewPolicy(l.online.Export(), PolicyConfig{Seed: seed, Epsilon: eps, Version: l.Version(), Features: l.cfg.Features(), Ablated: l.ablated})
	if err != nil {
		return nil, fmt.Errorf("DQN learner policy: %w", err)
	}
	return p, nil
}

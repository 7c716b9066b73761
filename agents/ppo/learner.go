package ppo

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/strata-rl/strata/agents/nn"
)

// Transition is one tactical learning sample: the raw state an entity's
// decision for interval Tick was made from, the action, the interval's
// reward and what follows (schemas' strata.transitions.v1 Transition).
type Transition struct {
	// RunID, App and Func name the entity; with Tick they identify the
	// transition. Trajectories are per (RunID, App, Func).
	RunID, App, Func string
	// Tick is the layer's interval index (the hour for the tactical layer).
	Tick int64
	// State is the raw state vector (schemas.TacticalRow.Vector).
	State []float32
	// Action is the action taken, 0..Actions−1.
	Action int
	// Reward is the interval's reward.
	Reward float32
	// NextState is the raw state of the next interval; empty when Done.
	NextState []float32
	// Done is true when the entity has no next state (inactive in the next
	// interval, or the run ended).
	Done bool
	// LogProb is the log-probability of Action under the policy that
	// chose it, and Value that policy's critic value (DecisionRow.LogProb
	// and Value; Value is ignored for a rollout of the uniform version-0
	// policy, whose values the learner computes itself).
	LogProb, Value float32
	// Mask holds Actions flags, true where the action was allowed (nil:
	// all); Availability.Mask gives it.
	Mask []bool
	// PolicyVersion is the version string of the policy that chose Action
	// (DecisionRow.PolicyVersion).
	PolicyVersion string
	// ActionRewards holds, when the twin scored them, the reward each of
	// the Actions would have earned in the interval (nil: not scored).
	// The update credits every action with them when
	// Config.Net.CounterfactualCoef is positive.
	ActionRewards []float32 `json:",omitempty"`
}

// Stats counts what a learner accepted, rejected and did. The learner
// exports these as metrics; the package keeps no global counters.
type Stats struct {
	// Version is the current policy version number.
	Version uint64
	// Buffered is the number of transitions in the rollout buffer.
	Buffered int
	// Accepted counts transitions that entered the buffer.
	Accepted uint64
	// RejectedVersion counts transitions of another policy version.
	RejectedVersion uint64
	// RejectedNonFinite counts transitions holding NaN or ±Inf.
	RejectedNonFinite uint64
	// RejectedInvalid counts malformed transitions (ErrInvalidTransition).
	RejectedInvalid uint64
	// RejectedDuplicate counts repeated (run, entity, tick) transitions.
	RejectedDuplicate uint64
	// RejectedFull counts transitions offered to a full buffer.
	RejectedFull uint64
	// ClippedRewards counts rewards bounded by RewardClip.
	ClippedRewards uint64
	// Updates counts completed updates (= version bumps).
	Updates uint64
	// SkippedMinibatches counts minibatch steps the network rejected as
	// non-finite (input, loss or gradient), all updates together.
	SkippedMinibatches uint64
	// Net is the actor-critic's own step counters.
	Net nn.TrainStats
	// Last describes the last update.
	Last UpdateStats
}

// UpdateStats describes one update.
type UpdateStats struct {
	// Version is the version the update produced.
	Version uint64
	// Samples is the rollout size; Segments the number of trajectory
	// segments GAE ran over.
	Samples, Segments int
	// Epochs is the number of epochs run; StoppedEarly is true when
	// TargetKL ended them before Config.Epochs.
	Epochs       int
	StoppedEarly bool
	// Steps and Skipped count accepted and rejected minibatch steps.
	Steps, Skipped int
	// ScalerFitted is true when this update fitted the scaler on the
	// rollout's states.
	ScalerFitted bool
	// PolicyLoss, ValueLoss and Entropy are the loss terms averaged over
	// the accepted steps.
	PolicyLoss, ValueLoss, Entropy float64
	// Counterfactual is the policy's expected normalised action reward
	// averaged over the accepted steps (0 when the all-action term is off);
	// Counterfactuals counts the rollout's transitions that carried action
	// rewards.
	Counterfactual  float64
	Counterfactuals int
	// MeanReward is the rollout's mean (clipped) reward; AdvantageMean and
	// AdvantageStd describe the advantages before normalisation.
	MeanReward, AdvantageMean, AdvantageStd float64
	// ExplainedVariance is 1 − Var(return − value) / Var(return) of the
	// values used by GAE.
	ExplainedVariance float64
	// ApproxKL is mean((r − 1) − log r) and ClipFraction the share of
	// |r − 1| > ε, r the ratio of the updated policy to the rollout's
	// policy over the rollout.
	ApproxKL, ClipFraction float64
}

// Learner is the PPO learner: a rollout buffer of the current policy
// version's transitions and the update that consumes it. It is pure (no
// I/O, no clock) and not safe for concurrent use.
type Learner struct {
	cfg     Config
	net     *nn.PPONet
	version uint64
	buf     []Transition
	seen    map[txKey]struct{}
	stats   Stats
	model   *Model
	// uniform is true while the current version is served without a
	// scaler, as the uniform policy.
	uniform bool

	// Minibatch and forward-pass scratch.
	mb  nn.PPOBatch
	fwd nn.PPOOutput
}

type txKey struct {
	run, app, fn string
	tick         int64
}

// NewLearner returns a learner at version 0 with an actor-critic
// initialised from seed. Without a scaler (SetScaler), version 0 is the
// uniform policy and the first update fits the scaler on the first
// rollout's states.
func NewLearner(cfg Config, seed uint64) (*Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating PPO learner: %w", err)
	}
	net, err := nn.NewPPONet(cfg.Net, seed, nn.WithBackend(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("creating PPO learner: %w", err)
	}
	return newLearner(cfg, net, 0), nil
}

func newLearner(cfg Config, net *nn.PPONet, version uint64) *Learner {
	l := &Learner{cfg: cfg, net: net, version: version, seen: map[txKey]struct{}{}}
	// The rollout size comes from a checkpoint when loading one: the
	// buffer grows to it rather than being allocated at once.
	l.buf = make([]Transition, 0, min(cfg.Rollout, 4096))
	l.publish()
	return l
}

// publish exports the current weights as the current version's Model.
func (l *Learner) publish() {
	l.model = newModel(l.version, l.cfg, l.net.Export())
	l.uniform = l.net.Scaler == nil
}

// Config returns the learner's configuration.
func (l *Learner) Config() Config { return l.cfg }

// Seed returns the seed the actor-critic was initialised from.
func (l *Learner) Seed() uint64 { return l.net.Seed() }

// Version returns the current policy version string: transitions must
// carry it to be accepted.
func (l *Learner) Version() string { return FormatVersion(l.version) }

// Model returns the current version's model for serving.
func (l *Learner) Model() *Model { return l.model }

// Net returns the actor-critic (for inspection; training it outside the
// learner breaks the on-policy contract).
func (l *Learner) Net() *nn.PPONet { return l.net }

// Stats returns the learner's counters.
func (l *Learner) Stats() Stats {
	s := l.stats
	s.Version, s.Buffered, s.Net = l.version, len(l.buf), l.net.Stats
	return s
}

// Ready reports whether the rollout is full and Update can run.
func (l *Learner) Ready() bool { return len(l.buf) >= l.cfg.Rollout }

// Close releases the actor-critic's compiled graphs.
func (l *Learner) Close() { l.net.Close() }

// SetScaler sets the feature scaler before the first update, for a caller
// that fits it on a larger sample of training-day states than the first
// rollout (nn.FitScaler with Config.ScalerKind and ScalerLog1p). It fails
// once a scaler is in place or transitions are buffered: the buffered ones
// were collected without it.
func (l *Learner) SetScaler(sc *nn.Scaler) error {
	if l.net.Scaler != nil || len(l.buf) > 0 {
		return fmt.Errorf("setting PPO scaler: %w: the scaler is fixed once set or once transitions are buffered", ErrConfig)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("setting PPO scaler: %w", err)
	}
	if sc.Dim != l.cfg.Net.Inputs {
		return fmt.Errorf("setting PPO scaler: %w: scaler of %d features for %d inputs", ErrConfig, sc.Dim, l.cfg.Net.Inputs)
	}
	l.net.Scaler = sc
	l.publish()
	return nil
}

// Add checks a transition and buffers a copy of it. It rejects, counts in
// Stats and returns (wrapped) ErrStaleVersion for another policy version,
// ErrInvalidTransition for a malformed one, ErrNonFinite for NaN or ±Inf
// values, ErrDuplicate for a repeated (run, entity, tick) and
// ErrBufferFull when the rollout is full (call Update). Rewards beyond
// RewardClip are clipped.
func (l *Learner) Add(t Transition) error {
	where := func() string {
		return fmt.Sprintf("adding PPO transition (%s/%s/%s tick %d)", t.RunID, t.App, t.Func, t.Tick)
	}
	if t.PolicyVersion != l.Version() {
		l.stats.RejectedVersion++
		return fmt.Errorf("%s: %w: %q, current %q", where(), ErrStaleVersion, t.PolicyVersion, l.Version())
	}
	if err := l.check(&t); err != nil {
		l.stats.RejectedInvalid++
		return fmt.Errorf("%s: %w: %w", where(), ErrInvalidTransition, err)
	}
	if !finite(t.State, t.NextState, t.ActionRewards, []float32{t.Reward, t.LogProb, t.Value}) {
		l.stats.RejectedNonFinite++
		return fmt.Errorf("%s: %w", where(), ErrNonFinite)
	}
	k := txKey{t.RunID, t.App, t.Func, t.Tick}
	if _, dup := l.seen[k]; dup {
		l.stats.RejectedDuplicate++
		return fmt.Errorf("%s: %w", where(), ErrDuplicate)
	}
	if l.Ready() {
		l.stats.RejectedFull++
		return fmt.Errorf("%s: %w: %d transitions wait for Update", where(), ErrBufferFull, len(l.buf))
	}
	if c := float32(l.cfg.RewardClip); c > 0 && (t.Reward > c || t.Reward < -c) {
		t.Reward = min(max(t.Reward, -c), c)
		l.stats.ClippedRewards++
	}
	t.State, t.NextState, t.Mask = slices.Clone(t.State), slices.Clone(t.NextState), slices.Clone(t.Mask)
	t.ActionRewards = slices.Clone(t.ActionRewards)
	if t.Done {
		t.NextState = nil
	}
	l.seen[k] = struct{}{}
	l.buf = append(l.buf, t)
	l.stats.Accepted++
	return nil
}

// minLogProb is the lowest log-probability a transition may carry: the
// natural log of the smallest positive float32 (math.SmallestNonzeroFloat32,
// ≈ 1.4e-45), rounded down. An action sampled from a policy had at least
// that probability; one with less would make the ratio of the updated policy
// to the rollout's overflow (the update's loss and the rollout's KL
// divergence become infinite).
const minLogProb = -103.3

// check reports what is malformed in t.
func (l *Learner) check(t *Transition) error {
	in, A := l.cfg.Net.Inputs, l.cfg.Net.Actions
	switch {
	case len(t.State) != in:
		return fmt.Errorf("state of %d values, want %d", len(t.State), in)
	case !t.Done && len(t.NextState) != in:
		return fmt.Errorf("not done, next state of %d values, want %d", len(t.NextState), in)
	case t.Action < 0 || t.Action >= A:
		return fmt.Errorf("action %d outside 0..%d", t.Action, A-1)
	case t.LogProb > 1e-4:
		return fmt.Errorf("log-probability %v > 0", t.LogProb)
	case t.LogProb < minLogProb:
		return fmt.Errorf("log-probability %v below %v, the log of the smallest positive float32: no policy chose the action with that probability", t.LogProb, minLogProb)
	}
	if t.ActionRewards != nil && len(t.ActionRewards) != A {
		return fmt.Errorf("%d action rewards, want %d", len(t.ActionRewards), A)
	}
	if t.Mask != nil {
		if len(t.Mask) != A {
			return fmt.Errorf("mask of %d flags, want %d", len(t.Mask), A)
		}
		if !t.Mask[t.Action] {
			return fmt.Errorf("action %d is masked", t.Action)
		}
	}
	return nil
}

// Update consumes the full rollout: it fits the scaler on the rollout's
// states if there is none yet, computes GAE advantages and returns per
// trajectory segment (see segments), normalises the advantages over the
// rollout, runs Epochs passes of shuffled minibatches through the PPO loss,
// empties the buffer and bumps the version. A minibatch the network
// rejects as non-finite is skipped and counted. It fails with ErrNotReady
// before the rollout is full; on any other error the buffer and version
// are kept (the weights may have been partly updated).
func (l *Learner) Update() (UpdateStats, error) {
	n := len(l.buf)
	if n < l.cfg.Rollout {
		return UpdateStats{}, fmt.Errorf("updating PPO %s: %w: %d of %d transitions", l.Version(), ErrNotReady, n, l.cfg.Rollout)
	}
	fail := func(err error) (UpdateStats, error) {
		return UpdateStats{}, fmt.Errorf("updating PPO %s: %w", l.Version(), err)
	}
	cfg := l.cfg
	us := UpdateStats{Version: l.version + 1, Samples: n}
	ro, err := l.rollout(&us)
	if err != nil {
		return fail(err)
	}
	states, masks, adv, ret := ro.states, ro.masks, ro.adv, ro.ret
	sc := ro.scaler

	// Epochs of shuffled minibatches. The shuffle is seeded by the
	// network's seed and the version, so a reloaded learner continues the
	// same sequence.
	if l.net.Scaler == nil {
		l.net.Scaler = sc
	}
	rng := rand.New(rand.NewPCG(l.net.Seed(), 0x9e3779b97f4a7c15^l.version))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for range cfg.Epochs {
		us.Epochs++
		rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for lo := 0; lo < n; lo += cfg.Minibatch {
			idx := perm[lo:min(lo+cfg.Minibatch, n)]
			b := l.minibatch(idx, states, masks, adv, ret, ro.actionRewards)
			_, err := l.net.TrainStep(b)
			if errors.Is(err, nn.ErrNonFinite) {
				us.Skipped++
				l.stats.SkippedMinibatches++
				continue
			}
			if err != nil {
				return fail(err)
			}
			us.Steps++
			us.PolicyLoss += float64(l.net.Last.Policy)
			us.ValueLoss += float64(l.net.Last.Value)
			us.Entropy += float64(l.net.Last.Entropy)
			us.Counterfactual += float64(l.net.Last.Counterfactual)
		}
		if cfg.TargetKL > 0 && us.Epochs < cfg.Epochs {
			kl, _, err := l.divergence(states, masks)
			if err != nil {
				return fail(err)
			}
			if kl > 1.5*cfg.TargetKL {
				us.StoppedEarly = true
				break
			}
		}
	}
	if us.Steps > 0 {
		us.PolicyLoss /= float64(us.Steps)
		us.ValueLoss /= float64(us.Steps)
		us.Entropy /= float64(us.Steps)
		us.Counterfactual /= float64(us.Steps)
	}

	// How far the update moved the policy from the rollout's.
	if us.ApproxKL, us.ClipFraction, err = l.divergence(states, masks); err != nil {
		return fail(err)
	}

	clear(l.buf)
	l.buf = l.buf[:0]
	clear(l.seen)
	l.version++
	l.stats.Updates++
	l.stats.Last = us
	l.publish()
	return us, nil
}

// rolloutData is a rollout prepared for the update.
type rolloutData struct {
	scaler   *nn.Scaler
	states   []float32 // scaled, n×Inputs
	masks    []bool    // n×Actions, nil when no transition has a mask
	values   []float32 // V(s) used by GAE
	adv, ret []float32 // advantages (normalised) and value targets
	// actionRewards are n×Actions normalised action rewards (see
	// normalizeActionRewards), nil when the all-action term is off or no
	// transition carries them.
	actionRewards []float32
	rawAdv        []float32 // advantages before normalisation
	segs          [][]int
}

// rollout fits the scaler if needed, scales the states, gathers the masks
// and values, and computes GAE per segment and the normalised advantages.
func (l *Learner) rollout(us *UpdateStats) (*rolloutData, error) {
	cfg, in, A := l.cfg, l.cfg.Net.Inputs, l.cfg.Net.Actions
	n := len(l.buf)
	ro := &rolloutData{}
	raw := make([]float32, 0, n*in)
	for i := range l.buf {
		raw = append(raw, l.buf[i].State...)
	}
	sc := l.net.Scaler
	if sc == nil {
		var err error
		if sc, err = nn.FitScaler(cfg.ScalerKind, raw, in, cfg.ScalerLog1p); err != nil {
			return nil, err
		}
		us.ScalerFitted = true
	}
	ro.scaler = sc
	states, err := scaleStates(sc, cfg.StateClip, l.model.ablated, nil, raw)
	if err != nil {
		return nil, err
	}
	ro.states = states
	var masks []bool
	for i := range l.buf {
		if l.buf[i].Mask != nil {
			masks = make([]bool, n*A)
			break
		}
	}
	if masks != nil {
		for i := range l.buf {
			row := masks[i*A : (i+1)*A]
			if m := l.buf[i].Mask; m != nil {
				copy(row, m)
			} else {
				for j := range row {
					row[j] = true
				}
			}
		}
	}
	ro.masks = masks
	w := l.net.Export()
	w.Scaler = sc
	// Values: the ones the rollout's policy reported, unless it was the
	// uniform policy, which has none; then the current critic's.
	values := make([]float32, n)
	var out nn.PPOOutput
	if l.uniform {
		if out, err = w.Forward(out, states, masks); err != nil {
			return nil, err
		}
		copy(values, out.Values)
	} else {
		for i := range l.buf {
			values[i] = l.buf[i].Value
		}
	}
	ro.values = values

	// GAE per trajectory segment; bootstrap values of segments that end
	// without done come from the critic on their next states.
	segs := segments(l.buf)
	ro.segs = segs
	us.Segments = len(segs)
	var bootRaw []float32
	var bootSeg []int
	for s, seg := range segs {
		if last := &l.buf[seg[len(seg)-1]]; !last.Done {
			bootRaw = append(bootRaw, last.NextState...)
			bootSeg = append(bootSeg, s)
		}
	}
	boot := make([]float32, len(segs))
	if len(bootSeg) > 0 {
		x, err := scaleStates(sc, cfg.StateClip, l.model.ablated, nil, bootRaw)
		if err != nil {
			return nil, err
		}
		if out, err = w.Forward(out, x, nil); err != nil {
			return nil, err
		}
		for k, s := range bootSeg {
			boot[s] = out.Values[k]
		}
	}
	adv, ret := make([]float32, n), make([]float32, n)
	var r, v, a, rt []float32
	for s, seg := range segs {
		r, v = r[:0], v[:0]
		for _, i := range seg {
			r = append(r, l.buf[i].Reward)
			v = append(v, values[i])
		}
		a, rt = slices.Grow(a[:0], len(seg))[:len(seg)], slices.Grow(rt[:0], len(seg))[:len(seg)]
		gaeInto(a, rt, r, v, boot[s], cfg.Gamma, cfg.Lambda)
		for k, i := range seg {
			adv[i], ret[i] = a[k], rt[k]
		}
	}
	if !finite(adv, ret, values) {
		return nil, fmt.Errorf("%w: advantages or returns not finite", ErrNonFinite)
	}
	us.ExplainedVariance = explainedVariance(values, ret)
	for i := range l.buf {
		us.MeanReward += float64(l.buf[i].Reward) / float64(n)
	}
	if cfg.Net.CounterfactualCoef > 0 {
		ro.actionRewards, us.Counterfactuals = l.normalizeActionRewards(masks)
	}
	ro.rawAdv = slices.Clone(adv)
	us.AdvantageMean, us.AdvantageStd = NormalizeAdvantages(adv)
	ro.adv, ro.ret = adv, ret
	return ro, nil
}

// normalizeActionRewards returns the rollout's action rewards, n×Actions,
// each row centred on its allowed actions' mean and all divided by the
// rollout's standard deviation of the centred rewards, so the all-action
// term's scale does not depend on the reward's units; masked actions and
// transitions without action rewards get zeros (no credit). It returns nil
// when no transition carries them, and the number that do.
func (l *Learner) normalizeActionRewards(masks []bool) ([]float32, int) {
	A, n := l.cfg.Net.Actions, len(l.buf)
	var out []float32
	count, cells := 0, 0
	var ss float64
	for i := range l.buf {
		rw := l.buf[i].ActionRewards
		if rw == nil {
			continue
		}
		if out == nil {
			out = make([]float32, n*A)
		}
		count++
		row := out[i*A : (i+1)*A]
		var sum float64
		k := 0
		for j, r := range rw {
			if masks == nil || masks[i*A+j] {
				sum += float64(r)
				k++
			}
		}
		mean := sum / float64(max(k, 1))
		for j, r := range rw {
			if masks == nil || masks[i*A+j] {
				row[j] = float32(float64(r) - mean)
				ss += float64(row[j]) * float64(row[j])
				cells++
			}
		}
	}
	if out == nil {
		return nil, 0
	}
	if std := math.Sqrt(ss / float64(max(cells, 1))); std > 1e-8 {
		inv := float32(1 / std)
		for i := range out {
			out[i] *= inv
		}
	}
	return out, count
}

// divergence returns the approximate KL divergence mean((r − 1) − log r)
// of the current policy from the rollout's over the buffered transitions,
// and the share of them with |r − 1| > ε, r the probability ratio.
func (l *Learner) divergence(states []float32, masks []bool) (kl, clipFrac float64, err error) {
	A, n := l.cfg.Net.Actions, len(l.buf)
	l.fwd, err = l.net.Export().Forward(l.fwd, states, masks)
	if err != nil {
		return 0, 0, err
	}
	eps := l.cfg.Net.ClipEpsilon
	for i := range l.buf {
		lr := float64(l.fwd.LogProbs[i*A+l.buf[i].Action] - l.buf[i].LogProb)
		ratio := math.Exp(lr)
		kl += (ratio - 1 - lr) / float64(n)
		if math.Abs(ratio-1) > eps {
			clipFrac += 1 / float64(n)
		}
	}
	return kl, clipFrac, nil
}

// minibatch gathers the rows idx into the reusable minibatch, with their
// normalised action rewards when actionRewards is not nil.
func (l *Learner) minibatch(idx []int, states []float32, masks []bool, adv, ret, actionRewards []float32) nn.PPOBatch {
	in, A := l.cfg.Net.Inputs, l.cfg.Net.Actions
	b := &l.mb
	b.States, b.Actions, b.OldLogProbs, b.Advantages, b.Returns = b.States[:0], b.Actions[:0], b.OldLogProbs[:0], b.Advantages[:0], b.Returns[:0]
	b.Masks, b.ActionRewards = b.Masks[:0], b.ActionRewards[:0]
	for _, i := range idx {
		if actionRewards != nil {
			b.ActionRewards = append(b.ActionRewards, actionRewards[i*A:(i+1)*A]...)
		}
		b.States = append(b.States, states[i*in:(i+1)*in]...)
		if masks != nil {
			b.Masks = append(b.Masks, masks[i*A:(i+1)*A]...)
		}
		b.Actions = append(b.Actions, l.buf[i].Action)
		b.OldLogProbs = append(b.OldLogProbs, l.buf[i].LogProb)
		b.Advantages = append(b.Advantages, adv[i])
		b.Returns = append(b.Returns, ret[i])
	}
	out := *b
	if masks == nil {
		out.Masks = nil
	}
	if actionRewards == nil {
		out.ActionRewards = nil
	}
	return out
}

// explainedVariance returns 1 − Var(ret − v) / Var(ret), or 0 when the
// returns are constant.
func explainedVariance(v, ret []float32) float64 {
	var mr, md float64
	n := float64(len(ret))
	for i := range ret {
		mr += float64(ret[i]) / n
		md += float64(ret[i]-v[i]) / n
	}
	var vr, vd float64
	for i := range ret {
		a, b := float64(ret[i])-mr, float64(ret[i]-v[i])-md
		vr += a * a / n
		vd += b * b / n
	}
	if vr < 1e-12 {
		return 0
	}
	return 1 - vd/vr
}

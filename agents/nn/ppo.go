package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// maskedLogit is added to the logits of actions a mask forbids, so their
// softmax probability underflows to 0.
const maskedLogit = -1e9

// PPOConfig describes the tactical actor-critic and its PPO loss. The zero
// value is not usable; start from DefaultPPOConfig.
type PPOConfig struct {
	// Inputs is the state width (11).
	Inputs int `json:"inputs"`
	// Shared are the shared extractor's widths (128, 128), each layer
	// Linear → LayerNorm → ReLU → dropout.
	Shared [2]int `json:"shared"`
	// ActorHidden are the actor's hidden widths (128, 64), Linear → ReLU.
	ActorHidden [2]int `json:"actor_hidden"`
	// CriticHidden is the critic's hidden width (64), Linear → ReLU.
	CriticHidden int `json:"critic_hidden"`
	// Actions is the number of logits (24 = 4 regions × 6 memory tiers).
	Actions int `json:"actions"`
	// Dropout is the shared extractor's drop probability in training (0.1).
	Dropout float64 `json:"dropout"`
	// LayerNormEps is LayerNorm's variance floor (1e-5).
	LayerNormEps float64 `json:"layernorm_eps"`
	// ClipEpsilon is the surrogate's clip (0.2).
	ClipEpsilon float64 `json:"clip_epsilon"`
	// ValueCoef weighs the value loss (0.5).
	ValueCoef float64 `json:"value_coef"`
	// EntropyCoef weighs the entropy bonus (0.01).
	EntropyCoef float64 `json:"entropy_coef"`
	// RatioMin and RatioMax bound the probability ratio before the
	// surrogate's clip (0.01, 100).
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
	// Optimizer is Adam 3e-4 with global-norm clip 0.5.
	Optimizer Optimizer `json:"optimizer"`
	// CounterfactualCoef, when positive, adds the all-action term to the
	// loss: Total −= CounterfactualCoef·mean_b(Σ_a π(a|s_b)·R_b,a), the
	// policy's expected reward under the batch's ActionRewards — the
	// rewards every action would have earned in the interval, which the
	// digital twin scores in hindsight. Its gradient on the logits is
	// π_a·(R_a − Σ π R): every action is credited, not only the one taken.
	// 0 (the seed's PPO) leaves the loss and the computation as they were.
	CounterfactualCoef float64 `json:"counterfactual_coef,omitempty"`
}

// DefaultPPOConfig returns the seed's tactical actor-critic (docs/agents.md).
func DefaultPPOConfig() PPOConfig {
	return PPOConfig{
		Inputs: 11, Shared: [2]int{128, 128},
		ActorHidden: [2]int{128, 64}, CriticHidden: 64, Actions: 24,
		Dropout: 0.1, LayerNormEps: 1e-5,
		ClipEpsilon: 0.2, ValueCoef: 0.5, EntropyCoef: 0.01,
		RatioMin: 0.01, RatioMax: 100,
		Optimizer: adamDefaults(3e-4, 0.5),
	}
}

// Validate reports an invalid configuration.
func (c PPOConfig) Validate() error {
	if !positive(c.Inputs, c.Shared[0], c.Shared[1], c.ActorHidden[0], c.ActorHidden[1], c.CriticHidden, c.Actions) {
		return fmt.Errorf("%w: actor-critic widths must be positive: %+v", ErrConfig, c)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) || !(c.LayerNormEps > 0) {
		return fmt.Errorf("%w: dropout %v, LayerNorm eps %v", ErrConfig, c.Dropout, c.LayerNormEps)
	}
	if !(c.ClipEpsilon > 0 && c.ClipEpsilon < 1) || !(c.ValueCoef >= 0) || !(c.EntropyCoef >= 0) {
		return fmt.Errorf("%w: clip %v, value coef %v, entropy coef %v", ErrConfig, c.ClipEpsilon, c.ValueCoef, c.EntropyCoef)
	}
	if !(c.CounterfactualCoef >= 0) || math.IsInf(c.CounterfactualCoef, 0) {
		return fmt.Errorf("%w: counterfactual coefficient %v", ErrConfig, c.CounterfactualCoef)
	}
	if !(c.RatioMin > 0 && c.RatioMin < 1 && c.RatioMax > 1) || math.IsInf(c.RatioMax, 0) {
		return fmt.Errorf("%w: ratio bounds [%v, %v]", ErrConfig, c.RatioMin, c.RatioMax)
	}
	return c.Optimizer.validate()
}

type ppoLayers struct {
	shared   [2]denseParams
	sharedLN [2]normParams
	actor    [3]denseParams
	critic   [2]denseParams
}

func newPPOLayers(ps *paramSet, c PPOConfig) ppoLayers {
	var l ppoLayers
	l.shared[0] = addDense(ps, "shared.0", c.Inputs, c.Shared[0], initHe)
	l.sharedLN[0] = addNorm(ps, "shared.0.norm", c.Shared[0])
	l.shared[1] = addDense(ps, "shared.1", c.Shared[0], c.Shared[1], initHe)
	l.sharedLN[1] = addNorm(ps, "shared.1.norm", c.Shared[1])
	l.actor[0] = addDense(ps, "actor.0", c.Shared[1], c.ActorHidden[0], initHe)
	l.actor[1] = addDense(ps, "actor.1", c.ActorHidden[0], c.ActorHidden[1], initHe)
	l.actor[2] = addDense(ps, "actor.out", c.ActorHidden[1], c.Actions, initGlorot)
	l.critic[0] = addDense(ps, "critic.0", c.Shared[1], c.CriticHidden, initHe)
	l.critic[1] = addDense(ps, "critic.out", c.CriticHidden, 1, initGlorot)
	return l
}

// PPONet is the tactical actor-critic. It is not safe for concurrent use;
// serve decisions from an exported copy (Export).
type PPONet struct {
	cfg PPOConfig
	l   ppoLayers
	c   *core
	eng ppoEngine
	// addMask is the additive action mask of the last call.
	addMask []float32
	// Scaler is the input scaler saved with the network. Forward and
	// TrainStep take inputs already transformed. Nil means none.
	Scaler *Scaler
	// Stats counts training steps and rejections.
	Stats TrainStats
	// Last holds the loss terms of the last accepted training step.
	Last PPOLosses
}

// PPOLosses are the terms of the PPO loss: Total = Policy +
// ValueCoef·Value − EntropyCoef·Entropy − CounterfactualCoef·Counterfactual.
type PPOLosses struct {
	Total, Policy, Value, Entropy float32
	// Counterfactual is the batch's mean expected reward under its
	// ActionRewards (0 when CounterfactualCoef is 0).
	Counterfactual float32
}

// PPOOutput is the actor-critic's output for B states.
type PPOOutput struct {
	// LogProbs and Probs are B×Actions, row-major; masked actions have
	// probability 0 and a log-probability near −1e9.
	LogProbs, Probs []float32
	// Values are the B state values.
	Values []float32
}

// PPOBatch is a PPO minibatch.
type PPOBatch struct {
	// States holds B rows of Inputs values.
	States []float32
	// Masks holds B×Actions flags, true where the action is allowed; nil
	// allows every action.
	Masks []bool
	// Actions, OldLogProbs, Advantages and Returns hold one value per row:
	// the action taken, its log-probability under the rollout policy, its
	// (normalised) advantage and the value target.
	Actions     []int
	OldLogProbs []float32
	Advantages  []float32
	Returns     []float32
	// ActionRewards holds B×Actions rewards, row-major: what each action
	// would have earned (PPOConfig.CounterfactualCoef); nil, or a row of
	// zeros, credits no action. Ignored when the coefficient is 0.
	ActionRewards []float32
}

// NewPPONet returns an actor-critic initialised from seed, on
// DefaultBackend unless an option says otherwise.
func NewPPONet(cfg PPOConfig, seed uint64, opts ...Option) (*PPONet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating actor-critic: %w", err)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("creating actor-critic: %w", err)
	}
	n := &PPONet{cfg: cfg}
	ps := newParamSet()
	n.l = newPPOLayers(ps, cfg)
	n.c = newCore(ps, seed, cfg.Optimizer, o, n.build)
	return n, nil
}

// Backend returns the backend that computes the network's passes.
func (n *PPONet) Backend() Backend { return n.c.backend }

// SetBackend switches the backend; the weights, the optimiser state and
// the dropout generator carry over.
func (n *PPONet) SetBackend(b Backend) error {
	b, err := ParseBackend(string(b))
	if err != nil {
		return fmt.Errorf("setting actor-critic backend: %w", err)
	}
	n.Close()
	n.eng, n.c.backend = nil, b
	return nil
}

// engine returns the backend's implementation, created on first use.
func (n *PPONet) engine() ppoEngine {
	if n.eng == nil {
		switch n.c.backend {
		case BackendGorgonia:
			n.eng = ppoGorgonia{n}
		case BackendCUDA:
			n.eng = newPPOCUDA(n)
		default:
			n.eng = &ppoFast{n: n}
		}
	}
	return n.eng
}

// maskWidths are the widths of the dropout masks of a training step, in
// order: after each shared layer.
func (n *PPONet) maskWidths() []int { return []int{n.cfg.Shared[0], n.cfg.Shared[1]} }

// ppoGorgonia is the actor-critic on the gorgonia backend.
type ppoGorgonia struct{ n *PPONet }

func (e ppoGorgonia) close() { e.n.c.close() }

func (e ppoGorgonia) forward(states, addMask []float32, batch int) (logp, values []float32, err error) {
	g, err := e.n.c.graph(batch, false)
	if err != nil {
		return nil, nil, err
	}
	copy(g.in["state"].buf, states)
	copy(g.in["mask"].buf, addMask)
	if err := g.run(); err != nil {
		return nil, nil, err
	}
	return clone(g.out["logp"].floats()), clone(g.out["value"].floats()), nil
}

func (e ppoGorgonia) lossGrad(b PPOBatch, addMask []float32, batch int, masks [][]float32, grads [][]float32) (PPOLosses, error) {
	g, err := e.n.prepare(b)
	if err != nil {
		return PPOLosses{}, err
	}
	loss, err := g.runTrain(masks, grads)
	if err != nil {
		return PPOLosses{}, err
	}
	l := PPOLosses{Total: loss, Policy: g.out["policy"].scalar(), Value: g.out["value_loss"].scalar(), Entropy: g.out["entropy"].scalar()}
	if cf, ok := g.out["counterfactual"]; ok {
		l.Counterfactual = cf.scalar()
	}
	return l, nil
}

// Config returns the network's configuration.
func (n *PPONet) Config() PPOConfig { return n.cfg }

// Seed returns the seed the network was initialised from.
func (n *PPONet) Seed() uint64 { return n.c.seed }

// NumParams returns the number of trainable scalars.
func (n *PPONet) NumParams() int { return n.c.ps.count() }

// SetLearningRate changes Adam's step size (for schedules such as
// ReduceLROnPlateau); the new rate is saved with the network.
func (n *PPONet) SetLearningRate(lr float64) {
	n.cfg.Optimizer.LearningRate = lr
	n.c.opt.cfg.LearningRate = lr
}

// LearningRate returns Adam's current step size.
func (n *PPONet) LearningRate() float64 { return n.c.opt.cfg.LearningRate }

// Close releases the compiled graphs and the backend's buffers; the
// network stays usable and rebuilds them on demand.
func (n *PPONet) Close() {
	n.c.close()
	if n.eng != nil {
		n.eng.close()
		n.eng = nil
	}
}

func (n *PPONet) build(batch int, train bool) (*compiled, error) {
	c, l := n.cfg, n.l
	b := newBuilder(n.c.ps, train)
	eps := float32(c.LayerNormEps)
	x := b.newInput("state", batch, c.Inputs)
	mask := b.newInput("mask", batch, c.Actions)
	h := x.node
	for i := range l.shared {
		h = b.dropout(b.relu(b.layerNorm(b.linear(h, l.shared[i]), l.sharedLN[i], eps)), c.Dropout)
	}
	a := b.relu(b.linear(h, l.actor[0]))
	a = b.relu(b.linear(a, l.actor[1]))
	logits := b.add(b.linear(a, l.actor[2]), mask.node)
	logp := b.logSoftmax(logits)
	v := b.relu(b.linear(h, l.critic[0]))
	v = b.reshape(b.linear(v, l.critic[1]), batch)
	outs := map[string]*G.Node{"logp": logp, "value": v}
	if !train {
		return b.compile(batch, outs, nil)
	}
	act := b.newInput("onehot", batch, c.Actions)
	oldLogp := b.newInput("old_logp", batch)
	adv := b.newInput("advantage", batch)
	ret := b.newInput("return", batch)
	logpA := b.rowSum(b.mul(logp, act.node))
	// The ratio is clipped to [RatioMin, RatioMax] in log space, before the
	// surrogate's own clip to [1−ε, 1+ε].
	logRatio := b.clamp(b.sub(logpA, oldLogp.node), float32(math.Log(c.RatioMin)), float32(math.Log(c.RatioMax)))
	ratio := b.exp(logRatio)
	eps2 := float32(c.ClipEpsilon)
	s1 := b.mul(ratio, adv.node)
	s2 := b.mul(b.clamp(ratio, 1-eps2, 1+eps2), adv.node)
	policy := b.neg(b.mean(b.minimum(s1, s2)))
	value := b.mean(b.square(b.sub(v, ret.node)))
	entropy := b.neg(b.mean(b.rowSum(b.mul(b.exp(logp), logp))))
	total := b.sub(b.add(policy, b.scale(value, float32(c.ValueCoef))), b.scale(entropy, float32(c.EntropyCoef)))
	outs["policy"], outs["value_loss"], outs["entropy"] = policy, value, entropy
	if c.CounterfactualCoef > 0 {
		// The policy's expected reward under every action's reward.
		rw := b.newInput("action_reward", batch, c.Actions)
		cf := b.mean(b.rowSum(b.mul(b.exp(logp), rw.node)))
		total = b.sub(total, b.scale(cf, float32(c.CounterfactualCoef)))
		outs["counterfactual"] = cf
	}
	return b.compile(batch, outs, total)
}

// load copies states and the additive mask into the graph.
func (n *PPONet) load(g *compiled, states []float32, masks []bool) error {
	copy(g.in["state"].buf, states)
	return fillMask(g.in["mask"].buf, masks, n.cfg.Actions)
}

// fillMask writes the additive mask: 0 where allowed, −1e9 where not.
func fillMask(dst []float32, masks []bool, actions int) error {
	if masks == nil {
		clear(dst)
		return nil
	}
	if len(masks) != len(dst) {
		return fmt.Errorf("%w: %d mask flags, want %d", ErrShape, len(masks), len(dst))
	}
	for r := 0; r < len(dst); r += actions {
		allowed := false
		for j := r; j < r+actions; j++ {
			if masks[j] {
				dst[j] = 0
				allowed = true
			} else {
				dst[j] = maskedLogit
			}
		}
		if !allowed {
			return fmt.Errorf("%w: row %d of the mask allows no action", ErrShape, r/actions)
		}
	}
	return nil
}

// Forward returns the policy and values of B states in evaluation mode
// (no dropout). masks is nil or B×Actions flags, true where allowed.
func (n *PPONet) Forward(states []float32, masks []bool) (PPOOutput, error) {
	batch, err := batchOf(states, n.cfg.Inputs, "states")
	if err != nil {
		return PPOOutput{}, fmt.Errorf("computing policy: %w", err)
	}
	n.addMask = grow(n.addMask, batch*n.cfg.Actions)
	if err := fillMask(n.addMask, masks, n.cfg.Actions); err != nil {
		return PPOOutput{}, fmt.Errorf("computing policy: %w", err)
	}
	logp, values, err := n.engine().forward(states, n.addMask, batch)
	if err != nil {
		return PPOOutput{}, fmt.Errorf("computing policy: %w", err)
	}
	out := PPOOutput{LogProbs: logp, Values: values}
	out.Probs = make([]float32, len(out.LogProbs))
	for i, lp := range out.LogProbs {
		out.Probs[i] = float32(math.Exp(float64(lp)))
	}
	return out, nil
}

// TrainStep does one PPO update on a minibatch: clipped surrogate, value
// loss and entropy bonus (see PPOLosses), global-norm clip, Adam. A batch
// with a non-finite value, or a step whose loss or gradient norm is not
// finite, is rejected with ErrNonFinite, counted in Stats and leaves the
// weights unchanged.
func (n *PPONet) TrainStep(b PPOBatch) (float32, error) {
	batch, err := n.check(b)
	if err != nil {
		return 0, err
	}
	var terms PPOLosses
	loss, err := n.c.step(&n.Stats, func(grads [][]float32) (float32, error) {
		masks := n.c.drawMasks(batch, n.maskWidths(), n.cfg.Dropout)
		var err error
		terms, err = n.engine().lossGrad(b, n.addMask, batch, masks, grads)
		return terms.Total, err
	})
	if err != nil {
		return loss, fmt.Errorf("training actor-critic: %w", err)
	}
	n.Last = terms
	return loss, nil
}

// check validates a batch, fills the additive mask and returns the batch
// size.
func (n *PPONet) check(b PPOBatch) (int, error) {
	batch, err := batchOf(b.States, n.cfg.Inputs, "states")
	if err != nil {
		return 0, fmt.Errorf("training actor-critic: %w", err)
	}
	if len(b.Actions) != batch || len(b.OldLogProbs) != batch || len(b.Advantages) != batch || len(b.Returns) != batch {
		return 0, fmt.Errorf("training actor-critic: %w: %d states, %d actions, %d old log-probs, %d advantages, %d returns",
			ErrShape, batch, len(b.Actions), len(b.OldLogProbs), len(b.Advantages), len(b.Returns))
	}
	if b.ActionRewards != nil && len(b.ActionRewards) != batch*n.cfg.Actions {
		return 0, fmt.Errorf("training actor-critic: %w: %d action rewards, want %d states × %d actions", ErrShape, len(b.ActionRewards), batch, n.cfg.Actions)
	}
	if !allFinite(b.States, b.OldLogProbs, b.Advantages, b.Returns, b.ActionRewards) {
		return 0, rejectInput(&n.Stats, "training actor-critic")
	}
	A := n.cfg.Actions
	n.addMask = grow(n.addMask, batch*A)
	if err := fillMask(n.addMask, b.Masks, A); err != nil {
		return 0, fmt.Errorf("training actor-critic: %w", err)
	}
	for i, a := range b.Actions {
		if a < 0 || a >= A {
			return 0, fmt.Errorf("training actor-critic: %w: action %d of row %d outside [0, %d)", ErrShape, a, i, A)
		}
		if b.Masks != nil && !b.Masks[i*A+a] {
			return 0, fmt.Errorf("training actor-critic: %w: row %d took masked action %d", ErrShape, i, a)
		}
	}
	return batch, nil
}

// prepare copies a checked batch into the gorgonia training graph.
func (n *PPONet) prepare(b PPOBatch) (*compiled, error) {
	batch, err := batchOf(b.States, n.cfg.Inputs, "states")
	if err != nil {
		return nil, fmt.Errorf("training actor-critic: %w", err)
	}
	g, err := n.c.graph(batch, true)
	if err != nil {
		return nil, fmt.Errorf("training actor-critic: %w", err)
	}
	if err := n.load(g, b.States, b.Masks); err != nil {
		return nil, fmt.Errorf("training actor-critic: %w", err)
	}
	if err := oneHot(g.in["onehot"].buf, b.Actions, n.cfg.Actions); err != nil {
		return nil, fmt.Errorf("training actor-critic: %w", err)
	}
	copy(g.in["old_logp"].buf, b.OldLogProbs)
	copy(g.in["advantage"].buf, b.Advantages)
	copy(g.in["return"].buf, b.Returns)
	if in, ok := g.in["action_reward"]; ok {
		if b.ActionRewards == nil {
			clear(in.buf)
		} else {
			copy(in.buf, b.ActionRewards)
		}
	}
	return g, nil
}

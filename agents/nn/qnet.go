package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Q-value loss kinds.
const (
	// LossHuber is the Huber (smooth L1) loss with threshold HuberDelta.
	LossHuber = "huber"
	// LossMSE is the mean squared error.
	LossMSE = "mse"
)

// QConfig describes the strategic Q-network and its training settings. The
// zero value is not usable; start from DefaultQConfig.
type QConfig struct {
	// StrategicInputs and AppInputs split the state: the first
	// StrategicInputs values feed the strategic encoder, the next AppInputs
	// the app encoder (10 and 4).
	StrategicInputs int `json:"strategic_inputs"`
	AppInputs       int `json:"app_inputs"`
	// StrategicHidden are the strategic encoder's widths (128, 64).
	StrategicHidden [2]int `json:"strategic_hidden"`
	// AppHidden is the app encoder's width (32).
	AppHidden int `json:"app_hidden"`
	// HeadHidden are the Q head's hidden widths after the concat (64, 32).
	HeadHidden [2]int `json:"head_hidden"`
	// Actions is the number of Q-values (3 providers).
	Actions int `json:"actions"`
	// Dropout is the drop probability after every hidden layer in training
	// (0.1).
	Dropout float64 `json:"dropout"`
	// LayerNormEps is LayerNorm's variance floor (1e-5).
	LayerNormEps float64 `json:"layernorm_eps"`
	// Loss is LossHuber (default) or LossMSE.
	Loss string `json:"loss"`
	// HuberDelta is the Huber threshold (1).
	HuberDelta float64 `json:"huber_delta"`
	// Optimizer is Adam 1e-4 with global-norm clip 1.0.
	Optimizer Optimizer `json:"optimizer"`
}

// DefaultQConfig returns the seed's strategic Q-network (docs/agents.md).
func DefaultQConfig() QConfig {
	return QConfig{
		StrategicInputs: 10, AppInputs: 4,
		StrategicHidden: [2]int{128, 64}, AppHidden: 32,
		HeadHidden: [2]int{64, 32}, Actions: 3,
		Dropout: 0.1, LayerNormEps: 1e-5,
		Loss: LossHuber, HuberDelta: 1,
		Optimizer: adamDefaults(1e-4, 1.0),
	}
}

// Inputs returns the state width.
func (c QConfig) Inputs() int { return c.StrategicInputs + c.AppInputs }

// Validate reports an invalid configuration.
func (c QConfig) Validate() error {
	if !positive(c.StrategicInputs, c.AppInputs, c.StrategicHidden[0], c.StrategicHidden[1], c.AppHidden, c.HeadHidden[0], c.HeadHidden[1], c.Actions) {
		return fmt.Errorf("%w: Q-network widths must be positive: %+v", ErrConfig, c)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) || !(c.LayerNormEps > 0) {
		return fmt.Errorf("%w: dropout %v, LayerNorm eps %v", ErrConfig, c.Dropout, c.LayerNormEps)
	}
	switch c.Loss {
	case LossMSE:
	case LossHuber:
		if !(c.HuberDelta > 0) {
			return fmt.Errorf("%w: Huber delta %v", ErrConfig, c.HuberDelta)
		}
	default:
		return fmt.Errorf("%w: Q loss %q (want %q or %q)", ErrConfig, c.Loss, LossHuber, LossMSE)
	}
	return c.Optimizer.validate()
}

func positive(xs ...int) bool {
	for _, x := range xs {
		if x <= 0 {
			return false
		}
	}
	return true
}

// qLayers are the Q-network's parameters.
type qLayers struct {
	strategic   [2]denseParams
	strategicLN [2]normParams
	app         denseParams
	appLN       normParams
	head        [2]denseParams
	headLN      [2]normParams
	out         denseParams
}

func newQLayers(ps *paramSet, c QConfig) qLayers {
	var l qLayers
	l.strategic[0] = addDense(ps, "strategic.0", c.StrategicInputs, c.StrategicHidden[0], initHe)
	l.strategicLN[0] = addNorm(ps, "strategic.0.norm", c.StrategicHidden[0])
	l.strategic[1] = addDense(ps, "strategic.1", c.StrategicHidden[0], c.StrategicHidden[1], initHe)
	l.strategicLN[1] = addNorm(ps, "strategic.1.norm", c.StrategicHidden[1])
	l.app = addDense(ps, "app.0", c.AppInputs, c.AppHidden, initHe)
	l.appLN = addNorm(ps, "app.0.norm", c.AppHidden)
	cat := c.StrategicHidden[1] + c.AppHidden
	l.head[0] = addDense(ps, "head.0", cat, c.HeadHidden[0], initHe)
	l.headLN[0] = addNorm(ps, "head.0.norm", c.HeadHidden[0])
	l.head[1] = addDense(ps, "head.1", c.HeadHidden[0], c.HeadHidden[1], initHe)
	l.headLN[1] = addNorm(ps, "head.1.norm", c.HeadHidden[1])
	l.out = addDense(ps, "head.out", c.HeadHidden[1], c.Actions, initGlorot)
	return l
}

// QNet is the strategic dual-encoder Q-network. It is not safe for
// concurrent use; serve decisions from an exported copy (Export).
type QNet struct {
	cfg QConfig
	l   qLayers
	c   *core
	eng qEngine
	// Scaler is the input scaler saved with the network. Forward and
	// TrainStep take inputs already transformed; the network does not apply
	// it. Nil means none.
	Scaler *Scaler
	// Stats counts training steps and rejections.
	Stats TrainStats
}

// QBatch is a Q-learning minibatch: B states, the action taken in each and
// the regression target for that action's Q-value.
type QBatch struct {
	// States holds B rows of Inputs() values.
	States []float32
	// Actions holds the chosen action of each row.
	Actions []int
	// Targets holds the target Q-value of each row.
	Targets []float32
}

// NewQNet returns a Q-network initialised from seed, on DefaultBackend
// unless an option says otherwise.
func NewQNet(cfg QConfig, seed uint64, opts ...Option) (*QNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating Q-network: %w", err)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("creating Q-network: %w", err)
	}
	n := &QNet{cfg: cfg}
	ps := newParamSet()
	n.l = newQLayers(ps, cfg)
	n.c = newCore(ps, seed, cfg.Optimizer, o, n.build)
	return n, nil
}

// Backend returns the backend that computes the network's passes.
func (n *QNet) Backend() Backend { return n.c.backend }

// SetBackend switches the backend; the weights, the optimiser state and
// the dropout generator carry over.
func (n *QNet) SetBackend(b Backend) error {
	b, err := ParseBackend(string(b))
	if err != nil {
		return fmt.Errorf("setting Q-network backend: %w", err)
	}
	n.Close()
	n.eng, n.c.backend = nil, b
	return nil
}

// engine returns the backend's implementation, created on first use.
func (n *QNet) engine() qEngine {
	if n.eng == nil {
		switch n.c.backend {
		case BackendGorgonia:
			n.eng = qGorgonia{n}
		case BackendCUDA:
			n.eng = newQCUDA(n)
		default:
			n.eng = &qFast{n: n}
		}
	}
	return n.eng
}

// maskWidths are the widths of the dropout masks of a training step, in
// order: after each hidden block.
func (n *QNet) maskWidths() []int {
	c := n.cfg
	return []int{c.StrategicHidden[0], c.StrategicHidden[1], c.AppHidden, c.HeadHidden[0], c.HeadHidden[1]}
}

// qGorgonia is the Q-network on the gorgonia backend.
type qGorgonia struct{ n *QNet }

func (e qGorgonia) close() { e.n.c.close() }

func (e qGorgonia) forward(dst, states []float32, batch int) ([]float32, error) {
	g, err := e.n.c.graph(batch, false)
	if err != nil {
		return nil, err
	}
	e.n.load(g, states)
	if err := g.run(); err != nil {
		return nil, err
	}
	return append(dst[:0], g.out["q"].floats()...), nil
}

func (e qGorgonia) lossGrad(b QBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	g, err := e.n.prepare(b)
	if err != nil {
		return 0, err
	}
	return g.runTrain(masks, grads)
}

// Config returns the network's configuration.
func (n *QNet) Config() QConfig { return n.cfg }

// Seed returns the seed the network was initialised from.
func (n *QNet) Seed() uint64 { return n.c.seed }

// NumParams returns the number of trainable scalars.
func (n *QNet) NumParams() int { return n.c.ps.count() }

// SetLearningRate changes Adam's step size (for schedules such as
// ReduceLROnPlateau); the new rate is saved with the network.
func (n *QNet) SetLearningRate(lr float64) {
	n.cfg.Optimizer.LearningRate = lr
	n.c.opt.cfg.LearningRate = lr
}

// LearningRate returns Adam's current step size.
func (n *QNet) LearningRate() float64 { return n.c.opt.cfg.LearningRate }

// Close releases the compiled graphs and the backend's buffers; the
// network stays usable and rebuilds them on demand.
func (n *QNet) Close() {
	n.c.close()
	if n.eng != nil {
		n.eng.close()
		n.eng = nil
	}
}

// CopyFrom copies src's weights (for a hard target-network update).
func (n *QNet) CopyFrom(src *QNet) error {
	if err := n.c.ps.copyFrom(src.c.ps); err != nil {
		return fmt.Errorf("copying Q-network weights: %w", err)
	}
	return nil
}

// SoftUpdate moves the weights towards src's: w ← τ·w_src + (1−τ)·w (the
// DQN target network's soft update, τ = 0.005).
func (n *QNet) SoftUpdate(src *QNet, tau float32) error {
	if err := n.c.ps.softUpdate(src.c.ps, tau); err != nil {
		return fmt.Errorf("soft-updating Q-network: %w", err)
	}
	return nil
}

func (n *QNet) build(batch int, train bool) (*compiled, error) {
	c, l := n.cfg, n.l
	b := newBuilder(n.c.ps, train)
	eps := float32(c.LayerNormEps)
	hidden := func(x *G.Node, d denseParams, ln normParams) *G.Node {
		return b.dropout(b.relu(b.layerNorm(b.linear(x, d), ln, eps)), c.Dropout)
	}
	xs := b.newInput("strategic", batch, c.StrategicInputs)
	xa := b.newInput("app", batch, c.AppInputs)
	s := hidden(xs.node, l.strategic[0], l.strategicLN[0])
	s = hidden(s, l.strategic[1], l.strategicLN[1])
	a := hidden(xa.node, l.app, l.appLN)
	h := b.concatCols(s, a)
	h = hidden(h, l.head[0], l.headLN[0])
	h = hidden(h, l.head[1], l.headLN[1])
	q := b.linear(h, l.out)
	if !train {
		return b.compile(batch, map[string]*G.Node{"q": q}, nil)
	}
	act := b.newInput("onehot", batch, c.Actions)
	target := b.newInput("target", batch)
	qa := b.rowSum(b.mul(q, act.node))
	var loss *G.Node
	if c.Loss == LossMSE {
		loss = b.mean(b.square(b.sub(qa, target.node)))
	} else {
		loss = b.mean(huber(b, b.sub(qa, target.node), float32(c.HuberDelta)))
	}
	return b.compile(batch, map[string]*G.Node{"q": q}, loss)
}

// huber returns the element-wise Huber loss of e: ½e² for |e| ≤ δ, else
// δ(|e| − ½δ), written as ½q² + δ(|e| − q) with q = min(|e|, δ).
func huber(b *builder, e *G.Node, delta float32) *G.Node {
	a := b.abs(e)
	q := b.sub(a, b.relu(b.addConst(a, -delta)))
	return b.add(b.scale(b.square(q), 0.5), b.scale(b.sub(a, q), delta))
}

// load copies the state rows into the graph's two encoder inputs.
func (n *QNet) load(g *compiled, states []float32) {
	si, ai := n.cfg.StrategicInputs, n.cfg.AppInputs
	xs, xa := g.in["strategic"].buf, g.in["app"].buf
	for r := range g.batch {
		row := states[r*(si+ai) : (r+1)*(si+ai)]
		copy(xs[r*si:(r+1)*si], row[:si])
		copy(xa[r*ai:(r+1)*ai], row[si:])
	}
}

// Forward returns the Q-values (B×Actions, row-major) of B states in
// evaluation mode (no dropout).
func (n *QNet) Forward(states []float32) ([]float32, error) {
	batch, err := batchOf(states, n.cfg.Inputs(), "states")
	if err != nil {
		return nil, fmt.Errorf("computing Q-values: %w", err)
	}
	q, err := n.engine().forward(nil, states, batch)
	if err != nil {
		return nil, fmt.Errorf("computing Q-values: %w", err)
	}
	return q, nil
}

// TrainStep does one update on the loss between Q(s, a) and the target:
// forward with dropout, backward, global-norm clip, Adam. A batch with a
// non-finite value, or a step whose loss or gradient norm is not finite,
// is rejected with ErrNonFinite, counted in Stats and leaves the weights
// unchanged.
func (n *QNet) TrainStep(b QBatch) (float32, error) {
	batch, err := n.check(b)
	if err != nil {
		return 0, err
	}
	loss, err := n.c.step(&n.Stats, func(grads [][]float32) (float32, error) {
		masks := n.c.drawMasks(batch, n.maskWidths(), n.cfg.Dropout)
		return n.engine().lossGrad(b, batch, masks, grads)
	})
	if err != nil {
		return loss, fmt.Errorf("training Q-network: %w", err)
	}
	return loss, nil
}

// check validates a batch and returns its size.
func (n *QNet) check(b QBatch) (int, error) {
	batch, err := batchOf(b.States, n.cfg.Inputs(), "states")
	if err != nil {
		return 0, fmt.Errorf("training Q-network: %w", err)
	}
	if len(b.Actions) != batch || len(b.Targets) != batch {
		return 0, fmt.Errorf("training Q-network: %w: %d states, %d actions, %d targets", ErrShape, batch, len(b.Actions), len(b.Targets))
	}
	for i, a := range b.Actions {
		if a < 0 || a >= n.cfg.Actions {
			return 0, fmt.Errorf("training Q-network: %w: action %d of row %d outside [0, %d)", ErrShape, a, i, n.cfg.Actions)
		}
	}
	if !allFinite(b.States, b.Targets) {
		return 0, rejectInput(&n.Stats, "training Q-network")
	}
	return batch, nil
}

// prepare copies a checked batch into the gorgonia training graph.
func (n *QNet) prepare(b QBatch) (*compiled, error) {
	batch, err := batchOf(b.States, n.cfg.Inputs(), "states")
	if err != nil {
		return nil, fmt.Errorf("training Q-network: %w", err)
	}
	g, err := n.c.graph(batch, true)
	if err != nil {
		return nil, fmt.Errorf("training Q-network: %w", err)
	}
	n.load(g, b.States)
	if err := oneHot(g.in["onehot"].buf, b.Actions, n.cfg.Actions); err != nil {
		return nil, fmt.Errorf("training Q-network: %w", err)
	}
	copy(g.in["target"].buf, b.Targets)
	return g, nil
}

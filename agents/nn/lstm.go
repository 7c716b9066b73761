package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// LSTMConfig describes the operational predictor and its loss. The zero
// value is not usable; start from DefaultLSTMConfig.
type LSTMConfig struct {
	// Features is the number of values per time step (5).
	Features int `json:"features"`
	// Steps is the sequence length (12).
	Steps int `json:"steps"`
	// Hidden are the two stacked LSTM layers' widths (128, 64).
	Hidden [2]int `json:"hidden"`
	// DenseHidden is the dense head's hidden width (32), Linear → ReLU.
	DenseHidden int `json:"dense_hidden"`
	// Outputs is the number of predicted values (3: CPU, memory, request
	// rate at t+1).
	Outputs int `json:"outputs"`
	// Dropout is the drop probability after each LSTM layer in training
	// (0.2): on every step of the first layer's output sequence, and on the
	// second layer's last hidden state.
	Dropout float64 `json:"dropout"`
	// BetaUnder and BetaOver weigh squared errors of predictions below and
	// above the target (5 and 1); both 1 is the symmetric MSE.
	BetaUnder float64 `json:"beta_under"`
	BetaOver  float64 `json:"beta_over"`
	// Optimizer is Adam 1e-3; the seed gives no gradient clip, so ClipNorm
	// is 0 (off).
	Optimizer Optimizer `json:"optimizer"`
}

// DefaultLSTMConfig returns the seed's operational LSTM (docs/agents.md) with
// the asymmetric loss.
func DefaultLSTMConfig() LSTMConfig {
	return LSTMConfig{
		Features: 5, Steps: 12, Hidden: [2]int{128, 64}, DenseHidden: 32, Outputs: 3,
		Dropout: 0.2, BetaUnder: 5, BetaOver: 1,
		Optimizer: adamDefaults(1e-3, 0),
	}
}

// Inputs returns the flattened sequence width, Steps × Features.
func (c LSTMConfig) Inputs() int { return c.Steps * c.Features }

// Validate reports an invalid configuration.
func (c LSTMConfig) Validate() error {
	if !positive(c.Features, c.Steps, c.Hidden[0], c.Hidden[1], c.DenseHidden, c.Outputs) {
		return fmt.Errorf("%w: LSTM widths must be positive: %+v", ErrConfig, c)
	}
	if c.Steps < 2 {
		return fmt.Errorf("%w: %d LSTM steps; the recurrent weights need at least 2", ErrConfig, c.Steps)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) || !(c.BetaUnder > 0) || !(c.BetaOver > 0) {
		return fmt.Errorf("%w: dropout %v, beta under %v, beta over %v", ErrConfig, c.Dropout, c.BetaUnder, c.BetaOver)
	}
	return c.Optimizer.validate()
}

type lstmLayers struct {
	rnn   [2]lstmParams
	dense [2]denseParams
}

func newLSTMLayers(ps *paramSet, c LSTMConfig) lstmLayers {
	var l lstmLayers
	l.rnn[0] = addLSTM(ps, "lstm.0", c.Features, c.Hidden[0])
	l.rnn[1] = addLSTM(ps, "lstm.1", c.Hidden[0], c.Hidden[1])
	l.dense[0] = addDense(ps, "dense.0", c.Hidden[1], c.DenseHidden, initHe)
	l.dense[1] = addDense(ps, "dense.out", c.DenseHidden, c.Outputs, initGlorot)
	return l
}

// LSTMNet is the operational sequence-to-value predictor. It is not safe
// for concurrent use; serve predictions from an exported copy (Export).
type LSTMNet struct {
	cfg LSTMConfig
	l   lstmLayers
	c   *core
	eng lstmEngine
	// Scaler is the per-feature input scaler (Dim = Features) saved with
	// the network. Forward and TrainStep take inputs already transformed.
	// Nil means none.
	Scaler *Scaler
	// Stats counts training steps and rejections.
	Stats TrainStats
}

// LSTMBatch is a supervised minibatch.
type LSTMBatch struct {
	// Seqs holds B sequences of Steps × Features values, step-major, oldest
	// step first.
	Seqs []float32
	// Targets holds B rows of Outputs values.
	Targets []float32
}

// NewLSTMNet returns an LSTM predictor initialised from seed, on
// DefaultBackend unless an option says otherwise.
func NewLSTMNet(cfg LSTMConfig, seed uint64, opts ...Option) (*LSTMNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("creating LSTM: %w", err)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("creating LSTM: %w", err)
	}
	n := &LSTMNet{cfg: cfg}
	ps := newParamSet()
	n.l = newLSTMLayers(ps, cfg)
	n.c = newCore(ps, seed, cfg.Optimizer, o, n.build)
	return n, nil
}

// Backend returns the backend that computes the network's passes.
func (n *LSTMNet) Backend() Backend { return n.c.backend }

// SetBackend switches the backend; the weights, the optimiser state and
// the dropout generator carry over.
func (n *LSTMNet) SetBackend(b Backend) error {
	b, err := ParseBackend(string(b))
	if err != nil {
		return fmt.Errorf("setting LSTM backend: %w", err)
	}
	n.Close()
	n.eng, n.c.backend = nil, b
	return nil
}

// engine returns the backend's implementation, created on first use.
func (n *LSTMNet) engine() lstmEngine {
	if n.eng == nil {
		switch n.c.backend {
		case BackendGorgonia:
			n.eng = lstmGorgonia{n}
		case BackendCUDA:
			n.eng = newLSTMCUDA(n)
		default:
			n.eng = &lstmFast{n: n}
		}
	}
	return n.eng
}

// maskWidths are the widths of the dropout masks of a training step, in
// order: the first layer's output at each step, then the second layer's
// last hidden state.
func (n *LSTMNet) maskWidths() []int {
	w := make([]int, n.cfg.Steps+1)
	for t := range n.cfg.Steps {
		w[t] = n.cfg.Hidden[0]
	}
	w[n.cfg.Steps] = n.cfg.Hidden[1]
	return w
}

// lstmGorgonia is the LSTM on the gorgonia backend.
type lstmGorgonia struct{ n *LSTMNet }

func (e lstmGorgonia) close() { e.n.c.close() }

func (e lstmGorgonia) forward(dst, seqs []float32, batch int) ([]float32, error) {
	g, err := e.n.c.graph(batch, false)
	if err != nil {
		return nil, err
	}
	e.n.load(g, seqs)
	if err := g.run(); err != nil {
		return nil, err
	}
	return append(dst[:0], g.out["y"].floats()...), nil
}

func (e lstmGorgonia) lossGrad(b LSTMBatch, batch int, masks [][]float32, grads [][]float32) (float32, error) {
	g, err := e.n.prepare(b)
	if err != nil {
		return 0, err
	}
	return g.runTrain(masks, grads)
}

// Config returns the network's configuration.
func (n *LSTMNet) Config() LSTMConfig { return n.cfg }

// Seed returns the seed the network was initialised from.
func (n *LSTMNet) Seed() uint64 { return n.c.seed }

// NumParams returns the number of trainable scalars.
func (n *LSTMNet) NumParams() int { return n.c.ps.count() }

// SetLearningRate changes Adam's step size (for schedules such as
// ReduceLROnPlateau); the new rate is saved with the network.
func (n *LSTMNet) SetLearningRate(lr float64) {
	n.cfg.Optimizer.LearningRate = lr
	n.c.opt.cfg.LearningRate = lr
}

// LearningRate returns Adam's current step size.
func (n *LSTMNet) LearningRate() float64 { return n.c.opt.cfg.LearningRate }

// SetLoss switches between the asymmetric loss and the symmetric one
// (betaUnder = betaOver = 1). The change applies to graphs built
// afterwards, so the training graphs are rebuilt.
func (n *LSTMNet) SetLoss(betaUnder, betaOver float64) error {
	if !(betaUnder > 0) || !(betaOver > 0) {
		return fmt.Errorf("setting LSTM loss: %w: beta under %v, beta over %v", ErrConfig, betaUnder, betaOver)
	}
	n.cfg.BetaUnder, n.cfg.BetaOver = betaUnder, betaOver
	for k, g := range n.c.train {
		_ = g.vm.Close()
		delete(n.c.train, k)
	}
	return nil
}

// Close releases the compiled graphs and the backend's buffers; the
// network stays usable and rebuilds them on demand.
func (n *LSTMNet) Close() {
	n.c.close()
	if n.eng != nil {
		n.eng.close()
		n.eng = nil
	}
}

func (n *LSTMNet) build(batch int, train bool) (*compiled, error) {
	c, l := n.cfg, n.l
	b := newBuilder(n.c.ps, train)
	xs := make([]*input, c.Steps)
	for t := range xs {
		xs[t] = b.newInput(fmt.Sprintf("x%d", t), batch, c.Features)
	}
	var h1, c1, h2, c2 *G.Node
	for t := range xs {
		h1, c1 = b.lstmStep(xs[t].node, h1, c1, l.rnn[0])
		h2, c2 = b.lstmStep(b.dropout(h1, c.Dropout), h2, c2, l.rnn[1])
	}
	d := b.relu(b.linear(b.dropout(h2, c.Dropout), l.dense[0]))
	y := b.linear(d, l.dense[1])
	if !train {
		return b.compile(batch, map[string]*G.Node{"y": y}, nil)
	}
	target := b.newInput("target", batch, c.Outputs)
	// e > 0 is over-prediction (weight BetaOver), e < 0 under-prediction
	// (weight BetaUnder): β_over·relu(e)² + β_under·relu(−e)².
	e := b.sub(y, target.node)
	over := b.scale(b.square(b.relu(e)), float32(c.BetaOver))
	under := b.scale(b.square(b.relu(b.neg(e))), float32(c.BetaUnder))
	loss := b.mean(b.add(over, under))
	return b.compile(batch, map[string]*G.Node{"y": y}, loss)
}

// load splits the step-major sequences into the per-step inputs.
func (n *LSTMNet) load(g *compiled, seqs []float32) {
	f, steps := n.cfg.Features, n.cfg.Steps
	for t := range steps {
		buf := g.in[fmt.Sprintf("x%d", t)].buf
		for r := range g.batch {
			copy(buf[r*f:(r+1)*f], seqs[(r*steps+t)*f:(r*steps+t+1)*f])
		}
	}
}

// Forward returns the predictions (B×Outputs, row-major) for B sequences
// in evaluation mode (no dropout).
func (n *LSTMNet) Forward(seqs []float32) ([]float32, error) {
	batch, err := batchOf(seqs, n.cfg.Inputs(), "sequences")
	if err != nil {
		return nil, fmt.Errorf("computing LSTM predictions: %w", err)
	}
	y, err := n.engine().forward(nil, seqs, batch)
	if err != nil {
		return nil, fmt.Errorf("computing LSTM predictions: %w", err)
	}
	return y, nil
}

// TrainStep does one supervised update on the asymmetric loss
// mean(β·(y − target)²), β = BetaUnder where y < target and BetaOver
// elsewhere: forward with dropout, backward, optional global-norm clip,
// Adam. A batch with a non-finite value, or a step whose loss or gradient
// norm is not finite, is rejected with ErrNonFinite, counted in Stats and
// leaves the weights unchanged.
func (n *LSTMNet) TrainStep(b LSTMBatch) (float32, error) {
	batch, err := n.check(b)
	if err != nil {
		return 0, err
	}
	loss, err := n.c.step(&n.Stats, func(grads [][]float32) (float32, error) {
		masks := n.c.drawMasks(batch, n.maskWidths(), n.cfg.Dropout)
		return n.engine().lossGrad(b, batch, masks, grads)
	})
	if err != nil {
		return loss, fmt.Errorf("training LSTM: %w", err)
	}
	return loss, nil
}

// check validates a batch and returns its size.
func (n *LSTMNet) check(b LSTMBatch) (int, error) {
	batch, err := batchOf(b.Seqs, n.cfg.Inputs(), "sequences")
	if err != nil {
		return 0, fmt.Errorf("training LSTM: %w", err)
	}
	if len(b.Targets) != batch*n.cfg.Outputs {
		return 0, fmt.Errorf("training LSTM: %w: %d sequences, %d target values", ErrShape, batch, len(b.Targets))
	}
	if !allFinite(b.Seqs, b.Targets) {
		return 0, rejectInput(&n.Stats, "training LSTM")
	}
	return batch, nil
}

// prepare copies a checked batch into the gorgonia training graph.
func (n *LSTMNet) prepare(b LSTMBatch) (*compiled, error) {
	batch, err := batchOf(b.Seqs, n.cfg.Inputs(), "sequences")
	if err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	g, err := n.c.graph(batch, true)
	if err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	n.load(g, b.Seqs)
	copy(g.in["target"].buf, b.Targets)
	return g, nil
}

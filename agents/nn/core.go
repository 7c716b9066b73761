package nn

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Errors callers branch on.
var (
	// ErrNonFinite is returned (wrapped) by a training step that was
	// rejected because its inputs, loss or gradient norm were NaN or
	// infinite. The weights are unchanged and the step is counted in the
	// network's Stats.
	ErrNonFinite = errors.New("non-finite values")
	// ErrShape is returned (wrapped) when an input slice does not match the
	// network's dimensions.
	ErrShape = errors.New("input shape mismatch")
	// ErrConfig is returned (wrapped) by a configuration that fails
	// validation.
	ErrConfig = errors.New("invalid network configuration")
	// ErrArchitecture is returned (wrapped) when two networks, or a network
	// and a checkpoint, differ in layout.
	ErrArchitecture = errors.New("architecture mismatch")
)

// maxCachedGraphs bounds the compiled graphs a network keeps per mode
// (evaluation or training); past it the cache is emptied and rebuilt on
// demand.
const maxCachedGraphs = 8

// TrainStats counts training steps. The learner exports these as metrics;
// the package keeps no global counters.
type TrainStats struct {
	// Steps is the number of accepted steps (weights updated).
	Steps uint64
	// Rejected is the number of rejected steps, all reasons together.
	Rejected uint64
	// RejectedInput counts steps rejected because a batch value was NaN or
	// infinite.
	RejectedInput uint64
	// RejectedLoss counts steps whose loss was NaN or infinite.
	RejectedLoss uint64
	// RejectedGrad counts steps whose global gradient norm was NaN or
	// infinite.
	RejectedGrad uint64
	// Clipped counts accepted steps whose gradient was rescaled by the
	// global-norm clip.
	Clipped uint64
	// LastLoss and LastGradNorm are the loss and the global gradient norm
	// (before clipping) of the last accepted step.
	LastLoss, LastGradNorm float32
}

// Optimizer holds the Adam and gradient-clipping settings of a network.
type Optimizer struct {
	// LearningRate is Adam's step size.
	LearningRate float64 `json:"learning_rate"`
	// Beta1 and Beta2 are Adam's moment decay rates (0.9 and 0.999).
	Beta1 float64 `json:"beta1"`
	Beta2 float64 `json:"beta2"`
	// Epsilon is Adam's denominator floor (1e-8).
	Epsilon float64 `json:"epsilon"`
	// ClipNorm bounds the global L2 norm of the gradient; 0 disables
	// clipping.
	ClipNorm float64 `json:"clip_norm"`
}

// adamDefaults returns Adam with the usual moments and the given step size
// and clip.
func adamDefaults(lr, clip float64) Optimizer {
	return Optimizer{LearningRate: lr, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, ClipNorm: clip}
}

func (o Optimizer) validate() error {
	switch {
	case !(o.LearningRate > 0) || math.IsInf(o.LearningRate, 0):
		return fmt.Errorf("%w: learning rate %v", ErrConfig, o.LearningRate)
	case !(o.Beta1 >= 0 && o.Beta1 < 1) || !(o.Beta2 >= 0 && o.Beta2 < 1):
		return fmt.Errorf("%w: Adam betas %v, %v", ErrConfig, o.Beta1, o.Beta2)
	case !(o.Epsilon > 0):
		return fmt.Errorf("%w: Adam epsilon %v", ErrConfig, o.Epsilon)
	case !(o.ClipNorm >= 0):
		return fmt.Errorf("%w: clip norm %v", ErrConfig, o.ClipNorm)
	}
	return nil
}

// adam is the optimiser state: first and second moments per parameter.
type adam struct {
	cfg  Optimizer
	t    int
	m, v [][]float32
}

func newAdam(cfg Optimizer, ps *paramSet) *adam {
	a := &adam{cfg: cfg}
	for _, p := range ps.list {
		a.m = append(a.m, make([]float32, p.size()))
		a.v = append(a.v, make([]float32, p.size()))
	}
	return a
}

// update applies one Adam step (PyTorch's formulation, bias-corrected) with
// the gradients scaled by scale.
func (a *adam) update(ps *paramSet, grads [][]float32, scale float32) {
	a.t++
	b1, b2 := float32(a.cfg.Beta1), float32(a.cfg.Beta2)
	c1 := 1 - math.Pow(a.cfg.Beta1, float64(a.t))
	c2 := 1 - math.Pow(a.cfg.Beta2, float64(a.t))
	lr := float32(a.cfg.LearningRate / c1)
	rc2 := float32(1 / math.Sqrt(c2))
	eps := float32(a.cfg.Epsilon)
	for i, p := range ps.list {
		w, g, m, v := p.data(), grads[i], a.m[i], a.v[i]
		g = g[:len(w)]
		m = m[:len(w)]
		v = v[:len(w)]
		for j := range w {
			gj := g[j] * scale
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			w[j] -= lr * m[j] / (sqrt32(v[j])*rc2 + eps)
		}
	}
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// output is a value read out of a run with gorgonia's Read statement, which
// copies it at the right point of the tape whatever the register
// allocation does afterwards.
type output struct {
	node *G.Node
	v    G.Value
}

func (b *builder) read(n *G.Node) *output {
	o := &output{node: n}
	b.op("read", func() (*G.Node, error) { return G.Read(n, &o.v), nil })
	return o
}

// floats returns the output's values (valid until the next run).
func (o *output) floats() []float32 {
	switch v := o.v.(type) {
	case tensor.Tensor:
		if d, ok := v.Data().([]float32); ok {
			return d
		}
		if d, ok := v.Data().(float32); ok {
			return []float32{d}
		}
	case *G.F32:
		return []float32{float32(*v)}
	}
	return nil
}

// scalar returns a scalar output.
func (o *output) scalar() float32 {
	d := o.floats()
	if len(d) == 0 {
		return float32(math.NaN())
	}
	return d[0]
}

// compiled is a built graph with its tape machine.
type compiled struct {
	batch int
	vm    G.VM
	in    map[string]*input
	masks []*input
	out   map[string]*output
	cost  *output
	grads []*output
}

// compile finishes a graph: it reads the named outputs and, for training
// graphs, differentiates cost with respect to every parameter.
func (b *builder) compile(batch int, outs map[string]*G.Node, cost *G.Node) (*compiled, error) {
	c := &compiled{batch: batch, in: map[string]*input{}, out: map[string]*output{}, masks: b.masks}
	for _, in := range b.inputs {
		c.in[in.node.Name()] = in
	}
	for name, n := range outs {
		if b.err == nil && n == nil {
			b.err = fmt.Errorf("output %s is missing", name)
		}
		c.out[name] = b.read(n)
	}
	if cost != nil {
		nodes := b.paramNodes()
		var grads G.Nodes
		b.op("gradient", func() (*G.Node, error) {
			var err error
			grads, err = G.Grad(cost, nodes...)
			return nil, err
		})
		c.cost = b.read(cost)
		for _, g := range grads {
			c.grads = append(c.grads, b.read(g))
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	c.vm = G.NewTapeMachine(b.g)
	return c, nil
}

// run executes the graph once.
func (c *compiled) run() error {
	c.vm.Reset()
	if err := c.vm.RunAll(); err != nil {
		return fmt.Errorf("running graph: %w", err)
	}
	return nil
}

// buildFunc builds a network's graph for a batch size and mode.
type buildFunc func(batch int, train bool) (*compiled, error)

// core is what the three networks share: parameters, optimiser, dropout
// generator, the backend choice and the gorgonia graph caches.
type core struct {
	seed    uint64
	ps      *paramSet
	opt     *adam
	dropRNG *dropoutRNG
	backend Backend
	threads int
	grads   [][]float32
	// masks are the dropout masks of the current step, in the network's
	// canonical order (maskWidths), drawn for the whole batch.
	masks [][]float32
	// The gorgonia backend's graphs.
	build buildFunc
	eval  map[int]*compiled
	train map[int]*compiled
}

func newCore(ps *paramSet, seed uint64, opt Optimizer, o options, build buildFunc) *core {
	ps.initialise(seed)
	c := &core{
		seed:    seed,
		ps:      ps,
		opt:     newAdam(opt, ps),
		dropRNG: newDropoutRNG(seed),
		backend: o.backend,
		threads: o.threads,
		build:   build,
		eval:    map[int]*compiled{},
		train:   map[int]*compiled{},
	}
	for _, p := range ps.list {
		c.grads = append(c.grads, make([]float32, p.size()))
	}
	return c
}

// graph returns the cached graph for a batch size and mode, building it on
// first use.
func (c *core) graph(batch int, train bool) (*compiled, error) {
	cache := c.eval
	if train {
		cache = c.train
	}
	if g, ok := cache[batch]; ok {
		return g, nil
	}
	if len(cache) >= maxCachedGraphs {
		for k, g := range cache {
			_ = g.vm.Close()
			delete(cache, k)
		}
	}
	g, err := c.build(batch, train)
	if err != nil {
		return nil, fmt.Errorf("building graph for batch %d: %w", batch, err)
	}
	cache[batch] = g
	return g, nil
}

// close releases every compiled graph.
func (c *core) close() {
	for _, cache := range []map[int]*compiled{c.eval, c.train} {
		for k, g := range cache {
			_ = g.vm.Close()
			delete(cache, k)
		}
	}
}

// drawMasks draws the dropout masks of one step for a batch: one mask of
// batch×w values per width, in order, each value 0 with probability p and
// 1/(1−p) otherwise, from the network's dropout generator. Both backends
// draw them here, so a seed gives the same masks whichever computes. With
// p = 0 there are no masks.
func (c *core) drawMasks(batch int, widths []int, p float64) [][]float32 {
	if p <= 0 {
		return nil
	}
	c.masks = c.masks[:0]
	for i, w := range widths {
		if i < cap(c.masks) {
			c.masks = c.masks[:i+1]
		} else {
			c.masks = append(c.masks, nil)
		}
		c.masks[i] = grow(c.masks[i], batch*w)
		drawMask(c.masks[i], p, c.dropRNG)
	}
	return c.masks
}

// dropoutRNG is the dropout masks' generator: xoshiro256** (Blackman and
// Vigna), its state filled by SplitMix64 from the seed and the dropout
// stream constant, so it is independent of the initialisation's PCG
// stream. It is inlined here because a mask value must cost about a
// nanosecond: the LSTM step draws 205,000 of them.
type dropoutRNG struct{ s [4]uint64 }

func newDropoutRNG(seed uint64) *dropoutRNG {
	r := &dropoutRNG{}
	x := seed ^ dropoutStream
	for i := range r.s {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		r.s[i] = z ^ (z >> 31)
	}
	return r
}

// drawMask draws one inverted-dropout mask: each 64-bit draw gives two
// values, each dropped when its 32-bit half is below p·2³² (probability p
// within 2⁻³³).
func drawMask(m []float32, p float64, r *dropoutRNG) {
	keep := float32(1 / (1 - p))
	thr := uint64(math.Round(p * (1 << 32)))
	s0, s1, s2, s3 := r.s[0], r.s[1], r.s[2], r.s[3]
	next := func() uint64 {
		out := bits.RotateLeft64(s1*5, 7) * 9
		t := s1 << 17
		s2 ^= s0
		s3 ^= s1
		s1 ^= s2
		s0 ^= s3
		s2 ^= t
		s3 = bits.RotateLeft64(s3, 45)
		return out
	}
	// Branch-free: keep's bits, cleared when the draw is below thr (the
	// sign of the 64-bit difference).
	kb := math.Float32bits(keep)
	pick := func(u uint64) float32 {
		drop := uint32(uint64(int64(u)-int64(thr)) >> 63)
		return math.Float32frombits(kb &^ -drop)
	}
	i := 0
	for ; i+2 <= len(m); i += 2 {
		u := next()
		m[i], m[i+1] = pick(u&0xffffffff), pick(u>>32)
	}
	if i < len(m) {
		m[i] = pick(next() & 0xffffffff)
	}
	r.s = [4]uint64{s0, s1, s2, s3}
}

// run executes a training graph with the given dropout masks and copies
// its gradients into grads; it returns the loss (gorgonia backend).
func (g *compiled) runTrain(masks, grads [][]float32) (float32, error) {
	if len(masks) != len(g.masks) {
		return 0, fmt.Errorf("graph has %d dropout masks, got %d", len(g.masks), len(masks))
	}
	for i, m := range g.masks {
		if len(m.buf) != len(masks[i]) {
			return 0, fmt.Errorf("dropout mask %d has %d values, want %d", i, len(masks[i]), len(m.buf))
		}
		copy(m.buf, masks[i])
	}
	if err := g.run(); err != nil {
		return 0, err
	}
	for i, o := range g.grads {
		d := o.floats()
		if len(d) != len(grads[i]) {
			return 0, fmt.Errorf("gradient %d has %d values, want %d", i, len(d), len(grads[i]))
		}
		copy(grads[i], d)
	}
	return g.cost.scalar(), nil
}

// step runs one training step: lossGrad computes the loss and writes the
// gradients into c.grads (the backend's forward and backward passes);
// then the guards, the global-norm clip and the Adam update.
func (c *core) step(stats *TrainStats, lossGrad func(grads [][]float32) (float32, error)) (float32, error) {
	loss, err := lossGrad(c.grads)
	if err != nil {
		return 0, err
	}
	if !finite32(loss) {
		stats.Rejected++
		stats.RejectedLoss++
		return loss, fmt.Errorf("loss %v: %w", loss, ErrNonFinite)
	}
	var norm float64
	if c.backend == BackendGorgonia {
		var sq float64
		for _, d := range c.grads {
			for _, x := range d {
				sq += float64(x) * float64(x)
			}
		}
		norm = math.Sqrt(sq)
	} else {
		norm = math.Sqrt(sumSquares(c.grads))
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		stats.Rejected++
		stats.RejectedGrad++
		return loss, fmt.Errorf("gradient norm %v: %w", norm, ErrNonFinite)
	}
	scale := float32(1)
	if clip := c.opt.cfg.ClipNorm; clip > 0 && norm > clip {
		scale = float32(clip / norm)
		stats.Clipped++
	}
	if c.backend == BackendGorgonia {
		c.opt.update(c.ps, c.grads, scale)
	} else {
		c.opt.updateFast(c.ps, c.grads, scale, c.threads)
	}
	stats.Steps++
	stats.LastLoss = loss
	stats.LastGradNorm = float32(norm)
	return loss, nil
}

// rejectInput counts a step refused because of non-finite batch values;
// what says what was being done.
func rejectInput(stats *TrainStats, what string) error {
	stats.Rejected++
	stats.RejectedInput++
	return fmt.Errorf("%s: batch: %w", what, ErrNonFinite)
}

// finite32 reports whether x is neither NaN nor infinite.
func finite32(x float32) bool {
	return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}

// allFinite reports whether every value of each slice is finite.
func allFinite(vs ...[]float32) bool {
	for _, v := range vs {
		for _, x := range v {
			if !finite32(x) {
				return false
			}
		}
	}
	return true
}

// batchOf returns the batch size of a row-major slice of rows of width
// dim.
func batchOf(x []float32, dim int, what string) (int, error) {
	if len(x) == 0 || len(x)%dim != 0 {
		return 0, fmt.Errorf("%w: %s has %d values, want a positive multiple of %d", ErrShape, what, len(x), dim)
	}
	return len(x) / dim, nil
}

// oneHot writes the one-hot rows of actions into dst (B×n).
func oneHot(dst []float32, actions []int, n int) error {
	clear(dst)
	for i, a := range actions {
		if a < 0 || a >= n {
			return fmt.Errorf("%w: action %d of row %d outside [0, %d)", ErrShape, a, i, n)
		}
		dst[i*n+a] = 1
	}
	return nil
}

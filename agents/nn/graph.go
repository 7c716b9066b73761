package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// builder assembles one gorgonia graph. Its methods keep the first error and
// turn every later call into a no-op, so a network's build function reads
// like its architecture; the caller checks err once at the end.
type builder struct {
	g      *G.ExprGraph
	ps     *paramSet
	nodes  map[*param]*G.Node
	train  bool
	inputs []*input
	masks  []*input
	err    error
	n      int // counter for unique node names
}

// input is a graph leaf whose value is a tensor owned by the graph: callers
// copy data into buf before each run.
type input struct {
	node  *G.Node
	buf   []float32
	dropP float64 // drop probability, for dropout masks
}

func newBuilder(ps *paramSet, train bool) *builder {
	return &builder{g: G.NewGraph(), ps: ps, nodes: map[*param]*G.Node{}, train: train}
}

func (b *builder) name(prefix string) string {
	b.n++
	return fmt.Sprintf("%s_%d", prefix, b.n)
}

// param returns the graph node bound to p's tensor.
func (b *builder) param(p *param) *G.Node {
	if n, ok := b.nodes[p]; ok {
		return n
	}
	var n *G.Node
	if len(p.shape) == 1 {
		n = G.NewVector(b.g, tensor.Float32, G.WithShape(p.shape...), G.WithName(p.name), G.WithValue(p.t))
	} else {
		n = G.NewMatrix(b.g, tensor.Float32, G.WithShape(p.shape...), G.WithName(p.name), G.WithValue(p.t))
	}
	b.nodes[p] = n
	return n
}

// paramNodes returns the nodes of all parameters, in parameter order. Every
// parameter must have been used by the graph.
func (b *builder) paramNodes() []*G.Node {
	out := make([]*G.Node, len(b.ps.list))
	for i, p := range b.ps.list {
		n, ok := b.nodes[p]
		if !ok && b.err == nil {
			b.err = fmt.Errorf("parameter %s is not used by the graph", p.name)
		}
		out[i] = n
	}
	return out
}

// newInput adds a leaf of the given shape (a vector for one dimension, a
// matrix for two) backed by a buffer the caller fills.
func (b *builder) newInput(name string, shape ...int) *input {
	size := 1
	for _, d := range shape {
		size *= d
	}
	buf := make([]float32, size)
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(buf))
	var n *G.Node
	if len(shape) == 1 {
		n = G.NewVector(b.g, tensor.Float32, G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	} else {
		n = G.NewMatrix(b.g, tensor.Float32, G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	}
	in := &input{node: n, buf: buf}
	b.inputs = append(b.inputs, in)
	return in
}

// constant returns a scalar float32 constant.
func (b *builder) constant(v float32) *G.Node { return G.NewConstant(v) }

// op applies a gorgonia constructor unless an earlier call failed.
func (b *builder) op(what string, f func() (*G.Node, error)) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := f()
	if err != nil {
		b.err = fmt.Errorf("building %s: %w", what, err)
		return nil
	}
	return n
}

func (b *builder) matmul(x, w *G.Node) *G.Node {
	return b.op("matmul", func() (*G.Node, error) { return G.Mul(x, w) })
}

func (b *builder) add(x, y *G.Node) *G.Node {
	return b.op("add", func() (*G.Node, error) { return G.Add(x, y) })
}

func (b *builder) sub(x, y *G.Node) *G.Node {
	return b.op("sub", func() (*G.Node, error) { return G.Sub(x, y) })
}

func (b *builder) mul(x, y *G.Node) *G.Node {
	return b.op("hadamard product", func() (*G.Node, error) { return G.HadamardProd(x, y) })
}

// scale multiplies x by the scalar constant v.
func (b *builder) scale(x *G.Node, v float32) *G.Node {
	return b.op("scale", func() (*G.Node, error) { return G.Mul(x, b.constant(v)) })
}

// addConst adds the scalar constant v to x.
func (b *builder) addConst(x *G.Node, v float32) *G.Node {
	return b.op("add constant", func() (*G.Node, error) { return G.Add(x, b.constant(v)) })
}

// rowBias adds the vector v (width N) to every row of the matrix x (B×N).
func (b *builder) rowBias(x, v *G.Node) *G.Node {
	return b.op("row broadcast add", func() (*G.Node, error) { return G.BroadcastAdd(x, v, nil, []byte{0}) })
}

// rowScale multiplies every row of the matrix x (B×N) by the vector v
// (width N), element by element.
func (b *builder) rowScale(x, v *G.Node) *G.Node {
	return b.op("row broadcast product", func() (*G.Node, error) { return G.BroadcastHadamardProd(x, v, nil, []byte{0}) })
}

func (b *builder) relu(x *G.Node) *G.Node {
	return b.op("relu", func() (*G.Node, error) { return G.Rectify(x) })
}

func (b *builder) sigmoid(x *G.Node) *G.Node {
	return b.op("sigmoid", func() (*G.Node, error) { return G.Sigmoid(x) })
}

func (b *builder) tanh(x *G.Node) *G.Node {
	return b.op("tanh", func() (*G.Node, error) { return G.Tanh(x) })
}

func (b *builder) exp(x *G.Node) *G.Node {
	return b.op("exp", func() (*G.Node, error) { return G.Exp(x) })
}

func (b *builder) abs(x *G.Node) *G.Node {
	return b.op("abs", func() (*G.Node, error) { return G.Abs(x) })
}

func (b *builder) square(x *G.Node) *G.Node {
	return b.op("square", func() (*G.Node, error) { return G.Square(x) })
}

func (b *builder) neg(x *G.Node) *G.Node {
	return b.op("neg", func() (*G.Node, error) { return G.Neg(x) })
}

// mean averages over all elements, giving a scalar.
func (b *builder) mean(x *G.Node) *G.Node {
	return b.op("mean", func() (*G.Node, error) { return G.Mean(x) })
}

// rowSum sums each row of the matrix x (B×N), giving a vector of length B.
func (b *builder) rowSum(x *G.Node) *G.Node {
	return b.op("row sum", func() (*G.Node, error) { return G.Sum(x, 1) })
}

// logSoftmax returns log-softmax over the columns of each row.
func (b *builder) logSoftmax(x *G.Node) *G.Node {
	return b.op("log-softmax", func() (*G.Node, error) { return G.LogSoftMax(x, 1) })
}

// concatCols joins matrices side by side.
func (b *builder) concatCols(xs ...*G.Node) *G.Node {
	return b.op("concat", func() (*G.Node, error) { return G.Concat(1, xs...) })
}

// reshape changes x's shape.
func (b *builder) reshape(x *G.Node, shape ...int) *G.Node {
	return b.op("reshape", func() (*G.Node, error) { return G.Reshape(x, tensor.Shape(shape)) })
}

// clamp limits x to [lo, hi] with ReLUs, so the gradient is 1 inside the
// interval and 0 outside: max(x, lo) = lo + relu(x−lo), min(y, hi) =
// hi − relu(hi−y).
func (b *builder) clamp(x *G.Node, lo, hi float32) *G.Node {
	y := b.addConst(b.relu(b.addConst(x, -lo)), lo)
	return b.addConst(b.neg(b.relu(b.addConst(b.neg(y), hi))), hi)
}

// minimum returns the element-wise minimum of x and y: x − relu(x−y).
func (b *builder) minimum(x, y *G.Node) *G.Node {
	return b.sub(x, b.relu(b.sub(x, y)))
}

// linear returns x·W + b for a dense layer.
func (b *builder) linear(x *G.Node, l denseParams) *G.Node {
	return b.rowBias(b.matmul(x, b.param(l.w)), b.param(l.b))
}

// layerNorm normalises each row of x (B×N) to zero mean and unit variance
// (biased variance, ε inside the square root) and applies the gain and
// shift.
func (b *builder) layerNorm(x *G.Node, n normParams, eps float32) *G.Node {
	mean := b.op("layernorm mean", func() (*G.Node, error) { return G.Mean(x, 1) })
	xc := b.op("layernorm centre", func() (*G.Node, error) { return G.BroadcastSub(x, mean, nil, []byte{1}) })
	variance := b.op("layernorm variance", func() (*G.Node, error) { return G.Mean(b.square(xc), 1) })
	// 1/sqrt(·) as Inverse(Sqrt(·)): gorgonia v0.9.18's InverseSqrt has a
	// wrong derivative (it divides the incoming gradient by 2y³ instead of
	// multiplying it by −y³/2).
	std := b.op("layernorm sqrt", func() (*G.Node, error) { return G.Sqrt(b.addConst(variance, eps)) })
	inv := b.op("layernorm inverse", func() (*G.Node, error) { return G.Inverse(std) })
	xn := b.op("layernorm scale", func() (*G.Node, error) { return G.BroadcastHadamardProd(xc, inv, nil, []byte{1}) })
	return b.rowBias(b.rowScale(xn, b.param(n.gain)), b.param(n.shift))
}

// dropout applies inverted dropout with drop probability p in training
// graphs: x ⊙ mask, where the mask (0 or 1/(1−p)) is an input the network
// fills from its seeded generator before each step. Evaluation graphs and
// p = 0 return x unchanged.
func (b *builder) dropout(x *G.Node, p float64) *G.Node {
	if !b.train || p <= 0 || b.err != nil {
		return x
	}
	shape := x.Shape().Clone()
	in := b.newInput(b.name("dropout_mask"), shape...)
	in.dropP = p
	b.inputs = b.inputs[:len(b.inputs)-1]
	b.masks = append(b.masks, in)
	return b.mul(x, in.node)
}

// denseParams are the weight (in×out) and bias (out) of a dense layer.
type denseParams struct{ w, b *param }

// normParams are LayerNorm's gain and shift.
type normParams struct{ gain, shift *param }

// lstmGates names the LSTM gates in parameter order.
var lstmGates = [4]string{"i", "f", "g", "o"}

// lstmParams are one LSTM layer's parameters, one set per gate in the order
// i, f, g, o: input weights (in×H), recurrent weights (H×H) and bias (H).
// The gates are kept apart (rather than one in×4H matrix sliced by column)
// because gorgonia v0.9.18 computes wrong values for element-wise ops on
// column views of a 4H-wide matrix once H reaches 128.
type lstmParams struct {
	wx, wh, b [4]*param
	in        int
	hidden    int
}

func addDense(ps *paramSet, name string, in, out int, init initKind) denseParams {
	return denseParams{
		w: ps.add(name+".weight", init, in, out, in, out),
		b: ps.add(name+".bias", initZero, in, out, out),
	}
}

func addNorm(ps *paramSet, name string, width int) normParams {
	return normParams{
		gain:  ps.add(name+".weight", initOne, width, width, width),
		shift: ps.add(name+".bias", initZero, width, width, width),
	}
}

func addLSTM(ps *paramSet, name string, in, hidden int) lstmParams {
	l := lstmParams{in: in, hidden: hidden}
	for k, gate := range lstmGates {
		l.wx[k] = ps.add(name+".weight_ih."+gate, initGlorot, in, hidden, in, hidden)
		l.wh[k] = ps.add(name+".weight_hh."+gate, initGlorot, hidden, hidden, hidden, hidden)
		init := initZero
		if gate == "f" {
			init = initOne // forget-gate bias 1
		}
		l.b[k] = ps.add(name+".bias."+gate, init, in, hidden, hidden)
	}
	return l
}

// lstmStep advances one LSTM layer by one time step. h and c are nil at the
// first step (zero state), where the recurrent term and the forget gate
// drop out.
func (b *builder) lstmStep(x, h, c *G.Node, l lstmParams) (hNext, cNext *G.Node) {
	gate := func(k int) *G.Node {
		z := b.matmul(x, b.param(l.wx[k]))
		if h != nil {
			z = b.add(z, b.matmul(h, b.param(l.wh[k])))
		}
		return b.rowBias(z, b.param(l.b[k]))
	}
	i := b.sigmoid(gate(0))
	g := b.tanh(gate(2))
	o := b.sigmoid(gate(3))
	cNext = b.mul(i, g)
	if c != nil {
		f := b.sigmoid(gate(1))
		cNext = b.add(b.mul(f, c), cNext)
	}
	hNext = b.mul(o, b.tanh(cNext))
	return hNext, cNext
}

package nn

import (
	"fmt"
	"math"
)

// Dense is an exported dense layer: y = x·W + B, with W row-major In×Out
// (W[i*Out+j] links input i to output j).
type Dense struct {
	In, Out int
	W, B    []float32
}

// LayerNorm is an exported layer normalisation: y = (x − mean) /
// sqrt(var + Eps) · Gain + Shift, with the biased variance of the row.
type LayerNorm struct {
	Gain, Shift []float32
	Eps         float32
}

// LSTMLayer is an exported LSTM layer. Wx is row-major In×4H, Wh is
// Hidden×4H and B is 4H, the four blocks of 4H being the gates i, f, g, o:
// i, f, o = σ(·), g = tanh(·), c' = f⊙c + i⊙g, h' = o⊙tanh(c').
type LSTMLayer struct {
	In, Hidden int
	Wx, Wh, B  []float32
}

// apply writes x·W + B into y (len Out) for one row x (len In). Zero
// inputs, common after a ReLU, are skipped; the bias is added last, as in
// the graph.
func (d *Dense) apply(y, x []float32) {
	y = y[:d.Out]
	clear(y)
	x = x[:d.In]
	for i, xi := range x {
		if xi == 0 {
			continue
		}
		row := d.W[i*d.Out : (i+1)*d.Out]
		yy := y[:len(row)] // lets the compiler drop the bounds check
		for j, w := range row {
			yy[j] += xi * w
		}
	}
	for j, b := range d.B[:len(y)] {
		y[j] += b
	}
}

// apply normalises x in place.
func (n *LayerNorm) apply(x []float32) {
	x = x[:len(n.Gain)]
	var sum float32
	for _, v := range x {
		sum += v
	}
	mean := sum / float32(len(x))
	var sq float32
	for _, v := range x {
		d := v - mean
		sq += d * d
	}
	inv := float32(1 / math.Sqrt(float64(sq/float32(len(x))+n.Eps)))
	for j, v := range x {
		x[j] = (v-mean)*inv*n.Gain[j] + n.Shift[j]
	}
}

func relu(x []float32) {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
}

func sigmoid32(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }

// logSoftmax writes the log-softmax of x into dst.
func logSoftmax(dst, x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v - m))
	}
	lse := m + float32(math.Log(s))
	for i, v := range x {
		dst[i] = v - lse
	}
}

// step advances the layer by one time step: h and c (len Hidden) are
// updated in place from input x; z is scratch of len 4·Hidden. first means
// the state is zero.
func (l *LSTMLayer) step(h, c, x, z []float32, first bool) {
	H := l.Hidden
	z = z[:4*H]
	clear(z)
	for i, xi := range x[:l.In] {
		if xi == 0 {
			continue
		}
		row := l.Wx[i*4*H : (i+1)*4*H]
		zz := z[:len(row)]
		for j, w := range row {
			zz[j] += xi * w
		}
	}
	if !first {
		for i, hi := range h[:H] {
			if hi == 0 {
				continue
			}
			row := l.Wh[i*4*H : (i+1)*4*H]
			zz := z[:len(row)]
			for j, w := range row {
				zz[j] += hi * w
			}
		}
	}
	for j, b := range l.B[:len(z)] {
		z[j] += b
	}
	for j := range H {
		ig := sigmoid32(z[j])
		g := tanh32(z[2*H+j])
		o := sigmoid32(z[3*H+j])
		cj := ig * g
		if !first {
			cj = sigmoid32(z[H+j])*c[j] + cj
		}
		c[j] = cj
		h[j] = o * tanh32(cj)
	}
}

func exportDense(d denseParams) Dense {
	return Dense{In: d.w.shape[0], Out: d.w.shape[1], W: clone(d.w.data()), B: clone(d.b.data())}
}

func exportNorm(n normParams, eps float64) LayerNorm {
	return LayerNorm{Gain: clone(n.gain.data()), Shift: clone(n.shift.data()), Eps: float32(eps)}
}

// exportLSTM joins the per-gate parameters into the in×4H, H×4H and 4H
// layout of LSTMLayer.
func exportLSTM(l lstmParams) LSTMLayer {
	H := l.hidden
	e := LSTMLayer{In: l.in, Hidden: H, Wx: make([]float32, l.in*4*H), Wh: make([]float32, H*4*H), B: make([]float32, 4*H)}
	for k := range lstmGates {
		wx, wh := l.wx[k].data(), l.wh[k].data()
		for i := range l.in {
			copy(e.Wx[i*4*H+k*H:i*4*H+(k+1)*H], wx[i*H:(i+1)*H])
		}
		for i := range H {
			copy(e.Wh[i*4*H+k*H:i*4*H+(k+1)*H], wh[i*H:(i+1)*H])
		}
		copy(e.B[k*H:(k+1)*H], l.b[k].data())
	}
	return e
}

// grow returns dst resized to n values, reusing its storage when it can.
func grow(dst []float32, n int) []float32 {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]float32, n)
}

// QWeights are a Q-network's weights as plain slices, with a pure-Go
// forward pass. Forward is not safe for concurrent use (it owns scratch
// buffers); give each goroutine its own Clone.
type QWeights struct {
	StrategicInputs, AppInputs int
	Strategic                  [2]Dense
	StrategicNorm              [2]LayerNorm
	App                        Dense
	AppNorm                    LayerNorm
	Head                       [2]Dense
	HeadNorm                   [2]LayerNorm
	Out                        Dense
	// Scaler is the network's input scaler (nil if none); Forward does not
	// apply it.
	Scaler *Scaler

	s1, s2, a1, cat, h1, h2 []float32
}

// Export returns a copy of the network's weights for serving.
func (n *QNet) Export() *QWeights {
	l := n.l
	e := n.cfg.LayerNormEps
	return &QWeights{
		StrategicInputs: n.cfg.StrategicInputs, AppInputs: n.cfg.AppInputs,
		Strategic:     [2]Dense{exportDense(l.strategic[0]), exportDense(l.strategic[1])},
		StrategicNorm: [2]LayerNorm{exportNorm(l.strategicLN[0], e), exportNorm(l.strategicLN[1], e)},
		App:           exportDense(l.app), AppNorm: exportNorm(l.appLN, e),
		Head:     [2]Dense{exportDense(l.head[0]), exportDense(l.head[1])},
		HeadNorm: [2]LayerNorm{exportNorm(l.headLN[0], e), exportNorm(l.headLN[1], e)},
		Out:      exportDense(l.out),
		Scaler:   n.Scaler,
	}
}

// Clone returns a copy that shares the (read-only) weights and has its own
// scratch buffers.
func (w *QWeights) Clone() *QWeights {
	c := *w
	c.s1, c.s2, c.a1, c.cat, c.h1, c.h2 = nil, nil, nil, nil, nil, nil
	return &c
}

// Inputs returns the state width.
func (w *QWeights) Inputs() int { return w.StrategicInputs + w.AppInputs }

// Forward writes the Q-values (B×Actions) of B states into dst, reusing its
// storage when large enough, and returns it.
func (w *QWeights) Forward(dst, states []float32) ([]float32, error) {
	in := w.Inputs()
	batch, err := batchOf(states, in, "states")
	if err != nil {
		return nil, fmt.Errorf("computing exported Q-values: %w", err)
	}
	sh := w.Strategic[1].Out
	w.s1 = grow(w.s1, w.Strategic[0].Out)
	w.s2 = grow(w.s2, sh)
	w.a1 = grow(w.a1, w.App.Out)
	w.cat = grow(w.cat, sh+w.App.Out)
	w.h1 = grow(w.h1, w.Head[0].Out)
	w.h2 = grow(w.h2, w.Head[1].Out)
	out := w.Out.Out
	dst = grow(dst, batch*out)
	for r := range batch {
		x := states[r*in : (r+1)*in]
		w.Strategic[0].apply(w.s1, x[:w.StrategicInputs])
		w.StrategicNorm[0].apply(w.s1)
		relu(w.s1)
		w.Strategic[1].apply(w.cat[:sh], w.s1)
		w.StrategicNorm[1].apply(w.cat[:sh])
		relu(w.cat[:sh])
		w.App.apply(w.cat[sh:], x[w.StrategicInputs:])
		w.AppNorm.apply(w.cat[sh:])
		relu(w.cat[sh:])
		w.Head[0].apply(w.h1, w.cat)
		w.HeadNorm[0].apply(w.h1)
		relu(w.h1)
		w.Head[1].apply(w.h2, w.h1)
		w.HeadNorm[1].apply(w.h2)
		relu(w.h2)
		w.Out.apply(dst[r*out:(r+1)*out], w.h2)
	}
	return dst, nil
}

// PPOWeights are an actor-critic's weights as plain slices, with a pure-Go
// forward pass. Forward is not safe for concurrent use (it owns scratch
// buffers); give each goroutine its own Clone.
type PPOWeights struct {
	Inputs     int
	Shared     [2]Dense
	SharedNorm [2]LayerNorm
	Actor      [3]Dense
	Critic     [2]Dense
	// Scaler is the network's input scaler (nil if none); Forward does not
	// apply it.
	Scaler *Scaler

	h1, h2, a1, a2, logits, v1 []float32
}

// Export returns a copy of the network's weights for serving.
func (n *PPONet) Export() *PPOWeights {
	l := n.l
	e := n.cfg.LayerNormEps
	return &PPOWeights{
		Inputs:     n.cfg.Inputs,
		Shared:     [2]Dense{exportDense(l.shared[0]), exportDense(l.shared[1])},
		SharedNorm: [2]LayerNorm{exportNorm(l.sharedLN[0], e), exportNorm(l.sharedLN[1], e)},
		Actor:      [3]Dense{exportDense(l.actor[0]), exportDense(l.actor[1]), exportDense(l.actor[2])},
		Critic:     [2]Dense{exportDense(l.critic[0]), exportDense(l.critic[1])},
		Scaler:     n.Scaler,
	}
}

// Clone returns a copy that shares the (read-only) weights and has its own
// scratch buffers.
func (w *PPOWeights) Clone() *PPOWeights {
	c := *w
	c.h1, c.h2, c.a1, c.a2, c.logits, c.v1 = nil, nil, nil, nil, nil, nil
	return &c
}

// Actions returns the number of actions.
func (w *PPOWeights) Actions() int { return w.Actor[2].Out }

// Forward computes the policy and values of B states; masks is nil or
// B×Actions flags, true where allowed. It writes into dst's slices,
// reusing their storage when large enough, and returns the result.
func (w *PPOWeights) Forward(dst PPOOutput, states []float32, masks []bool) (PPOOutput, error) {
	batch, err := batchOf(states, w.Inputs, "states")
	if err != nil {
		return dst, fmt.Errorf("computing exported policy: %w", err)
	}
	A := w.Actions()
	if masks != nil && len(masks) != batch*A {
		return dst, fmt.Errorf("computing exported policy: %w: %d mask flags, want %d", ErrShape, len(masks), batch*A)
	}
	w.h1 = grow(w.h1, w.Shared[0].Out)
	w.h2 = grow(w.h2, w.Shared[1].Out)
	w.a1 = grow(w.a1, w.Actor[0].Out)
	w.a2 = grow(w.a2, w.Actor[1].Out)
	w.logits = grow(w.logits, A)
	w.v1 = grow(w.v1, w.Critic[0].Out)
	dst.LogProbs = grow(dst.LogProbs, batch*A)
	dst.Probs = grow(dst.Probs, batch*A)
	dst.Values = grow(dst.Values, batch)
	for r := range batch {
		x := states[r*w.Inputs : (r+1)*w.Inputs]
		w.Shared[0].apply(w.h1, x)
		w.SharedNorm[0].apply(w.h1)
		relu(w.h1)
		w.Shared[1].apply(w.h2, w.h1)
		w.SharedNorm[1].apply(w.h2)
		relu(w.h2)
		w.Actor[0].apply(w.a1, w.h2)
		relu(w.a1)
		w.Actor[1].apply(w.a2, w.a1)
		relu(w.a2)
		w.Actor[2].apply(w.logits, w.a2)
		if masks != nil {
			allowed := false
			for j, ok := range masks[r*A : (r+1)*A] {
				if !ok {
					w.logits[j] += maskedLogit
				} else {
					allowed = true
				}
			}
			if !allowed {
				return dst, fmt.Errorf("computing exported policy: %w: row %d of the mask allows no action", ErrShape, r)
			}
		}
		lp := dst.LogProbs[r*A : (r+1)*A]
		logSoftmax(lp, w.logits)
		for j, v := range lp {
			dst.Probs[r*A+j] = float32(math.Exp(float64(v)))
		}
		w.Critic[0].apply(w.v1, w.h2)
		relu(w.v1)
		w.Critic[1].apply(dst.Values[r:r+1], w.v1)
	}
	return dst, nil
}

// LSTMWeights are an LSTM predictor's weights as plain slices, with a
// pure-Go forward pass. Forward is not safe for concurrent use (it owns
// scratch buffers); give each goroutine its own Clone.
type LSTMWeights struct {
	Features, Steps int
	Layers          [2]LSTMLayer
	Dense           [2]Dense
	// Scaler is the network's per-feature input scaler (nil if none);
	// Forward does not apply it.
	Scaler *Scaler

	h1, c1, h2, c2, z, d []float32
	// srv is ForwardBatched's scratch.
	srv *lstmServe
}

// Export returns a copy of the network's weights for serving.
func (n *LSTMNet) Export() *LSTMWeights {
	l := n.l
	return &LSTMWeights{
		Features: n.cfg.Features, Steps: n.cfg.Steps,
		Layers: [2]LSTMLayer{exportLSTM(l.rnn[0]), exportLSTM(l.rnn[1])},
		Dense:  [2]Dense{exportDense(l.dense[0]), exportDense(l.dense[1])},
		Scaler: n.Scaler,
	}
}

// Clone returns a copy that shares the (read-only) weights and has its own
// scratch buffers.
func (w *LSTMWeights) Clone() *LSTMWeights {
	c := *w
	c.h1, c.c1, c.h2, c.c2, c.z, c.d = nil, nil, nil, nil, nil, nil
	c.srv = nil
	return &c
}

// Forward writes the predictions (B×Outputs) for B step-major sequences
// into dst, reusing its storage when large enough, and returns it.
func (w *LSTMWeights) Forward(dst, seqs []float32) ([]float32, error) {
	in := w.Steps * w.Features
	batch, err := batchOf(seqs, in, "sequences")
	if err != nil {
		return nil, fmt.Errorf("computing exported LSTM predictions: %w", err)
	}
	H1, H2 := w.Layers[0].Hidden, w.Layers[1].Hidden
	w.h1, w.c1 = grow(w.h1, H1), grow(w.c1, H1)
	w.h2, w.c2 = grow(w.h2, H2), grow(w.c2, H2)
	w.z = grow(w.z, 4*max(H1, H2))
	w.d = grow(w.d, w.Dense[0].Out)
	out := w.Dense[1].Out
	dst = grow(dst, batch*out)
	for r := range batch {
		seq := seqs[r*in : (r+1)*in]
		for t := range w.Steps {
			x := seq[t*w.Features : (t+1)*w.Features]
			w.Layers[0].step(w.h1, w.c1, x, w.z, t == 0)
			w.Layers[1].step(w.h2, w.c2, w.h1, w.z, t == 0)
		}
		w.Dense[0].apply(w.d, w.h2)
		relu(w.d)
		w.Dense[1].apply(dst[r*out:(r+1)*out], w.d)
	}
	return dst, nil
}

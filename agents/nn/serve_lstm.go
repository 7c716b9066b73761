package nn

import "fmt"

// lstmServeChunk bounds the rows ForwardBatched runs through the network
// at once: the gate pre-activations of a chunk (rows × 4·Hidden of the
// first layer, 128 KiB at the seed's width) stay in the second-level
// cache. The chunk changes no bit of any result.
const lstmServeChunk = 64

// lstmServe is the scratch of LSTMWeights.ForwardBatched for one chunk
// of rows, reused from call to call: z the gate pre-activations (rows ×
// 4·H of the wider layer), the two layers' cell states (current and
// previous), tanh of the cell state and hidden states, the dense head's
// hidden layer and output.
type lstmServe struct {
	w              gemmWork
	z              []float32
	c1, p1, t1, h1 []float32
	c2, p2, t2, h2 []float32
	d0, y          []float32
}

// size makes the scratch hold R rows of the network w.
func (s *lstmServe) size(w *LSTMWeights, R int) {
	H1, H2 := w.Layers[0].Hidden, w.Layers[1].Hidden
	s.z = grow(s.z, R*4*max(H1, H2))
	s.c1, s.p1, s.t1, s.h1 = grow(s.c1, R*H1), grow(s.p1, R*H1), grow(s.t1, R*H1), grow(s.h1, R*H1)
	s.c2, s.p2, s.t2, s.h2 = grow(s.c2, R*H2), grow(s.p2, R*H2), grow(s.t2, R*H2), grow(s.h2, R*H2)
	s.d0 = grow(s.d0, R*w.Dense[0].Out)
	s.y = grow(s.y, R*w.Dense[1].Out)
}

// ForwardBatched writes the predictions (B×Outputs) for B step-major
// sequences into dst, reusing its storage when large enough, and returns
// it. It computes what Forward computes, with the CPU backend's kernels
// instead of per-row loops: for each time step, one matrix product of the
// whole batch's inputs and one of its hidden states per layer (the AVX2/FMA
// GEMM of gemm.go), the gates, cell and hidden states in one vectorised
// pass per row (lstmCellFwd), the dense head as two products. It is the
// evaluation pass of LSTMNet.Forward on the CPU backend, operation for
// operation, so the two agree bit for bit; Forward (float64 exponentials,
// a different summation order) differs from both in the last bits.
//
// Each row's prediction depends on that row's sequence only, bit for bit:
// every element of a product is the same chain of multiply-adds wherever
// its row falls in the batch (gemm.go), and the rest works row by row. A
// sequence therefore gets the same prediction alone, in any batch and at
// any position (TestForwardBatchedIndependentOfBatch). It runs on the
// calling goroutine and allocates nothing once its scratch has grown to
// the largest chunk (lstmServeChunk rows). Not safe for concurrent use:
// give each goroutine its own Clone.
func (w *LSTMWeights) ForwardBatched(dst, seqs []float32) ([]float32, error) {
	T, F := w.Steps, w.Features
	batch, err := batchOf(seqs, T*F, "sequences")
	if err != nil {
		return nil, fmt.Errorf("computing batched LSTM predictions: %w", err)
	}
	if err := w.checkShapes(); err != nil {
		return nil, fmt.Errorf("computing batched LSTM predictions: %w", err)
	}
	O := w.Dense[1].Out
	dst = grow(dst, batch*O)
	if w.srv == nil {
		w.srv = &lstmServe{}
	}
	s := w.srv
	s.size(w, min(batch, lstmServeChunk))
	for lo := 0; lo < batch; lo += lstmServeChunk {
		hi := min(lo+lstmServeChunk, batch)
		w.serveChunk(s, seqs, lo, hi)
		copy(dst[lo*O:hi*O], s.y[:(hi-lo)*O])
	}
	return dst, nil
}

// checkShapes reports layers that do not chain: the first LSTM layer
// reading Features inputs, each layer reading the one before.
func (w *LSTMWeights) checkShapes() error {
	l0, l1, d0, d1 := &w.Layers[0], &w.Layers[1], &w.Dense[0], &w.Dense[1]
	if l0.In != w.Features || l1.In != l0.Hidden || d0.In != l1.Hidden || d1.In != d0.Out {
		return fmt.Errorf("%w: layers %d→%d, %d→%d, dense %d→%d, %d→%d do not chain from %d features", ErrShape,
			l0.In, l0.Hidden, l1.In, l1.Hidden, d0.In, d0.Out, d1.In, d1.Out, w.Features)
	}
	return nil
}

// serveChunk runs rows [lo, hi) of seqs through the network into s.y.
// Both layers advance together, step by step, so only the current and
// previous states are kept.
func (w *LSTMWeights) serveChunk(s *lstmServe, seqs []float32, lo, hi int) {
	T, F, R := w.Steps, w.Features, hi-lo
	l0, l1 := &w.Layers[0], &w.Layers[1]
	H1, H2 := l0.Hidden, l1.Hidden
	for t := range T {
		// Step t of the chunk's sequences, read in place: row r is
		// seqs[((lo+r)·T + t)·F …], T·F values after row r−1.
		x := mat{seqs[(lo*T+t)*F:], T * F, false}
		s.p1, s.c1 = s.c1, s.p1
		l0.serveStep(&s.w, s.z, x, s.h1, s.p1, s.c1, s.t1, R, t == 0)
		s.p2, s.c2 = s.c2, s.p2
		l1.serveStep(&s.w, s.z, mat{s.h1, H1, false}, s.h2, s.p2, s.c2, s.t2, R, t == 0)
	}
	d0, d1 := &w.Dense[0], &w.Dense[1]
	d0.serve(&s.w, R, s.h2[:R*H2], s.d0)
	reluMask(s.d0[:R*d0.Out], nil)
	d1.serve(&s.w, R, s.d0, s.y)
}

// serveStep advances R rows of the layer by one step: z (scratch, R×4H)
// receives x·Wx + B, plus h·Wh after the first step, and the cell turns it
// into the new cell state c (from the previous one, cp), tanh(c) into tc
// and the new hidden state into h. h is read (by the product) before it
// is overwritten.
func (l *LSTMLayer) serveStep(w *gemmWork, z []float32, x mat, h, cp, c, tc []float32, R int, first bool) {
	H := l.Hidden
	G := 4 * H
	z = z[:R*G]
	for r := range R {
		copy(z[r*G:(r+1)*G], l.B)
	}
	w.gemm(R, G, l.In, x, mat{l.Wx, G, false}, z, G, true)
	if !first {
		w.gemm(R, G, H, mat{h, H, false}, mat{l.Wh, G, false}, z, G, true)
	}
	for r := range R {
		var prev []float32
		if !first {
			prev = cp[r*H : (r+1)*H]
		}
		lstmCellFwd(z[r*G:(r+1)*G], prev, c[r*H:(r+1)*H], tc[r*H:(r+1)*H], h[r*H:(r+1)*H])
	}
}

// serve writes x·W + B into y for R rows of x: the bias first, then the
// product added to it, as the CPU backend's denseFwd.
func (d *Dense) serve(w *gemmWork, R int, x, y []float32) {
	for r := range R {
		copy(y[r*d.Out:(r+1)*d.Out], d.B)
	}
	w.gemm(R, d.Out, d.In, mat{x, d.In, false}, mat{d.W, d.Out, false}, y, d.Out, true)
}

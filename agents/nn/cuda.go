//go:build strata_cuda

package nn

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/strata-rl/strata/agents/nn/internal/cudart"
)

// cudaBuilt reports whether this binary holds the CUDA backend.
const cudaBuilt = true

var cudaKernelNames = []string{
	"bias_rows", "relu_mask", "relu_mask_bwd", "mul", "col_sums", "transpose", "ln_fwd", "ln_bwd_rows",
	"ln_bwd_params", "q_loss", "log_softmax", "ppo_loss", "asym_loss", "seq_tmajor", "lstm_fwd", "lstm_bwd",
}

// cudaInit finds the device and compiles the kernels, once per process.
func cudaInit() (*cudart.Runtime, error) { return cudart.Init(cudaKernelSource, cudaKernelNames) }

// CUDADevice describes the CUDA device the backend runs on (name, compute
// capability, memory; runtime, driver and cuBLAS versions), or returns an
// error where there is none.
func CUDADevice() (string, error) {
	rt, err := cudaInit()
	if err != nil {
		return "", err
	}
	return rt.String(), nil
}

// dvec is a device buffer of float32 values.
type dvec struct {
	p uint64
	n int
}

// pinned is a page-locked host buffer of float32 values.
type pinned []float32

// dm is a device matrix operand: row-major with leading dimension ld, or
// its transpose when t is set (the CPU backend's mat).
type dm struct {
	p  uint64
	ld int
	t  bool
}

// T returns the transpose.
func (m dm) T() dm { return dm{m.p, m.ld, !m.t} }

// at returns the address k values past p.
func at(p uint64, k int) uint64 { return p + uint64(k)*4 }

// cudaSeg is one block of the device parameter layout: n values, packed
// from the network's parameters and unpacked into their gradients.
type cudaSeg struct {
	p      *param // the parameter laid out as is, or nil
	off, n int
	pack   func(dst []float32)
	unpack func(src []float32, grads [][]float32)
}

// cudaBase is what the three networks' CUDA engines share: a stream with
// its cuBLAS handle, the device parameters and gradients in the engine's
// layout, staging buffers, and the first error of the current call (every
// operation after an error is skipped).
type cudaBase struct {
	s     *cudart.Stream
	err   error
	ready bool

	segs    []cudaSeg
	off     []int // device offset of each parameter laid out as is, by index
	nparam  int
	dParams dvec
	dGrads  dvec
	hParams pinned
	hGrads  pinned
	dIn     dvec
	hIn     pinned
	hOut    pinned
	outUsed int
	owned   []*dvec

	// CUDA graphs: a call's stream work is captured the second time its
	// key (batch size, inputs) is seen, and replayed from then on; the
	// host still packs the inputs and unpacks the outputs. mode says what
	// the current call does with stream work.
	mode          cudaMode
	key           graphKey
	graphs        map[graphKey]*cudart.Graph
	seen          map[graphKey]bool
	noGraphs      bool
	captureFailed bool
}

// cudaMode is what a call does with its stream work.
type cudaMode int

const (
	modeEager   cudaMode = iota // queue it
	modeCapture                 // record it into a graph
	modeReplay                  // skip it: the graph holds it
)

// graphKey identifies the calls that queue the same work on the same
// buffers: training or evaluation, the batch size and which optional
// inputs are present.
type graphKey struct {
	train bool
	batch int
	flags int
}

func (e *cudaBase) fail(err error) {
	if e.err == nil && err != nil {
		e.err = fmt.Errorf("cuda backend: %w", err)
	}
}

// start prepares the engine on first use: stream, cuBLAS handle, the
// parameter layout from segs.
func (e *cudaBase) start(segs []cudaSeg, nparams int) {
	rt, err := cudaInit()
	if err != nil {
		e.fail(err)
		return
	}
	if e.s, err = rt.NewStream(); err != nil {
		e.fail(err)
		return
	}
	e.off = make([]int, nparams)
	e.noGraphs = os.Getenv("STRATA_CUDA_GRAPHS") == "0"
	off := 0
	for i := range segs {
		segs[i].off = off
		if p := segs[i].p; p != nil {
			e.off[p.idx] = off
		}
		off += (segs[i].n + 63) &^ 63
	}
	e.segs, e.nparam = segs, off
	e.alloc(&e.dParams, off)
	e.alloc(&e.dGrads, off)
	e.host(&e.hParams, off)
	e.host(&e.hGrads, off)
	if e.err == nil {
		e.ready = true
	}
}

// identitySegs returns one segment per parameter of ps not in skip, laid
// out as the parameter is.
func identitySegs(ps *paramSet, skip map[*param]bool) []cudaSeg {
	var segs []cudaSeg
	for _, p := range ps.list {
		if skip[p] {
			continue
		}
		segs = append(segs, cudaSeg{p: p, n: p.size(),
			pack:   func(dst []float32) { copy(dst, p.data()) },
			unpack: func(src []float32, grads [][]float32) { copy(grads[p.idx], src[:p.size()]) }})
	}
	return segs
}

// alloc sizes a device buffer to at least n values (contents are lost when
// it grows).
func (e *cudaBase) alloc(d *dvec, n int) {
	if e.err != nil || (d.n >= n && d.p != 0) {
		return
	}
	if d.p != 0 {
		if e.mode == modeCapture {
			e.fail(errors.New("device buffer grows while capturing a graph"))
			e.captureFailed = true
			return
		}
		e.dropGraphs()
		e.fail(e.s.Free(d.p))
	} else {
		e.owned = append(e.owned, d)
	}
	p, err := e.s.Malloc(n)
	e.fail(err)
	d.p, d.n = p, max(n, 1)
}

// host sizes a pinned host buffer to at least n values.
func (e *cudaBase) host(h *pinned, n int) {
	if e.err != nil || len(*h) >= n {
		return
	}
	if *h != nil {
		if e.mode == modeCapture {
			e.fail(errors.New("pinned buffer grows while capturing a graph"))
			e.captureFailed = true
			return
		}
		e.dropGraphs()
		e.fail(e.s.Sync())
		e.s.FreeHost(*h)
		*h = nil
	}
	b, err := e.s.HostAlloc(n)
	e.fail(err)
	*h = b
}

// close frees everything the engine holds.
func (e *cudaBase) close() {
	if e.s == nil {
		return
	}
	_ = e.s.Sync()
	for _, d := range e.owned {
		if d.p != 0 {
			_ = e.s.Free(d.p)
			d.p, d.n = 0, 0
		}
	}
	e.owned = nil
	e.dropGraphs()
	for _, h := range []*pinned{&e.hParams, &e.hGrads, &e.hIn, &e.hOut} {
		e.s.FreeHost(*h)
		*h = nil
	}
	e.s.Close()
	e.s, e.ready = nil, false
}

// dropGraphs forgets every graph (a buffer they use is being replaced).
func (e *cudaBase) dropGraphs() {
	for k, g := range e.graphs {
		g.Destroy()
		delete(e.graphs, k)
	}
	clear(e.seen)
}

// call runs body (begin … finish) and, should capturing its work into a
// graph fail, runs it once more without graphs, which stay off.
func (e *cudaBase) call(body func() error) error {
	err := body()
	if err != nil && e.captureFailed {
		e.captureFailed, e.noGraphs = false, true
		e.dropGraphs()
		err = body()
	}
	return err
}

// queued reports whether stream work is to be queued (or recorded) in the
// current call: no error so far, and not a replay.
func (e *cudaBase) queued() bool { return e.err == nil && e.mode != modeReplay }

// begin starts a call with key: it packs and uploads the parameters and,
// for a training call, zeroes the gradients.
func (e *cudaBase) begin(ps *paramSet, segs func() []cudaSeg, key graphKey) {
	e.err = nil
	e.outUsed = 0
	e.mode = modeEager
	if !e.ready {
		e.start(segs(), len(ps.list))
		if e.err != nil {
			return
		}
		e.graphs, e.seen = map[graphKey]*cudart.Graph{}, map[graphKey]bool{}
	}
	e.key = key
	if !e.noGraphs {
		if _, ok := e.graphs[key]; ok {
			e.mode = modeReplay
		} else if e.seen[key] {
			if err := e.s.BeginCapture(); err != nil {
				e.fail(err)
				e.captureFailed = true
				return
			}
			e.mode = modeCapture
		}
	}
	for _, s := range e.segs {
		s.pack(e.hParams[s.off : s.off+s.n])
	}
	if e.queued() {
		e.fail(e.s.H2D(e.dParams.p, e.hParams[:e.nparam]))
		if key.train {
			e.fail(e.s.Zero(e.dGrads.p, e.nparam))
		}
	}
}

// piece is one input of a call: float32 values, several slices of them
// back to back, or ints sent as int32.
type piece struct {
	f  []float32
	fs [][]float32
	i  []int
}

func (p piece) len() int {
	n := len(p.f) + len(p.i)
	for _, f := range p.fs {
		n += len(f)
	}
	return n
}

// upload sends the pieces to the device in one copy and returns each
// one's device address (0 for an empty piece). Each piece starts on a
// 16-byte boundary.
func (e *cudaBase) upload(ps ...piece) []uint64 {
	total := 0
	for _, p := range ps {
		total += (p.len() + 3) &^ 3
	}
	e.host(&e.hIn, total)
	e.alloc(&e.dIn, total)
	addr := make([]uint64, len(ps))
	if e.err != nil {
		return addr
	}
	h := e.hIn
	off := 0
	for k, p := range ps {
		if p.len() == 0 {
			continue
		}
		addr[k] = at(e.dIn.p, off)
		switch {
		case p.f != nil:
			copy(h[off:], p.f)
		case p.fs != nil:
			o := off
			for _, f := range p.fs {
				o += copy(h[o:], f)
			}
		default:
			for j, v := range p.i {
				h[off+j] = math.Float32frombits(uint32(int32(v)))
			}
		}
		off += (p.len() + 3) &^ 3
	}
	if e.queued() {
		e.fail(e.s.H2D(e.dIn.p, h[:off]))
	}
	return addr
}

// download queues a copy of n device values into the pinned output
// buffer; the returned slice holds them after finish. reserve sizes the
// buffer for the call before its first download.
func (e *cudaBase) download(src uint64, n int) []float32 {
	if e.err != nil {
		return make([]float32, n)
	}
	if e.outUsed+n > len(e.hOut) {
		e.fail(fmt.Errorf("output staging holds %d values, %d more asked", len(e.hOut), e.outUsed+n-len(e.hOut)))
		return make([]float32, n)
	}
	dst := e.hOut[e.outUsed : e.outUsed+n]
	if e.queued() {
		e.fail(e.s.D2H(dst, src))
	}
	e.outUsed += n
	return dst
}

// reserve sizes the pinned output buffer for n values.
func (e *cudaBase) reserve(n int) { e.host(&e.hOut, n) }

// finish downloads the gradients (for a training call), runs the call's
// graph when it has one, waits for the stream and unpacks the gradients
// into grads in paramSet order.
func (e *cudaBase) finish(grads [][]float32) error {
	if grads != nil && e.queued() {
		e.fail(e.s.D2H(e.hGrads[:e.nparam], e.dGrads.p))
	}
	switch e.mode {
	case modeCapture:
		g, err := e.s.EndCapture()
		if err == nil && e.err != nil {
			g.Destroy()
		}
		if err != nil {
			e.fail(err)
			e.captureFailed = true
		}
		if e.err == nil {
			e.graphs[e.key] = g
			e.fail(e.s.Replay(g))
		}
	case modeReplay:
		if e.err == nil {
			e.fail(e.s.Replay(e.graphs[e.key]))
		}
	}
	if e.err == nil {
		e.fail(e.s.Sync())
	}
	e.mode = modeEager
	if e.err != nil {
		return e.err
	}
	e.seen[e.key] = true
	if grads != nil {
		for _, s := range e.segs {
			s.unpack(e.hGrads[s.off:s.off+s.n], grads)
		}
	}
	return nil
}

// evalForward runs an evaluation call of batch rows: it uploads in, runs
// fwd on its device address and appends the first n values of *out (which
// fwd sizes) to dst[:0].
func (e *cudaBase) evalForward(dst []float32, ps *paramSet, segs func() []cudaSeg, batch int, in []float32, fwd func(in uint64), out *dvec, n int) ([]float32, error) {
	var y []float32
	err := e.call(func() error {
		e.begin(ps, segs, graphKey{batch: batch})
		addr := e.upload(piece{f: in})
		fwd(addr[0])
		e.reserve(n)
		y = e.download(out.p, n)
		return e.finish(nil)
	})
	if err != nil {
		return nil, err
	}
	return append(dst[:0], y...), nil
}

// trainCall runs a training call whose step queues the work and returns
// the per-row losses; it returns their sum (in float64) once the
// gradients are in grads.
func (e *cudaBase) trainCall(grads [][]float32, step func() []float32) (float64, error) {
	var loss []float32
	err := e.call(func() error {
		loss = step()
		return e.finish(grads)
	})
	if err != nil {
		return 0, err
	}
	return sum64(loss), nil
}

// param returns the device address of a parameter laid out as is, and of
// its gradient.
func (e *cudaBase) param(p *param) (w, g uint64) {
	o := e.off[p.idx]
	return at(e.dParams.p, o), at(e.dGrads.p, o)
}

func ai(v int) uint64     { return cudart.Int(v) }
func af(v float32) uint64 { return cudart.Float(v) }

func (e *cudaBase) launch(name string, grid, block, shmem int, args ...uint64) {
	if !e.queued() || grid == 0 {
		return
	}
	e.fail(e.s.Launch(name, grid, block, shmem, args...))
}

func blocks(n, per int) int { return (n + per - 1) / per }

// gemm writes (or adds, when acc) a·b into c (m×n, leading dimension ldc),
// a being m×k and b k×n: the CPU backend's gemm on cuBLAS. cuBLAS is
// column-major, so it computes cᵀ = bᵀ·aᵀ.
func (e *cudaBase) gemm(m, n, k int, a, b dm, c uint64, ldc int, acc bool) {
	if !e.queued() || m == 0 || n == 0 {
		return
	}
	beta := float32(0)
	if acc {
		beta = 1
	}
	if k == 0 {
		if !acc {
			e.fail(errors.New("gemm with k = 0 and no accumulation"))
		}
		return
	}
	e.fail(e.s.Gemm(b.t, a.t, n, m, k, 1, b.p, b.ld, a.p, a.ld, beta, c, ldc))
}

func (e *cudaBase) memset(p uint64, n int) {
	if e.queued() && n > 0 {
		e.fail(e.s.Zero(p, n))
	}
}

func (e *cudaBase) copyD(dst, src uint64, n int) {
	if e.queued() && n > 0 {
		e.fail(e.s.D2D(dst, src, n))
	}
}

func (e *cudaBase) biasRows(y, b uint64, rows, w int) {
	e.launch("bias_rows", blocks(rows*w, 256), 256, 0, y, b, ai(rows), ai(w))
}

func (e *cudaBase) reluMask(y, mask uint64, n int) {
	e.launch("relu_mask", blocks(n, 256), 256, 0, y, mask, ai(n))
}

func (e *cudaBase) reluMaskBwd(d, o, mask uint64, n int) {
	e.launch("relu_mask_bwd", blocks(n, 256), 256, 0, d, o, mask, ai(n))
}

func (e *cudaBase) mul(y, x, m uint64, n int) {
	e.launch("mul", blocks(n, 256), 256, 0, y, x, m, ai(n))
}

// dropOrCopy writes x ⊙ mask into y, or x itself when there is no mask
// (mask 0).
func (e *cudaBase) dropOrCopy(y, x, mask uint64, n int) {
	if mask != 0 {
		e.mul(y, x, mask, n)
	} else {
		e.copyD(y, x, n)
	}
}

func (e *cudaBase) colSums(dst, m uint64, rows, w, ld int) {
	e.launch("col_sums", blocks(w, 128), 128, 0, dst, m, ai(rows), ai(w), ai(ld))
}

// dDense is a dense layer's device weights and gradients.
type dDense struct {
	w, b, dw, db uint64
	in, out      int
}

func (e *cudaBase) dense(d denseParams) dDense {
	w, dw := e.param(d.w)
	b, db := e.param(d.b)
	return dDense{w: w, b: b, dw: dw, db: db, in: d.w.shape[0], out: d.w.shape[1]}
}

// dNorm is a LayerNorm's device gain and shift and their gradients.
type dNorm struct{ gain, shift, dgain, dshift uint64 }

func (e *cudaBase) norm(n normParams) dNorm {
	g, dg := e.param(n.gain)
	s, ds := e.param(n.shift)
	return dNorm{g, s, dg, ds}
}

// dPart is one input of a dense layer whose input is a concatenation:
// width in, and where its gradient goes (dx 0: nowhere).
type dPart struct {
	x     dm
	in    int
	dx    uint64
	accDx bool
}

// denseFwd writes x·W + b into y (rows×out); x is the concatenation of
// the parts, each multiplied by its rows of W.
func (e *cudaBase) denseFwd(rows int, parts []dPart, d dDense, y uint64) {
	e.biasRows(y, d.b, rows, d.out)
	r0 := 0
	for _, p := range parts {
		e.gemm(rows, d.out, p.in, p.x, dm{at(d.w, r0*d.out), d.out, false}, y, d.out, true)
		r0 += p.in
	}
}

// denseBwd accumulates the layer's gradients for dy (rows×out) and writes
// (or adds) each part's dy·Wᵀ into its dx.
func (e *cudaBase) denseBwd(rows int, parts []dPart, dy uint64, d dDense) {
	r0 := 0
	for _, p := range parts {
		e.gemm(p.in, d.out, rows, p.x.T(), dm{dy, d.out, false}, at(d.dw, r0*d.out), d.out, true)
		if p.dx != 0 {
			e.gemm(rows, p.in, d.out, dm{dy, d.out, false}, dm{at(d.w, r0*d.out), d.out, true}, p.dx, p.in, p.accDx)
		}
		r0 += p.in
	}
	e.colSums(d.db, dy, rows, d.out, d.out)
}

// dBlock is one Linear → LayerNorm → ReLU → dropout block's device
// activations (the CPU backend's normBlock).
type dBlock struct {
	xhat, inv, o, g, d dvec
}

func (e *cudaBase) sizeBlock(b *dBlock, rows, w int) {
	e.alloc(&b.xhat, rows*w)
	e.alloc(&b.inv, rows)
	e.alloc(&b.o, rows*w)
	e.alloc(&b.g, rows*w)
	e.alloc(&b.d, rows*w)
}

func (e *cudaBase) normFwd(rows int, parts []dPart, d dDense, n dNorm, eps float32, mask uint64, b *dBlock) {
	e.sizeBlock(b, rows, d.out)
	e.denseFwd(rows, parts, d, b.xhat.p)
	e.launch("ln_fwd", blocks(rows, 4), 128, 0, b.xhat.p, b.inv.p, b.o.p, n.gain, n.shift, mask, ai(rows), ai(d.out), af(eps))
}

// normBwd back-propagates b.g (the gradient with respect to the block's
// output, overwritten) through the block.
func (e *cudaBase) normBwd(rows int, parts []dPart, d dDense, n dNorm, mask uint64, b *dBlock) {
	w := d.out
	e.launch("ln_bwd_rows", blocks(rows, 4), 128, 0, b.g.p, b.o.p, mask, b.xhat.p, b.inv.p, n.gain, b.d.p, ai(rows), ai(w))
	e.launch("ln_bwd_params", blocks(w, 128), 128, 0, n.dgain, n.dshift, b.g.p, b.xhat.p, ai(rows), ai(w))
	e.denseBwd(rows, parts, b.d.p, d)
}

// maskAddr returns the k-th mask's device address, or 0 without masks.
func maskAddr(addrs []uint64, k int) uint64 {
	if addrs == nil {
		return 0
	}
	return addrs[k]
}

// maskPieces returns the masks as upload pieces.
func maskPieces(masks [][]float32) []piece {
	ps := make([]piece, len(masks))
	for i, m := range masks {
		ps[i] = piece{f: m}
	}
	return ps
}

// sum64 sums float32 values in float64.
func sum64(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s
}

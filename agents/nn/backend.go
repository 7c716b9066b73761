package nn

import (
	"fmt"
	"runtime"
	"sync"
)

// Backend names the implementation behind a network's forward pass,
// backward pass and Adam step. Every backend trains the same parameters
// (the paramSet the checkpoints read and write), draws the same dropout
// masks from the network's seeded generator in the same order, and applies
// the same guards and clipping; only the arithmetic differs, within the
// parity tolerance of docs/nn.md.
type Backend string

const (
	// BackendCPU is the fast CPU backend: batched float32 kernels (AVX2/FMA
	// assembly with a pure-Go fallback), fused LSTM gates, no per-step graph
	// and no allocation once its buffers are sized, rows split among
	// threads in fixed shards.
	BackendCPU Backend = "cpu"
	// BackendGorgonia is the reference: gorgonia graphs with automatic
	// differentiation.
	BackendGorgonia Backend = "gorgonia"
	// BackendCUDA runs the passes on an NVIDIA GPU: cuBLAS products and
	// kernels compiled with NVRTC for the device at hand (docs/nn.md). It
	// exists only in a binary built with -tags strata_cuda, and needs a device;
	// the Adam step stays on the host.
	BackendCUDA Backend = "cuda"
	// DefaultBackend is the backend of a network created without
	// WithBackend.
	DefaultBackend = BackendCPU
)

// ParseBackend returns the backend a name stands for; "" is
// DefaultBackend.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case "":
		return DefaultBackend, nil
	case BackendCPU, BackendGorgonia:
		return b, nil
	case BackendCUDA:
		if !cudaBuilt {
			return "", fmt.Errorf("%w: backend %q: this binary was built without CUDA (build it with -tags strata_cuda, docs/nn.md)", ErrConfig, s)
		}
		if _, err := cudaInit(); err != nil {
			return "", fmt.Errorf("%w: backend %q: %w", ErrConfig, s, err)
		}
		return b, nil
	}
	return "", fmt.Errorf("%w: backend %q (want %q, %q or %q)", ErrConfig, s, BackendCPU, BackendGorgonia, BackendCUDA)
}

// Option adjusts how a network computes (not what it is: options are not
// saved in checkpoints).
type Option func(*options)

type options struct {
	backend Backend
	threads int
}

// WithBackend selects the backend ("" is DefaultBackend).
func WithBackend(b Backend) Option { return func(o *options) { o.backend = b } }

// WithThreads sets the number of threads the CPU backend splits a batch
// among; 0 (the default) is runtime.GOMAXPROCS(0) when the network is
// created. Results are bitwise reproducible for a given thread count.
func WithThreads(n int) Option { return func(o *options) { o.threads = n } }

func newOptions(opts []Option) (options, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	b, err := ParseBackend(string(o.backend))
	if err != nil {
		return o, err
	}
	o.backend = b
	if o.threads < 0 {
		return o, fmt.Errorf("%w: %d threads", ErrConfig, o.threads)
	}
	if o.threads == 0 {
		o.threads = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// The backend seam, one interface per network: a forward pass in
// evaluation mode, and a training forward pass with the given dropout
// masks followed by the backward pass, which writes the gradient of the
// loss with respect to every parameter (in paramSet order) into grads and
// returns the loss. The caller has validated the batch; the Adam step and
// the guards around it are core's (core.step, adam.update).

type qEngine interface {
	forward(dst, states []float32, batch int) ([]float32, error)
	lossGrad(b QBatch, batch int, masks [][]float32, grads [][]float32) (float32, error)
	close()
}

type ppoEngine interface {
	forward(states, addMask []float32, batch int) (logp, values []float32, err error)
	lossGrad(b PPOBatch, addMask []float32, batch int, masks [][]float32, grads [][]float32) (PPOLosses, error)
	close()
}

type lstmEngine interface {
	forward(dst, seqs []float32, batch int) ([]float32, error)
	lossGrad(b LSTMBatch, batch int, masks [][]float32, grads [][]float32) (float32, error)
	close()
}

// shardMinRows is the fewest rows worth a thread of their own.
const shardMinRows = 8

// shardCount returns the number of shards a batch is split into: at most
// threads, each of at least shardMinRows rows (one shard for small
// batches).
func shardCount(threads, batch int) int {
	return max(1, min(threads, batch/shardMinRows))
}

// shardRows returns the rows [lo, hi) of shard s of S over batch rows.
func shardRows(s, S, batch int) (lo, hi int) {
	return s * batch / S, (s + 1) * batch / S
}

// parallel runs f(0..S-1), f(0) on the calling goroutine, and waits.
func parallel(S int, f func(s int)) {
	if S == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	wg.Add(S - 1)
	for s := 1; s < S; s++ {
		go func() {
			defer wg.Done()
			f(s)
		}()
	}
	f(0)
	wg.Wait()
}

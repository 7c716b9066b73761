// Package cudart is the CUDA side of agents/nn's CUDA backend: the device,
// kernels compiled at start-up with NVRTC, a stream with its cuBLAS handle,
// device and pinned memory, copies, matrix products and kernel launches.
// It is cgo over the CUDA runtime, cuBLAS and NVRTC, and is compiled only
// with -tags strata_cuda (a package of its own because agents/nn holds Go
// assembly, which a cgo package may not).
package cudart

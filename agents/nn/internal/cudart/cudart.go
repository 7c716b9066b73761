//go:build strata_cuda

package cudart

/*
#cgo LDFLAGS: -lcublas -lcudart -lnvrtc
#include <stdlib.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <nvrtc.h>

typedef unsigned long long u64;

static int st_launch(void* k, unsigned gx, unsigned bx, unsigned shmem, cudaStream_t s, u64* vals, int n) {
	void* args[32];
	for (int i = 0; i < n && i < 32; i++) args[i] = &vals[i];
	dim3 g; g.x = gx; g.y = 1; g.z = 1;
	dim3 b; b.x = bx; b.y = 1; b.z = 1;
	return (int)cudaLaunchKernel(k, g, b, args, shmem, s);
}

static int st_sgemm(cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, u64 A, int lda,
		u64 B, int ldb, float beta, u64 C, int ldc) {
	return (int)cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
		&alpha, (const float*)A, lda, (const float*)B, ldb, &beta, (float*)C, ldc);
}

static int st_malloc(u64* p, size_t n) {
	void* q = 0;
	int r = (int)cudaMalloc(&q, n);
	*p = (u64)q;
	return r;
}

static int st_free(u64 p) { return (int)cudaFree((void*)p); }

static int st_h2d(u64 dst, const void* src, size_t n, cudaStream_t s) {
	return (int)cudaMemcpyAsync((void*)dst, src, n, cudaMemcpyHostToDevice, s);
}

static int st_d2h(void* dst, u64 src, size_t n, cudaStream_t s) {
	return (int)cudaMemcpyAsync(dst, (const void*)src, n, cudaMemcpyDeviceToHost, s);
}

static int st_d2d(u64 dst, u64 src, size_t n, cudaStream_t s) {
	return (int)cudaMemcpyAsync((void*)dst, (const void*)src, n, cudaMemcpyDeviceToDevice, s);
}

static int st_memset(u64 p, size_t n, cudaStream_t s) { return (int)cudaMemsetAsync((void*)p, 0, n, s); }

// st_compile compiles src with NVRTC for arch into a CUBIN (malloc'd).
static int st_compile(const char* src, const char* arch, char** cubin, size_t* n, char** log) {
	nvrtcProgram p;
	*cubin = 0;
	*log = 0;
	nvrtcResult r = nvrtcCreateProgram(&p, src, "strata_kernels.cu", 0, NULL, NULL);
	if (r != NVRTC_SUCCESS) return (int)r;
	const char* opts[1] = {arch};
	r = nvrtcCompileProgram(p, 1, opts);
	size_t ln = 0;
	nvrtcGetProgramLogSize(p, &ln);
	*log = (char*)malloc(ln + 1);
	nvrtcGetProgramLog(p, *log);
	(*log)[ln] = 0;
	if (r == NVRTC_SUCCESS) r = nvrtcGetCUBINSize(p, n);
	if (r == NVRTC_SUCCESS) {
		*cubin = (char*)malloc(*n);
		r = nvrtcGetCUBIN(p, *cubin);
	}
	nvrtcDestroyProgram(&p);
	return (int)r;
}

static const char* st_nvrtc_error(int r) { return nvrtcGetErrorString((nvrtcResult)r); }

static int st_load(const void* cubin, cudaLibrary_t* lib) {
	return (int)cudaLibraryLoadData(lib, cubin, NULL, NULL, 0, NULL, NULL, 0);
}

static int st_kernel(cudaLibrary_t lib, const char* name, void** k) {
	cudaKernel_t kk;
	int r = (int)cudaLibraryGetKernel(&kk, lib, name);
	*k = (void*)kk;
	return r;
}

static int st_device(int* count, int* major, int* minor, char* name, size_t* mem) {
	int r = (int)cudaGetDeviceCount(count);
	if (r != 0 || *count == 0) return r;
	r = (int)cudaSetDevice(0);
	if (r != 0) return r;
	struct cudaDeviceProp p;
	r = (int)cudaGetDeviceProperties(&p, 0);
	if (r != 0) return r;
	*major = p.major;
	*minor = p.minor;
	*mem = p.totalGlobalMem;
	for (int i = 0; i < 255 && p.name[i]; i++) { name[i] = p.name[i]; name[i + 1] = 0; }
	return 0;
}

static int st_versions(int* runtime, int* driver, int* blas) {
	cudaRuntimeGetVersion(runtime);
	cudaDriverGetVersion(driver);
	int mj = 0, mn = 0, pl = 0;
	cublasGetProperty(MAJOR_VERSION, &mj);
	cublasGetProperty(MINOR_VERSION, &mn);
	cublasGetProperty(PATCH_LEVEL, &pl);
	*blas = mj * 10000 + mn * 100 + pl;
	return 0;
}

static int st_begin_capture(cudaStream_t s) { return (int)cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed); }

static int st_end_capture(cudaStream_t s, cudaGraphExec_t* exec) {
	cudaGraph_t g;
	int r = (int)cudaStreamEndCapture(s, &g);
	if (r != 0) return r;
	r = (int)cudaGraphInstantiate(exec, g, 0);
	cudaGraphDestroy(g);
	return r;
}

static int st_graph_launch(cudaGraphExec_t e, cudaStream_t s) { return (int)cudaGraphLaunch(e, s); }

static void st_graph_destroy(cudaGraphExec_t e) { cudaGraphExecDestroy(e); }

static int st_stream(cudaStream_t* s) { return (int)cudaStreamCreateWithFlags(s, cudaStreamNonBlocking); }

static int st_blas(cublasHandle_t* h, cudaStream_t s) {
	int r = (int)cublasCreate(h);
	if (r != 0) return r;
	r = (int)cublasSetStream(*h, s);
	if (r != 0) return r;
	// Plain FP32 products: the default math mode uses no TF32.
	return (int)cublasSetMathMode(*h, CUBLAS_DEFAULT_MATH);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Runtime is the process's CUDA state: device 0 and the kernels of the
// source given to Init, compiled once.
type Runtime struct {
	device  string
	arch    string
	memory  uint64
	runtime int
	driver  int
	blas    int
	kernels map[string]unsafe.Pointer
}

var (
	once   sync.Once
	rtOnce *Runtime
	errRT  error
)

func cudaErr(what string, code C.int) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s (error %d)", what, C.GoString(C.cudaGetErrorString(C.cudaError_t(code))), int(code))
}

// Init selects device 0 and compiles src with NVRTC for it, once per
// process; names are the kernels (extern "C") to look up. Later calls
// return the first call's result whatever they pass.
func Init(src string, names []string) (*Runtime, error) {
	once.Do(func() { rtOnce, errRT = start(src, names) })
	return rtOnce, errRT
}

func start(src string, names []string) (*Runtime, error) {
	var count, major, minor C.int
	var mem C.size_t
	name := (*C.char)(C.calloc(256, 1))
	defer C.free(unsafe.Pointer(name))
	if r := C.st_device(&count, &major, &minor, name, &mem); r != 0 {
		return nil, cudaErr("finding a CUDA device", r)
	}
	if count == 0 {
		return nil, errors.New("cuda: no CUDA device")
	}
	rt := &Runtime{device: C.GoString(name), arch: fmt.Sprintf("sm_%d%d", int(major), int(minor)),
		memory: uint64(mem), kernels: map[string]unsafe.Pointer{}}
	var rv, dv, bv C.int
	C.st_versions(&rv, &dv, &bv)
	rt.runtime, rt.driver, rt.blas = int(rv), int(dv), int(bv)
	cubin, err := Compile(src, rt.arch)
	if err != nil {
		return nil, err
	}
	cb := C.CBytes(cubin)
	defer C.free(cb)
	var lib C.cudaLibrary_t
	if r := C.st_load(cb, &lib); r != 0 {
		return nil, cudaErr("loading the kernels", r)
	}
	for _, k := range names {
		cn := C.CString(k)
		var p unsafe.Pointer
		r := C.st_kernel(lib, cn, &p)
		C.free(unsafe.Pointer(cn))
		if r != 0 {
			return nil, cudaErr("finding kernel "+k, r)
		}
		rt.kernels[k] = p
	}
	return rt, nil
}

// Compile compiles src with NVRTC for arch (e.g. sm_90) and returns the
// CUBIN. It needs no device.
func Compile(src, arch string) ([]byte, error) {
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	opt := C.CString("--gpu-architecture=" + arch)
	defer C.free(unsafe.Pointer(opt))
	var cubin, log *C.char
	var n C.size_t
	r := C.st_compile(cs, opt, &cubin, &n, &log)
	msg := ""
	if log != nil {
		msg = C.GoString(log)
		C.free(unsafe.Pointer(log))
	}
	if cubin != nil {
		defer C.free(unsafe.Pointer(cubin))
	}
	if r != 0 {
		return nil, fmt.Errorf("cuda: compiling the kernels for %s: %s\n%s", arch, C.GoString(C.st_nvrtc_error(r)), msg)
	}
	return C.GoBytes(unsafe.Pointer(cubin), C.int(n)), nil
}

// String describes the device: name, compute capability, memory, and the
// runtime, driver and cuBLAS versions.
func (rt *Runtime) String() string {
	return fmt.Sprintf("%s (%s, %.1f GiB), CUDA runtime %d.%d, driver %d.%d, cuBLAS %d.%d.%d", rt.device, rt.arch,
		float64(rt.memory)/(1<<30), rt.runtime/1000, rt.runtime%1000/10, rt.driver/1000, rt.driver%1000/10,
		rt.blas/10000, rt.blas%10000/100, rt.blas%100)
}

// Stream is a CUDA stream with a cuBLAS handle bound to it. Its methods
// queue work on the stream; Sync waits for it. A Stream is used by one
// goroutine at a time.
type Stream struct {
	rt     *Runtime
	stream C.cudaStream_t
	blas   C.cublasHandle_t
	args   [32]uint64
}

// NewStream creates a stream and its cuBLAS handle (plain FP32 math, no
// TF32).
func (rt *Runtime) NewStream() (*Stream, error) {
	s := &Stream{rt: rt}
	if err := cudaErr("creating a stream", C.st_stream(&s.stream)); err != nil {
		return nil, err
	}
	if r := C.st_blas(&s.blas, s.stream); r != 0 {
		C.cudaStreamDestroy(s.stream)
		return nil, fmt.Errorf("cuda: creating a cuBLAS handle: status %d", int(r))
	}
	return s, nil
}

// Close waits for the stream and releases it and its handle.
func (s *Stream) Close() {
	C.cudaStreamSynchronize(s.stream)
	C.cublasDestroy(s.blas)
	C.cudaStreamDestroy(s.stream)
}

// Malloc allocates n float32 values of device memory.
func (s *Stream) Malloc(n int) (uint64, error) {
	var p C.u64
	if err := cudaErr(fmt.Sprintf("allocating %d bytes of device memory", n*4), C.st_malloc(&p, C.size_t(max(n, 1)*4))); err != nil {
		return 0, err
	}
	return uint64(p), nil
}

// Free releases device memory (it waits for the device).
func (s *Stream) Free(p uint64) error { return cudaErr("freeing device memory", C.st_free(C.u64(p))) }

// HostAlloc allocates n float32 values of page-locked host memory, which
// asynchronous copies need.
func (s *Stream) HostAlloc(n int) ([]float32, error) {
	var p unsafe.Pointer
	if err := cudaErr(fmt.Sprintf("allocating %d bytes of pinned memory", n*4), C.int(C.cudaHostAlloc(&p, C.size_t(max(n, 1)*4), C.cudaHostAllocDefault))); err != nil {
		return nil, err
	}
	return unsafe.Slice((*float32)(p), max(n, 1)), nil
}

// FreeHost releases memory from HostAlloc.
func (s *Stream) FreeHost(h []float32) {
	if len(h) > 0 {
		C.cudaFreeHost(unsafe.Pointer(&h[0]))
	}
}

// H2D queues a copy of src (pinned memory from HostAlloc) to dst.
func (s *Stream) H2D(dst uint64, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return cudaErr("copying to the device", C.st_h2d(C.u64(dst), unsafe.Pointer(&src[0]), C.size_t(len(src)*4), s.stream))
}

// D2H queues a copy of len(dst) values from src into dst (pinned memory).
func (s *Stream) D2H(dst []float32, src uint64) error {
	if len(dst) == 0 {
		return nil
	}
	return cudaErr("copying from the device", C.st_d2h(unsafe.Pointer(&dst[0]), C.u64(src), C.size_t(len(dst)*4), s.stream))
}

// D2D queues a copy of n values on the device.
func (s *Stream) D2D(dst, src uint64, n int) error {
	return cudaErr("copying on the device", C.st_d2d(C.u64(dst), C.u64(src), C.size_t(n*4), s.stream))
}

// Zero queues zeroing n values at p.
func (s *Stream) Zero(p uint64, n int) error {
	return cudaErr("zeroing device memory", C.st_memset(C.u64(p), C.size_t(n*4), s.stream))
}

// Sync waits for everything queued on the stream and returns the first
// error a kernel raised.
func (s *Stream) Sync() error {
	return cudaErr("running the queued work", C.int(C.cudaStreamSynchronize(s.stream)))
}

// Gemm queues the column-major product c = α·op(a)·op(b) + β·c of cuBLAS
// (m×n result, k inner), op transposing where ta or tb is set.
func (s *Stream) Gemm(ta, tb bool, m, n, k int, alpha float32, a uint64, lda int, b uint64, ldb int, beta float32, c uint64, ldc int) error {
	r := C.st_sgemm(s.blas, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha), C.u64(a), C.int(lda),
		C.u64(b), C.int(ldb), C.float(beta), C.u64(c), C.int(ldc))
	if r != 0 {
		return fmt.Errorf("cuda: matrix product %dx%dx%d: cuBLAS status %d", m, n, k, int(r))
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Launch queues kernel name on a one-dimensional grid. Each argument is a
// 64-bit slot: a device address, or an int or float32 in its low 32 bits
// (Int, Float), which is where a little-endian device reads a 4-byte
// parameter.
func (s *Stream) Launch(name string, grid, block, shmem int, args ...uint64) error {
	k, ok := s.rt.kernels[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q", name)
	}
	if len(args) > len(s.args) {
		return fmt.Errorf("cuda: kernel %s: %d arguments, at most %d", name, len(args), len(s.args))
	}
	n := copy(s.args[:], args)
	return cudaErr("launching "+name, C.st_launch(k, C.uint(grid), C.uint(block), C.uint(shmem), s.stream, (*C.u64)(unsafe.Pointer(&s.args[0])), C.int(n)))
}

// Int is an int kernel argument.
func Int(v int) uint64 { return uint64(uint32(int32(v))) }

// Float is a float32 kernel argument.
func Float(v float32) uint64 { return uint64(math.Float32bits(v)) }

// Graph is a captured sequence of a stream's work, replayed with one
// launch.
type Graph struct{ exec C.cudaGraphExec_t }

// BeginCapture starts recording the stream's work instead of running it
// (relaxed mode: allocation stays allowed).
func (s *Stream) BeginCapture() error {
	return cudaErr("beginning a graph capture", C.st_begin_capture(s.stream))
}

// EndCapture ends the recording and returns the graph, ready to replay.
func (s *Stream) EndCapture() (*Graph, error) {
	g := &Graph{}
	if err := cudaErr("capturing a graph", C.st_end_capture(s.stream, &g.exec)); err != nil {
		return nil, err
	}
	return g, nil
}

// Replay queues the graph's work on the stream.
func (s *Stream) Replay(g *Graph) error {
	return cudaErr("launching a graph", C.st_graph_launch(g.exec, s.stream))
}

// Destroy releases the graph.
func (g *Graph) Destroy() { C.st_graph_destroy(g.exec) }

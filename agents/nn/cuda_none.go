//go:build !strata_cuda

package nn

import "errors"

// cudaBuilt reports whether this binary holds the CUDA backend: it does
// not (build with -tags strata_cuda).
const cudaBuilt = false

var errNoCUDA = errors.New("cuda backend: this binary was built without CUDA (build it with -tags strata_cuda)")

func cudaInit() (struct{}, error) { return struct{}{}, errNoCUDA }

// CUDADevice describes the CUDA device the backend would run on; in a
// binary built without -tags strata_cuda it returns an error.
func CUDADevice() (string, error) { return "", errNoCUDA }

// Without CUDA no network can hold BackendCUDA: ParseBackend, through
// which every constructor, loader and SetBackend passes, refuses it, so
// these are never called.

func newQCUDA(*QNet) qEngine          { panic(errNoCUDA) }
func newPPOCUDA(*PPONet) ppoEngine    { panic(errNoCUDA) }
func newLSTMCUDA(*LSTMNet) lstmEngine { panic(errNoCUDA) }

//go:build !strata_cuda

package nn

import "errors"

// cudaBuilt reports whether this binary holds the CUDA backend: it does
// not (build with -tags strata_cuda).
const cudaBuilt = false

var errNoCUDA = errors.New("cuda backend: this binary was built without CUDA (build it with -tags strata_cuda)")

func cudaInit() (struct{}, error) { return struct{}{}, errNoCUDA }

// CUDADevice describes the CUDA device the backend would run on; in a
// binary built without -tags cuda it returns an error.
func CUDADevice() (string, error) { return "", errNoCUDA }

// noCUDA is the engine of every network for BackendCUDA in a binary built
// without CUDA. ParseBackend refuses the backend there, so no network
// reaches it; should one, each pass fails with errNoCUDA.
type noCUDA struct{}

func (noCUDA) close() {}

func (noCUDA) forward(dst, x []float32, batch int) ([]float32, error) { return nil, errNoCUDA }

func (noCUDA) lossGrad(QBatch, int, [][]float32, [][]float32) (float32, error) { return 0, errNoCUDA }

type noCUDAPPO struct{}

func (noCUDAPPO) close() {}

func (noCUDAPPO) forward(states, addMask []float32, batch int) (logp, values []float32, err error) {
	return nil, nil, errNoCUDA
}

func (noCUDAPPO) lossGrad(PPOBatch, []float32, int, [][]float32, [][]float32) (PPOLosses, error) {
	return PPOLosses{}, errNoCUDA
}

type noCUDALSTM struct{}

func (noCUDALSTM) close() {}

func (noCUDALSTM) forward(dst, x []float32, batch int) ([]float32, error) { return nil, errNoCUDA }

func (noCUDALSTM) lossGrad(LSTMBatch, int, [][]float32, [][]float32) (float32, error) {
	return 0, errNoCUDA
}

func newQCUDA(*QNet) qEngine          { return noCUDA{} }
func newPPOCUDA(*PPONet) ppoEngine    { return noCUDAPPO{} }
func newLSTMCUDA(*LSTMNet) lstmEngine { return noCUDALSTM{} }

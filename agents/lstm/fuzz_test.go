package lstm

import (
	"bytes"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
)

// fuzzCheckpoint is the checkpoint of a narrow, untrained network with
// identity-like scalers, a few kB.
func fuzzCheckpoint(f *testing.F) []byte {
	cfg := smallConfig()
	cfg.Net.Hidden, cfg.Net.DenseHidden = [2]int{3, 2}, 2
	net, err := nn.NewLSTMNet(cfg.Net, 11)
	if err != nil {
		f.Fatal(err)
	}
	defer net.Close()
	scaler := func(dim int, log1p []bool) *nn.Scaler {
		s := &nn.Scaler{Kind: nn.ScalerRobust, Dim: dim, Center: make([]float32, dim), Scale: make([]float32, dim), Log1p: log1p}
		for j := range s.Scale {
			s.Center[j], s.Scale[j] = float32(j)/4, float32(j+1)
		}
		return s
	}
	net.Scaler = scaler(Features, []bool{true, false, false, true, false})
	m := Manifest{Version: "lstm-e3", Config: cfg, Scalers: Scalers{Input: net.Scaler, Target: scaler(Targets, nil)},
		Rule: PrewarmRule{Max: 4, Threshold: 0.1, DefaultDurationS: 1}, BestEpoch: 3, BestValLoss: 0.25, Curve: []Epoch{{}}}
	var b bytes.Buffer
	if err := Save(&b, net, m); err != nil {
		f.Fatal(err)
	}
	return b.Bytes()
}

// FuzzReadCheckpoint feeds arbitrary bytes to the LSTM checkpoint readers
// (ReadCheckpoint, LoadPolicy): they must return a value or an error, never
// panic or allocate what a corrupt manifest or network header claims. A
// checkpoint that reads saves to bytes that read and save again to the
// same bytes.
func FuzzReadCheckpoint(f *testing.F) {
	data := fuzzCheckpoint(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Add(make([]byte, 1024)) // an empty tar archive
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := LoadPolicy(bytes.NewReader(data)); err == nil && p == nil {
			t.Fatal("LoadPolicy returned neither a policy nor an error")
		}
		c, err := ReadCheckpoint(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer c.Net.Close()
		var b1, b2 bytes.Buffer
		if err := Save(&b1, c.Net, c.Manifest); err != nil {
			t.Fatalf("saving a checkpoint read: %v", err)
		}
		again, err := ReadCheckpoint(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("reading a saved checkpoint: %v", err)
		}
		defer again.Net.Close()
		if err := Save(&b2, again.Net, again.Manifest); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("the checkpoint changed through a read and save (%v)", err)
		}
	})
}

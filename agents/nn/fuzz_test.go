package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"testing"
)

// Small networks of each kind keep the fuzz seeds short (a few kB).
func smallQConfig() QConfig {
	c := DefaultQConfig()
	c.StrategicInputs, c.AppInputs, c.StrategicHidden, c.AppHidden, c.HeadHidden = 3, 2, [2]int{4, 3}, 2, [2]int{3, 2}
	return c
}

func smallPPOConfig() PPOConfig {
	c := DefaultPPOConfig()
	c.Inputs, c.Shared, c.ActorHidden, c.CriticHidden, c.Actions = 3, [2]int{4, 3}, [2]int{3, 2}, 2, 4
	return c
}

func smallLSTMConfig() LSTMConfig {
	c := DefaultLSTMConfig()
	c.Features, c.Steps, c.Hidden, c.DenseHidden, c.Outputs = 2, 3, [2]int{3, 2}, 2, 1
	return c
}

// safetensors assembles a safetensors file from a JSON header and data.
func safetensors(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

// FuzzReadCheckpoint feeds arbitrary bytes to ReadCheckpoint and builds the
// network of the kind the checkpoint names. Neither may panic or allocate
// much more than the input holds (a checkpoint's configuration comes from
// the file); a malformed file is an error wrapping ErrCheckpoint. A
// network that loads saves to a checkpoint that reads back to the same
// configuration and tensors, bit for bit.
func FuzzReadCheckpoint(f *testing.F) {
	sc := &Scaler{Kind: ScalerRobust, Dim: 5, Center: make([]float32, 5), Scale: []float32{1, 2, 3, 4, 5}}
	var b bytes.Buffer
	q, err := NewQNet(smallQConfig(), 3)
	if err != nil {
		f.Fatal(err)
	}
	q.Scaler = sc
	if err := q.Save(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(b.Bytes()))
	b.Reset()
	p, err := NewPPONet(smallPPOConfig(), 4)
	if err != nil {
		f.Fatal(err)
	}
	if err := p.Save(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(b.Bytes()))
	b.Reset()
	l, err := NewLSTMNet(smallLSTMConfig(), 5)
	if err != nil {
		f.Fatal(err)
	}
	if err := l.Save(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(b.Bytes()))
	f.Add(b.Bytes()[:len(b.Bytes())-3])
	q.Close()
	p.Close()
	l.Close()
	f.Add(safetensors(`{"__metadata__":{"format":"strata-nn/1"}}`, nil))
	f.Add(safetensors(`{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(safetensors(`{"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCheckpoint(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("error %v does not wrap ErrCheckpoint", err)
			}
			return
		}
		if len(c.Order) != len(c.Tensors) {
			t.Fatalf("%d tensors in order, %d by name", len(c.Order), len(c.Tensors))
		}
		for name, tn := range c.Tensors {
			n := 1
			for _, d := range tn.Shape {
				n *= d
			}
			if n != len(tn.Data) {
				t.Fatalf("tensor %s of shape %v holds %d values", name, tn.Shape, len(tn.Data))
			}
		}
		var net interface {
			Save(w io.Writer) error
			Close()
		}
		var cfg any
		switch c.Kind() {
		case KindQ:
			n, err := c.QNet()
			if err != nil {
				return
			}
			net, cfg = n, n.Config()
		case KindPPO:
			n, err := c.PPONet()
			if err != nil {
				return
			}
			net, cfg = n, n.Config()
		case KindLSTM:
			n, err := c.LSTMNet()
			if err != nil {
				return
			}
			net, cfg = n, n.Config()
		default:
			return
		}
		defer net.Close()
		var out bytes.Buffer
		if err := net.Save(&out); err != nil {
			t.Fatalf("saving a loaded %s network: %v", c.Kind(), err)
		}
		again, err := ReadCheckpoint(&out)
		if err != nil {
			t.Fatalf("reading back a saved %s network: %v", c.Kind(), err)
		}
		var cfg2 any
		switch c.Kind() {
		case KindQ:
			var qc QConfig
			_, _, err = again.checkKind(KindQ, &qc)
			cfg2 = qc
		case KindPPO:
			var pc PPOConfig
			_, _, err = again.checkKind(KindPPO, &pc)
			cfg2 = pc
		case KindLSTM:
			var lc LSTMConfig
			_, _, err = again.checkKind(KindLSTM, &lc)
			cfg2 = lc
		}
		if err != nil || !sameJSON(t, cfg, cfg2) {
			t.Fatalf("configuration %+v read back as %+v (%v)", cfg, cfg2, err)
		}
		if len(again.Tensors) != len(c.Tensors) {
			t.Fatalf("%d tensors read back as %d", len(c.Tensors), len(again.Tensors))
		}
		for name, tn := range c.Tensors {
			got := again.Tensors[name]
			if !sameShape(got.Shape, tn.Shape) || len(got.Data) != len(tn.Data) {
				t.Fatalf("tensor %s of shape %v read back as %v", name, tn.Shape, got.Shape)
			}
			for i := range tn.Data {
				if math.Float32bits(got.Data[i]) != math.Float32bits(tn.Data[i]) {
					t.Fatalf("tensor %s value %d: %v read back as %v", name, i, tn.Data[i], got.Data[i])
				}
			}
		}
	})
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	aj, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	bj, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(aj, bj)
}

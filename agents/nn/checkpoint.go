package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// FormatVersion is the checkpoint format this package writes and reads,
// stored under "format" in the safetensors metadata.
const FormatVersion = "strata-nn/1"

// Network kinds, stored under "kind" in the checkpoint metadata.
const (
	KindQ    = "strategic-dqn"
	KindPPO  = "tactical-ppo"
	KindLSTM = "operational-lstm"
)

// Checkpoint errors callers branch on.
var (
	// ErrCheckpoint is returned (wrapped) for a checkpoint that is not a
	// well-formed safetensors file of this package's layout.
	ErrCheckpoint = errors.New("malformed checkpoint")
	// ErrVersion is returned (wrapped) for a checkpoint of another format
	// version.
	ErrVersion = errors.New("unsupported checkpoint format version")
	// ErrKind is returned (wrapped) when loading a checkpoint of another
	// network kind.
	ErrKind = errors.New("checkpoint of another network kind")
)

// Limits that keep a corrupt header from allocating without bound.
const (
	maxHeaderBytes = 16 << 20
	maxDataBytes   = 1 << 30
)

// Tensor is one float32 tensor read from a checkpoint.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Checkpoint is a parsed checkpoint: its metadata and tensors, before they
// are bound to a network.
type Checkpoint struct {
	// Metadata is the safetensors "__metadata__" map.
	Metadata map[string]string
	// Tensors maps parameter names to values.
	Tensors map[string]Tensor
	// Order lists the tensor names in file order.
	Order []string
}

// Kind returns the checkpoint's network kind.
func (c *Checkpoint) Kind() string { return c.Metadata["kind"] }

// tensorHeader is one tensor's entry in the safetensors header.
type tensorHeader struct {
	Dtype       string `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets [2]int `json:"data_offsets"`
}

// writeCheckpoint writes params and metadata as safetensors: an 8-byte
// little-endian header length, the JSON header (padded with spaces to a
// multiple of 8), then the tensors' little-endian float32 data in
// parameter order.
func writeCheckpoint(w io.Writer, meta map[string]string, ps *paramSet) error {
	var hdr bytes.Buffer
	hdr.WriteString(`{"__metadata__":`)
	m, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding checkpoint metadata: %w", err)
	}
	hdr.Write(m)
	offset := 0
	for _, p := range ps.list {
		end := offset + 4*p.size()
		th, err := json.Marshal(tensorHeader{Dtype: "F32", Shape: p.shape, DataOffsets: [2]int{offset, end}})
		if err != nil {
			return fmt.Errorf("encoding checkpoint header for %s: %w", p.name, err)
		}
		name, _ := json.Marshal(p.name)
		hdr.WriteByte(',')
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(th)
		offset = end
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return fmt.Errorf("writing checkpoint header length: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("writing checkpoint header: %w", err)
	}
	buf := make([]byte, 0, 4096)
	for _, p := range ps.list {
		for _, v := range p.data() {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("writing checkpoint tensor %s: %w", p.name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing checkpoint tensors: %w", err)
	}
	return nil
}

// ReadCheckpoint parses a safetensors checkpoint written by this package
// (or any safetensors file of float32 tensors with string metadata). It
// checks the layout but neither the format version nor the kind; the
// Load functions do.
func ReadCheckpoint(r io.Reader) (*Checkpoint, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("reading checkpoint header length: %w: %w", ErrCheckpoint, err)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size < 2 || size > maxHeaderBytes {
		return nil, fmt.Errorf("reading checkpoint: %w: header of %d bytes", ErrCheckpoint, size)
	}
	hdr := make([]byte, size)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("reading checkpoint header: %w: %w", ErrCheckpoint, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("decoding checkpoint header: %w: %w", ErrCheckpoint, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxDataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint tensors: %w", err)
	}
	if len(data) > maxDataBytes {
		return nil, fmt.Errorf("reading checkpoint: %w: more than %d bytes of tensors", ErrCheckpoint, maxDataBytes)
	}
	c := &Checkpoint{Metadata: map[string]string{}, Tensors: map[string]Tensor{}}
	type entry struct {
		name string
		h    tensorHeader
	}
	var entries []entry
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &c.Metadata); err != nil {
				return nil, fmt.Errorf("decoding checkpoint metadata: %w: %w", ErrCheckpoint, err)
			}
			continue
		}
		var h tensorHeader
		if err := json.Unmarshal(v, &h); err != nil {
			return nil, fmt.Errorf("decoding checkpoint header of %s: %w: %w", name, ErrCheckpoint, err)
		}
		if h.Dtype != "F32" {
			return nil, fmt.Errorf("reading checkpoint tensor %s: %w: dtype %s, want F32", name, ErrCheckpoint, h.Dtype)
		}
		entries = append(entries, entry{name, h})
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.h.DataOffsets[0] - b.h.DataOffsets[0] })
	end := 0
	for _, e := range entries {
		// The product is bounded as it is formed: dimensions that are
		// each small can multiply past int's range, and a count that
		// wrapped to a small value would pass the offsets check below.
		count := 1
		for _, d := range e.h.Shape {
			if d < 0 || d > 0 && count > maxDataBytes/4/d {
				return nil, fmt.Errorf("reading checkpoint tensor %s: %w: shape %v holds more than the %d values a checkpoint may", e.name, ErrCheckpoint, e.h.Shape, maxDataBytes/4)
			}
			count *= d
		}
		lo, hi := e.h.DataOffsets[0], e.h.DataOffsets[1]
		if lo != end || hi-lo != 4*count || hi > len(data) {
			return nil, fmt.Errorf("reading checkpoint tensor %s: %w: offsets [%d, %d) for shape %v after %d of %d bytes",
				e.name, ErrCheckpoint, lo, hi, e.h.Shape, end, len(data))
		}
		t := Tensor{Shape: e.h.Shape, Data: make([]float32, count)}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+4*i:]))
		}
		c.Tensors[e.name] = t
		c.Order = append(c.Order, e.name)
		end = hi
	}
	if end != len(data) {
		return nil, fmt.Errorf("reading checkpoint: %w: %d bytes of tensors, header covers %d", ErrCheckpoint, len(data), end)
	}
	return c, nil
}

// metadata assembles the "__metadata__" map of a network.
func metadata(kind string, seed uint64, inputs, outputs, params int, cfg any, sc *Scaler) (map[string]string, error) {
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding network configuration: %w", err)
	}
	m := map[string]string{
		"format":      FormatVersion,
		"kind":        kind,
		"seed":        strconv.FormatUint(seed, 10),
		"inputs":      strconv.Itoa(inputs),
		"outputs":     strconv.Itoa(outputs),
		"param_count": strconv.Itoa(params),
		"config":      string(cj),
		"producer":    "github.com/strata-rl/strata/agents/nn (gorgonia.org/gorgonia v0.9.18)",
	}
	if sc != nil {
		sj, err := json.Marshal(sc)
		if err != nil {
			return nil, fmt.Errorf("encoding scaler: %w", err)
		}
		m["scaler"] = string(sj)
	}
	return m, nil
}

// checkKind parses the checkpoint's common metadata: it checks the format
// version and kind, decodes the configuration into cfg and returns the seed
// and scaler.
func (c *Checkpoint) checkKind(kind string, cfg any) (uint64, *Scaler, error) {
	if f := c.Metadata["format"]; f != FormatVersion {
		return 0, nil, fmt.Errorf("%w: %q, want %q", ErrVersion, f, FormatVersion)
	}
	if k := c.Kind(); k != kind {
		return 0, nil, fmt.Errorf("%w: %q, want %q", ErrKind, k, kind)
	}
	seed, err := strconv.ParseUint(c.Metadata["seed"], 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: seed %q: %w", ErrCheckpoint, c.Metadata["seed"], err)
	}
	if err := json.Unmarshal([]byte(c.Metadata["config"]), cfg); err != nil {
		return 0, nil, fmt.Errorf("%w: configuration: %w", ErrCheckpoint, err)
	}
	var sc *Scaler
	if s, ok := c.Metadata["scaler"]; ok {
		sc = new(Scaler)
		if err := json.Unmarshal([]byte(s), sc); err != nil {
			return 0, nil, fmt.Errorf("%w: scaler: %w", ErrCheckpoint, err)
		}
		if err := sc.Validate(); err != nil {
			return 0, nil, fmt.Errorf("%w: scaler: %w", ErrCheckpoint, err)
		}
	}
	return seed, sc, nil
}

// matches checks that the checkpoint's tensors are ps's parameters: every
// parameter present with its shape, and no other tensor.
func (c *Checkpoint) matches(ps *paramSet) error {
	if len(c.Tensors) != len(ps.list) {
		return fmt.Errorf("%w: %d tensors, network has %d parameters", ErrArchitecture, len(c.Tensors), len(ps.list))
	}
	for _, p := range ps.list {
		t, ok := c.Tensors[p.name]
		if !ok {
			return fmt.Errorf("%w: tensor %s missing", ErrArchitecture, p.name)
		}
		if !sameShape(t.Shape, p.shape) {
			return fmt.Errorf("%w: tensor %s has shape %v, want %v", ErrArchitecture, p.name, t.Shape, p.shape)
		}
	}
	return nil
}

// fits checks, before a network is built from the checkpoint's
// configuration, that the parameters layers declares are the checkpoint's
// tensors. The configuration is read from the file: a corrupt width (a
// hidden layer of 10⁹ units) must be refused, not allocated. layers runs on
// a parameter set that records shapes only.
func (c *Checkpoint) fits(layers func(*paramSet)) error {
	ps := newParamSet()
	ps.shapesOnly = true
	layers(ps)
	return c.matches(ps)
}

// bind copies the checkpoint's tensors into ps; every parameter must be
// present with its shape, and no other tensor may be.
func (c *Checkpoint) bind(ps *paramSet) error {
	if err := c.matches(ps); err != nil {
		return err
	}
	for _, p := range ps.list {
		if !allFinite(c.Tensors[p.name].Data) {
			return fmt.Errorf("%w: tensor %s holds non-finite values", ErrCheckpoint, p.name)
		}
	}
	for _, p := range ps.list {
		copy(p.data(), c.Tensors[p.name].Data)
	}
	return nil
}

// Save writes the network as a safetensors checkpoint (see docs/nn.md).
func (n *QNet) Save(w io.Writer) error {
	meta, err := metadata(KindQ, n.c.seed, n.cfg.Inputs(), n.cfg.Actions, n.NumParams(), n.cfg, n.Scaler)
	if err != nil {
		return fmt.Errorf("saving Q-network: %w", err)
	}
	if err := writeCheckpoint(w, meta, n.c.ps); err != nil {
		return fmt.Errorf("saving Q-network: %w", err)
	}
	return nil
}

// LoadQNet reads a Q-network checkpoint. A checkpoint of another kind or
// format version fails with ErrKind or ErrVersion. Stats and the optimiser
// state start afresh; opts choose the backend as for NewQNet.
func LoadQNet(r io.Reader, opts ...Option) (*QNet, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	return c.QNet(opts...)
}

// QNet builds the Q-network the checkpoint holds.
func (c *Checkpoint) QNet(opts ...Option) (*QNet, error) {
	var cfg QConfig
	seed, sc, err := c.checkKind(KindQ, &cfg)
	if err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	if err := c.fits(func(ps *paramSet) { newQLayers(ps, cfg) }); err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	n, err := NewQNet(cfg, seed, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	if err := c.bind(n.c.ps); err != nil {
		return nil, fmt.Errorf("loading Q-network: %w", err)
	}
	n.Scaler = sc
	return n, nil
}

// Load replaces the network (configuration, weights, seed, scaler) with the
// checkpoint read from r; Stats and the optimiser state start afresh. On
// error the network is unchanged.
func (n *QNet) Load(r io.Reader) error {
	m, err := LoadQNet(r)
	if err != nil {
		return err
	}
	backend, threads := n.c.backend, n.c.threads
	n.Close()
	*n = *m
	// The build method value must refer to n, not m; n keeps its backend.
	n.c.build = n.build
	n.c.backend, n.c.threads = backend, threads
	n.eng = nil
	return nil
}

// Save writes the network as a safetensors checkpoint (see docs/nn.md).
func (n *PPONet) Save(w io.Writer) error {
	meta, err := metadata(KindPPO, n.c.seed, n.cfg.Inputs, n.cfg.Actions, n.NumParams(), n.cfg, n.Scaler)
	if err != nil {
		return fmt.Errorf("saving actor-critic: %w", err)
	}
	if err := writeCheckpoint(w, meta, n.c.ps); err != nil {
		return fmt.Errorf("saving actor-critic: %w", err)
	}
	return nil
}

// LoadPPONet reads an actor-critic checkpoint. A checkpoint of another kind
// or format version fails with ErrKind or ErrVersion. Stats and the
// optimiser state start afresh.
func LoadPPONet(r io.Reader, opts ...Option) (*PPONet, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	return c.PPONet(opts...)
}

// PPONet builds the actor-critic the checkpoint holds.
func (c *Checkpoint) PPONet(opts ...Option) (*PPONet, error) {
	var cfg PPOConfig
	seed, sc, err := c.checkKind(KindPPO, &cfg)
	if err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	if err := c.fits(func(ps *paramSet) { newPPOLayers(ps, cfg) }); err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	n, err := NewPPONet(cfg, seed, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	if err := c.bind(n.c.ps); err != nil {
		return nil, fmt.Errorf("loading actor-critic: %w", err)
	}
	n.Scaler = sc
	return n, nil
}

// Load replaces the network (configuration, weights, seed, scaler) with the
// checkpoint read from r; Stats and the optimiser state start afresh. On
// error the network is unchanged.
func (n *PPONet) Load(r io.Reader) error {
	m, err := LoadPPONet(r)
	if err != nil {
		return err
	}
	backend, threads := n.c.backend, n.c.threads
	n.Close()
	*n = *m
	// The build method value must refer to n, not m; n keeps its backend.
	n.c.build = n.build
	n.c.backend, n.c.threads = backend, threads
	n.eng = nil
	return nil
}

// Save writes the network as a safetensors checkpoint (see docs/nn.md).
func (n *LSTMNet) Save(w io.Writer) error {
	meta, err := metadata(KindLSTM, n.c.seed, n.cfg.Inputs(), n.cfg.Outputs, n.NumParams(), n.cfg, n.Scaler)
	if err != nil {
		return fmt.Errorf("saving LSTM: %w", err)
	}
	if err := writeCheckpoint(w, meta, n.c.ps); err != nil {
		return fmt.Errorf("saving LSTM: %w", err)
	}
	return nil
}

// LoadLSTMNet reads an LSTM checkpoint. A checkpoint of another kind or
// format version fails with ErrKind or ErrVersion. Stats and the optimiser
// state start afresh; opts choose the backend as for NewQNet.
func LoadLSTMNet(r io.Reader, opts ...Option) (*LSTMNet, error) {
	c, err := ReadCheckpoint(r)
	if err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	return c.LSTMNet(opts...)
}

// LSTMNet builds the LSTM the checkpoint holds.
func (c *Checkpoint) LSTMNet(opts ...Option) (*LSTMNet, error) {
	var cfg LSTMConfig
	seed, sc, err := c.checkKind(KindLSTM, &cfg)
	if err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	if err := c.fits(func(ps *paramSet) { newLSTMLayers(ps, cfg) }); err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	n, err := NewLSTMNet(cfg, seed, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	if err := c.bind(n.c.ps); err != nil {
		return nil, fmt.Errorf("loading LSTM: %w", err)
	}
	n.Scaler = sc
	return n, nil
}

// Load replaces the network (configuration, weights, seed, scaler) with the
// checkpoint read from r; Stats and the optimiser state start afresh. On
// error the network is unchanged.
func (n *LSTMNet) Load(r io.Reader) error {
	m, err := LoadLSTMNet(r)
	if err != nil {
		return err
	}
	backend, threads := n.c.backend, n.c.threads
	n.Close()
	*n = *m
	// The build method value must refer to n, not m; n keeps its backend.
	n.c.build = n.build
	n.c.backend, n.c.threads = backend, threads
	n.eng = nil
	return nil
}

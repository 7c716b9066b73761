package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Streams of the seeded generators: initialisation and dropout masks draw
// from separate PCG streams of the same seed, so changing the dropout rate
// does not change the initial weights.
const (
	initStream    = 0x5eed_1417_0000_0001
	dropoutStream = 0x5eed_1417_0000_0002
)

// initKind says how a parameter is initialised.
type initKind int

const (
	initZero   initKind = iota // all zeros (biases, LayerNorm shift)
	initOne                    // all ones (LayerNorm gain)
	initHe                     // He-uniform: U(±sqrt(6/fanIn)), for layers followed by ReLU
	initGlorot                 // Glorot-uniform: U(±sqrt(6/(fanIn+fanOut))), for linear outputs and LSTM weights
)

// param is one named weight tensor. Its values live in t; every gorgonia
// graph built for the network binds the same tensor, so an optimiser update
// to t is seen by all of them.
type param struct {
	name  string
	shape []int
	t     *tensor.Dense
	d     []float32 // t's backing slice (Dense.Data allocates on every call)
	init  initKind
	// fanIn and fanOut drive the He and Glorot bounds.
	fanIn, fanOut int
	// idx is the parameter's position in its paramSet (and in gradient
	// lists).
	idx int
}

// data returns the parameter's values.
func (p *param) data() []float32 { return p.d }

// size returns the number of scalars in the parameter.
func (p *param) size() int {
	n := 1
	for _, d := range p.shape {
		n *= d
	}
	return n
}

// paramSet is an ordered list of parameters; the order is the
// initialisation order and the checkpoint order.
type paramSet struct {
	list   []*param
	byName map[string]*param
	// shapesOnly makes add record names and shapes without allocating
	// values (Checkpoint.fits: a layout read from a file is checked
	// before anything of its size is allocated).
	shapesOnly bool
}

func newParamSet() *paramSet { return &paramSet{byName: map[string]*param{}} }

// add registers a parameter of the given shape.
func (s *paramSet) add(name string, init initKind, fanIn, fanOut int, shape ...int) *param {
	p := &param{name: name, shape: shape, init: init, fanIn: fanIn, fanOut: fanOut, idx: len(s.list)}
	if !s.shapesOnly {
		p.d = make([]float32, p.size())
		p.t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(p.d))
	}
	s.list = append(s.list, p)
	s.byName[name] = p
	return p
}

// count returns the number of scalars over all parameters.
func (s *paramSet) count() int {
	n := 0
	for _, p := range s.list {
		n += p.size()
	}
	return n
}

// initialise fills every parameter, in order, from a PCG generator seeded
// with seed.
func (s *paramSet) initialise(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, initStream))
	for _, p := range s.list {
		d := p.data()
		switch p.init {
		case initZero:
			clear(d)
		case initOne:
			for i := range d {
				d[i] = 1
			}
		case initHe, initGlorot:
			limit := math.Sqrt(6 / float64(p.fanIn))
			if p.init == initGlorot {
				limit = math.Sqrt(6 / float64(p.fanIn+p.fanOut))
			}
			for i := range d {
				d[i] = float32((2*rng.Float64() - 1) * limit)
			}
		}
	}
}

// copyFrom copies every parameter of src, which must have the same layout.
func (s *paramSet) copyFrom(src *paramSet) error {
	if err := s.sameLayout(src); err != nil {
		return err
	}
	for i, p := range s.list {
		copy(p.data(), src.list[i].data())
	}
	return nil
}

// softUpdate moves every parameter towards src: p ← τ·src + (1−τ)·p.
func (s *paramSet) softUpdate(src *paramSet, tau float32) error {
	if err := s.sameLayout(src); err != nil {
		return err
	}
	for i, p := range s.list {
		d, o := p.data(), src.list[i].data()
		for j := range d {
			d[j] = tau*o[j] + (1-tau)*d[j]
		}
	}
	return nil
}

// sameLayout reports an error when src's parameters differ in name or
// shape.
func (s *paramSet) sameLayout(src *paramSet) error {
	if len(s.list) != len(src.list) {
		return fmt.Errorf("%w: %d parameters against %d", ErrArchitecture, len(s.list), len(src.list))
	}
	for i, p := range s.list {
		q := src.list[i]
		if p.name != q.name || !sameShape(p.shape, q.shape) {
			return fmt.Errorf("%w: parameter %s%v against %s%v", ErrArchitecture, p.name, p.shape, q.name, q.shape)
		}
	}
	return nil
}

// snapshot returns a copy of every parameter's values, in order.
func (s *paramSet) snapshot() [][]float32 {
	out := make([][]float32, len(s.list))
	for i, p := range s.list {
		out[i] = append([]float32(nil), p.data()...)
	}
	return out
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clone returns a copy of d.
func clone(d []float32) []float32 { return append([]float32(nil), d...) }

package cloud

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// poolCodecVersion is the first byte of a pool's encoding.
const poolCodecVersion = 1

// MarshalBinary encodes the pool — its placement, trace time, instances and
// paid provisioned-concurrency units — so that a checkpoint of the twin can
// restore it exactly (UnmarshalBinary). The encoding is a version byte and
// varints.
func (p *Pool) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+10*(2*len(p.inst)+len(p.pcPaid)))
	b = append(b, poolCodecVersion, byte(p.placement.Provider), byte(p.placement.Metro), byte(p.placement.Tier))
	b = binary.AppendVarint(b, p.now)
	b = binary.AppendUvarint(b, uint64(len(p.inst)))
	for _, in := range p.inst {
		b = binary.AppendVarint(b, in.freeAt)
		b = binary.AppendVarint(b, in.busyFrom)
	}
	b = binary.AppendUvarint(b, uint64(len(p.pcPaid)))
	for _, t := range p.pcPaid {
		b = binary.AppendVarint(b, t)
	}
	return b, nil
}

// UnmarshalBinary restores a pool encoded by MarshalBinary. It checks what
// a Pool relies on: a valid placement and instances in order.
func (p *Pool) UnmarshalBinary(b []byte) error {
	if len(b) < 4 || b[0] != poolCodecVersion {
		return errors.New("decoding a pool: not a version-1 pool encoding")
	}
	pl := Placement{Provider: Provider(b[1]), Metro: Metro(b[2]), Tier: Tier(b[3])}
	if !pl.Valid() {
		return fmt.Errorf("decoding a pool: invalid placement %d/%d/%d", b[1], b[2], b[3])
	}
	r := varintReader{b: b[4:]}
	now := r.varint()
	n := r.count(2)
	inst := make([]instance, 0, n)
	for range n {
		inst = append(inst, instance{freeAt: r.varint(), busyFrom: r.varint()})
	}
	m := r.count(1)
	pc := make([]int64, 0, m)
	for range m {
		pc = append(pc, r.varint())
	}
	if r.err != nil {
		return fmt.Errorf("decoding a pool: %w", r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("decoding a pool: %d bytes after its end", len(r.b))
	}
	if !slices.IsSortedFunc(inst, compareInstances) {
		return errors.New("decoding a pool: instances out of order")
	}
	*p = Pool{placement: pl, now: now, inst: inst, pcPaid: pc}
	return nil
}

// compareInstances orders instances by freeAt, then busyFrom, as a Pool
// keeps them.
func compareInstances(a, b instance) int {
	if c := cmp.Compare(a.freeAt, b.freeAt); c != 0 {
		return c
	}
	return cmp.Compare(a.busyFrom, b.busyFrom)
}

// varintReader reads varints, keeping the first error.
type varintReader struct {
	b   []byte
	err error
}

func (r *varintReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length whose items take at least per bytes each, refusing
// one the remaining bytes cannot hold.
func (r *varintReader) count(per int) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated or overlong length")
		return 0
	}
	r.b = r.b[n:]
	if v > uint64(len(r.b)/per) {
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", v, len(r.b))
		return 0
	}
	return int(v)
}

package schemas

import (
	"encoding/binary"
	"fmt"
)

// arrow-go decodes IPC message metadata (flatbuffers) without verifying it,
// and sizes slices from the vector lengths it finds there: a corrupt length
// makes it allocate gigabytes. checkMessage walks the parts of a Message
// that the reader allocates from — the Schema's fields (recursively), every
// custom_metadata vector, and the RecordBatch's nodes and buffers — and
// checks that every offset and every vector lies inside the metadata.

type fb []byte

func (b fb) u32(pos int) (int, error) {
	if pos < 0 || pos+4 > len(b) {
		return 0, fmt.Errorf("offset %d outside %d metadata bytes", pos, len(b))
	}
	return int(binary.LittleEndian.Uint32(b[pos:])), nil
}

// field returns the absolute position of field i of the table at tab, or -1
// when the field is absent.
func (b fb) field(tab, i int) (int, error) {
	so, err := b.u32(tab)
	if err != nil {
		return 0, err
	}
	vt := tab - int(int32(so))
	if vt < 0 || vt+4 > len(b) {
		return 0, fmt.Errorf("vtable of table %d outside metadata", tab)
	}
	vtLen := int(binary.LittleEndian.Uint16(b[vt:]))
	if vtLen < 4 || vt+vtLen > len(b) {
		return 0, fmt.Errorf("vtable of table %d has bad length %d", tab, vtLen)
	}
	slot := 4 + 2*i
	if slot+2 > vtLen {
		return -1, nil
	}
	o := int(binary.LittleEndian.Uint16(b[vt+slot:]))
	if o == 0 {
		return -1, nil
	}
	if tab+o >= len(b) {
		return 0, fmt.Errorf("field %d of table %d outside metadata", i, tab)
	}
	return tab + o, nil
}

// ref follows the uoffset stored at pos.
func (b fb) ref(pos int) (int, error) {
	o, err := b.u32(pos)
	if err != nil {
		return 0, err
	}
	if t := pos + o; t < len(b) {
		return t, nil
	}
	return 0, fmt.Errorf("reference at %d points outside metadata", pos)
}

// vector returns the position of the first element and the length of the
// vector referenced by field i of tab (0, 0 when absent), checking that
// n elements of elem bytes fit.
func (b fb) vector(tab, i, elem int) (start, n int, err error) {
	f, err := b.field(tab, i)
	if err != nil || f < 0 {
		return 0, 0, err
	}
	v, err := b.ref(f)
	if err != nil {
		return 0, 0, err
	}
	n, err = b.u32(v)
	if err != nil {
		return 0, 0, err
	}
	if n < 0 || n > (len(b)-v-4)/elem {
		return 0, 0, fmt.Errorf("vector at %d claims %d elements of %d bytes, metadata has %d", v, n, elem, len(b))
	}
	return v + 4, n, nil
}

func (b fb) table(tab, i int) (int, error) {
	f, err := b.field(tab, i)
	if err != nil || f < 0 {
		return -1, err
	}
	return b.ref(f)
}

// keyValues checks a vector of KeyValue tables (custom_metadata).
func (b fb) keyValues(tab, i int) error {
	start, n, err := b.vector(tab, i, 4)
	if err != nil {
		return err
	}
	for k := range n {
		kv, err := b.ref(start + 4*k)
		if err != nil {
			return err
		}
		for s := range 2 {
			if _, _, err := b.vector(kv, s, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b fb) checkField(f, depth int) error {
	if depth > 8 {
		return fmt.Errorf("fields nested deeper than 8")
	}
	if _, _, err := b.vector(f, 0, 1); err != nil { // name
		return err
	}
	if _, err := b.table(f, 3); err != nil { // type
		return err
	}
	if err := b.keyValues(f, 6); err != nil {
		return err
	}
	start, n, err := b.vector(f, 5, 4) // children
	if err != nil {
		return err
	}
	for k := range n {
		c, err := b.ref(start + 4*k)
		if err != nil {
			return err
		}
		if err := b.checkField(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkMessage verifies the Message flatbuffer meta as described above.
func checkMessage(meta []byte) error {
	b := fb(meta)
	root, err := b.ref(0)
	if err != nil {
		return err
	}
	if err := b.keyValues(root, 4); err != nil {
		return err
	}
	ht, err := b.field(root, 1)
	if err != nil {
		return err
	}
	if ht < 0 {
		return fmt.Errorf("message has no header")
	}
	hdr, err := b.table(root, 2)
	if err != nil {
		return err
	}
	if hdr < 0 {
		return fmt.Errorf("message has no header")
	}
	switch meta[ht] {
	case 1: // Schema
		start, n, err := b.vector(hdr, 1, 4)
		if err != nil {
			return err
		}
		for k := range n {
			f, err := b.ref(start + 4*k)
			if err != nil {
				return err
			}
			if err := b.checkField(f, 0); err != nil {
				return err
			}
		}
		if err := b.keyValues(hdr, 2); err != nil {
			return err
		}
		_, _, err = b.vector(hdr, 3, 8) // features
		return err
	case 3: // RecordBatch
		for _, i := range []int{1, 2} { // nodes, buffers: 16-byte structs
			if _, _, err := b.vector(hdr, i, 16); err != nil {
				return err
			}
		}
		_, _, err := b.vector(hdr, 4, 8) // variadic buffer counts
		return err
	default:
		return fmt.Errorf("unexpected message header type %d", meta[ht])
	}
}

package schemas

import (
	"encoding/binary"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	flatbuffers "github.com/google/flatbuffers/go"
)

// The readers' side of ipcbody.go: a state or decision batch laid out
// exactly as the row writers lay it out is read here without arrow-go —
// arrow-go's reader parses the schema message into an arrow.Schema, builds
// a record batch of Arrow arrays and validates them, per batch, which was
// two thirds of an operational worker's decoding. Anything else — another
// writer's layout, compression, an unknown slot, a bad offset, any panic
// while looking — is left to the Arrow path (DecodeState, DecodeDecisions),
// whose result or error is then the answer. TestFastDecodeAgreesWithArrow
// and FuzzFastDecode hold the two paths to the same result wherever the
// fast one answers.

// fastStream is a one-batch IPC stream's schema metadata and its record
// batch's field nodes and buffers.
type fastStream struct {
	md    arrow.Metadata
	rows  int
	nodes []int64 // length, null count
	bufs  [][]byte
}

// fieldsTail is the flatbuffer of a schema's fields as writeSchemaMessage
// writes them first, and so last in the message: the tail every schema
// message of those fields ends with, and the fields vector's offset from
// the end.
type fieldsTail struct {
	tail []byte
	vec  int
}

var (
	tailsOnce sync.Once
	opTail    fieldsTail
	decTail   fieldsTail
)

// tails builds opTail and decTail, once.
func tails() {
	build := func(fields []arrow.Field) fieldsTail {
		b := flatbuffers.NewBuilder(4096)
		vec, err := fieldsFB(b, fields)
		if err != nil {
			panic(err) // the package's own fields
		}
		return fieldsTail{tail: append([]byte(nil), b.Bytes[b.Head():]...), vec: int(vec)}
	}
	opTail, decTail = build(operationalFields), build(decisionFields)
}

// table reads flatbuffer table t's scalar and offset slots (vtable
// offsets 4, 6, …); a slot beyond the vtable reads 0.
type table struct{ flatbuffers.Table }

func (t table) slot(vo flatbuffers.VOffsetT) int { return int(t.Offset(vo)) }

// ref follows slot vo's offset to the table or vector it points to, or
// returns -1 when the slot is absent.
func (t table) ref(vo flatbuffers.VOffsetT) int {
	o := t.Offset(vo)
	if o == 0 {
		return -1
	}
	return int(t.Indirect(t.Pos + flatbuffers.UOffsetT(o)))
}

func (t table) at(pos int) table {
	return table{flatbuffers.Table{Bytes: t.Bytes, Pos: flatbuffers.UOffsetT(pos)}}
}

// root returns message msg's root table.
func root(msg []byte) table {
	return table{flatbuffers.Table{Bytes: msg, Pos: flatbuffers.GetUOffsetT(msg)}}
}

// readFast parses data as the one-batch stream the row writers write for
// fields ft with nNodes field nodes and nBufs buffers; ok is false for
// anything else.
func readFast(data []byte, ft *fieldsTail, nNodes, nBufs int) (s fastStream, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	// Every message's flatbuffer is checked as the Arrow path checks it.
	if checkFraming(data) != nil {
		return s, false
	}
	// The schema message.
	if len(data) < 16 || len(data) > maxDecodeAlloc || binary.LittleEndian.Uint32(data) != 0xFFFFFFFF {
		return s, false
	}
	l1 := int(binary.LittleEndian.Uint32(data[4:]))
	if l1 <= 0 || l1%ipcAlignment != 0 || l1 > len(data)-8 {
		return s, false
	}
	m1 := data[8 : 8+l1]
	// The flatbuffer ends with the fields' tail, then 0 or 4 bytes of
	// padding.
	var m table
	var schema table
	found := false
	for _, pad := range [2]int{0, 4} {
		end := l1 - pad
		if end < len(ft.tail)+4 || string(m1[end:]) != "\x00\x00\x00\x00"[:pad] ||
			string(m1[end-len(ft.tail):end]) != string(ft.tail) {
			continue
		}
		m = root(m1[:end])
		if m.slot(4) == 0 || m.GetInt16(m.Pos+flatbuffers.UOffsetT(m.slot(4))) != fbMetadataV5 ||
			m.slot(6) == 0 || m.GetByte(m.Pos+flatbuffers.UOffsetT(m.slot(6))) != fbHeaderSchema ||
			m.slot(10) != 0 || m.slot(12) != 0 {
			return s, false
		}
		h := m.ref(8)
		if h < 0 {
			return s, false
		}
		schema = m.at(h)
		if schema.slot(4) != 0 || schema.slot(10) != 0 || schema.ref(6) != end-ft.vec {
			continue
		}
		found = true
		break
	}
	if !found {
		return s, false
	}
	if kv := schema.ref(8); kv >= 0 {
		n := int(flatbuffers.GetUOffsetT(m.Bytes[kv:]))
		if n > 64 {
			return s, false
		}
		keys, vals := make([]string, n), make([]string, n)
		for i := range n {
			e := kv + 4 + 4*i
			t := m.at(e + int(flatbuffers.GetUOffsetT(m.Bytes[e:])))
			k, v := t.ref(4), t.ref(6)
			if k < 0 || v < 0 {
				return s, false
			}
			keys[i], vals[i] = fbString(m.Bytes, k), fbString(m.Bytes, v)
		}
		s.md = arrow.NewMetadata(keys, vals)
	}
	// The record batch message.
	pos := 8 + l1
	if len(data)-pos < 8 || binary.LittleEndian.Uint32(data[pos:]) != 0xFFFFFFFF {
		return s, false
	}
	l2 := int(binary.LittleEndian.Uint32(data[pos+4:]))
	if l2 <= 0 || l2%ipcAlignment != 0 || l2 > len(data)-pos-8 {
		return s, false
	}
	m = root(data[pos+8 : pos+8+l2])
	pos += 8 + l2
	if m.slot(4) == 0 || m.GetInt16(m.Pos+flatbuffers.UOffsetT(m.slot(4))) != fbMetadataV5 ||
		m.slot(6) == 0 || m.GetByte(m.Pos+flatbuffers.UOffsetT(m.slot(6))) != fbHeaderRecordBatch ||
		m.slot(12) != 0 {
		return s, false
	}
	bodyLen := 0
	if o := m.slot(10); o != 0 {
		bodyLen = int(m.GetInt64(m.Pos + flatbuffers.UOffsetT(o)))
	}
	// The body, then the end-of-stream marker, then nothing.
	if bodyLen < 0 || bodyLen != len(data)-pos-8 || string(data[len(data)-8:]) != string(ipcEOS[:]) {
		return s, false
	}
	body := data[pos : pos+bodyLen]
	h := m.ref(8)
	if h < 0 {
		return s, false
	}
	rb := m.at(h)
	if rb.slot(10) != 0 || rb.slot(12) != 0 { // compression, variadic buffer counts
		return s, false
	}
	if o := rb.slot(4); o != 0 {
		s.rows = int(rb.GetInt64(rb.Pos + flatbuffers.UOffsetT(o)))
	}
	// Every column's buffers hold at least 4 bytes a row: rows beyond
	// that fail below, and must not size allocations first.
	if s.rows < 0 || s.rows > MaxBatchRows || s.rows > bodyLen/4 {
		return s, false
	}
	nv, bv := rb.ref(6), rb.ref(8)
	if nv < 0 || bv < 0 || int(flatbuffers.GetUOffsetT(m.Bytes[nv:])) != nNodes || int(flatbuffers.GetUOffsetT(m.Bytes[bv:])) != nBufs {
		return s, false
	}
	s.nodes = make([]int64, 2*nNodes)
	for i := range s.nodes {
		s.nodes[i] = int64(binary.LittleEndian.Uint64(m.Bytes[nv+4+8*i:]))
		if s.nodes[i] < 0 || s.nodes[i] > math.MaxInt32 {
			return s, false
		}
	}
	s.bufs = make([][]byte, nBufs)
	for i := range s.bufs {
		e := bv + 4 + 16*i
		off, n := int64(binary.LittleEndian.Uint64(m.Bytes[e:])), int64(binary.LittleEndian.Uint64(m.Bytes[e+8:]))
		if off < 0 || n < 0 || off > int64(bodyLen) || n > int64(bodyLen)-off {
			return s, false
		}
		s.bufs[i] = body[off : off+n]
	}
	return s, true
}

// fbString returns the flatbuffer string at pos.
func fbString(b []byte, pos int) string {
	n := int(flatbuffers.GetUOffsetT(b[pos:]))
	return string(b[pos+4 : pos+4+n])
}

// fastCols walks a fastStream's nodes and buffers column by column,
// failing (ok false) on anything the row writers would not write.
type fastCols struct {
	s    *fastStream
	node int
	buf  int
	ok   bool
}

// next returns the next field node (length, nulls) and takes its
// validity buffer: kept only where the node has nulls.
func (c *fastCols) next() (n, nulls int, valid []byte) {
	if !c.ok {
		return 0, 0, nil
	}
	n, nulls = int(c.s.nodes[2*c.node]), int(c.s.nodes[2*c.node+1])
	c.node++
	valid = c.s.bufs[c.buf]
	c.buf++
	if nulls == 0 {
		return n, 0, nil
	}
	if len(valid) < (n+7)/8 {
		c.ok = false
	}
	return n, nulls, valid
}

// top reads a top-level column's node, which must have rows values and no
// nulls.
func (c *fastCols) top() {
	if n, nulls, _ := c.next(); n != c.s.rows || nulls != 0 {
		c.ok = false
	}
}

// offsets reads an offsets buffer of rows+1 values from 0, nondecreasing,
// the last at most limit (or exactly limit when exact).
func (c *fastCols) offsets(limit int, exact bool) []int32 {
	if !c.ok {
		return nil
	}
	b := c.s.bufs[c.buf]
	c.buf++
	n := c.s.rows
	if len(b) < 4*(n+1) {
		c.ok = false
		return nil
	}
	out := make([]int32, n+1)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		if (i == 0 && out[i] != 0) || (i > 0 && out[i] < out[i-1]) {
			c.ok = false
		}
	}
	if int(out[n]) > limit || (exact && int(out[n]) != limit) {
		c.ok = false
	}
	return out
}

// strings reads a string column.
func (c *fastCols) strings() []string {
	c.top()
	if !c.ok {
		return nil
	}
	data := c.s.bufs[c.buf+1] // after the offsets
	offs := c.offsets(len(data), false)
	c.buf++
	if !c.ok {
		return nil
	}
	out := make([]string, c.s.rows)
	all := string(data[:offs[c.s.rows]])
	for i := range out {
		out[i] = all[offs[i]:offs[i+1]]
		if !utf8.ValidString(out[i]) { // as arrow-go's ValidateFull
			c.ok = false
		}
	}
	return out
}

// fixed reads a column of width-byte values without nulls.
func (c *fastCols) fixed(width int) []byte {
	c.top()
	if !c.ok {
		return nil
	}
	b := c.s.bufs[c.buf]
	c.buf++
	if len(b) < width*c.s.rows {
		c.ok = false
	}
	return b
}

// floatList reads a list<float64> column: its offsets and its child's
// values and validity (nil without nulls); nullable says the child may
// have nulls.
func (c *fastCols) floatList(nullable bool) (offs []int32, vals []byte, valid []byte) {
	c.top()
	if !c.ok {
		return nil, nil, nil
	}
	// The child's length is known only after its node; read it first.
	offs = c.offsets(int(c.s.nodes[2*c.node]), true)
	_, vals, valid = c.floats(nullable)
	if !c.ok {
		return nil, nil, nil
	}
	return offs, vals, valid
}

// floats reads a float64 column or list child: its length, values and
// validity (nil without nulls); nullable says it may have nulls.
func (c *fastCols) floats(nullable bool) (n int, vals, valid []byte) {
	n, nulls, valid := c.next()
	if !c.ok || (nulls != 0 && !nullable) {
		c.ok = false
		return 0, nil, nil
	}
	vals = c.s.bufs[c.buf]
	c.buf++
	if len(vals) < 8*n {
		c.ok = false
	}
	return n, vals, valid
}

func f64At(b []byte, i int) float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
}

func validAt(bm []byte, i int) bool {
	return bm == nil || bm[i/8]&(1<<(i%8)) != 0
}

// fastOperational reads an operational state batch written by
// operationalBody; ok is false where DecodeState must take the Arrow path
// (including every input it rejects).
func fastOperational(data []byte) (out *StateBatch, ok bool) {
	tailsOnce.Do(tails)
	s, ok := readFast(data, &opTail, 20, 42)
	if !ok {
		return nil, false
	}
	h, err := parseHeader(s.md, StateSchemaVersion)
	if err != nil || h.Layer != Operational {
		return nil, false
	}
	out = &StateBatch{Header: h}
	if out.OmitsIdle, out.HourSin, err = parseOperationalMeta(s.md); err != nil {
		return nil, false
	}
	c := fastCols{s: &s, ok: true}
	apps, fns := c.strings(), c.strings()
	inv, last := c.fixed(8), c.fixed(8)
	type list struct {
		offs        []int32
		vals, valid []byte
	}
	var seqs [8]list
	for k := range seqs {
		seqs[k].offs, seqs[k].vals, seqs[k].valid = c.floatList(k >= 1 && k <= 3)
	}
	if !c.ok || c.node != 20 || c.buf != 42 {
		return nil, false
	}
	rows := make([]OperationalRow, s.rows)
	idle := seqs[7]
	idleAll := make([]float64, idle.offs[s.rows])
	for i := range idleAll {
		idleAll[i] = f64At(idle.vals, i)
	}
	for i := range rows {
		r := &rows[i]
		r.App, r.Func = apps[i], fns[i]
		r.Invocations = int64(binary.LittleEndian.Uint64(inv[8*i:]))
		r.LastStartUS = int64(binary.LittleEndian.Uint64(last[8*i:]))
		steps := int(seqs[0].offs[i+1] - seqs[0].offs[i])
		for k := 1; k < 7; k++ {
			if int(seqs[k].offs[i+1]-seqs[k].offs[i]) != steps {
				return nil, false
			}
		}
		if steps > SeqLen {
			return nil, false
		}
		a, b := idle.offs[i], idle.offs[i+1]
		if steps == 0 {
			if !out.OmitsIdle || a != b || r.Invocations != 0 {
				return nil, false
			}
			r.Left = true
			continue
		}
		from := SeqLen - steps
		for k, dst := range [4]*[SeqLen]float64{&r.RequestRate, &r.HourSin, &r.ConcurrencyMean, &r.ConcurrencyPeak} {
			l := &seqs[[4]int{0, 4, 5, 6}[k]]
			for j := range steps {
				dst[from+j] = f64At(l.vals, int(l.offs[i])+j)
			}
		}
		for k, dst := range [3]*[SeqLen]Value{&r.MemoryUtil, &r.CPUUtil, &r.QueueDepth} {
			l := &seqs[1+k]
			for j := range steps {
				x := int(l.offs[i]) + j
				if validAt(l.valid, x) {
					dst[from+j] = Some(f64At(l.vals, x))
				} else {
					dst[from+j] = Value{}
				}
			}
		}
		if a != b {
			r.IdleTimesS = idleAll[a:b:b]
		}
		if steps != SeqLen {
			r.Steps = steps
		}
	}
	out.Operational = rows
	return out, true
}

// fastDecisions reads a decision batch written by decisionBody; ok is
// false where DecodeDecisions must take the Arrow path.
func fastDecisions(data []byte) (out *DecisionBatch, ok bool) {
	tailsOnce.Do(tails)
	s, ok := readFast(data, &decTail, 13, 32)
	if !ok {
		return nil, false
	}
	if i := s.md.FindKey(metaKind); i < 0 || s.md.Values()[i] != "decision" {
		return nil, false
	}
	h, err := parseHeader(s.md, DecisionSchemaVersion)
	if err != nil {
		return nil, false
	}
	c := fastCols{s: &s, ok: true}
	apps, fns := c.strings(), c.strings()
	act := c.fixed(4)
	prov, reg := c.strings(), c.strings()
	mem, pre := c.fixed(4), c.fixed(4)
	keep := c.fixed(8)
	pol, ver := c.strings(), c.strings()
	var vs [3]struct{ vals, valid []byte }
	for k := range vs {
		var n int
		if n, vs[k].vals, vs[k].valid = c.floats(true); n != s.rows {
			c.ok = false
		}
	}
	if !c.ok || c.node != 13 || c.buf != 32 {
		return nil, false
	}
	val := func(k, i int) Value {
		if !validAt(vs[k].valid, i) {
			return Value{}
		}
		return Some(f64At(vs[k].vals, i))
	}
	i32 := func(b []byte, i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
	out = &DecisionBatch{Header: h, Rows: make([]DecisionRow, s.rows)}
	for i := range out.Rows {
		out.Rows[i] = DecisionRow{
			App: apps[i], Func: fns[i], Action: i32(act, i),
			Provider: prov[i], Region: reg[i], MemoryMB: i32(mem, i), Prewarm: i32(pre, i),
			KeepWarmMS: int64(binary.LittleEndian.Uint64(keep[8*i:])),
			Policy:     pol[i], PolicyVersion: ver[i],
			LogProb: val(0, i), Value: val(1, i), Predicted: val(2, i),
		}
	}
	return out, true
}

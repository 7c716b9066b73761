package schemas_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/strata-rl/strata/schemas"
)

// optValue returns a Value that is missing about a third of the time. A
// missing value's V is 0, as DecodeState returns it.
func optValue(r *rand.Rand) schemas.Value {
	if r.IntN(3) == 0 {
		return schemas.Value{}
	}
	return schemas.Some(r.Float64() * 100)
}

func testHeader(l schemas.Layer, tick int64) schemas.BatchHeader {
	return schemas.BatchHeader{RunID: "run-" + string(l), Layer: l, Tick: tick, TickStartUS: tick * 15_000_000, Shard: 1, NShards: 3}
}

// testBatch builds a batch of layer l with n rows of seeded random values,
// nulls included.
func testBatch(l schemas.Layer, n int, seed uint64) *schemas.StateBatch {
	r := rand.New(rand.NewPCG(seed, 7))
	b := &schemas.StateBatch{Header: testHeader(l, int64(seed)+100)}
	for i := range n {
		app, fn := fmt.Sprintf("app-%d-é", i%7), fmt.Sprintf("func-%d", i)
		if i == 1 {
			app, fn = "", "" // empty strings survive too
		}
		switch l {
		case schemas.Operational:
			row := schemas.OperationalRow{App: app, Func: fn, Invocations: r.Int64N(1000), LastStartUS: r.Int64() - 1<<62}
			for j := range schemas.SeqLen {
				row.RequestRate[j] = r.Float64() * 10
				row.MemoryUtil[j] = optValue(r)
				row.CPUUtil[j] = optValue(r)
				row.QueueDepth[j] = optValue(r)
				row.HourSin[j] = r.Float64()*2 - 1
				row.ConcurrencyMean[j] = r.Float64() * 3
				row.ConcurrencyPeak[j] = float64(r.IntN(9))
			}
			for range r.IntN(4) { // zero to three idle times; rows without any keep nil
				row.IdleTimesS = append(row.IdleTimesS, r.Float64()*600)
			}
			b.Operational = append(b.Operational, row)
		case schemas.Tactical:
			b.Tactical = append(b.Tactical, schemas.TacticalRow{
				App: app, Func: fn, Invocations: r.Int64N(1 << 40), RequestRate: r.Float64(), PeakRate: r.Float64() * 5,
				DurationMeanMS: r.Float64() * 1e3, DurationP95MS: r.Float64() * 1e4,
				LatencyMeanMS: optValue(r), LatencyP95MS: optValue(r), CostUSD: optValue(r), CarbonG: optValue(r),
				MemoryUtil: optValue(r), CPUUtil: optValue(r), QueueDepth: optValue(r), ColdStartRate: optValue(r),
				Provider: []string{"", "aws", "azure", "gcp"}[r.IntN(4)], Region: []string{"", "eu-west"}[r.IntN(2)],
				MemoryMB: []int32{0, 128, 3008}[r.IntN(3)], Trend: r.NormFloat64(),
				MemoryPeakMB: r.Float64() * 3008, AppPeakHour: r.Int32N(25) - 1, Hour: r.Int32N(24),
			})
		default:
			b.Strategic = append(b.Strategic, schemas.StrategicRow{
				App: app, Functions: r.Int32N(50), Invocations: r.Int64N(1 << 40), RequestRate: r.Float64(),
				PeakHourRate: r.Float64() * 3, ActiveHours: r.Int32N(25), DurationMeanMS: r.Float64() * 1e3, DurationP95MS: r.Float64() * 1e4,
				LatencyMeanMS: optValue(r), LatencyP95MS: optValue(r), CostUSD: optValue(r), CarbonG: optValue(r),
				ColdStartRate: optValue(r), CPUUtil: optValue(r), MemoryUtil: optValue(r), Trend: r.NormFloat64(),
				Provider: []string{"", "aws", "azure", "gcp"}[r.IntN(4)], Region: []string{"", "ap-southeast"}[r.IntN(2)],
				MemoryMB: []int32{0, 256, 2048}[r.IntN(3)], MemoryPeakMB: r.Float64() * 2048, AppPeakHour: r.Int32N(25) - 1,
			})
		}
	}
	return b
}

// sameBatch compares two batches, treating nil and empty row slices alike.
func sameBatch(a, b *schemas.StateBatch) bool {
	norm := func(s *schemas.StateBatch) schemas.StateBatch {
		c := *s
		if len(c.Operational) == 0 {
			c.Operational = nil
		}
		if len(c.Tactical) == 0 {
			c.Tactical = nil
		}
		if len(c.Strategic) == 0 {
			c.Strategic = nil
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestStateRoundTrip(t *testing.T) {
	for _, l := range schemas.Layers {
		for _, n := range []int{0, 1, 2, 150, 1000} {
			t.Run(fmt.Sprintf("%s/%d", l, n), func(t *testing.T) {
				in := testBatch(l, n, uint64(n))
				data, err := schemas.EncodeState(in)
				if err != nil {
					t.Fatal(err)
				}
				out, err := schemas.DecodeState(data)
				if err != nil {
					t.Fatal(err)
				}
				if out.Len() != n {
					t.Fatalf("decoded %d rows, want %d", out.Len(), n)
				}
				if !sameBatch(in, out) {
					t.Fatalf("round trip changed the batch:\n in %+v\nout %+v", in, out)
				}
				again, err := schemas.EncodeState(in)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(data, again) {
					t.Error("encoding the same batch twice gave different bytes")
				}
				reenc, err := schemas.EncodeState(out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(data, reenc) {
					t.Error("re-encoding the decoded batch gave different bytes")
				}
			})
		}
	}
}

func TestStateNullsStayNull(t *testing.T) {
	// A missing value whose V is not 0 still decodes as missing.
	in := &schemas.StateBatch{Header: testHeader(schemas.Tactical, 1), Tactical: []schemas.TacticalRow{{
		App: "a", Func: "f", LatencyMeanMS: schemas.Value{V: 42}, CostUSD: schemas.Some(0),
	}}}
	data, err := schemas.EncodeState(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := schemas.DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	row := out.Tactical[0]
	if row.LatencyMeanMS != (schemas.Value{}) || row.CostUSD != schemas.Some(0) || row.CarbonG.Valid {
		t.Errorf("decoded latency %+v cost %+v carbon %+v; want missing, Some(0), missing", row.LatencyMeanMS, row.CostUSD, row.CarbonG)
	}

	// Rows of another layer than the header's are not encoded.
	mixed := testBatch(schemas.Strategic, 3, 1)
	mixed.Tactical = testBatch(schemas.Tactical, 2, 1).Tactical
	data, err = schemas.EncodeState(mixed)
	if err != nil {
		t.Fatal(err)
	}
	if out, err = schemas.DecodeState(data); err != nil || len(out.Tactical) != 0 || len(out.Strategic) != 3 {
		t.Errorf("mixed batch decoded to %d tactical, %d strategic rows, err %v", len(out.Tactical), len(out.Strategic), err)
	}
}

func TestEncodeStateUnknownLayer(t *testing.T) {
	if _, err := schemas.EncodeState(&schemas.StateBatch{Header: schemas.BatchHeader{Layer: "weekly"}}); err == nil {
		t.Fatal("EncodeState accepted an unknown layer")
	}
}

// stateMeta returns the metadata keys and values EncodeState writes for h.
func stateMeta(h schemas.BatchHeader) ([]string, []string) {
	keys := []string{schemas.MetaSchemaVersion, schemas.MetaRunID, schemas.MetaLayer, schemas.MetaTick,
		schemas.MetaTickStartUS, schemas.MetaShard, schemas.MetaNShards}
	vals := []string{strconv.Itoa(schemas.StateSchemaVersion), h.RunID, string(h.Layer), strconv.FormatInt(h.Tick, 10),
		strconv.FormatInt(h.TickStartUS, 10), strconv.Itoa(h.Shard), strconv.Itoa(h.NShards)}
	if h.Layer == schemas.Operational {
		keys, vals = append(keys, schemas.MetaOmitsIdle, schemas.MetaHourSin), append(vals, "false", "0")
	}
	return keys, vals
}

// encodeRaw writes an IPC stream with the given fields and metadata and one
// empty record batch.
func encodeRaw(t *testing.T, fields []arrow.Field, keys, vals []string) []byte {
	t.Helper()
	md := arrow.NewMetadata(keys, vals)
	schema := arrow.NewSchema(fields, &md)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	rec := rb.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeStateRejects(t *testing.T) {
	h := testHeader(schemas.Operational, 9)
	keys, vals := stateMeta(h)
	fields := schemas.StateFields(schemas.Operational)

	// The hand-built stream with the right metadata decodes: the cases below
	// differ from it in one thing each.
	if got, err := schemas.DecodeState(encodeRaw(t, fields, keys, vals)); err != nil || got.Header != h || got.Len() != 0 {
		t.Fatalf("control stream: %+v, %v", got, err)
	}

	with := func(key, val string) []byte {
		v := append([]string(nil), vals...)
		for i, k := range keys {
			if k == key {
				v[i] = val
			}
		}
		return encodeRaw(t, fields, keys, v)
	}
	without := func(key string) []byte {
		var k2, v2 []string
		for i, k := range keys {
			if k != key {
				k2, v2 = append(k2, k), append(v2, vals[i])
			}
		}
		return encodeRaw(t, fields, k2, v2)
	}
	valid, err := schemas.EncodeState(testBatch(schemas.Operational, 4, 1))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		data []byte
		want string // fragment of the error
	}{
		{"nil", nil, ""},
		{"garbage", []byte("\x10\x00\x00\x00not an arrow stream"), ""},
		{"garbage after continuation", []byte{0xff, 0xff, 0xff, 0xff, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, ""},
		{"zeros", make([]byte, 64), ""},
		{"end of stream only", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ""},
		{"truncated schema", valid[:20], ""},
		{"truncated record", valid[:len(valid)-64], ""},
		{"wrong schema version", with(schemas.MetaSchemaVersion, "99"), "schema version 99"},
		{"missing schema version", without(schemas.MetaSchemaVersion), schemas.MetaSchemaVersion},
		{"missing run id", without(schemas.MetaRunID), schemas.MetaRunID},
		{"missing layer", without(schemas.MetaLayer), schemas.MetaLayer},
		{"missing tick", without(schemas.MetaTick), schemas.MetaTick},
		{"missing tick start", without(schemas.MetaTickStartUS), schemas.MetaTickStartUS},
		{"missing shard", without(schemas.MetaShard), schemas.MetaShard},
		{"missing shard count", without(schemas.MetaNShards), schemas.MetaNShards},
		{"unknown layer", with(schemas.MetaLayer, "weekly"), "weekly"},
		{"non-numeric tick", with(schemas.MetaTick, "ten"), schemas.MetaTick},
		{"non-numeric shard", with(schemas.MetaShard, "1.5"), schemas.MetaShard},
		{"missing omits-idle flag", without(schemas.MetaOmitsIdle), schemas.MetaOmitsIdle},
		{"missing hour_sin", without(schemas.MetaHourSin), schemas.MetaHourSin},
		{"omits-idle not a boolean", with(schemas.MetaOmitsIdle, "sometimes"), schemas.MetaOmitsIdle},
		{"hour_sin out of range", with(schemas.MetaHourSin, "1.5"), schemas.MetaHourSin},
		{"hour_sin not a number", with(schemas.MetaHourSin, "NaN"), schemas.MetaHourSin},
		{"fields of another layer", with(schemas.MetaLayer, string(schemas.Tactical)), "schema does not match"},
		{"missing column", encodeRaw(t, fields[:len(fields)-1], keys, vals), "schema does not match"},
		{"nullable request rate", encodeRaw(t, func() []arrow.Field {
			f := append([]arrow.Field(nil), fields...)
			f[4].Nullable = true
			return f
		}(), keys, vals), "schema does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schemas.DecodeState(tc.data)
			if !errors.Is(err, schemas.ErrBadBatch) {
				t.Fatalf("DecodeState = %+v, %v; want an error wrapping ErrBadBatch", got, err)
			}
			if got != nil {
				t.Errorf("DecodeState returned a batch with its error: %+v", got)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestDecodeStateTruncated cuts an encoded batch at every length: a cut
// stream must be rejected (or, without only its end-of-stream marker, decode
// whole), never panic.
func TestDecodeStateTruncated(t *testing.T) {
	for _, l := range schemas.Layers {
		in := testBatch(l, 3, 5)
		valid, err := schemas.EncodeState(in)
		if err != nil {
			t.Fatal(err)
		}
		var lost []string
		for i := range valid {
			out, err := decodeNoPanic(t, valid[:i])
			switch {
			case err != nil:
				if !errors.Is(err, schemas.ErrBadBatch) {
					t.Fatalf("%s cut at %d: error %v does not wrap ErrBadBatch", l, i, err)
				}
			case !sameBatch(in, out):
				lost = append(lost, fmt.Sprintf("cut at %d of %d decodes without error to %d of %d rows", i, len(valid), out.Len(), in.Len()))
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s layer: truncated streams decode without error: %v", l, lost)
		}
	}
}

func decodeNoPanic(t *testing.T, data []byte) (b *schemas.StateBatch, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			b = nil
		}
	}()
	return schemas.DecodeState(data)
}

// TestDecodeStateCorruptStringOffsets corrupts the offsets of the app
// column of an otherwise valid operational batch. DecodeState should reject
// it with ErrBadBatch instead of panicking.
func TestDecodeStateCorruptStringOffsets(t *testing.T) {
	in := &schemas.StateBatch{Header: testHeader(schemas.Operational, 3), Operational: []schemas.OperationalRow{
		{App: "apple", Func: "f"}, {App: "grape", Func: "f"}, {App: "lemon", Func: "f"},
	}}
	data, err := schemas.EncodeState(in)
	if err != nil {
		t.Fatal(err)
	}
	// The app offsets are the int32s 0, 5, 10, 15.
	offsets := []byte{0, 0, 0, 0, 5, 0, 0, 0, 10, 0, 0, 0, 15, 0, 0, 0}
	at := bytes.Index(data, offsets)
	if at < 0 {
		t.Fatal("app offsets not found in the encoding")
	}
	bad := bytes.Clone(data)
	bad[at+4] = 0xff // offset 5 becomes 255, past the 15 bytes of data
	out, err := decodeNoPanic(t, bad)
	if err != nil && strings.HasPrefix(err.Error(), "panic: ") {
		t.Fatalf("DecodeState panicked on a corrupt string offset: %v", err)
	}
	if !errors.Is(err, schemas.ErrBadBatch) {
		t.Fatalf("DecodeState of corrupt offsets = %+v, %v; want ErrBadBatch", out, err)
	}
}

// TestDecodeStateBoundedAllocation decodes 8 bytes claiming a 64 MiB
// message. DecodeState should not allocate what the input merely claims.
func TestDecodeStateBoundedAllocation(t *testing.T) {
	data := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4} // continuation, length 0x04000000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := schemas.DecodeState(data)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, schemas.ErrBadBatch) {
		t.Fatalf("DecodeState = %v, want ErrBadBatch", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("decoding %d bytes allocated %d bytes: the length prefix must not be trusted", len(data), alloc)
	}
}

func BenchmarkEncodeOperational(b *testing.B) {
	const rows = 150
	batch := testBatch(schemas.Operational, rows, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schemas.EncodeState(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDecodeOperational(b *testing.B) {
	const rows = 150
	data, err := schemas.EncodeState(testBatch(schemas.Operational, rows, 1))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schemas.DecodeState(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// TestDecodeStateBitFlips flips each byte of a small encoded batch: every
// result is either a clean decode or an error wrapping ErrBadBatch — never a
// panic or a runaway allocation.
func TestDecodeStateBitFlips(t *testing.T) {
	in := testBatch(schemas.Operational, 3, 1)
	data, err := schemas.EncodeState(in)
	if err != nil {
		t.Fatal(err)
	}
	var rejected int
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeNoPanic(t, bad)
			runtime.ReadMemStats(&after)
			if err != nil {
				if strings.HasPrefix(err.Error(), "panic: ") || !errors.Is(err, schemas.ErrBadBatch) {
					t.Fatalf("byte %d ^ %#x: %v", i, mask, err)
				}
				rejected++
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
				t.Fatalf("byte %d ^ %#x: decoding %d bytes allocated %d", i, mask, len(bad), alloc)
			}
		}
	}
	if rejected == 0 {
		t.Fatal("no corruption was detected")
	}
}

// FuzzDecodeState feeds arbitrary bytes to DecodeState: it must return a
// batch or an error wrapping ErrBadBatch, never panic or exhaust memory.
func FuzzDecodeState(f *testing.F) {
	for _, l := range schemas.Layers {
		for _, n := range []int{0, 2} {
			data, err := schemas.EncodeState(testBatch(l, n, 3))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := schemas.DecodeState(data)
		if err != nil {
			if !errors.Is(err, schemas.ErrBadBatch) {
				t.Fatalf("error %v does not wrap ErrBadBatch", err)
			}
			return
		}
		if b.Header.Layer == "" {
			t.Fatal("decoded batch without a layer")
		}
	})
}

// TestStateCompressedOnlyWhenBig checks that a state batch is written with
// LZ4-compressed buffers only when its plain encoding exceeds
// CompressAbove, and that both forms decode to the batch.
func TestStateCompressedOnlyWhenBig(t *testing.T) {
	lz4Magic := []byte{0x04, 0x22, 0x4d, 0x18} // an LZ4 frame's first bytes, little-endian 0x184D2204
	for _, tc := range []struct {
		rows       int
		compressed bool
	}{{2, false}, {150, false}, {3000, true}} {
		in := testBatch(schemas.Operational, tc.rows, 9)
		data, err := schemas.EncodeState(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(data, lz4Magic); got != tc.compressed {
			t.Errorf("%d rows (%d bytes): compressed %v, want %v", tc.rows, len(data), got, tc.compressed)
		}
		out, err := schemas.DecodeState(data)
		if err != nil || !sameBatch(in, out) {
			t.Errorf("%d rows: the batch does not round-trip (%v)", tc.rows, err)
		}
	}
}

func TestRowOrder(t *testing.T) {
	rows := []schemas.OperationalRow{{App: "b", Func: "x"}, {App: "a", Func: "y"}, {App: "a", Func: "x"}, {App: "a", Func: "y"}}
	tests := []struct {
		byFunction bool
		want       []int
	}{{false, []int{0, 1, 2, 3}}, {true, []int{2, 1, 3, 0}}}
	for _, tt := range tests {
		got := schemas.RowOrder(make([]int, 7), rows, tt.byFunction)
		if !slices.Equal(got, tt.want) {
			t.Errorf("RowOrder(byFunction %v) = %v, want %v", tt.byFunction, got, tt.want)
		}
	}
}

func TestBusySecondsPerInvocation(t *testing.T) {
	row := func(conc, rate float64) *schemas.OperationalRow {
		r := &schemas.OperationalRow{}
		r.ConcurrencyMean[schemas.SeqLen-1], r.RequestRate[schemas.SeqLen-1] = conc, rate
		r.ConcurrencyMean[0], r.RequestRate[0] = conc, rate
		return r
	}
	tests := []struct {
		name string
		r    *schemas.OperationalRow
		want float64
		ok   bool
	}{
		{"two steps", row(0.5, 0.25), 2, true},
		{"no invocation", row(0, 0), 0, false},
		{"concurrency without invocations", row(1, 0), 0, false},
		{"not a number", row(math.NaN(), 1), 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.r.BusySecondsPerInvocation()
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

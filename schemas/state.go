package schemas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"
)

// StateSchemaVersion is the version of the state-batch Arrow schemas.
// Version 3: an operational row's sequence columns hold its newest Steps
// steps (1 to SeqLen) instead of always SeqLen; readers keep the sequences
// (Sequences). Version 4: tactical rows end with three more columns,
// memory_peak_mb, app_peak_hour and hour (TacticalRow); operational and
// strategic batches are as in version 3. Version 5: strategic rows end
// with five more columns, provider, region, memory_mb, memory_peak_mb and
// app_peak_hour (StrategicRow); operational and tactical batches are as in
// version 4. Version 6: operational batches leave out the rows of functions
// whose newest step is idle, except on every OmitFullEvery-th tick; a
// function that left the active set comes as a row without steps (Left);
// the metadata carries the newest step's hour_sin and whether rows were
// left out (StateBatch.HourSin, OmitsIdle); Sequences.Fill puts the left-out
// rows back, so that a reader sees the batches of version 5.
const StateSchemaVersion = 6

// OmitFullEvery is how often an operational batch holds every active
// function (OmitsIdle false): every 240th tick, once an hour. Such a batch
// lets a reader that missed batches (or started late) rebuild the active
// set within the hour.
const OmitFullEvery = 240

// SeqLen is the length of the operational sequences: 12 steps of 15 s.
const SeqLen = 12

// Value is a measurement that may be missing. Valid is false when the
// telemetry did not carry what the value is computed from; V is then 0 and
// meaningless. In Arrow a missing value is a null.
type Value struct {
	V     float64
	Valid bool
}

// Some returns a valid Value.
func Some(v float64) Value { return Value{V: v, Valid: true} }

// BatchHeader identifies a tick batch: which layer, which tick, which shard
// of how many, and which run. TickStartUS is the start of the tick the batch
// is for, in trace microseconds.
type BatchHeader struct {
	RunID       string
	Layer       Layer
	Tick        int64
	TickStartUS int64
	Shard       int
	NShards     int
}

// OperationalRow is the operational state of one active function for tick k:
// the 12 fifteen-second steps k−12 … k−1, oldest first. All values are raw;
// normalisation happens in the agents.
//
// On the wire a row may carry only its newest steps (Steps): the feature
// service sends a function's whole sequence when it enters its shard's
// batches and its newest step after that, and readers rebuild the rest
// with Sequences (docs/state-contract.md).
type OperationalRow struct {
	App  string
	Func string
	// Steps is how many of the newest steps the row carries, 1 to SeqLen;
	// 0 means all of them. Encoding writes that many; decoding sets it (0
	// for a whole sequence) and leaves the older steps zero.
	Steps int
	// Invocations is the number of invocations that started in step k−1.
	Invocations int64
	// LastStartUS is the start of the function's latest invocation so far.
	LastStartUS int64
	// RequestRate[i] is the number of invocations that started in the step,
	// divided by 15 s (invocations per second). Always known.
	RequestRate [SeqLen]float64
	// MemoryUtil[i] is the in-flight working set over the capacity held:
	// Σ memory_used_mb × execution seconds of the invocations that started
	// in the step ÷ (total instances × memory tier MB × 15 s). Missing unless
	// the telemetry carries memory_used_mb, memory_mb and total_instances.
	MemoryUtil [SeqLen]Value
	// CPUUtil[i] is Σ cpu_busy seconds of the invocations that started in
	// the step ÷ (total instances × 15 s). Missing unless the telemetry carries
	// cpu_busy_ms and total_instances.
	CPUUtil [SeqLen]Value
	// QueueDepth[i] is the time-averaged number of invocations waiting for an
	// instance: Σ queue_wait seconds of the step's invocations ÷ 15 s (Little's
	// law). Missing unless the telemetry carries queue_wait_ms.
	QueueDepth [SeqLen]Value
	// HourSin[i] is sin(2π·h/24), h the fractional hour of day at the step's
	// start under the trace epoch.
	HourSin [SeqLen]float64
	// ConcurrencyMean[i] is the time-averaged number of the function's
	// invocations in flight during the step: Σ overlap of [start, end) with
	// the step ÷ 15 s, counting invocations that started in earlier steps.
	ConcurrencyMean [SeqLen]float64
	// ConcurrencyPeak[i] is the largest number of the function's invocations
	// in flight at any instant of the step (an exact sweep over start and
	// end times; an invocation ending at t is no longer in flight at t).
	ConcurrencyPeak [SeqLen]float64
	// Left marks a function that left the active set (no invocation in the
	// last ActiveWindow) since the shard's previous batch; the row carries
	// no steps. Only batches that leave out idle rows (OmitsIdle) hold such
	// rows, and Sequences.Fill removes them.
	Left bool
	// IdleTimesS are the idle times, in seconds, of the invocations that
	// started in step k−1, in start order: start − the latest end of the
	// function's earlier invocations, clamped to 0 (an invocation starting
	// while another still runs has idle time 0). The function's first
	// invocation has none. Policies that keep idle-time histograms
	// ("Serverless in the Wild") accumulate them tick by tick.
	IdleTimesS []float64
}

// wireSteps returns the number of steps r's encoding holds: none for a
// Left row.
func (r *OperationalRow) wireSteps() int {
	if r.Left {
		return 0
	}
	return r.steps()
}

// steps returns the number of newest steps r carries.
func (r *OperationalRow) steps() int {
	if r.Steps <= 0 || r.Steps > SeqLen {
		return SeqLen
	}
	return r.Steps
}

// TacticalRow is the tactical state of one function for hour h: aggregates
// over hour h−1.
type TacticalRow struct {
	App  string
	Func string
	// Invocations started in hour h−1.
	Invocations int64
	// RequestRate is Invocations ÷ 3600 s.
	RequestRate float64
	// PeakRate is the highest 15 s request rate within the hour.
	PeakRate float64
	// DurationMeanMS and DurationP95MS summarise execution durations (the
	// p95 from a log-bucket histogram, relative error ≤ 2.5 %).
	DurationMeanMS float64
	DurationP95MS  float64
	// LatencyMeanMS and LatencyP95MS summarise observed latency.
	LatencyMeanMS Value
	LatencyP95MS  Value
	// CostUSD and CarbonG are sums over the hour's invocations.
	CostUSD Value
	CarbonG Value
	// MemoryUtil, CPUUtil and QueueDepth are the hour's means of the
	// operational definitions (over the steps with invocations' telemetry).
	MemoryUtil Value
	CPUUtil    Value
	QueueDepth Value
	// ColdStartRate is the share of invocations that started cold.
	ColdStartRate Value
	// Provider, Region and MemoryMB are the placement most invocations ran
	// under ("" / 0 when the telemetry does not say).
	Provider string
	Region   string
	MemoryMB int32
	// Trend is ln(1+n(h−1)) − ln(1+n(h−2)), the workload trend.
	Trend float64
	// MemoryPeakMB is the largest memory in use (memory_used_mb) any of
	// the function's invocations reported in the closed hours so far, 0
	// when none did. The telemetry caps it at the tier, so a peak equal to
	// the tier says the function needs at least that much.
	MemoryPeakMB float64
	// AppPeakHour is the UTC hour of day (0–23) in which the function's
	// app started the most invocations over the closed hours so far (ties
	// to the earlier hour), −1 before any: where in the world its users
	// are busiest.
	AppPeakHour int32
	// Hour is the UTC hour of day (0–23) of hour h, the hour the state is
	// for.
	Hour int32
}

// StrategicRow is the strategic state of one app for day d: aggregates over
// day d−1.
type StrategicRow struct {
	App string
	// Functions is the number of the app's functions invoked in the day.
	Functions int32
	// Invocations started in day d−1; RequestRate is that ÷ 86400 s.
	Invocations int64
	RequestRate float64
	// PeakHourRate is the highest hourly request rate of the day.
	PeakHourRate float64
	// ActiveHours is the number of hours with at least one invocation.
	ActiveHours int32
	// DurationMeanMS and DurationP95MS summarise execution durations.
	DurationMeanMS float64
	DurationP95MS  float64
	// LatencyMeanMS, LatencyP95MS, CostUSD, CarbonG, ColdStartRate, CPUUtil
	// and MemoryUtil are as in TacticalRow, over the day.
	LatencyMeanMS Value
	LatencyP95MS  Value
	CostUSD       Value
	CarbonG       Value
	ColdStartRate Value
	CPUUtil       Value
	MemoryUtil    Value
	// Trend is ln(1+n(d−1)) − ln(1+n(d−2)).
	Trend float64
	// Provider, Region and MemoryMB are the placement most of the day's
	// invocations ran under ("" / 0 when the telemetry does not say).
	Provider string
	Region   string
	MemoryMB int32
	// MemoryPeakMB is the largest memory in use (memory_used_mb) any of
	// the app's invocations reported over the closed days so far, 0 when
	// none did (capped at the tier by the telemetry, as in TacticalRow).
	MemoryPeakMB float64
	// AppPeakHour is the UTC hour of day (0–23) in which the app started
	// the most invocations over the closed hours so far (ties to the
	// earlier hour), −1 before any, as in TacticalRow.
	AppPeakHour int32
}

// StateBatch is one tick batch of one layer; exactly one of the row slices is
// used, the one of Header.Layer.
type StateBatch struct {
	Header      BatchHeader
	Operational []OperationalRow
	Tactical    []TacticalRow
	Strategic   []StrategicRow
	// OmitsIdle (operational batches) says the batch leaves out the rows of
	// the functions of the shard's previous batch whose newest step is idle
	// — no invocation started or in flight, utilisations 0 where the
	// function's newest step had them, no idle times, LastStartUS unchanged
	// — and marks those that left the active set with Left rows.
	// Sequences.Fill puts them back.
	OmitsIdle bool
	// HourSin (operational batches) is hour_sin of the newest step k−1,
	// the value a row left out takes.
	HourSin float64
}

// Len returns the number of rows of the batch.
func (b *StateBatch) Len() int {
	switch b.Header.Layer {
	case Operational:
		return len(b.Operational)
	case Tactical:
		return len(b.Tactical)
	default:
		return len(b.Strategic)
	}
}

var (
	seqType  = arrow.ListOf(arrow.PrimitiveTypes.Float64)
	idleType = arrow.ListOf(arrow.PrimitiveTypes.Float64)
)

var (
	operationalFields = []arrow.Field{
		{Name: "app", Type: arrow.BinaryTypes.String},
		{Name: "func", Type: arrow.BinaryTypes.String},
		{Name: "invocations", Type: arrow.PrimitiveTypes.Int64},
		{Name: "last_start_us", Type: arrow.PrimitiveTypes.Int64},
		{Name: "request_rate", Type: seqType},
		{Name: "memory_util", Type: seqType},
		{Name: "cpu_util", Type: seqType},
		{Name: "queue_depth", Type: seqType},
		{Name: "hour_sin", Type: seqType},
		{Name: "concurrency_mean", Type: seqType},
		{Name: "concurrency_peak", Type: seqType},
		{Name: "idle_times_s", Type: idleType},
	}
	tacticalFields = []arrow.Field{
		{Name: "app", Type: arrow.BinaryTypes.String},
		{Name: "func", Type: arrow.BinaryTypes.String},
		{Name: "invocations", Type: arrow.PrimitiveTypes.Int64},
		{Name: "request_rate", Type: arrow.PrimitiveTypes.Float64},
		{Name: "peak_rate", Type: arrow.PrimitiveTypes.Float64},
		{Name: "duration_mean_ms", Type: arrow.PrimitiveTypes.Float64},
		{Name: "duration_p95_ms", Type: arrow.PrimitiveTypes.Float64},
		{Name: "latency_mean_ms", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "latency_p95_ms", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cost_usd", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "carbon_g", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "memory_util", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cpu_util", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "queue_depth", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cold_start_rate", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "provider", Type: arrow.BinaryTypes.String},
		{Name: "region", Type: arrow.BinaryTypes.String},
		{Name: "memory_mb", Type: arrow.PrimitiveTypes.Int32},
		{Name: "trend", Type: arrow.PrimitiveTypes.Float64},
		{Name: "memory_peak_mb", Type: arrow.PrimitiveTypes.Float64},
		{Name: "app_peak_hour", Type: arrow.PrimitiveTypes.Int32},
		{Name: "hour", Type: arrow.PrimitiveTypes.Int32},
	}
	strategicFields = []arrow.Field{
		{Name: "app", Type: arrow.BinaryTypes.String},
		{Name: "functions", Type: arrow.PrimitiveTypes.Int32},
		{Name: "invocations", Type: arrow.PrimitiveTypes.Int64},
		{Name: "request_rate", Type: arrow.PrimitiveTypes.Float64},
		{Name: "peak_hour_rate", Type: arrow.PrimitiveTypes.Float64},
		{Name: "active_hours", Type: arrow.PrimitiveTypes.Int32},
		{Name: "duration_mean_ms", Type: arrow.PrimitiveTypes.Float64},
		{Name: "duration_p95_ms", Type: arrow.PrimitiveTypes.Float64},
		{Name: "latency_mean_ms", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "latency_p95_ms", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cost_usd", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "carbon_g", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cold_start_rate", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "cpu_util", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "memory_util", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "trend", Type: arrow.PrimitiveTypes.Float64},
		{Name: "provider", Type: arrow.BinaryTypes.String},
		{Name: "region", Type: arrow.BinaryTypes.String},
		{Name: "memory_mb", Type: arrow.PrimitiveTypes.Int32},
		{Name: "memory_peak_mb", Type: arrow.PrimitiveTypes.Float64},
		{Name: "app_peak_hour", Type: arrow.PrimitiveTypes.Int32},
	}
)

// StateFields returns the Arrow fields of layer's state batches.
func StateFields(l Layer) []arrow.Field {
	switch l {
	case Operational:
		return operationalFields
	case Tactical:
		return tacticalFields
	default:
		return strategicFields
	}
}

// Schema metadata keys of tick batches.
const (
	MetaSchemaVersion = "strata.schema_version"
	MetaRunID         = "strata.run_id"
	MetaLayer         = "strata.layer"
	MetaTick          = "strata.tick"
	MetaTickStartUS   = "strata.tick_start_us"
	MetaShard         = "strata.shard"
	MetaNShards       = "strata.n_shards"
	// MetaOmitsIdle and MetaHourSin are on operational state batches only
	// (StateBatch.OmitsIdle, HourSin).
	MetaOmitsIdle = "strata.omits_idle"
	MetaHourSin   = "strata.hour_sin"
)

// headerMetadata returns the metadata keys and values of header h under
// schema version v.
func headerMetadata(h BatchHeader, v int) (keys, vals []string) {
	return []string{MetaSchemaVersion, MetaRunID, MetaLayer, MetaTick, MetaTickStartUS, MetaShard, MetaNShards},
		[]string{strconv.Itoa(v), h.RunID, string(h.Layer), strconv.FormatInt(h.Tick, 10),
			strconv.FormatInt(h.TickStartUS, 10), strconv.Itoa(h.Shard), strconv.Itoa(h.NShards)}
}

// stateMetadata returns the schema metadata of b's stream: its header, and
// for an operational batch whether it omits idle rows and its hour_sin.
func stateMetadata(b *StateBatch) (keys, vals []string) {
	h := b.Header
	keys, vals = headerMetadata(h, StateSchemaVersion)
	if h.Layer == Operational {
		keys = append(keys, MetaOmitsIdle, MetaHourSin)
		vals = append(vals, strconv.FormatBool(b.OmitsIdle), strconv.FormatFloat(b.HourSin, 'g', -1, 64))
	}
	return keys, vals
}

// bareSchemas holds each layer's schema without metadata, which the
// record batches are built on: the metadata travels in the schema message
// only (writeIPC).
var bareSchemas = map[Layer]*arrow.Schema{
	Operational: arrow.NewSchema(operationalFields, nil),
	Tactical:    arrow.NewSchema(tacticalFields, nil),
	Strategic:   arrow.NewSchema(strategicFields, nil),
}

// stateColumns returns the Arrow columns of b's rows.
func stateColumns(b *StateBatch) ([]arrow.Array, error) {
	switch b.Header.Layer {
	case Operational:
		return operationalColumns(b.Operational), nil
	case Tactical:
		return tacticalColumns(b.Tactical), nil
	case Strategic:
		return strategicColumns(b.Strategic), nil
	}
	return nil, fmt.Errorf("unknown layer %q", b.Header.Layer)
}

// EncodeState serialises a state batch as an Arrow IPC stream (schema with
// the header in its metadata, then one record batch). The encoding is
// deterministic: equal batches give equal bytes. Operational batches, one
// per shard and tick, are written from their rows directly (ipcbody.go);
// the other layers, and batches compressed because they are large, go
// through Arrow arrays.
func EncodeState(b *StateBatch) ([]byte, error) {
	data, err := encodeState(b)
	if err != nil {
		return nil, fmt.Errorf("encoding %s state batch for tick %d: %w", b.Header.Layer, b.Header.Tick, err)
	}
	return data, nil
}

func encodeState(b *StateBatch) ([]byte, error) {
	fields := StateFields(b.Header.Layer)
	keys, vals := stateMetadata(b)
	var size int // of the plain encoding
	if b.Header.Layer == Operational {
		body := ipcBodies.Get().(*ipcBody)
		defer ipcBodies.Put(body)
		body.reset()
		operationalBody(body, b.Operational)
		data, err := writeStream(fields, keys, vals, body, len(b.Operational))
		if err != nil || len(data) <= CompressAbove {
			return data, err
		}
		size = len(data)
	}
	cols, err := stateColumns(b)
	if err != nil {
		return nil, err
	}
	rec := array.NewRecordBatch(bareSchemas[b.Header.Layer], cols, int64(b.Len()))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	if b.Header.Layer != Operational {
		data, err := writeIPC(fields, keys, vals, rec, encodedSize(b), false)
		if err != nil || len(data) <= CompressAbove {
			return data, err
		}
		size = len(data)
	}
	return writeIPC(fields, keys, vals, rec, size/2, true)
}

// CompressAbove is the encoded size above which a state batch's buffers
// are LZ4-compressed (Arrow IPC body compression; readers handle both).
// Below it compression costs more CPU than the bytes it saves on a loopback
// or LAN hop; above it, it keeps big batches under the NATS payload limit.
const CompressAbove = 256 << 10

// encodedSize estimates the plain encoding of b, a tactical or strategic
// batch, to size the output once (operational batches are sized by the
// row writer).
func encodedSize(b *StateBatch) int {
	if b.Header.Layer == Tactical {
		return 2048 + len(b.Tactical)*(22*8+160)
	}
	return 2048 + len(b.Strategic)*(21*8+130)
}

// ErrBadBatch is wrapped by DecodeState for input that is not a valid state
// batch.
var ErrBadBatch = errors.New("invalid state batch")

// MaxBatchRows bounds the rows of one state batch (one row per active
// function of a shard); DecodeState rejects larger claims.
const MaxBatchRows = 1_000_000

// maxDecodeAlloc bounds any single allocation while decoding a batch: a
// corrupt length prefix must not make the reader allocate what it claims.
const maxDecodeAlloc = 64 << 20

// boundedAllocator refuses allocations above maxDecodeAlloc by panicking
// with errAllocTooLarge, which DecodeState turns into ErrBadBatch.
type boundedAllocator struct{ memory.Allocator }

var errAllocTooLarge = errors.New("allocation above the decode bound")

func (a boundedAllocator) Allocate(n int) []byte {
	if n > maxDecodeAlloc {
		panic(errAllocTooLarge)
	}
	return a.Allocator.Allocate(n)
}

func (a boundedAllocator) Reallocate(n int, b []byte) []byte {
	if n > maxDecodeAlloc {
		panic(errAllocTooLarge)
	}
	return a.Allocator.Reallocate(n, b)
}

// DecodeState parses a batch written by EncodeState: exactly one record
// batch whose arrays are valid. Any other input, including truncated or
// corrupted bytes, gives an error wrapping ErrBadBatch; it never panics and
// never allocates more than maxDecodeAlloc at once.
//
// An operational batch laid out as EncodeState lays it out is read
// without arrow-go (ipcread.go), with the same result.
func DecodeState(data []byte) (*StateBatch, error) {
	if out, ok := fastOperational(data); ok {
		return out, nil
	}
	return decodeStateArrow(data)
}

// decodeStateArrow is DecodeState through arrow-go's reader.
func decodeStateArrow(data []byte) (out *StateBatch, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("reading state batch: %w: %v", ErrBadBatch, p)
		}
	}()
	if len(data) > maxDecodeAlloc {
		return nil, fmt.Errorf("reading state batch: %w: %d bytes, more than %d", ErrBadBatch, len(data), maxDecodeAlloc)
	}
	if err := checkFraming(data); err != nil {
		return nil, fmt.Errorf("reading state batch: %w: %w", ErrBadBatch, err)
	}
	rd, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(boundedAllocator{memory.NewGoAllocator()}))
	if err != nil {
		return nil, fmt.Errorf("reading state batch: %w: %w", ErrBadBatch, err)
	}
	defer rd.Release()
	h, err := parseHeader(rd.Schema().Metadata(), StateSchemaVersion)
	if err != nil {
		return nil, err
	}
	want := arrow.NewSchema(StateFields(h.Layer), nil)
	if !rd.Schema().Equal(want) {
		return nil, fmt.Errorf("reading %s state batch: %w: schema does not match version %d", h.Layer, ErrBadBatch, StateSchemaVersion)
	}
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("reading %s state batch: %w: %w", h.Layer, ErrBadBatch, err)
		}
		return nil, fmt.Errorf("reading %s state batch: %w: no record batch", h.Layer, ErrBadBatch)
	}
	rec := rd.RecordBatch()
	if rec.NumRows() < 0 || rec.NumRows() > MaxBatchRows {
		return nil, fmt.Errorf("reading %s state batch: %w: %d rows, at most %d allowed", h.Layer, ErrBadBatch, rec.NumRows(), MaxBatchRows)
	}
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return nil, fmt.Errorf("reading %s state batch: %w: column %s has %d values for %d rows", h.Layer, ErrBadBatch, rec.ColumnName(i), col.Len(), rec.NumRows())
		}
		if err := validateFull(col); err != nil {
			return nil, fmt.Errorf("reading %s state batch: %w: column %s: %w", h.Layer, ErrBadBatch, rec.ColumnName(i), err)
		}
	}
	out = &StateBatch{Header: h}
	switch h.Layer {
	case Operational:
		if out.OmitsIdle, out.HourSin, err = parseOperationalMeta(rd.Schema().Metadata()); err != nil {
			return nil, fmt.Errorf("reading %s state batch: %w: %w", h.Layer, ErrBadBatch, err)
		}
		if out.Operational, err = readOperational(rec, out.OmitsIdle); err != nil {
			return nil, fmt.Errorf("reading %s state batch: %w: %w", h.Layer, ErrBadBatch, err)
		}
	case Tactical:
		out.Tactical = readTactical(rec)
	default:
		out.Strategic = readStrategic(rec)
	}
	if rd.Next() {
		return nil, fmt.Errorf("reading %s state batch: %w: more than one record batch", h.Layer, ErrBadBatch)
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("reading %s state batch: %w: %w", h.Layer, ErrBadBatch, err)
	}
	return out, nil
}

// checkFraming walks the IPC stream's message framing (continuation marker,
// metadata length, the Message flatbuffer's bodyLength) and checks that every
// length fits in data, so that the reader never allocates more than the input
// holds for a message. Decompressed buffers are bounded by boundedAllocator.
func checkFraming(data []byte) error {
	pos := 0
	for {
		if len(data)-pos < 8 {
			return fmt.Errorf("truncated message prefix at byte %d", pos)
		}
		if binary.LittleEndian.Uint32(data[pos:]) != 0xFFFFFFFF {
			return fmt.Errorf("no continuation marker at byte %d", pos)
		}
		metaLen := int(int32(binary.LittleEndian.Uint32(data[pos+4:])))
		pos += 8
		if metaLen == 0 {
			return nil // end-of-stream marker
		}
		if metaLen < 0 || metaLen > len(data)-pos {
			return fmt.Errorf("message at byte %d claims %d metadata bytes, %d remain", pos-8, metaLen, len(data)-pos)
		}
		meta := data[pos : pos+metaLen]
		pos += metaLen
		if err := checkMessage(meta); err != nil {
			return fmt.Errorf("message at byte %d: %w", pos-metaLen-8, err)
		}
		if len(meta) < 4 {
			return fmt.Errorf("message metadata at byte %d too short", pos-metaLen)
		}
		root := int(flatbuffers.GetUOffsetT(meta))
		if root < 0 || root+4 > len(meta) {
			return fmt.Errorf("message metadata at byte %d has a bad root offset", pos-metaLen)
		}
		vt := root - int(flatbuffers.GetSOffsetT(meta[root:]))
		if vt < 0 || vt+4 > len(meta) {
			return fmt.Errorf("message metadata at byte %d has a bad vtable", pos-metaLen)
		}
		t := flatbuffers.Table{Bytes: meta, Pos: flatbuffers.UOffsetT(root)}
		var body int64
		// Message.bodyLength is field 3: vtable slot 4 + 2·3.
		if vtLen := int(flatbuffers.GetVOffsetT(meta[vt:])); vtLen > 10 && vt+12 <= len(meta) {
			if o := t.Offset(10); o != 0 {
				if int(t.Pos)+int(o)+8 > len(meta) {
					return fmt.Errorf("message metadata at byte %d has a bad body length field", pos-metaLen)
				}
				body = t.GetInt64(t.Pos + flatbuffers.UOffsetT(o))
			}
		}
		if body < 0 || body > int64(len(data)-pos) {
			return fmt.Errorf("message at byte %d claims a %d-byte body, %d remain", pos-metaLen-8, body, len(data)-pos)
		}
		pos += int(body)
	}
}

// validateFull checks a column's buffers against its length: string
// offsets, list child lengths and value buffer sizes.
func validateFull(a arrow.Array) error {
	switch c := a.(type) {
	case *array.String:
		return c.ValidateFull()
	case *array.List:
		if err := c.ValidateFull(); err != nil {
			return err
		}
		return validateFull(c.ListValues())
	}
	d := a.Data()
	if len(d.Buffers()) > 1 && d.Buffers()[1] != nil {
		w := 0
		switch a.DataType().ID() {
		case arrow.INT64, arrow.FLOAT64:
			w = 8
		case arrow.INT32:
			w = 4
		}
		if need := (d.Offset() + d.Len()) * w; d.Buffers()[1].Len() < need {
			return fmt.Errorf("value buffer holds %d bytes, want %d", d.Buffers()[1].Len(), need)
		}
	}
	return nil
}

// parseHeader reads a batch's header from its schema metadata md.
func parseHeader(md arrow.Metadata, version int) (BatchHeader, error) {
	get := func(k string) (string, error) {
		i := md.FindKey(k)
		if i < 0 {
			return "", fmt.Errorf("reading state batch: %w: metadata key %s missing", ErrBadBatch, k)
		}
		return md.Values()[i], nil
	}
	var h BatchHeader
	v, err := get(MetaSchemaVersion)
	if err != nil {
		return h, err
	}
	if v != strconv.Itoa(version) {
		return h, fmt.Errorf("reading batch: %w: schema version %s, want %d", ErrBadBatch, v, version)
	}
	if h.RunID, err = get(MetaRunID); err != nil {
		return h, err
	}
	ls, err := get(MetaLayer)
	if err != nil {
		return h, err
	}
	if h.Layer, err = ParseLayer(ls); err != nil {
		return h, fmt.Errorf("reading state batch: %w: %w", ErrBadBatch, err)
	}
	ints := []struct {
		key string
		dst *int64
	}{{MetaTick, &h.Tick}, {MetaTickStartUS, &h.TickStartUS}}
	for _, it := range ints {
		s, err := get(it.key)
		if err != nil {
			return h, err
		}
		if *it.dst, err = strconv.ParseInt(s, 10, 64); err != nil {
			return h, fmt.Errorf("reading state batch: %w: %s=%q", ErrBadBatch, it.key, s)
		}
	}
	for _, it := range []struct {
		key string
		dst *int
	}{{MetaShard, &h.Shard}, {MetaNShards, &h.NShards}} {
		s, err := get(it.key)
		if err != nil {
			return h, err
		}
		if *it.dst, err = strconv.Atoi(s); err != nil {
			return h, fmt.Errorf("reading state batch: %w: %s=%q", ErrBadBatch, it.key, s)
		}
	}
	return h, nil
}

func value(a *array.Float64, i int) Value {
	if a.IsNull(i) {
		return Value{}
	}
	return Some(a.Value(i))
}

// readSeq writes row i of the sequence column a (1 to SeqLen steps,
// checked by the caller) into the newest entries of dst.
func readSeq(a *array.List, i int, dst *[SeqLen]float64) {
	start, end := a.ValueOffsets(i)
	n := int(end - start)
	vs := a.ListValues().(*array.Float64)
	for j := range n {
		dst[SeqLen-n+j] = vs.Value(int(start) + j)
	}
}

// readSeqValues is readSeq for a column whose values may be missing.
func readSeqValues(a *array.List, i int, dst *[SeqLen]Value) {
	start, end := a.ValueOffsets(i)
	n := int(end - start)
	vs := a.ListValues().(*array.Float64)
	for j := range n {
		dst[SeqLen-n+j] = value(vs, int(start)+j)
	}
}

// parseOperationalMeta reads the metadata only operational batches carry.
func parseOperationalMeta(md arrow.Metadata) (omits bool, hourSin float64, err error) {
	o, h := md.FindKey(MetaOmitsIdle), md.FindKey(MetaHourSin)
	if o < 0 || h < 0 {
		return false, 0, fmt.Errorf("metadata %s and %s are required on operational batches", MetaOmitsIdle, MetaHourSin)
	}
	if omits, err = strconv.ParseBool(md.Values()[o]); err != nil {
		return false, 0, fmt.Errorf("metadata %s: %w", MetaOmitsIdle, err)
	}
	if hourSin, err = strconv.ParseFloat(md.Values()[h], 64); err != nil || !(hourSin >= -1 && hourSin <= 1) {
		return false, 0, fmt.Errorf("metadata %s = %q: want a number in [-1, 1]", MetaHourSin, md.Values()[h])
	}
	return omits, hourSin, nil
}

// readOperational reads the rows of an operational batch; every row's
// sequences must hold the same number of steps, 1 to SeqLen, or none for a
// Left row (only in a batch that omits idle rows).
func readOperational(rec arrow.RecordBatch, omitsIdle bool) ([]OperationalRow, error) {
	n := int(rec.NumRows())
	rows := make([]OperationalRow, n)
	app := rec.Column(0).(*array.String)
	fn := rec.Column(1).(*array.String)
	inv := rec.Column(2).(*array.Int64)
	last := rec.Column(3).(*array.Int64)
	seq := func(c int) *array.List { return rec.Column(c).(*array.List) }
	for i := range n {
		r := &rows[i]
		r.App, r.Func, r.Invocations, r.LastStartUS = app.Value(i), fn.Value(i), inv.Value(i), last.Value(i)
		for c := 4; c <= 10; c++ {
			start, end := seq(c).ValueOffsets(i)
			steps := int(end - start)
			if steps < 0 || steps > SeqLen || (c > 4 && steps != r.Steps) {
				return nil, fmt.Errorf("row %d (%s/%s): column %s holds %d steps, want 1 to %d and as many as request_rate", i, r.App, r.Func, rec.ColumnName(c), steps, SeqLen)
			}
			r.Steps = steps
		}
		if r.Steps == 0 {
			if !omitsIdle {
				return nil, fmt.Errorf("row %d (%s/%s): a row without steps (a function that left) in a batch that omits no rows", i, r.App, r.Func)
			}
			if start, end := rec.Column(11).(*array.List).ValueOffsets(i); end != start || r.Invocations != 0 {
				return nil, fmt.Errorf("row %d (%s/%s): a row without steps (a function that left) with invocations or idle times", i, r.App, r.Func)
			}
			r.Left = true
			continue
		}
		readSeq(seq(4), i, &r.RequestRate)
		readSeqValues(seq(5), i, &r.MemoryUtil)
		readSeqValues(seq(6), i, &r.CPUUtil)
		readSeqValues(seq(7), i, &r.QueueDepth)
		readSeq(seq(8), i, &r.HourSin)
		readSeq(seq(9), i, &r.ConcurrencyMean)
		readSeq(seq(10), i, &r.ConcurrencyPeak)
		r.IdleTimesS = readList(rec.Column(11).(*array.List), i)
		if r.Steps == SeqLen {
			r.Steps = 0 // a whole sequence
		}
	}
	return rows, nil
}

func readList(a *array.List, i int) []float64 {
	start, end := a.ValueOffsets(i)
	if start == end {
		return nil
	}
	vs := a.ListValues().(*array.Float64)
	out := make([]float64, end-start)
	for j := range out {
		out[j] = vs.Value(int(start) + j)
	}
	return out
}

func f64(rec arrow.RecordBatch, c, i int) float64 { return rec.Column(c).(*array.Float64).Value(i) }
func val(rec arrow.RecordBatch, c, i int) Value   { return value(rec.Column(c).(*array.Float64), i) }
func str(rec arrow.RecordBatch, c, i int) string  { return rec.Column(c).(*array.String).Value(i) }

func readTactical(rec arrow.RecordBatch) []TacticalRow {
	n := int(rec.NumRows())
	rows := make([]TacticalRow, n)
	for i := range n {
		rows[i] = TacticalRow{
			App: str(rec, 0, i), Func: str(rec, 1, i),
			Invocations: rec.Column(2).(*array.Int64).Value(i),
			RequestRate: f64(rec, 3, i), PeakRate: f64(rec, 4, i),
			DurationMeanMS: f64(rec, 5, i), DurationP95MS: f64(rec, 6, i),
			LatencyMeanMS: val(rec, 7, i), LatencyP95MS: val(rec, 8, i),
			CostUSD: val(rec, 9, i), CarbonG: val(rec, 10, i),
			MemoryUtil: val(rec, 11, i), CPUUtil: val(rec, 12, i), QueueDepth: val(rec, 13, i),
			ColdStartRate: val(rec, 14, i),
			Provider:      str(rec, 15, i), Region: str(rec, 16, i),
			MemoryMB:     rec.Column(17).(*array.Int32).Value(i),
			Trend:        f64(rec, 18, i),
			MemoryPeakMB: f64(rec, 19, i),
			AppPeakHour:  rec.Column(20).(*array.Int32).Value(i),
			Hour:         rec.Column(21).(*array.Int32).Value(i),
		}
	}
	return rows
}

func readStrategic(rec arrow.RecordBatch) []StrategicRow {
	n := int(rec.NumRows())
	rows := make([]StrategicRow, n)
	for i := range n {
		rows[i] = StrategicRow{
			App:            str(rec, 0, i),
			Functions:      rec.Column(1).(*array.Int32).Value(i),
			Invocations:    rec.Column(2).(*array.Int64).Value(i),
			RequestRate:    f64(rec, 3, i),
			PeakHourRate:   f64(rec, 4, i),
			ActiveHours:    rec.Column(5).(*array.Int32).Value(i),
			DurationMeanMS: f64(rec, 6, i), DurationP95MS: f64(rec, 7, i),
			LatencyMeanMS: val(rec, 8, i), LatencyP95MS: val(rec, 9, i),
			CostUSD: val(rec, 10, i), CarbonG: val(rec, 11, i),
			ColdStartRate: val(rec, 12, i), CPUUtil: val(rec, 13, i), MemoryUtil: val(rec, 14, i),
			Trend:    f64(rec, 15, i),
			Provider: str(rec, 16, i), Region: str(rec, 17, i),
			MemoryMB:     rec.Column(18).(*array.Int32).Value(i),
			MemoryPeakMB: f64(rec, 19, i),
			AppPeakHour:  rec.Column(20).(*array.Int32).Value(i),
		}
	}
	return rows
}

// RowOrder returns dst[:0] filled with the indices of rows: in (App,
// Func) order when byFunction is set (stable), else in the rows' own
// order. A policy that pools what it learns across functions updates in
// function order, so that its decisions do not depend on the order of a
// batch's rows.
func RowOrder(dst []int, rows []OperationalRow, byFunction bool) []int {
	dst = dst[:0]
	for i := range rows {
		dst = append(dst, i)
	}
	if byFunction {
		slices.SortStableFunc(dst, func(a, b int) int { return cmpRow(&rows[a], &rows[b]) })
	}
	return dst
}

// BusySecondsPerInvocation returns Σ ConcurrencyMean ÷ Σ RequestRate over
// the row's steps — the busy seconds per invocation, since the mean
// concurrency of a step is its rate times the invocations' busy time —
// and whether the row gives one (some invocation, a finite non-negative
// quotient). Policies estimate an execution's end from the latest start
// with it (the rows carry no end times).
func (r *OperationalRow) BusySecondsPerInvocation() (float64, bool) {
	var conc, inv float64
	for j := range SeqLen {
		conc += r.ConcurrencyMean[j]
		inv += r.RequestRate[j]
	}
	d := conc / inv
	return d, inv > 0 && d >= 0 && !math.IsInf(d, 0)
}

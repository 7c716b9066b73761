package loadgen

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/replay"
)

// provider is the cloud provider of every record: the Azure Functions trace
// was recorded on Azure.
const provider = "azure"

// scopeName names the instrumentation scope of the OTLP spans.
const scopeName = "github.com/strata-rl/strata/ingest/loadgen"

// request is one batch, encoded: the body is sent unchanged on every
// attempt, so retries carry the same invocation ids.
type request struct {
	// seq is the 1-based number of the request in the run.
	seq int64
	// n is the number of records.
	n int
	// ids are the invocation ids of the records, in source order; nil
	// once encoded unless Config.OnAck wants them (a prebuilt run keeps
	// every request: a million ids would be garbage the collector scans
	// while the run is timed).
	ids []string
	// body is the encoded request body.
	body []byte
}

// builder turns batches of trace invocations into request bodies. It is not
// safe for concurrent use.
type builder struct {
	format Format
	now    func() time.Time
	// lastEnd is the end time (Unix µs) given to the previous batch.
	lastEnd int64
	// salt counts the ids of the run that were re-derived to avoid a
	// collision within a batch.
	salt uint64
	// seen holds the ids of the batch being built; reused.
	seen map[string]struct{}
}

// newBuilder returns a builder for format that stamps batches with now.
func newBuilder(format Format, now func() time.Time) *builder {
	return &builder{format: format, now: now, seen: make(map[string]struct{})}
}

// build stamps invs with the current time, gives each an invocation id and
// encodes them in the builder's format. invs is not retained.
func (b *builder) build(invs []replay.Invocation) (*request, error) {
	end := b.now().UnixMicro()
	if end <= b.lastEnd {
		end = b.lastEnd + 1
	}
	b.lastEnd = end
	req := &request{n: len(invs), ids: b.ids(invs, end)}
	var err error
	switch b.format {
	case FormatJSON:
		req.body, err = encodeJSON(invs, req.ids, end)
	case FormatOTLPProto:
		req.body, err = buildExport(invs, req.ids, end).MarshalProto()
	case FormatOTLPJSON:
		req.body, err = buildExport(invs, req.ids, end).MarshalJSON()
	default:
		err = fmt.Errorf("unknown format %q", b.format)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding %d records as %s: %w", len(invs), b.format, err)
	}
	return req, nil
}

// ids returns the invocation ids of invs ending at end:
// telemetry.InvocationID of each, except that a record whose id another
// record of the batch already has (same app, function and duration) gets
// one salted with the run's collision counter instead.
func (b *builder) ids(invs []replay.Invocation, end int64) []string {
	clear(b.seen)
	ids := make([]string, len(invs))
	for i, in := range invs {
		id := telemetry.InvocationID(in.App, in.Func, end, in.DurationUS)
		for {
			if _, dup := b.seen[id]; !dup {
				break
			}
			b.salt++
			id = saltedID(id, b.salt)
		}
		b.seen[id] = struct{}{}
		ids[i] = id
	}
	return ids
}

// saltedID derives a new id from id and salt: the first 16 bytes, in hex, of
// SHA-256 over id ‖ 0x00 ‖ salt (big-endian uint64).
func saltedID(id string, salt uint64) string {
	buf := make([]byte, 0, len(id)+9)
	buf = append(buf, id...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, salt)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}

// encodeJSON encodes invs as a JSON array of telemetry records ending at end.
func encodeJSON(invs []replay.Invocation, ids []string, end int64) ([]byte, error) {
	recs := make([]telemetry.Record, len(invs))
	starts := make([]int64, len(invs))
	prov := provider
	for i, in := range invs {
		starts[i] = end - in.DurationUS
		recs[i] = telemetry.Record{
			InvocationID: ids[i],
			App:          in.App,
			Func:         in.Func,
			EndUS:        end,
			DurationUS:   in.DurationUS,
			StartUS:      &starts[i],
			Provider:     &prov,
		}
	}
	return json.Marshal(recs)
}

// buildExport builds an OTLP export request of invs ending at end: one
// ResourceSpans per application (service.name and cloud.provider on the
// resource) holding one server span per invocation, named after the
// function, with faas.name and faas.invocation_id. The span's trace id is
// the invocation id and its span id the id's first 8 bytes.
func buildExport(invs []replay.Invocation, ids []string, end int64) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rss := td.ResourceSpans()
	byApp := make(map[string]int)
	endNS := pcommon.Timestamp(end * 1000)
	for i, in := range invs {
		k, ok := byApp[in.App]
		if !ok {
			k = rss.Len()
			byApp[in.App] = k
			rs := rss.AppendEmpty()
			attrs := rs.Resource().Attributes()
			attrs.PutStr(telemetry.AttrServiceName, in.App)
			attrs.PutStr(telemetry.AttrProvider, provider)
			rs.ScopeSpans().AppendEmpty().Scope().SetName(scopeName)
		}
		sp := rss.At(k).ScopeSpans().At(0).Spans().AppendEmpty()
		var tid pcommon.TraceID
		_, _ = hex.Decode(tid[:], []byte(ids[i])) // ids are 32 hex digits
		var sid pcommon.SpanID
		copy(sid[:], tid[:8])
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName(in.Func)
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.Timestamp((end - in.DurationUS) * 1000))
		sp.SetEndTimestamp(endNS)
		attrs := sp.Attributes()
		attrs.PutStr(telemetry.AttrFaaSName, in.Func)
		attrs.PutStr(telemetry.AttrInvocationID, ids[i])
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

package telemetry

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// PartialSuccess returns the body of an OTLP/HTTP trace export response
// that reports rejected spans: an ExportTraceServiceResponse whose
// partial_success carries rejected_spans and error_message, encoded as JSON
// when json is true and as binary protobuf otherwise (matching the request's
// content type, as OTLP/HTTP requires). With rejected 0 and an empty msg it
// is the plain success response.
func PartialSuccess(rejected int, msg string, json bool) ([]byte, error) {
	if rejected < 0 {
		return nil, fmt.Errorf("building an OTLP partial success: rejected spans is %d: want ≥ 0", rejected)
	}
	resp := ptraceotlp.NewExportResponse()
	ps := resp.PartialSuccess()
	ps.SetRejectedSpans(int64(rejected))
	ps.SetErrorMessage(msg)
	var (
		b   []byte
		err error
	)
	if json {
		b, err = resp.MarshalJSON()
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		return nil, fmt.Errorf("marshalling an OTLP export response: %w", err)
	}
	return b, nil
}

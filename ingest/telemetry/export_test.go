package telemetry

import "github.com/strata-rl/strata/cloud"

// ScanError is a pre-scan's verdict, for the tests: OK, or where (Off) and
// why (Msg) it refused the body, and whether for nesting too deep.
type ScanError struct {
	OK   bool
	Off  int
	Msg  string
	Deep bool
}

func verdict(e *syntaxError) ScanError {
	if e == nil {
		return ScanError{OK: true}
	}
	return ScanError{Off: e.off, Msg: e.msg, Deep: e.deep}
}

// CheckJSON runs the JSON pre-scan with the given depth limit (1 to 64).
func CheckJSON(b []byte, maxDepth int) ScanError {
	_, e := checkJSON(b, maxDepth)
	return verdict(e)
}

// CountJSON returns the pre-scan's count of the values directly inside
// the outermost array or object of valid JSON b.
func CountJSON(b []byte) int {
	n, _ := checkJSON(b, MaxJSONDepth)
	return n
}

// CheckOTLPProto runs the OTLP protobuf pre-scan.
func CheckOTLPProto(b []byte) ScanError { return verdict(checkOTLPProto(b)) }

// DecodeJSONGeneral is Batch.DecodeJSON without the flat path.
func DecodeJSONGeneral(b *Batch, body []byte) error { return b.decodeJSON(body, false) }

// DecodeFlatArray runs the flat path alone on an array body and reports
// whether it decoded it.
func DecodeFlatArray(b *Batch, body []byte) bool {
	b.reset()
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		panic(err)
	}
	return b.decodeFlatArray(body, cat)
}

package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// LineError reports a malformed trace line: which file, which line (1-based,
// counting the header) and what was wrong with it.
type LineError struct {
	// File is the name of the trace file (or a description of the stream).
	File string
	// Line is the 1-based line number in the file, the header being line 1;
	// for a Parquet trace, the 1-based row number.
	Line int64
	// Text is the offending line, truncated to 200 bytes.
	Text string
	// Reason says what was wrong.
	Reason string
}

// Error implements error.
func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// ErrBadHeader is returned when a trace does not start with the Azure 2021
// header line "app,func,end_timestamp,duration".
var ErrBadHeader = errors.New("trace header is not app,func,end_timestamp,duration")

// maxLineBytes bounds one trace line; the real trace's lines are ~150 bytes.
const maxLineBytes = 64 << 10

// CSVReader streams invocations from a trace in the Azure Functions 2021
// format (CSV with the header app,func,end_timestamp,duration; timestamps and
// durations in seconds). It holds one line in memory at a time.
//
// A malformed line does not stop the reader: Next returns a *LineError for it
// and the following call continues with the next line. Callers that must not
// lose data count or dead-letter those errors and keep reading.
type CSVReader struct {
	name    string
	br      *bufio.Reader
	line    int64 // lines consumed so far, header included
	row     int64 // data rows consumed so far, malformed ones included
	started bool
	closer  io.Closer
	scratch []byte
}

// NewCSVReader returns a reader over r; name is used in error messages. If r
// starts with the gzip magic bytes it is decompressed transparently.
func NewCSVReader(r io.Reader, name string) (*CSVReader, error) {
	br, err := newTextReader(r, name)
	if err != nil {
		return nil, err
	}
	return &CSVReader{name: name, br: br}, nil
}

// newTextReader buffers r, decompressing it when it starts with the gzip
// magic bytes; name is used in error messages.
func newTextReader(r io.Reader, name string) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening gzip stream %s: %w", name, err)
		}
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	return br, nil
}

// OpenTrace opens a trace file, plain or gzip-compressed. Close the returned
// reader when done.
func OpenTrace(path string) (*CSVReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening trace: %w", err)
	}
	r, err := NewCSVReader(f, path)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// Close closes the underlying file when the reader was made by OpenTrace.
func (r *CSVReader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Line returns the number of lines consumed so far, header included.
func (r *CSVReader) Line() int64 { return r.line }

// readLine returns the next line of br, in scratch's memory (which it
// grows), valid until the next call with the same scratch; tooLong reports
// that the line exceeded maxLineBytes, in which case only its first
// maxLineBytes are returned.
func readLine(br *bufio.Reader, scratch *[]byte) (line []byte, tooLong bool, err error) {
	buf := (*scratch)[:0]
	defer func() { *scratch = buf[:0] }()
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) <= maxLineBytes {
			buf = append(buf, chunk...)
		} else {
			tooLong = true
			if len(buf) < maxLineBytes {
				buf = append(buf, chunk[:maxLineBytes-len(buf)]...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return buf, tooLong, nil
			}
			return buf, tooLong, err
		}
		return buf, tooLong, nil
	}
}

// Next returns the next invocation, io.EOF at the end of the trace, a
// *LineError for a malformed line (reading may continue), or another error if
// the underlying stream failed.
func (r *CSVReader) Next() (Invocation, error) {
	for {
		raw, tooLong, err := readLine(r.br, &r.scratch)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !r.started {
					return Invocation{}, fmt.Errorf("reading %s: empty trace: %w", r.name, ErrBadHeader)
				}
				return Invocation{}, io.EOF
			}
			return Invocation{}, fmt.Errorf("reading %s line %d: %w", r.name, r.line+1, err)
		}
		r.line++
		line := bytes.TrimRight(raw, "\r\n")
		if !r.started {
			r.started = true
			if strings.TrimSpace(strings.TrimPrefix(string(line), "\ufeff")) != "app,func,end_timestamp,duration" {
				return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line), Reason: ErrBadHeader.Error()}
			}
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines carry nothing; tolerated
		}
		r.row++
		if tooLong {
			return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line),
				Reason: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
		}
		inv, reason := parseRow(line)
		if reason != "" {
			return Invocation{}, &LineError{File: r.name, Line: r.line, Text: clip(line), Reason: reason}
		}
		inv.Row = r.row
		return inv, nil
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// parseRow parses one data line; a non-empty reason says what is wrong.
func parseRow(line []byte) (Invocation, string) {
	var f [4][]byte
	n := 0
	start := 0
	for i := 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ',' {
			if n == 4 {
				return Invocation{}, "too many fields: want 4 (app,func,end_timestamp,duration)"
			}
			f[n] = bytes.TrimSpace(line[start:i])
			n++
			start = i + 1
		}
	}
	if n != 4 {
		return Invocation{}, fmt.Sprintf("got %d fields, want 4 (app,func,end_timestamp,duration)", n)
	}
	if len(f[0]) == 0 {
		return Invocation{}, "empty app"
	}
	if len(f[1]) == 0 {
		return Invocation{}, "empty func"
	}
	end, err := parseSeconds(f[2])
	if err != "" {
		return Invocation{}, "end_timestamp " + err
	}
	dur, err := parseSeconds(f[3])
	if err != "" {
		return Invocation{}, "duration " + err
	}
	if dur > end {
		return Invocation{}, fmt.Sprintf("duration %q exceeds end_timestamp %q: start would be before the trace start", f[3], f[2])
	}
	return Invocation{App: string(f[0]), Func: string(f[1]), EndUS: end, DurationUS: dur}, ""
}

// maxSeconds bounds timestamps to about 317 years so microseconds fit int64
// with room to spare.
const maxSeconds = 1e10

func parseSeconds(b []byte) (int64, string) { return parseTime(b, Seconds) }

// parseTime parses a non-negative time or duration given in unit and
// returns it in microseconds, rounded to the nearest; a non-empty reason
// says what is wrong with it.
func parseTime(b []byte, unit TimeUnit) (int64, string) {
	if len(b) == 0 {
		return 0, "is empty"
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Sprintf("%q is not a number", clip(b))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Sprintf("%q is not finite", clip(b))
	}
	if v < 0 {
		return 0, fmt.Sprintf("%q is negative", clip(b))
	}
	us := v * float64(unit)
	if us > maxSeconds*1e6 {
		return 0, fmt.Sprintf("%q is out of range", clip(b))
	}
	return int64(math.Round(us)), ""
}

// FormatSeconds renders microseconds as seconds with six decimals, the form
// WriteCSV uses, so that reading it back yields the same microseconds.
func FormatSeconds(us int64) string {
	return strconv.FormatFloat(float64(us)/1e6, 'f', 6, 64)
}

// WriteCSV writes invocations from src to w in the Azure 2021 format, header
// first, and returns the number of rows written. Rows are written in the
// order src yields them; a source that is replayed from this file therefore
// numbers its rows the same way.
func WriteCSV(w io.Writer, src Source) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString("app,func,end_timestamp,duration\n"); err != nil {
		return 0, fmt.Errorf("writing trace header: %w", err)
	}
	var n int64
	var buf []byte
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("reading invocation %d: %w", n+1, err)
		}
		buf = buf[:0]
		buf = append(buf, in.App...)
		buf = append(buf, ',')
		buf = append(buf, in.Func...)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, float64(in.EndUS)/1e6, 'f', 6, 64)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, float64(in.DurationUS)/1e6, 'f', 6, 64)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return n, fmt.Errorf("writing trace row %d: %w", n+1, err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("flushing trace: %w", err)
	}
	return n, nil
}

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// maxResponseBytes bounds the response body read.
const maxResponseBytes = 1 << 20

// outcome is what became of one request.
type outcome struct {
	// accepted, rejected and failed count the request's records by fate.
	accepted, rejected, failed int64
	// retries counts the attempts beyond the first.
	retries int64
	// acked reports a 2xx response; latency is that attempt's.
	acked   bool
	latency time.Duration
}

// sender sends requests with retries.
type sender struct {
	client *http.Client
	s      *settings
	log    *slog.Logger
}

// reply is one attempt's response.
type reply struct {
	status     int
	retryAfter time.Duration
	ctype      string
	body       []byte
}

// send delivers req, retrying connection errors, 408, 429 and 5xx up to
// MaxRetries times. It returns early, with the records unaccounted for,
// when ctx is done.
func (snd *sender) send(ctx context.Context, req *request) outcome {
	var o outcome
	n := int64(req.n)
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		rep, err := snd.attempt(ctx, req.body)
		latency := time.Since(t0)
		if ctx.Err() != nil {
			return o
		}
		var reason string
		switch {
		case err != nil:
			reason = err.Error()
		case rep.status >= 200 && rep.status < 300:
			o.acked, o.latency = true, latency
			o.accepted, o.rejected = snd.counts(rep, n)
			return o
		case rep.status == http.StatusUnprocessableEntity:
			// Every record was rejected; sending them again changes nothing.
			o.rejected = n
			snd.log.Warn("request rejected", "request", req.seq, "records", n, "response", snippet(rep.body))
			return o
		case retryable(rep.status):
			reason = fmt.Sprintf("status %d: %s", rep.status, snippet(rep.body))
		default:
			o.failed = n
			snd.log.Error("request refused", "request", req.seq, "records", n,
				"status", rep.status, "response", snippet(rep.body))
			return o
		}
		if attempt >= snd.s.MaxRetries {
			o.failed = n
			snd.log.Error("request failed, retries exhausted", "request", req.seq, "records", n,
				"attempts", attempt+1, "reason", reason)
			return o
		}
		wait := backoff(attempt)
		if rep.retryAfter > wait {
			wait = rep.retryAfter
		}
		snd.log.Debug("retrying request", "request", req.seq, "attempt", attempt+1, "wait", wait, "reason", reason)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return o
		case <-t.C:
		}
		o.retries++
	}
}

// attempt sends body once and reads the response.
func (snd *sender) attempt(ctx context.Context, body []byte) (reply, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, snd.s.endpoint, bytes.NewReader(body))
	if err != nil {
		return reply{}, fmt.Errorf("making request: %w", err)
	}
	hreq.Header.Set("Content-Type", snd.s.contentType)
	if snd.s.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+snd.s.Token)
	}
	resp, err := snd.client.Do(hreq)
	if err != nil {
		return reply{}, fmt.Errorf("posting to %s: %w", snd.s.endpoint, err)
	}
	defer func() { _ = resp.Body.Close() }()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return reply{}, fmt.Errorf("reading the response of %s (status %d): %w", snd.s.endpoint, resp.StatusCode, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
	return reply{
		status:     resp.StatusCode,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
		ctype:      resp.Header.Get("Content-Type"),
		body:       rb,
	}, nil
}

// counts reads the accepted and rejected records of a request of n records
// from its response. An unreadable response is logged and read as all
// accepted.
func (snd *sender) counts(rep reply, n int64) (accepted, rejected int64) {
	var err error
	if snd.s.Format == FormatJSON {
		accepted, rejected, err = jsonCounts(rep.body, n)
	} else {
		rejected, err = otlpRejected(rep.body, rep.ctype, snd.s.Format)
		accepted = n - rejected
	}
	if err != nil {
		snd.log.Warn("reading the response; counting every record accepted", "status", rep.status,
			"response", snippet(rep.body), "err", err)
		return n, 0
	}
	return accepted, rejected
}

// jsonCounts parses the response of POST /v1/telemetry.
func jsonCounts(body []byte, n int64) (accepted, rejected int64, err error) {
	var r struct {
		Accepted *int64 `json:"accepted"`
		Rejected *int64 `json:"rejected"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, 0, fmt.Errorf("decoding telemetry response: %w", err)
	}
	if r.Accepted == nil || r.Rejected == nil {
		return 0, 0, errors.New("decoding telemetry response: accepted or rejected missing")
	}
	if *r.Accepted < 0 || *r.Rejected < 0 || *r.Accepted+*r.Rejected > n {
		return 0, 0, fmt.Errorf("decoding telemetry response: accepted %d + rejected %d is not within the %d records sent",
			*r.Accepted, *r.Rejected, n)
	}
	return *r.Accepted, *r.Rejected, nil
}

// otlpRejected parses an ExportTraceServiceResponse in the encoding its
// content type names (the request's format when it names none) and
// returns partial_success.rejected_spans. An empty body rejects nothing.
func otlpRejected(body []byte, ctype string, format Format) (int64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	resp := ptraceotlp.NewExportResponse()
	asJSON := format == FormatOTLPJSON
	switch {
	case strings.Contains(ctype, "json"):
		asJSON = true
	case strings.Contains(ctype, "protobuf"):
		asJSON = false
	}
	var err error
	if asJSON {
		err = resp.UnmarshalJSON(body)
	} else {
		err = resp.UnmarshalProto(body)
	}
	if err != nil {
		return 0, fmt.Errorf("decoding OTLP export response: %w", err)
	}
	return resp.PartialSuccess().RejectedSpans(), nil
}

// retryable reports whether a response with status may succeed when
// retried: 408, 429 and 5xx.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// backoff returns the wait before retry attempt+1: a random time in
// [d/2, d] with d = baseBackoff·2^attempt capped at maxBackoff.
func backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 16 {
		d = min(maxBackoff, baseBackoff<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads a Retry-After header: delay seconds (at most an
// hour is honoured) or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// snippet returns the start of a response body for a log line.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

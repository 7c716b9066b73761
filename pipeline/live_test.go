package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// testClock is a wall clock a test moves by hand: live ticks are 15 s of
// wall-clock time, and the test closes them by moving the clock (ingest's
// watermarks follow it) instead of waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestLiveEndToEnd(t *testing.T) {
	liveEndToEnd(t, nil, "", schemas.Names{}, filepath.Join(t.TempDir(), "live.duckdb"))
}

// liveEndToEnd runs `strata live` (pipeline.Live) on the given servers (nil and
// "": embedded), names and store, sends telemetry over HTTP as JSON and OTLP, and
// follows it through Kafka, the features, the agents and the shadow twin to
// the decisions API and the tables.
func liveEndToEnd(t *testing.T, brokers []string, natsURL string, names schemas.Names, storeTarget string) {
	const token = "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("live-test-%d", time.Now().UnixNano())
	// The test moves through two hour boundaries and expects the first
	// one 30 s after t0 at the earliest, so t0 is pinned within the hour:
	// minute 5 of the hour before now. Started at the wall clock's time,
	// a run in the last 45 s of an hour crossed the boundary in step 6 and
	// waited in vain for the second hour's decisions (a CI failure).
	t0 := liveTestStart(time.Now())
	clock := &testClock{now: t0}
	lo := pipeline.LiveConfig{
		Config: pipeline.Config{Brokers: brokers, NATSURL: natsURL, Names: names, Partitions: 3, Epoch: pipeline.LiveEpoch, RunID: runID,
			Logger: pipelinetest.FailureLog(t), Registerer: prometheus.NewRegistry()},
		Ingest: ingest.Config{Tokens: []string{token}, Lateness: 2 * time.Second, WatermarkEvery: 50 * time.Millisecond, Now: clock.Now},
		Listen: "127.0.0.1:0",
		Policies: map[schemas.Layer]string{schemas.Strategic: "greedy-cost", schemas.Tactical: "greedy-cost",
			schemas.Operational: "reactive"},
		Placement: cloudPlacement(t, "aws/us-east/1024"), Seed: 1, Act: true, Shadow: true, Store: storeTarget,
		Transitions: []schemas.Layer{schemas.Tactical},
	}
	readyC := make(chan *pipeline.LiveRun, 1)
	done := make(chan error, 1)
	go func() { done <- pipeline.Live(ctx, lo, io.Discard, func(r *pipeline.LiveRun) { readyC <- r }) }()
	var run *pipeline.LiveRun
	select {
	case run = <-readyC:
	case err := <-done:
		t.Fatalf("strata live stopped before serving: %v", err)
	}
	base := "http://" + run.Addr
	post := func(path, ctype, tok string, body []byte) (int, []byte) {
		t.Helper()
		return requestLive(t, ctx, http.MethodPost, base+path, ctype, tok, body)
	}
	us := func(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

	// 1. No token, a wrong token: refused, nothing written.
	intruder := []byte(fmt.Sprintf(`{"app":"intruder","func":"f","end_us":%d,"duration_us":1000}`, us(time.Second)))
	for _, tok := range []string{"", "wrong"} {
		if code, b := post("/v1/telemetry", "application/json", tok, intruder); code != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d (%s), want 401", tok, code, b)
		}
	}

	// 2. JSON lines: valid records, one invalid, one retried duplicate.
	var lines []string
	for i := range 5 {
		lines = append(lines, fmt.Sprintf(`{"invocation_id":"co-%d","app":"shop","func":"checkout","end_us":%d,"duration_us":100000,"provider":"aws","region":"us-east-1","memory_mb":512,"cold_start":%v}`,
			i, us(time.Duration(i+1)*time.Second), i == 0))
	}
	lines = append(lines[:2], append([]string{fmt.Sprintf(`{"app":"shop","func":"checkout","end_us":%d,"duration_us":1000,"provider":"ibm"}`, us(time.Second))}, lines[2:]...)...)
	lines = append(lines, lines[0]) // a retried record: same id
	code, b := post("/v1/telemetry", "application/x-ndjson", token, []byte(strings.Join(lines, "\n")))
	var jr struct {
		Accepted, Rejected int
		Errors             []telemetry.RecordError
	}
	if err := json.Unmarshal(b, &jr); err != nil || code != http.StatusOK {
		t.Fatalf("JSON telemetry: status %d, body %s (%v)", code, b, err)
	}
	if jr.Accepted != 6 || jr.Rejected != 1 || len(jr.Errors) != 1 || jr.Errors[0].Index != 2 || jr.Errors[0].Field != "provider" {
		t.Fatalf("JSON telemetry reply %+v: want 6 accepted, record 2 rejected on provider", jr)
	}

	// 3. OTLP/HTTP protobuf: two invocation spans, one span that is not an
	// invocation (skipped), one with an unknown region (rejected).
	tr := ptrace.NewTraces()
	rs := tr.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(telemetry.AttrServiceName, "shop")
	rs.Resource().Attributes().PutStr(telemetry.AttrProvider, "aws")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	addSpan := func(id string, end time.Duration, region string, faas bool) {
		s := spans.AppendEmpty()
		s.SetName("cart")
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(end - 50*time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(end)))
		if !faas {
			s.SetKind(ptrace.SpanKindClient)
			return
		}
		s.Attributes().PutStr(telemetry.AttrFaaSName, "cart")
		s.Attributes().PutStr(telemetry.AttrInvocationID, id)
		s.Attributes().PutStr(telemetry.AttrRegion, region)
		s.Attributes().PutBool(telemetry.AttrColdStart, false)
	}
	addSpan("cart-1", 2*time.Second, "us-east-1", true)
	addSpan("", 2*time.Second, "", false)
	addSpan("cart-2", 3*time.Second, "mars-1", true)
	addSpan("cart-3", 4*time.Second, "us-east-1", true)
	body, err := ptraceotlp.NewExportRequestFromTraces(tr).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	code, b = post("/v1/traces", "application/x-protobuf", token, body)
	if code != http.StatusOK {
		t.Fatalf("OTLP: status %d: %s", code, b)
	}
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalProto(b); err != nil {
		t.Fatalf("OTLP reply: %v", err)
	}
	if n := er.PartialSuccess().RejectedSpans(); n != 1 || !strings.Contains(er.PartialSuccess().ErrorMessage(), "mars-1") {
		t.Fatalf("OTLP partial success: %d rejected (%q), want 1 naming the region", n, er.PartialSuccess().ErrorMessage())
	}

	// 4. Close the first tick: the features publish the next tick's state,
	// the agents decide, the decisions API answers.
	clock.set(t0.Add(16*time.Second + lo.Ingest.Lateness))
	getJSON := func(path, tok string) (int, map[string]any) {
		code, b := requestLive(t, ctx, http.MethodGet, base+path, "", tok, nil)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return code, m
	}
	var fn map[string]any
	pipelinetest.WaitFor(t, ctx, "an operational decision for shop/checkout", func() bool {
		code, m := getJSON("/v1/decisions/shop/checkout", token)
		fn = m
		return code == http.StatusOK && m["operational"] != nil
	})
	if op, _ := fn["operational"].(map[string]any); op["policy"] != "reactive" {
		t.Errorf("operational decision %v: want policy reactive", op)
	}
	if code, _ := getJSON("/v1/decisions/shop/checkout", ""); code != http.StatusUnauthorized {
		t.Errorf("decisions without a token: %d, want 401", code)
	}
	if code, m := getJSON("/v1/decisions/shop", token); code != http.StatusOK || !strings.Contains(fmt.Sprint(m["functions"]), "cart") {
		t.Errorf("app decisions: %d %v, want both functions", code, m)
	}
	if code, _ := getJSON("/v1/decisions/intruder/f", token); code != http.StatusNotFound {
		t.Errorf("decisions of a refused app: %d, want 404", code)
	}

	// 5. Downstream, each invocation id counts once: 5 + 2 distinct.
	pipelinetest.WaitFor(t, ctx, "the features and the shadow twin to count every invocation", func() bool {
		fs, ts := run.Features.Stats(), run.Shadow.Stats()
		return fs.Invocations+fs.Duplicates == 8 && ts.Arrivals+ts.DuplicateArrivals == 8 && ts.Rewards > 0
	})
	if fs := run.Features.Stats(); fs.Invocations != 7 || fs.Duplicates != 1 {
		t.Errorf("features: %d invocations, %d duplicates; want 7 and 1", fs.Invocations, fs.Duplicates)
	}
	if ts := run.Shadow.Stats(); ts.Arrivals != 7 {
		t.Errorf("shadow twin: %d arrivals; want 7", ts.Arrivals)
	}
	// Three requests refused for their token: two writes, one read.
	if st := run.Ingest.Stats(); st.Accepted != 8 || st.Rejected != 2 || st.Refused != 3 {
		t.Errorf("ingest: %+v; want 8 accepted, 2 rejected, 3 refused", st)
	}
	obs, dead := pipelinetest.ReadRun(t, ctx, run.Env.Brokers, names, runID)
	if len(obs) != 8 || len(dead) != 2 {
		t.Errorf("kafka: %d observations, %d dead letters of the run; want 8 and 2", len(obs), len(dead))
	}
	for _, o := range obs {
		if o.GetArrival().GetApp() == "intruder" || o.GetSource() != "live" {
			t.Errorf("kafka holds %v", o)
		}
	}
	// 6. Close the second tick: the shadow twin scores the decisions in
	// force in it and the sink writes them. The shadow twin never waits
	// for decisions, so first let it receive the second tick's (as a wall
	// clock moving 15 s a tick would); moving the clock before they
	// arrive left it nothing to score (seen once under a loaded CI).
	second := t0.Add(15*time.Second).Unix() / 15
	pipelinetest.WaitFor(t, ctx, "the shadow twin to hold the second tick's operational decisions", func() bool {
		return run.Shadow.HoldsDecisions(schemas.Operational, second)
	})
	clock.set(t0.Add(31*time.Second + lo.Ingest.Lateness))
	pipelinetest.WaitFor(t, ctx, "the shadow twin to score the decisions of the second tick", func() bool { return run.Shadow.Stats().Decisions > 0 })
	pipelinetest.WaitFor(t, ctx, "the sink to write the outcomes and decisions", func() bool {
		r := run.Sink.Stats().Rows
		return r[schemas.TableOutcomes] >= 7 && r[schemas.TableDecisions] > 0
	})
	// 7. A single decision on demand: strata.act.operational answers with
	// the live agent's policy, within the deadline.
	nc := run.Env.NC
	k := t0.UnixMicro() / grid.OperationalTickUS
	fallback, err := agents.New("static-2x", schemas.Operational, agents.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, res, err := worker.ActIn(ctx, nc, names, pipelinetest.OperationalState(runID, k, "checkout"), 5*time.Second, fallback)
	if err != nil || res.Fallback || len(out.Rows) != 1 || out.Rows[0].Policy != "reactive" {
		t.Fatalf("act: %+v, %+v, %v; want the reactive agent's decision", out, res, err)
	}

	// 8. The next hour: its tactical decisions come from this hour's state,
	// and once it is over the shadow twin writes its tactical transitions
	// for the learner. The clock moves to just past each boundary, as a
	// wall clock would, so that decisions arrive before their hour is
	// evaluated.
	h1 := t0.Truncate(time.Hour).Add(time.Hour)
	clock.set(h1.Add(time.Second + lo.Ingest.Lateness))
	pipelinetest.WaitFor(t, ctx, "a tactical decision for shop/checkout", func() bool {
		code, m := getJSON("/v1/decisions/shop/checkout", token)
		fn = m
		return code == http.StatusOK && m["tactical"] != nil
	})
	if tc, _ := fn["tactical"].(map[string]any); tc["policy"] != "greedy-cost" {
		t.Errorf("tactical decision %v: want policy greedy-cost", tc)
	}
	// The shadow twin never waits for decisions: before the clock passes
	// the hour's first tick, let it receive the hour's tactical decisions,
	// as a wall clock moving 15 s a tick would.
	twinHolds := func(h time.Time) func() bool {
		return func() bool { return run.Shadow.HoldsDecisions(schemas.Tactical, h.Unix()/3600) }
	}
	pipelinetest.WaitFor(t, ctx, "the shadow twin to hold the second hour's tactical decisions", twinHolds(h1))
	// Invocations in the hour, under its decisions: rewards, and with them
	// transitions, are per function invoked in the interval.
	var more []string
	for i := range 3 {
		more = append(more, fmt.Sprintf(`{"app":"shop","func":"checkout","end_us":%d,"duration_us":100000}`,
			h1.Add(time.Duration(11+i)*time.Second).UnixMicro()))
	}
	clock.set(h1.Add(10*time.Second + lo.Ingest.Lateness)) // the watermark: h1 + 10 s
	if code, b := post("/v1/telemetry", "application/x-ndjson", token, []byte(strings.Join(more, "\n"))); code != http.StatusOK || !strings.Contains(string(b), `"accepted":3`) {
		t.Fatalf("telemetry in the second hour: %d %s", code, b)
	}
	// Past the next boundary: the third hour's state is out (the agent's
	// decision for it shows), then its first tick closes and the twin
	// completes the second hour's transitions with that state.
	h2 := h1.Add(time.Hour)
	clock.set(h2.Add(time.Second + lo.Ingest.Lateness))
	pipelinetest.WaitFor(t, ctx, "the third hour's tactical decision", func() bool {
		code, m := getJSON("/v1/decisions/shop/checkout", token)
		tc, _ := m["tactical"].(map[string]any)
		return code == http.StatusOK && tc != nil && tc["tick"] == float64(h2.Unix()/3600)
	})
	clock.set(h2.Add(16*time.Second + lo.Ingest.Lateness))
	pipelinetest.WaitFor(t, ctx, "tactical transitions and the sink", func() bool {
		return run.Shadow.Stats().Transitions > 0 && run.Sink.Stats().Rows[schemas.TableOutcomes] >= 10
	})

	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("strata live: %v", err)
	}

	// 9. The tables: the live decisions and one outcome per invocation id.
	st, err := store.Open(context.Background(), storeTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	count := func(q string) string {
		_, rows, err := st.Query(context.Background(), q)
		if err != nil || len(rows) != 1 {
			t.Fatalf("%s: %v", q, err)
		}
		return fmt.Sprint(rows[0][0])
	}
	where := " FINAL WHERE run_id = '" + runID + "'"
	if n := count("SELECT count(*) FROM outcomes" + where); n != "10" {
		t.Errorf("outcomes of the run: %s rows, want one per invocation id (10)", n)
	}
	for _, q := range []string{"SELECT count(*) FROM decisions" + where + " AND func = 'checkout' AND layer = 'operational'",
		"SELECT count(*) FROM rewards" + where} {
		if n := count(q); n == "0" {
			t.Errorf("%s: no rows", q)
		}
	}
}

// liveTestStart returns the start of TestLiveEndToEnd's clock for a test
// started at now: minute 5 of the hour before now's, a tick boundary five
// minutes away from any hour boundary, and never in the future (the
// broker may refuse record timestamps far ahead of its clock).
func liveTestStart(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(-55 * time.Minute)
}

// startLive runs pipeline.Live in the background until ctx ends and returns the
// running process and where pipeline.Live's error arrives.
func startLive(t *testing.T, ctx context.Context, lo pipeline.LiveConfig, stdout io.Writer) (*pipeline.LiveRun, <-chan error) {
	t.Helper()
	readyC := make(chan *pipeline.LiveRun, 1)
	done := make(chan error, 1)
	go func() { done <- pipeline.Live(ctx, lo, stdout, func(r *pipeline.LiveRun) { readyC <- r }) }()
	select {
	case run := <-readyC:
		return run, done
	case err := <-done:
		t.Fatalf("strata live stopped before serving: %v", err)
	}
	return nil, nil
}

// postRecords sends JSON lines to a live process and returns the reply.
func postRecords(t *testing.T, ctx context.Context, addr, token string, lines []string) (int, string) {
	t.Helper()
	code, b := requestLive(t, ctx, http.MethodPost, "http://"+addr+"/v1/telemetry", "application/x-ndjson", token, []byte(strings.Join(lines, "\n")))
	return code, string(b)
}

// requestLive sends a request to url with body (nil: none), a content type
// (unless empty) and a bearer token (unless empty), and returns the status
// code and the reply.
func requestLive(t *testing.T, ctx context.Context, method, url, ctype, tok string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestLiveDrainOnStop stops `strata live` on the embedded broker right
// after its acknowledgements, with the ticks of the records still open
// (the clock never moves): the drain closes them with ingest's last
// watermark and waits, so every acknowledged record has its outcome row
// when pipeline.Live returns.
func TestLiveDrainOnStop(t *testing.T) {
	const token = "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("live-drain-%d", time.Now().UnixNano())
	t0 := time.Now().UTC().Truncate(time.Duration(grid.OperationalTickUS) * time.Microsecond)
	clock := &testClock{now: t0.Add(50 * time.Second)}
	storeTarget := filepath.Join(t.TempDir(), "live.duckdb")
	lo := pipeline.LiveConfig{
		Config: pipeline.Config{Partitions: 3, Epoch: pipeline.LiveEpoch, RunID: runID,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		Ingest: ingest.Config{Tokens: []string{token}, Lateness: 2 * time.Minute, WatermarkEvery: 50 * time.Millisecond, Now: clock.Now},
		Listen: "127.0.0.1:0",
		Policies: map[schemas.Layer]string{schemas.Strategic: "greedy-cost", schemas.Tactical: "greedy-cost",
			schemas.Operational: "reactive"},
		Placement: cloudPlacement(t, "aws/us-east/1024"), Seed: 1, Act: false, Shadow: true, Store: storeTarget,
		DrainTimeout: 2 * time.Minute, // a bound on the test; the drain ends when the records are processed
	}
	var out bytes.Buffer
	run, done := startLive(t, ctx, lo, &out)
	// Records in four ticks, none closed: the watermark stays at
	// t0 + 50 s − 2 min.
	ids := map[string]bool{}
	for req := range 4 {
		var lines []string
		for i := range 10 {
			id := fmt.Sprintf("d-%d-%d", req, i)
			ids[id] = true
			end := t0.Add(time.Duration(req*15+i) * time.Second)
			lines = append(lines, fmt.Sprintf(`{"invocation_id":%q,"app":"shop","func":"f%d","end_us":%d,"duration_us":200000}`, id, i%3, end.UnixMicro()))
		}
		if code, b := postRecords(t, ctx, run.Addr, token, lines); code != http.StatusOK || !strings.Contains(b, `"accepted":10`) {
			t.Fatalf("request %d: %d %s", req, code, b)
		}
	}
	cancel() // right after the acknowledgements
	if err := <-done; err != nil {
		t.Fatalf("strata live: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "live: drained in") {
		t.Errorf("output %q: want the drain reported", out.String())
	}
	st, err := store.Open(context.Background(), storeTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	_, rows, err := st.Query(context.Background(), "SELECT invocation_id FROM outcomes FINAL WHERE run_id = '"+runID+"'")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rows {
		got[fmt.Sprint(r[0])] = true
	}
	for id := range ids {
		if !got[id] {
			t.Errorf("acknowledged record %s has no outcome row", id)
		}
	}
	if len(got) != len(ids) {
		t.Errorf("%d outcome rows, want %d", len(got), len(ids))
	}
}

// TestLiveDrainTimeout stops `strata live` when its back end cannot
// process the records (no watermarks, so no tick ever closes): the drain
// gives up after --drain-timeout and says what was left.
func TestLiveDrainTimeout(t *testing.T) {
	const token = "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	now := time.Now().UTC()
	lo := pipeline.LiveConfig{
		Config: pipeline.Config{Partitions: 2, Epoch: pipeline.LiveEpoch, RunID: fmt.Sprintf("live-drain-timeout-%d", now.UnixNano()),
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		Ingest:       ingest.Config{Tokens: []string{token}, NoWatermarks: true, Now: func() time.Time { return now }},
		Listen:       "127.0.0.1:0",
		Policies:     map[schemas.Layer]string{schemas.Operational: "reactive"},
		Placement:    cloudPlacement(t, "aws/us-east/1024"),
		DrainTimeout: 200 * time.Millisecond,
	}
	run, done := startLive(t, ctx, lo, io.Discard)
	line := fmt.Sprintf(`{"invocation_id":"x-1","app":"shop","func":"f","end_us":%d,"duration_us":1000}`, now.UnixMicro())
	if code, b := postRecords(t, ctx, run.Addr, token, []string{line}); code != http.StatusOK {
		t.Fatalf("request: %d %s", code, b)
	}
	cancel()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "not done within --drain-timeout 200ms") ||
		!strings.Contains(err.Error(), "the features have closed no tick; the 1 records acknowledged are not processed") {
		t.Fatalf("strata live returned %v, want the drain's timeout and what was left", err)
	}
}

func cloudPlacement(t *testing.T, s string) cloud.Placement {
	t.Helper()
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		t.Fatalf("placement %q: want provider/metro/memoryMB", s)
	}
	p, err := cloud.ParseProvider(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.ParseMetro(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	mb, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	tier, err := cloud.TierOf(mb)
	if err != nil {
		t.Fatal(err)
	}
	return cloud.Placement{Provider: p, Metro: m, Tier: tier}
}

// TestLiveDeploymentPromotes serves the tactical layer of `strata live`
// from a deployment: it starts from --models while nothing is promoted;
// promoting a checkpoint swaps it into the running process's agents
// without a restart (the act server's answers carry its version), a second
// promotion swaps again, and a rollback brings the first back.
func TestLiveDeploymentPromotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("live-deploy-%d", time.Now().UnixNano())
	swapped := make(chan natsbus.Served, 4)
	lo := pipeline.LiveConfig{
		Config: pipeline.Config{Partitions: 1, Epoch: pipeline.LiveEpoch, RunID: runID,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		Ingest:     ingest.Config{Tokens: []string{"t0ken"}, Lateness: time.Minute, WatermarkEvery: 50 * time.Millisecond},
		Listen:     "127.0.0.1:0",
		Policies:   map[schemas.Layer]string{schemas.Tactical: "ppo"},
		Models:     modelDir("hierarchy-hh", "s2"), // its policy version differs from s1's
		Placement:  cloudPlacement(t, "aws/us-east/1024"),
		Seed:       1,
		Act:        true,
		Deployment: "prod",
		OnSwap:     func(_ schemas.Layer, s natsbus.Served) { swapped <- s },
	}
	var out bytes.Buffer
	run, done := startLive(t, ctx, lo, &out)
	version := func() string {
		t.Helper()
		st := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: runID, Layer: schemas.Tactical, Tick: 1, NShards: 1},
			Tactical: []schemas.TacticalRow{{App: "a", Func: "f", Invocations: 10, RequestRate: 0.1, Provider: "aws"}}}
		d, res, err := worker.ActIn(ctx, run.Env.NC, schemas.Names{}, st, 10*time.Second, pipelinetest.FixedPolicy{})
		if err != nil || res.Fallback || len(d.Rows) != 1 {
			t.Fatalf("act: %+v, %+v, %v; want the served policy's decision", d, res, err)
		}
		return d.Rows[0].PolicyVersion
	}
	wait := func(want string) {
		t.Helper()
		select {
		case s := <-swapped:
			if s.Version != want {
				t.Fatalf("swapped to %+v, want version %s", s, want)
			}
		case <-ctx.Done():
			t.Fatalf("no swap to %s: %v", want, ctx.Err())
		}
	}
	fromModels := version()
	ms, err := natsbus.OpenModelStore(ctx, run.Env.JS, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	for i, seed := range []string{"s1", "s2"} {
		data, err := os.ReadFile(filepath.Join(modelDir("hierarchy-hh", seed), "ppo.ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.PutCheckpoint(ctx, "train-1", schemas.Checkpoint{Layer: schemas.Tactical, Version: []string{"v1", "v2"}[i], InForce: int64(i), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ms.Promote(ctx, "prod", schemas.Tactical, natsbus.Served{Run: "train-1", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	wait("v1")
	v1 := version()
	if _, err := ms.Promote(ctx, "prod", schemas.Tactical, natsbus.Served{Run: "train-1", Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	wait("v2")
	v2 := version()
	if _, err := ms.Rollback(ctx, "prod", schemas.Tactical); err != nil {
		t.Fatal(err)
	}
	wait("v1")
	back := version()
	if v1 == fromModels || v2 == v1 || back != v1 {
		t.Errorf("served versions: %q from --models, %q after promoting v1, %q after v2, %q after the rollback; want each promotion served and the rollback to serve v1's again",
			fromModels, v1, v2, back)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("strata live: %v\n%s", err, out.String())
	}
}

// TestLiveDeploymentRefused checks that `strata live --deployment` refuses
// to start when no layer runs a learned policy, and when a learned layer
// has neither a promoted model nor --models to start from.
func TestLiveDeploymentRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policies map[schemas.Layer]string
		want     string
	}{
		{"no learned layer", map[schemas.Layer]string{schemas.Tactical: "greedy-cost"}, "no layer runs one"},
		{"nothing promoted, no models", map[schemas.Layer]string{schemas.Tactical: "ppo"}, "no tactical model is promoted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo := pipeline.LiveConfig{
				Config: pipeline.Config{Partitions: 1, Epoch: pipeline.LiveEpoch, RunID: "live-refused",
					Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
				Ingest: ingest.Config{Tokens: []string{"t0ken"}}, Listen: "127.0.0.1:0", Policies: tc.policies,
				Placement: cloudPlacement(t, "aws/us-east/1024"), Seed: 1, Deployment: "prod",
			}
			err := pipeline.Live(t.Context(), lo, io.Discard, func(*pipeline.LiveRun) { t.Error("live mode started") })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Live = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

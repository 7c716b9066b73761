package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/ingest/telemetry"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
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

// liveEndToEnd runs `strata live` (runLive) on the given servers (nil and
// "": embedded), names and store, sends telemetry over HTTP as JSON and OTLP, and
// follows it through Kafka, the features, the agents and the shadow twin to
// the decisions API and the tables.
func liveEndToEnd(t *testing.T, brokers []string, natsURL string, names schemas.Names, storeTarget string) {
	const token = "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("live-test-%d", time.Now().UnixNano())
	t0 := time.Now().UTC().Truncate(time.Duration(grid.OperationalTickUS) * time.Microsecond)
	clock := &testClock{now: t0}
	lo := liveOpts{
		pipe: pipeline.Config{Brokers: brokers, NATSURL: natsURL, Names: names, Partitions: 3, Epoch: liveEpoch, RunID: runID,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		ingest: ingest.Config{Tokens: []string{token}, Lateness: 2 * time.Second, WatermarkEvery: 50 * time.Millisecond, Now: clock.Now},
		listen: "127.0.0.1:0",
		policies: map[schemas.Layer]string{schemas.Strategic: "greedy-cost", schemas.Tactical: "greedy-cost",
			schemas.Operational: "reactive"},
		placement: cloudPlacement(t, "aws/us-east/1024"), seed: 1, act: true, shadow: true, store: storeTarget,
		transitions: []schemas.Layer{schemas.Tactical},
	}
	readyC := make(chan *liveRun, 1)
	done := make(chan error, 1)
	go func() { done <- runLive(ctx, lo, io.Discard, func(r *liveRun) { readyC <- r }) }()
	var run *liveRun
	select {
	case run = <-readyC:
	case err := <-done:
		t.Fatalf("strata live stopped before serving: %v", err)
	}
	base := "http://" + run.addr
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
	clock.set(t0.Add(16*time.Second + lo.ingest.Lateness))
	getJSON := func(path, tok string) (int, map[string]any) {
		code, b := requestLive(t, ctx, http.MethodGet, base+path, "", tok, nil)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return code, m
	}
	var fn map[string]any
	waitFor(t, ctx, "an operational decision for shop/checkout", func() bool {
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
	waitFor(t, ctx, "the features and the shadow twin to count every invocation", func() bool {
		fs, ts := run.features.Stats(), run.shadow.Stats()
		return fs.Invocations+fs.Duplicates == 8 && ts.Arrivals+ts.DuplicateArrivals == 8 && ts.Rewards > 0
	})
	if fs := run.features.Stats(); fs.Invocations != 7 || fs.Duplicates != 1 {
		t.Errorf("features: %d invocations, %d duplicates; want 7 and 1", fs.Invocations, fs.Duplicates)
	}
	if ts := run.shadow.Stats(); ts.Arrivals != 7 {
		t.Errorf("shadow twin: %d arrivals; want 7", ts.Arrivals)
	}
	// Three requests refused for their token: two writes, one read.
	if st := run.ingest.Stats(); st.Accepted != 8 || st.Rejected != 2 || st.Refused != 3 {
		t.Errorf("ingest: %+v; want 8 accepted, 2 rejected, 3 refused", st)
	}
	obs, dead := readRun(t, ctx, run.env.Brokers, names, runID)
	if len(obs) != 8 || len(dead) != 2 {
		t.Errorf("kafka: %d observations, %d dead letters of the run; want 8 and 2", len(obs), len(dead))
	}
	for _, o := range obs {
		if o.GetArrival().GetApp() == "intruder" || o.GetSource() != "live" {
			t.Errorf("kafka holds %v", o)
		}
	}
	// 6. Close the second tick: the shadow twin scores the decisions in
	// force in it and the sink writes them.
	clock.set(t0.Add(31*time.Second + lo.ingest.Lateness))
	waitFor(t, ctx, "the shadow twin to score the decisions of the second tick", func() bool { return run.shadow.Stats().Decisions > 0 })
	waitFor(t, ctx, "the sink to write the outcomes and decisions", func() bool {
		r := run.sink.Stats().Rows
		return r[schemas.TableOutcomes] >= 7 && r[schemas.TableDecisions] > 0
	})
	// 7. A single decision on demand: strata.act.operational answers with
	// the live agent's policy, within the deadline.
	nc := run.env.NC
	k := t0.UnixMicro() / grid.OperationalTickUS
	fallback, err := agents.New("static-2x", schemas.Operational, agents.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, res, err := worker.ActIn(ctx, nc, names, agentState(runID, k, "checkout"), 5*time.Second, fallback)
	if err != nil || res.Fallback || len(out.Rows) != 1 || out.Rows[0].Policy != "reactive" {
		t.Fatalf("act: %+v, %+v, %v; want the reactive agent's decision", out, res, err)
	}

	// 8. The next hour: its tactical decisions come from this hour's state,
	// and once it is over the shadow twin writes its tactical transitions
	// for the learner. The clock moves to just past each boundary, as a
	// wall clock would, so that decisions arrive before their hour is
	// evaluated.
	h1 := t0.Truncate(time.Hour).Add(time.Hour)
	clock.set(h1.Add(time.Second + lo.ingest.Lateness))
	waitFor(t, ctx, "a tactical decision for shop/checkout", func() bool {
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
		return func() bool { return run.shadow.HoldsDecisions(schemas.Tactical, h.Unix()/3600) }
	}
	waitFor(t, ctx, "the shadow twin to hold the second hour's tactical decisions", twinHolds(h1))
	// Invocations in the hour, under its decisions: rewards, and with them
	// transitions, are per function invoked in the interval.
	var more []string
	for i := range 3 {
		more = append(more, fmt.Sprintf(`{"app":"shop","func":"checkout","end_us":%d,"duration_us":100000}`,
			h1.Add(time.Duration(11+i)*time.Second).UnixMicro()))
	}
	clock.set(h1.Add(10*time.Second + lo.ingest.Lateness)) // the watermark: h1 + 10 s
	if code, b := post("/v1/telemetry", "application/x-ndjson", token, []byte(strings.Join(more, "\n"))); code != http.StatusOK || !strings.Contains(string(b), `"accepted":3`) {
		t.Fatalf("telemetry in the second hour: %d %s", code, b)
	}
	// Past the next boundary: the third hour's state is out (the agent's
	// decision for it shows), then its first tick closes and the twin
	// completes the second hour's transitions with that state.
	h2 := h1.Add(time.Hour)
	clock.set(h2.Add(time.Second + lo.ingest.Lateness))
	waitFor(t, ctx, "the third hour's tactical decision", func() bool {
		code, m := getJSON("/v1/decisions/shop/checkout", token)
		tc, _ := m["tactical"].(map[string]any)
		return code == http.StatusOK && tc != nil && tc["tick"] == float64(h2.Unix()/3600)
	})
	clock.set(h2.Add(16*time.Second + lo.ingest.Lateness))
	waitFor(t, ctx, "tactical transitions and the sink", func() bool {
		return run.shadow.Stats().Transitions > 0 && run.sink.Stats().Rows[schemas.TableOutcomes] >= 10
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

// startLive runs runLive in the background until ctx ends and returns the
// running process and where runLive's error arrives.
func startLive(t *testing.T, ctx context.Context, lo liveOpts, stdout io.Writer) (*liveRun, <-chan error) {
	t.Helper()
	readyC := make(chan *liveRun, 1)
	done := make(chan error, 1)
	go func() { done <- runLive(ctx, lo, stdout, func(r *liveRun) { readyC <- r }) }()
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
// when runLive returns.
func TestLiveDrainOnStop(t *testing.T) {
	const token = "s3cret"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runID := fmt.Sprintf("live-drain-%d", time.Now().UnixNano())
	t0 := time.Now().UTC().Truncate(time.Duration(grid.OperationalTickUS) * time.Microsecond)
	clock := &testClock{now: t0.Add(50 * time.Second)}
	storeTarget := filepath.Join(t.TempDir(), "live.duckdb")
	lo := liveOpts{
		pipe: pipeline.Config{Partitions: 3, Epoch: liveEpoch, RunID: runID,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		ingest: ingest.Config{Tokens: []string{token}, Lateness: 2 * time.Minute, WatermarkEvery: 50 * time.Millisecond, Now: clock.Now},
		listen: "127.0.0.1:0",
		policies: map[schemas.Layer]string{schemas.Strategic: "greedy-cost", schemas.Tactical: "greedy-cost",
			schemas.Operational: "reactive"},
		placement: cloudPlacement(t, "aws/us-east/1024"), seed: 1, act: false, shadow: true, store: storeTarget,
		drainTimeout: 2 * time.Minute, // a bound on the test; the drain ends when the records are processed
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
		if code, b := postRecords(t, ctx, run.addr, token, lines); code != http.StatusOK || !strings.Contains(b, `"accepted":10`) {
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
	lo := liveOpts{
		pipe: pipeline.Config{Partitions: 2, Epoch: liveEpoch, RunID: fmt.Sprintf("live-drain-timeout-%d", now.UnixNano()),
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()},
		ingest:       ingest.Config{Tokens: []string{token}, NoWatermarks: true, Now: func() time.Time { return now }},
		listen:       "127.0.0.1:0",
		policies:     map[schemas.Layer]string{schemas.Operational: "reactive"},
		placement:    cloudPlacement(t, "aws/us-east/1024"),
		drainTimeout: 200 * time.Millisecond,
	}
	run, done := startLive(t, ctx, lo, io.Discard)
	line := fmt.Sprintf(`{"invocation_id":"x-1","app":"shop","func":"f","end_us":%d,"duration_us":1000}`, now.UnixMicro())
	if code, b := postRecords(t, ctx, run.addr, token, []string{line}); code != http.StatusOK {
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
	p, err := parsePlacement(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readRun reads the telemetry and dead-letter topics of names to their ends
// and returns the run's observations and ingest dead letters.
func readRun(t *testing.T, ctx context.Context, brokers []string, names schemas.Names, runID string) ([]*stratapb.Observation, []*stratapb.DeadLetter) {
	t.Helper()
	topic, deadTopic := names.Topic(schemas.TopicTelemetry), names.Topic(schemas.TopicDeadLetter)
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil),
		kgo.ConsumeTopics(topic, deadTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic, deadTopic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
		}
	})
	var obs []*stratapb.Observation
	var dead []*stratapb.DeadLetter
	for n := 0; ; n++ {
		remaining := 0
		for _, ps := range left {
			remaining += len(ps)
		}
		if remaining == 0 {
			return obs, dead
		}
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("reading the topics: ", ctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
			}
			switch {
			case r.Topic == deadTopic:
				var d stratapb.DeadLetter
				if proto.Unmarshal(r.Value, &d) == nil && d.RunId == runID && d.Component == "ingest" {
					dead = append(dead, &d)
				}
			case kafka.IsWatermark(r):
			default:
				var o stratapb.Observation
				if proto.Unmarshal(r.Value, &o) == nil && o.GetArrival().GetRunId() == runID {
					obs = append(obs, &o)
				}
			}
		})
	}
}

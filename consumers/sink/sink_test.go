package sink

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startKafka(t *testing.T) []string {
	t.Helper()
	k, err := kafka.StartEmbedded(4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k.Brokers()
}

func openDuck(t *testing.T) *store.DuckDB {
	t.Helper()
	s, err := store.OpenDuckDB(t.Context(), filepath.Join(t.TempDir(), "strata.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.EnsureSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func produce(t *testing.T, brokers []string, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func rec(topic, key string, m proto.Message) *kgo.Record {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

// workload returns n decisions and n rewards of run over distinct keys
// (ticks × apps × funcs), and the records carrying them.
func workload(run string, first, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := first; i < first+n; i++ {
		app := fmt.Sprintf("app-%d", i%7)
		d := &stratapb.Decision{RunId: run, Layer: "tactical", Tick: int64(i / 14), TickMs: int64(i/14) * 3600000,
			App: app, Func: fmt.Sprintf("f%d", i%2), Policy: "greedy-cost", Action: int32(i % 24), Provider: "aws",
			Region: "eu-west-1", MemoryMb: 1024}
		r := &stratapb.Reward{RunId: run, Layer: "tactical", Tick: d.Tick, TickMs: d.TickMs, App: app, Func: d.Func,
			Reward: -float64(i), Invocations: int64(i)}
		out = append(out, rec(schemas.TopicDecisions, app, d), rec(schemas.TopicRewards, app, r))
	}
	return out
}

func count(t *testing.T, s store.Store, q string) int64 {
	t.Helper()
	_, rows, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rows[0][0].(int64)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start runs a sink in the background; stop cancels it and returns Run's
// error.
func start(t *testing.T, cfg Config, w Writer, reg prometheus.Registerer) (s *Sink, stop func() error) {
	t.Helper()
	s, err := New(t.Context(), cfg, w, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once atomic.Bool
	var runErr error
	stop = func() error {
		if once.CompareAndSwap(false, true) {
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

func TestSinkWritesDistinctRowsAndDeadLetters(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	recs := workload("run-1", 0, 100)
	recs = append(recs, workload("run-1", 0, 30)...) // replayed keys
	recs = append(recs, workload("run-2", 0, 10)...)
	run := &stratapb.Run{RunId: "run-1", StartedUnixMs: 1_700_000_000_000, Source: "synthetic", Seed: 3}
	recs = append(recs, rec(TopicRuns, "run-1", run), rec(TopicRuns, "run-1", run),
		&kgo.Record{Topic: schemas.TopicDecisions, Key: []byte("bad"), Value: []byte{0xff, 0xff, 0xff}},
		rec(schemas.TopicRewards, "x", &stratapb.Reward{Layer: "tactical", App: "x"}), // no run id
		&kgo.Record{Topic: schemas.TopicDecisions, Key: []byte("app-1"), Value: []byte{1},
			Headers: []kgo.RecordHeader{{Key: schemas.HeaderKind, Value: []byte(schemas.KindWatermark)}}})
	reg := prometheus.NewRegistry()
	// The sink creates strata.runs.v1, which the embedded broker lacks.
	s, stop := start(t, Config{Brokers: brokers, BatchRows: 64, FlushInterval: 20 * time.Millisecond}, db, reg)
	produce(t, brokers, recs)
	total := int64(len(recs))
	waitFor(t, "every record committed", func() bool { return s.Stats().Committed == total })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Records != total || st.Rejected != 2 || st.Skipped != 1 {
		t.Errorf("stats = %+v, want %d records, 2 rejected, 1 skipped", st, total)
	}
	if st.Rows[schemas.TableDecisions] != 140 || st.Rows[schemas.TableRewards] != 140 || st.Rows[schemas.TableRuns] != 2 {
		t.Errorf("rows = %v, want 140 decisions, 140 rewards, 2 runs", st.Rows)
	}
	for q, want := range map[string]int64{
		"SELECT count() FROM decisions FINAL WHERE run_id = 'run-1'": 100,
		"SELECT count() FROM rewards FINAL WHERE run_id = 'run-1'":   100,
		"SELECT count() FROM decisions FINAL":                        110,
		"SELECT count() FROM rewards FINAL":                          110,
		"SELECT count() FROM runs FINAL":                             1,
	} {
		if got := count(t, db, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	var m dto.Metric
	if err := s.m.rejected.WithLabelValues("malformed").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("strata_sink_rejected_total{reason=malformed} = %v, want 1", got)
	}

	// The two rejected records are on the dead-letter topic with where
	// they came from.
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil), kgo.ConsumeTopics(schemas.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var dls []*stratapb.DeadLetter
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(dls) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			dl := &stratapb.DeadLetter{}
			if err := proto.Unmarshal(r.Value, dl); err != nil {
				t.Fatal(err)
			}
			dls = append(dls, dl)
		})
	}
	if len(dls) != 2 {
		t.Fatalf("dead letters = %d, want 2", len(dls))
	}
	for _, dl := range dls {
		if dl.Component != "sink" || !strings.HasPrefix(dl.Location, "partition ") || !strings.Contains(dl.Location, " offset ") {
			t.Errorf("dead letter %v: want component sink and a partition/offset location", dl)
		}
		switch dl.Source {
		case schemas.TopicDecisions:
			if !strings.HasPrefix(dl.Reason, "malformed: ") || string(dl.Payload) != "\xff\xff\xff" {
				t.Errorf("decision dead letter %v: want the malformed payload", dl)
			}
		case schemas.TopicRewards:
			if dl.Reason != "invalid: run_id is empty" {
				t.Errorf("reward dead letter reason %q", dl.Reason)
			}
		default:
			t.Errorf("dead letter from %s", dl.Source)
		}
	}
}

func TestSinkRestartKeepsCountsExact(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	first := workload("run-r", 0, 300)
	produce(t, brokers, first)
	cfg := Config{Brokers: brokers, Group: "restart", BatchRows: 16, FlushInterval: 10 * time.Millisecond}
	// The first sink is stopped from inside its 4th decisions write, so
	// the stop falls mid-way whatever the machine's speed: that batch is
	// still written and committed, nothing after it is read.
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	s1, err := New(t.Context(), cfg, &cancellingWriter{Writer: db, n: 4, cancel: cancel1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Run(ctx1); err != nil {
		t.Fatal(err)
	}
	st1 := s1.Stats()
	if st1.Committed != st1.Records || st1.Batches < 4 || st1.Records >= int64(len(first)) {
		t.Fatalf("first sink: %+v: want every polled record committed and the stop mid-way, after 4 batches", st1)
	}
	// More keys, and some of the first ones again.
	second := append(workload("run-r", 300, 100), workload("run-r", 0, 50)...)
	produce(t, brokers, second)
	total := int64(len(first) + len(second))

	// The second sink stops on the count of records committed, not when
	// idle (an idle stop can come before a slow machine's first fetch).
	s2, stop2 := start(t, cfg, db, nil)
	waitFor(t, "the rest committed", func() bool { return s2.Stats().Committed >= total-st1.Committed })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if got := s2.Stats().Records; got != total-st1.Committed {
		t.Errorf("second sink read %d records, want %d (the uncommitted rest)", got, total-st1.Committed)
	}
	for _, tb := range []string{"decisions", "rewards"} {
		if got := count(t, db, "SELECT count() FROM "+tb+" FINAL WHERE run_id = 'run-r'"); got != 400 {
			t.Errorf("%s = %d, want 400", tb, got)
		}
	}
}

// cancellingWriter calls cancel in its nth WriteDecisions call, before
// writing.
type cancellingWriter struct {
	Writer
	n, calls int
	cancel   func()
}

func (c *cancellingWriter) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	c.calls++
	if c.calls == c.n {
		c.cancel()
	}
	return c.Writer.WriteDecisions(ctx, rows)
}

// failingWriter fails the nth WriteDecisions call and every later one.
type failingWriter struct {
	Writer
	n, calls int
}

var errDiskFull = errors.New("disk full")

func (f *failingWriter) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	f.calls++
	if f.calls >= f.n {
		return errDiskFull
	}
	return f.Writer.WriteDecisions(ctx, rows)
}

func TestSinkWriteFailureCommitsNothingUnwritten(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	recs := workload("run-f", 0, 200)
	produce(t, brokers, recs)
	total := int64(len(recs))
	cfg := Config{Brokers: brokers, Group: "fail", BatchRows: 32, FlushInterval: 10 * time.Millisecond, WriteOutage: -1}
	s1, err := New(t.Context(), cfg, &failingWriter{Writer: db, n: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Run(t.Context()); !errors.Is(err, errDiskFull) {
		t.Fatalf("Run = %v, want %v", err, errDiskFull)
	}
	st1 := s1.Stats()
	if st1.Committed == 0 || st1.Committed >= st1.Records {
		t.Fatalf("failing sink: %+v, want some batches committed and not the failed one", st1)
	}
	cfg.WriteOutage = 0
	s2, stop2 := start(t, cfg, db, nil) // stopped on the count below
	waitFor(t, "the rest committed", func() bool { return s2.Stats().Committed >= total-st1.Committed })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if got := s2.Stats().Records; got != total-st1.Committed {
		t.Errorf("second sink read %d records, want %d (every uncommitted one)", got, total-st1.Committed)
	}
	if got := count(t, db, "SELECT count() FROM decisions FINAL WHERE run_id = 'run-f'"); got != 200 {
		t.Errorf("decisions = %d, want 200", got)
	}
}

// TestSinkStopsWhenIdle checks that Run returns by itself once the topics
// stay idle, after committing everything. The idle time is long (5 s)
// because the idle clock starts at the partition assignment, before the
// first fetch: with a short one a loaded machine stops the sink before it
// reads anything. The test waits for the positive condition (all records
// committed while Run still runs), then for Run to return on its own.
func TestSinkStopsWhenIdle(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	produce(t, brokers, workload("run-i", 0, 5))
	s, err := New(t.Context(), Config{Brokers: brokers, StopAfterIdle: 5 * time.Second, FlushInterval: 20 * time.Millisecond}, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "all 10 records committed", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned (%v) after committing %d of 10 records", err, s.Stats().Committed)
		default:
		}
		return s.Stats().Committed == 10
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run returned only at the test deadline")
	}
	if st := s.Stats(); st.Committed != 10 || st.Records != 10 {
		t.Errorf("stats %+v, want 10 records read and committed", st)
	}
}

func TestNewWithoutBrokers(t *testing.T) {
	if _, err := New(context.Background(), Config{}, nil, nil, nil); !errors.Is(err, ErrNoBrokers) {
		t.Fatalf("New = %v, want ErrNoBrokers", err)
	}
}

// crashingWriter writes the nth batch of table, then fails the write as a
// process that dies after its write and before its offset commit would:
// the rows are in the store and the records are not committed.
type crashingWriter struct {
	Writer
	table    string
	n, calls int
}

var errCrashed = errors.New("crashed after writing")

func (c *crashingWriter) crashed(table string) bool {
	if table != c.table {
		return false
	}
	c.calls++
	return c.calls >= c.n
}

func (c *crashingWriter) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	if err := c.Writer.WriteDecisions(ctx, rows); err != nil {
		return err
	}
	if c.crashed("decisions") {
		return errCrashed
	}
	return nil
}

func (c *crashingWriter) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	if err := c.Writer.WriteRewards(ctx, rows); err != nil {
		return err
	}
	if c.crashed("rewards") {
		return errCrashed
	}
	return nil
}

// TestSinkRedeliveryAfterCrashKeepsOneRowPerKey checks the DuckDB store's
// exactly-once under redelivery: a sink dies after writing a batch (all of
// it, or its decisions only) and before committing its offsets; the next
// sink of the group reads the same records at the same offsets again and
// writes them again, and every table still holds exactly one row per key.
func TestSinkRedeliveryAfterCrashKeepsOneRowPerKey(t *testing.T) {
	for _, tc := range []struct {
		name, table string
	}{
		{"whole batch written", "rewards"},
		{"decisions of the batch written", "decisions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := startKafka(t)
			db := openDuck(t)
			recs := workload("run-c", 0, 300)
			produce(t, brokers, recs)
			total := int64(len(recs))
			cfg := Config{Brokers: brokers, Group: "crash", BatchRows: 40, FlushInterval: 10 * time.Millisecond, WriteOutage: -1}
			s1, err := New(t.Context(), cfg, &crashingWriter{Writer: db, table: tc.table, n: 3}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s1.Run(t.Context()); !errors.Is(err, errCrashed) {
				t.Fatalf("Run = %v, want %v", err, errCrashed)
			}
			st1 := s1.Stats()
			if st1.Committed >= st1.Records {
				t.Fatalf("crashed sink: %+v, want the crashed batch's records not committed", st1)
			}
			// Stats count the rows of completed batches only: more rows in
			// the table are the crashed batch's.
			if written := count(t, db, "SELECT count() FROM "+tc.table+" WHERE run_id = 'run-c'"); written <= st1.Rows[tc.table] {
				t.Fatalf("%s rows after the crash = %d, want more than the %d of completed batches (the crashed write is in)",
					tc.table, written, st1.Rows[tc.table])
			}

			s2, stop2 := start(t, cfg, db, nil) // stopped on the count below
			waitFor(t, "the rest committed", func() bool { return s2.Stats().Committed >= total-st1.Committed })
			if err := stop2(); err != nil {
				t.Fatal(err)
			}
			if got := s2.Stats().Records; got != total-st1.Committed {
				t.Errorf("second sink read %d records, want %d (the crashed batch again and the rest)", got, total-st1.Committed)
			}
			for _, tb := range []string{"decisions", "rewards"} {
				rows := count(t, db, "SELECT count() FROM "+tb+" WHERE run_id = 'run-c'")
				keys := count(t, db, "SELECT count(DISTINCT (run_id, layer, tick, app, func)) FROM "+tb+" WHERE run_id = 'run-c'")
				if rows != 300 || keys != 300 {
					t.Errorf("%s: %d rows over %d keys, want 300 rows, one per key", tb, rows, keys)
				}
			}
		})
	}
}

// TestSinkRetentionSweep runs a sink with a retention over a store that
// holds rows written before it: the sweep at the sink's start deletes the
// decisions and rewards written more than the retention ago and keeps the
// newer ones, the run row and the rows the sink writes. The clock is the
// test's, so the sweep's cutoff is exact; Sweep is driven explicitly once
// more after Run to check it finds nothing left.
func TestSinkRetentionSweep(t *testing.T) {
	brokers := startKafka(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := t0
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	setClock := func(t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		clock = t
	}
	db, err := store.OpenDuckDB(t.Context(), filepath.Join(t.TempDir(), "strata.duckdb"), store.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.EnsureSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	write := func(run string, n int) {
		t.Helper()
		var ds []*stratapb.Decision
		var rs []*stratapb.Reward
		for i := range n {
			ds = append(ds, &stratapb.Decision{RunId: run, Layer: "tactical", Tick: int64(i), App: "a", Func: "f"})
			rs = append(rs, &stratapb.Reward{RunId: run, Layer: "tactical", Tick: int64(i), App: "a", Func: "f"})
		}
		if err := db.WriteDecisions(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
		if err := db.WriteRewards(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		if err := db.WriteRuns(t.Context(), []*stratapb.Run{{RunId: run}}); err != nil {
			t.Fatal(err)
		}
	}
	write("run-old", 4)                          // written at t0
	setClock(t0.Add(48 * time.Hour))             // two days later
	write("run-recent", 3)                       // written now
	setClock(t0.Add(48*time.Hour + time.Minute)) // the sink starts
	produce(t, brokers, workload("run-i", 0, 5))
	s, err := New(t.Context(), Config{Brokers: brokers, StopAfterIdle: 2 * time.Second, FlushInterval: 20 * time.Millisecond,
		Retention: 24 * time.Hour, Now: now}, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Expired; got != 8 {
		t.Errorf("Stats().Expired = %d, want 8 (4 decisions, 4 rewards of run-old)", got)
	}
	s.Sweep(ctx)
	for q, want := range map[string]int64{
		"SELECT count() FROM decisions WHERE run_id = 'run-old'":    0,
		"SELECT count() FROM rewards WHERE run_id = 'run-old'":      0,
		"SELECT count() FROM runs WHERE run_id = 'run-old'":         1,
		"SELECT count() FROM decisions WHERE run_id = 'run-recent'": 3,
		"SELECT count() FROM rewards WHERE run_id = 'run-recent'":   3,
		"SELECT count() FROM decisions WHERE run_id = 'run-i'":      5,
	} {
		if got := count(t, db, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	if got := s.Stats().Expired; got != 8 {
		t.Errorf("after a second sweep Stats().Expired = %d, want still 8", got)
	}
}

// TestNewRetentionNeedsExpirer checks that a retention over a store that
// cannot delete rows is refused at New.
func TestNewRetentionNeedsExpirer(t *testing.T) {
	brokers := startKafka(t)
	_, err := New(t.Context(), Config{Brokers: brokers, Retention: time.Hour}, writerOnly{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("New = %v, want an error about the retention", err)
	}
}

// writerOnly is a Writer without Expire.
type writerOnly struct{}

func (writerOnly) WriteRuns(context.Context, []*stratapb.Run) error           { return nil }
func (writerOnly) WriteDecisions(context.Context, []*stratapb.Decision) error { return nil }
func (writerOnly) WriteRewards(context.Context, []*stratapb.Reward) error     { return nil }
func (writerOnly) WriteOutcomes(context.Context, []*stratapb.Outcome) error   { return nil }

func TestSweepInterval(t *testing.T) {
	for r, want := range map[time.Duration]time.Duration{
		time.Minute:         time.Minute,
		24 * time.Hour:      time.Hour,
		12 * time.Hour:      30 * time.Minute,
		30 * 24 * time.Hour: time.Hour,
	} {
		if got := SweepInterval(r); got != want {
			t.Errorf("SweepInterval(%s) = %s, want %s", r, got, want)
		}
	}
}

// hangingWriter is a store that stops answering: its first hangs writes
// block until their context ends (as an INSERT to a SIGSTOPped ClickHouse
// does), the later ones go through. Each write checks the sink's
// backpressure: the records it has polled exceed the rows written by at
// most one batch.
type hangingWriter struct {
	Writer
	hangs    int
	polled   func() float64
	mu       sync.Mutex
	calls    int
	written  int
	maxAhead float64
}

func (h *hangingWriter) write(ctx context.Context, n int, w func(context.Context) error) error {
	h.mu.Lock()
	h.calls++
	hang := h.calls <= h.hangs
	h.maxAhead = max(h.maxAhead, h.polled()-float64(h.written))
	h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return fmt.Errorf("writing: %w", ctx.Err())
	}
	if err := w(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	h.written += n
	h.mu.Unlock()
	return nil
}

func (h *hangingWriter) WriteDecisions(ctx context.Context, rows []*stratapb.Decision) error {
	return h.write(ctx, len(rows), func(ctx context.Context) error { return h.Writer.WriteDecisions(ctx, rows) })
}

func (h *hangingWriter) WriteRewards(ctx context.Context, rows []*stratapb.Reward) error {
	return h.write(ctx, len(rows), func(ctx context.Context) error { return h.Writer.WriteRewards(ctx, rows) })
}

// gather sums the samples of the counter name in reg.
func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestSinkBackpressureWhileStoreHangs runs a sink whose store hangs for
// its first 5 writes (each abandoned at the write timeout and retried with
// backoff): the sink polls at most one batch ahead of what it has written
// — the other records wait on Kafka — and once the store answers, every
// row lands, once per key.
func TestSinkBackpressureWhileStoreHangs(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	const n, batch = 400, 50
	recs := workload("run-h", 0, n)
	produce(t, brokers, recs)
	reg := prometheus.NewRegistry()
	h := &hangingWriter{Writer: db, hangs: 5, polled: func() float64 { return gather(t, reg, "strata_sink_records_total") }}
	cfg := Config{Brokers: brokers, Group: "hang", BatchRows: batch, FlushInterval: 10 * time.Millisecond,
		WriteTimeout: 50 * time.Millisecond, WriteOutage: time.Minute}
	s, stop := start(t, cfg, h, reg)
	waitFor(t, "every record committed", func() bool { return s.Stats().Committed >= int64(len(recs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if retries := gather(t, reg, "strata_sink_write_retries_total"); retries < float64(h.hangs) {
		t.Errorf("%.0f write retries, want at least %d (one per hung write)", retries, h.hangs)
	}
	if h.maxAhead > batch {
		t.Errorf("the sink polled %.0f records beyond those written, more than one batch (%d)", h.maxAhead, batch)
	}
	for _, table := range []string{"decisions", "rewards"} {
		if got := count(t, db, "SELECT count() FROM "+table+" FINAL WHERE run_id = 'run-h'"); got != n {
			t.Errorf("%s = %d, want %d", table, got, n)
		}
	}
	t.Logf("%d writes, %d hung; at most %.0f records polled beyond those written", h.calls, h.hangs, h.maxAhead)
}

// TestSinkWriteOutageBound gives the sink a store that never answers: Run
// returns one error that names the write outage bound.
func TestSinkWriteOutageBound(t *testing.T) {
	brokers := startKafka(t)
	db := openDuck(t)
	produce(t, brokers, workload("run-o", 0, 20))
	h := &hangingWriter{Writer: db, hangs: 1 << 30, polled: func() float64 { return 0 }}
	cfg := Config{Brokers: brokers, Group: "outage", BatchRows: 50, FlushInterval: 10 * time.Millisecond,
		WriteTimeout: 50 * time.Millisecond, WriteOutage: 300 * time.Millisecond}
	s, err := New(t.Context(), cfg, h, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "longer than the write outage bound 300ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with a store that never answers = %v, want the write outage bound's error", err)
	}
	t.Log(err)
}

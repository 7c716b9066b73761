// Package pipelinetest holds what the tests of the pipeline and of the
// commands that run it share: the real-rows trace, a log of the state
// batches a run publishes, a slice as a replay source, and open- and
// closed-loop configurations on the embedded servers with fixed policies.
package pipelinetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// RealTrace is the path of the 998 real rows of the Azure 2021 trace in
// testdata, from any package's directory.
var RealTrace = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "azure2021", "AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv")
}()

// BatchLog collects every state batch a pipeline publishes.
type BatchLog struct {
	mu sync.Mutex
	// Batches are the batches in the order they were published.
	Batches []Logged
}

// Logged is one published state batch.
type Logged struct {
	H    schemas.BatchHeader
	Data []byte
}

// Add records a batch; it is a Config.OnBatch.
func (l *BatchLog) Add(h schemas.BatchHeader, _ int, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Batches = append(l.Batches, Logged{h, append([]byte(nil), data...)})
}

// Hash returns a digest of all batches ordered by (layer, tick, shard).
func (l *BatchLog) Hash() string {
	bs := append([]Logged(nil), l.Batches...)
	sort.Slice(bs, func(i, j int) bool {
		a, b := bs[i].H, bs[j].H
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		if a.Tick != b.Tick {
			return a.Tick < b.Tick
		}
		return a.Shard < b.Shard
	})
	h := sha256.New()
	for _, b := range bs {
		h.Write(b.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReadAll reads a source to the end and returns its invocations.
func ReadAll(t testing.TB, src replay.Source) []replay.Invocation {
	t.Helper()
	var out []replay.Invocation
	for {
		in, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
}

// SliceSource replays Ins.
type SliceSource struct {
	Ins []replay.Invocation
	i   int
}

// Next returns the next invocation, io.EOF after the last.
func (s *SliceSource) Next() (replay.Invocation, error) {
	if s.i >= len(s.Ins) {
		return replay.Invocation{}, io.EOF
	}
	s.i++
	return s.Ins[s.i-1], nil
}

// Config returns an open-loop configuration on the embedded servers that
// records its batches in log.
func Config(runID string, speed replay.Speed, partitions int, log *BatchLog) pipeline.Config {
	return pipeline.Config{Partitions: partitions, Speed: speed, Epoch: grid.DefaultEpoch, RunID: runID,
		LatenessUS: 600_000_000, Logger: slog.New(slog.DiscardHandler), OnBatch: log.Add}
}

// FixedPolicy decides the same for every entity: a test stand-in for the
// baselines, which have their own tests.
type FixedPolicy struct {
	Row schemas.DecisionRow
}

// Name is "fixed".
func (p FixedPolicy) Name() string { return "fixed" }

// Version is "1".
func (p FixedPolicy) Version() string { return "1" }

// Decide decides Row for every entity of st.
func (p FixedPolicy) Decide(_ context.Context, st *schemas.StateBatch, out *schemas.DecisionBatch) error {
	add := func(app, fn string) {
		r := p.Row
		r.App, r.Func = app, fn
		out.Rows = append(out.Rows, r)
	}
	for _, r := range st.Strategic {
		add(r.App, "")
	}
	for _, r := range st.Tactical {
		add(r.App, r.Func)
	}
	for _, r := range st.Operational {
		add(r.App, r.Func)
	}
	return nil
}

// LoopConfig returns closed-loop options with fixed policies on the
// embedded servers; callers may point them at real ones.
func LoopConfig(t testing.TB, runID string, speed replay.Speed, log *BatchLog) pipeline.LoopConfig {
	t.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	o := pipeline.LoopConfig{
		Config: Config(runID, speed, 2, log),
		Model:  m,
		Policies: map[schemas.Layer]worker.Policy{
			schemas.Strategic:   FixedPolicy{Row: schemas.DecisionRow{Provider: "gcp", Action: 2}},
			schemas.Tactical:    FixedPolicy{Row: schemas.DecisionRow{Region: "eu-west", MemoryMB: 512, Action: 2*6 + 2}},
			schemas.Operational: FixedPolicy{Row: schemas.DecisionRow{Prewarm: 1, Action: 1}},
		},
		Engine: twin.Config{DefaultPlacement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3}, Reward: cloud.DefaultRewardConfig(),
			Transitions: map[schemas.Layer]bool{schemas.Strategic: true, schemas.Tactical: true}},
		Profile: func(app, fn string) cloud.Function { return m.NewFunction(app, fn, cloud.USEast, nil) },
	}
	return o
}

// RunLoopInto runs the 998 real rows through the closed loop into st and
// checks that every decision and reward the twin wrote is one row of its
// table (FINAL: ClickHouse merges replaced rows lazily; DuckDB ignores it).
func RunLoopInto(t testing.TB, o pipeline.LoopConfig, st store.Store) pipeline.LoopResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	o.Store, o.Run = st, &stratapb.Run{RunId: o.RunID, Source: "real"}
	r, err := replay.OpenTrace(RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	res, err := pipeline.ClosedLoop(ctx, o, r, "real", 0)
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int64{schemas.TableDecisions: res.Twin.Decisions, schemas.TableRewards: res.Twin.Rewards, schemas.TableRuns: 1} {
		_, rows, err := st.Query(ctx, "SELECT count(*) FROM "+table+" FINAL WHERE run_id = '"+o.RunID+"'")
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(rows[0][0]); got != fmt.Sprint(want) {
			t.Fatalf("%s holds %s rows of the run, the twin wrote %d", table, got, want)
		}
	}
	return res
}

// OperationalState returns an operational state batch of run runID for
// tick with one row per function of app "app".
func OperationalState(runID string, tick int64, funcs ...string) *schemas.StateBatch {
	st := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: runID, Layer: schemas.Operational, Tick: tick,
		TickStartUS: tick * 15_000_000, NShards: 1}}
	for _, f := range funcs {
		r := schemas.OperationalRow{App: "app", Func: f, Invocations: 2}
		r.ConcurrencyPeak[schemas.SeqLen-1] = 2
		st.Operational = append(st.Operational, r)
	}
	return st
}

func WaitFor(t testing.TB, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadRun reads the telemetry and dead-letter topics of names to their ends
// and returns the run's observations and ingest dead letters.
func ReadRun(t testing.TB, ctx context.Context, brokers []string, names schemas.Names, runID string) ([]*stratapb.Observation, []*stratapb.DeadLetter) {
	t.Helper()
	deadTopic := names.Topic(schemas.TopicDeadLetter)
	var obs []*stratapb.Observation
	var dead []*stratapb.DeadLetter
	for _, r := range kafkatest.ReadTopics(t, ctx, brokers, names.Topic(schemas.TopicTelemetry), deadTopic) {
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
	}
	return obs, dead
}

// ClickHouseDB returns a DSN of a fresh database on STRATA_CLICKHOUSE (the
// store creates it on open) and drops the database when the test ends.
func ClickHouseDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STRATA_CLICKHOUSE")
	if base == "" {
		t.Fatal("STRATA_CLICKHOUSE must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("strata_it_%s_%d", strings.ReplaceAll(kafkatest.Slug(t), "-", "_"), time.Now().UnixNano())
	u.Path = "/" + db
	t.Cleanup(func() {
		st, err := store.OpenClickHouse(context.Background(), base)
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { _ = st.Close() }()
		if err := st.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Error(err)
		}
	})
	return u.String()
}

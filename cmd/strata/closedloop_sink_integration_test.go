//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/sink"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// loopKillSpeed paces the 998 real rows (431 ticks, 108 trace minutes) to
// about 13 s of replay, so the loop is certainly still running when the
// sink is killed a few seconds in.
const loopKillSpeed replay.Speed = 500

// TestIntegrationClosedLoopSinkKilled runs the closed loop on real Kafka,
// nats-server and ClickHouse with the sink as a separate `strata sink`
// process, SIGKILLs the sink once some of the run's rows are in while the
// loop still runs, restarts it in the same consumer group, and checks that
// decisions and rewards (FINAL, and their distinct keys) hold exactly what
// the twin wrote: nothing lost, nothing counted twice.
func TestIntegrationClosedLoopSinkKilled(t *testing.T) {
	sl := newSinkLoop(t, "it-loop-kill")
	first := sl.startSink(t, "it-sink-"+sl.runID)
	sl.startLoop(t)
	// Kill the sink once some of the run's decisions are in, mid-run.
	sl.waitSomeWritten(t, first)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	killedAt := time.Since(sl.t0)
	sl.stillRunning(t, "the sink was killed")
	midDecisions, midRewards := sl.count(t, "count()", "decisions FINAL"), sl.count(t, "count()", "rewards FINAL")

	// A killed member stays in the group until its session times out (45 s
	// by default); restarted with the same --instance-id (static
	// membership) the sink takes its partitions back at once.
	second := sl.startSink(t, "it-sink-"+sl.runID)
	want := sl.waitLoop(t)
	res := sl.res
	t.Logf("sink killed %v into the loop with %d decisions and %d rewards of the run written; loop ran: twin wrote %d decisions, %d rewards",
		killedAt.Round(time.Millisecond), midDecisions, midRewards, res.Twin.Decisions, res.Twin.Rewards)
	if int64(midDecisions) >= res.Twin.Decisions || int64(midRewards) >= res.Twin.Rewards {
		t.Fatalf("the sink was killed after it wrote everything (%d decisions, %d rewards): not mid-run", midDecisions, midRewards)
	}
	// The restarted sink catches up: every key exactly once under FINAL.
	sl.waitCaughtUp(t, want, second)
	caughtUp := time.Since(sl.t0)
	s2 := sl.stop(t, second)
	t.Logf("caught up %v after the loop started; restarted sink: %+v", caughtUp.Round(time.Millisecond), s2)
	sl.checkRows(t, want)
}

// TestIntegrationSinkGroupScaleOutAndIn runs the closed loop of
// TestIntegrationClosedLoopSinkKilled with its sink as a group of `strata
// sink` processes: one starts, a second joins the group once some rows
// are in (the partitions are rebalanced between them), the first stops
// with SIGTERM while the loop still runs (the second takes its partitions
// over from their committed offsets), and the second catches up. The
// tables must hold exactly what the twin wrote (FINAL and distinct keys),
// and both processes must have written rows.
func TestIntegrationSinkGroupScaleOutAndIn(t *testing.T) {
	sl := newSinkLoop(t, "it-sink-group")
	first := sl.startSink(t, "")
	sl.startLoop(t)
	sl.waitSomeWritten(t, first)
	second := sl.startSink(t, "")
	// Wait until the second process has joined and written, then stop
	// the first.
	pipelinetest.WaitFor(t, sl.ctx, "the second sink to write rows", func() bool {
		return strings.Contains(second.stderr.String(), "assigned") && sl.count(t, "count()", "rewards") > 0
	})
	n := sl.count(t, "count()", "rewards")
	pipelinetest.WaitFor(t, sl.ctx, "both sinks to write more rows", func() bool { return sl.count(t, "count()", "rewards") > n+100 })
	sl.stillRunning(t, "the first sink stopped")
	s1 := sl.stop(t, first)
	want := sl.waitLoop(t)
	sl.waitCaughtUp(t, want, second)
	s2 := sl.stop(t, second)
	t.Logf("first sink: %+v; second sink: %+v", s1, s2)
	if s1.Rows["rewards"] == 0 || s2.Rows["rewards"] == 0 {
		t.Errorf("rewards written: %d by the first sink, %d by the second; want both to have written", s1.Rows["rewards"], s2.Rows["rewards"])
	}
	sl.checkRows(t, want)
}

// sinkLoop is a closed loop of the 998 real rows on real Kafka and NATS
// whose rows a `strata sink` process (or a group of them) writes to a
// ClickHouse database of the test's own.
type sinkLoop struct {
	ctx     context.Context
	bin     string
	runID   string
	args    []string
	names   schemas.Names
	brokers []string
	natsURL string
	nParts  int
	st      *store.ClickHouse
	t0      time.Time
	res     pipeline.LoopResult
	loopErr error
	done    chan struct{}
}

// newSinkLoop builds strata, creates the test's topics and database and
// writes the run's record for the runs table.
func newSinkLoop(t *testing.T, prefix string) *sinkLoop {
	t.Helper()
	brokers, natsURL := servers(t)
	names := testNames(t)
	dsn := pipelinetest.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	sl := &sinkLoop{ctx: ctx, bin: buildStrata(ctx, t), runID: fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()),
		names: names, brokers: brokers, natsURL: natsURL}
	t.Cleanup(func() {
		cancel()
		if sl.done != nil {
			<-sl.done
		}
	})
	st, err := store.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	sl.st = st
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The test's own topics, created with the count the run will adopt.
	if sl.nParts, err = kafka.ResolvePartitions(ctx, cl, 0, append(names.Topics(), names.Topic(sink.TopicRuns))...); err != nil {
		t.Fatal(err)
	}
	// The runs table's record (runClosedLoop writes it only with a store).
	v, err := proto.Marshal(&stratapb.Run{RunId: sl.runID, Source: "real"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: names.Topic(sink.TopicRuns), Key: []byte(sl.runID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sl.args = []string{"sink", "--kafka", strings.Join(brokers, ","), "--clickhouse", dsn, "--prefix", names.Prefix, "--group", names.Group("it-sink"),
		"--batch-rows", "200", "--flush-interval", "100ms", "--json", "--log-level", "info"}
	return sl
}

// count runs a count query over the run's rows of table.
func (sl *sinkLoop) count(t *testing.T, expr, table string) uint64 {
	t.Helper()
	var n uint64
	q := "SELECT " + expr + " FROM " + table + " WHERE run_id = ?"
	if err := sl.st.Conn().QueryRow(sl.ctx, q, sl.runID).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// startSink starts a `strata sink` process in the test's group, a static
// member with instanceID unless it is "".
func (sl *sinkLoop) startSink(t *testing.T, instanceID string) *sinkProc {
	t.Helper()
	args := sl.args
	if instanceID != "" {
		args = append(slices.Clone(args), "--instance-id", instanceID)
	}
	p := &sinkProc{cmd: exec.CommandContext(sl.ctx, sl.bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.exited)
		p.err = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// startLoop starts the closed loop, with no in-process store: the twin
// writes decisions and rewards to Kafka for the sink processes.
func (sl *sinkLoop) startLoop(t *testing.T) {
	t.Helper()
	o := pipelinetest.LoopConfig(t, sl.runID, loopKillSpeed, &pipelinetest.BatchLog{})
	o.Brokers, o.NATSURL, o.Names, o.Partitions = sl.brokers, sl.natsURL, sl.names, sl.nParts
	tr, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	sl.done, sl.t0 = make(chan struct{}), time.Now()
	go func() {
		defer close(sl.done)
		defer func() { _ = tr.Close() }()
		sl.res, sl.loopErr = pipeline.ClosedLoop(sl.ctx, o, tr, "real", 0)
	}()
}

// waitSomeWritten waits, a minute at most, until p wrote some of the run's
// decisions while the loop runs.
func (sl *sinkLoop) waitSomeWritten(t *testing.T, p *sinkProc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for sl.count(t, "count()", "decisions FINAL") == 0 {
		select {
		case <-sl.done:
			t.Fatalf("the loop ended (%v) before the sink wrote a decision of the run\n%s", sl.loopErr, &p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote no decision of the run in a minute\n%s", &p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stillRunning fails t if the loop has ended: what happened was not
// mid-run.
func (sl *sinkLoop) stillRunning(t *testing.T, what string) {
	t.Helper()
	select {
	case <-sl.done:
		t.Fatalf("the loop ended (%v) before %s: not mid-run", sl.loopErr, what)
	default:
	}
}

// waitLoop waits for the loop and returns the rows the twin wrote per
// table.
func (sl *sinkLoop) waitLoop(t *testing.T) map[string]int64 {
	t.Helper()
	<-sl.done
	if sl.loopErr != nil {
		t.Fatalf("closed loop: %v", sl.loopErr)
	}
	res := sl.res
	if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Twin.Decisions == 0 || res.Twin.Rewards == 0 {
		t.Fatalf("twin %+v: want 431 ticks, 998 invocations observed, some decisions and rewards", res.Twin)
	}
	return map[string]int64{"decisions": res.Twin.Decisions, "rewards": res.Twin.Rewards, "runs": 1}
}

// waitCaughtUp waits, a minute at most, until every table holds want
// rows of the run under FINAL, p still running.
func (sl *sinkLoop) waitCaughtUp(t *testing.T, want map[string]int64, p *sinkProc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		done := true
		for table, n := range want {
			if sl.count(t, "count()", table+" FINAL") != uint64(n) {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("the sink exited: %v\n%s", p.err, &p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute decisions FINAL = %d, rewards FINAL = %d, runs FINAL = %d; want %v\n%s",
				sl.count(t, "count()", "decisions FINAL"), sl.count(t, "count()", "rewards FINAL"), sl.count(t, "count()", "runs FINAL"), want, &p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops p with SIGTERM (it flushes and commits) and returns the
// counters it printed.
func (sl *sinkLoop) stop(t *testing.T, p *sinkProc) sink.Stats {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if p.err != nil {
		t.Fatalf("sink: %v\n%s", p.err, &p.stderr)
	}
	var st sink.Stats
	if err := json.Unmarshal([]byte(p.stdout.String()), &st); err != nil {
		t.Fatalf("sink output %q: %v", &p.stdout, err)
	}
	return st
}

// checkRows checks that each table holds exactly want rows of the run
// under FINAL and as distinct keys. Before merging a key may have several
// rows (a batch written but not committed when a sink died or lost its
// partitions is written again).
func (sl *sinkLoop) checkRows(t *testing.T, want map[string]int64) {
	t.Helper()
	for table, n := range want {
		keys := "count(DISTINCT layer, tick, app, func)"
		if table == "runs" {
			keys = "count(DISTINCT run_id)"
		}
		final, all, distinct := sl.count(t, "count()", table+" FINAL"), sl.count(t, "count()", table), sl.count(t, keys, table)
		t.Logf("%s: %d rows FINAL, %d before merging, %d distinct keys; the twin wrote %d", table, final, all, distinct, n)
		if final != uint64(n) || distinct != uint64(n) || all < uint64(n) {
			t.Errorf("%s holds %d rows of the run FINAL, %d before merging, %d distinct keys (%s): want %d, at least %d, %d",
				table, final, all, distinct, keys, n, n, n)
		}
	}
}

// sinkProc is a `strata sink` process; exited is closed once it has
// exited with err.
type sinkProc struct {
	cmd            *exec.Cmd
	stdout, stderr pipelinetest.SyncBuffer
	exited         chan struct{}
	err            error
}

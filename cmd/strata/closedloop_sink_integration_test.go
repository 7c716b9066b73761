//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
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
	brokers, natsURL := servers(t)
	names := testNames(t)
	dsn := pipelinetest.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building strata: %v\n%s", err, out)
	}
	runID := fmt.Sprintf("it-loop-kill-%d", time.Now().UnixNano())
	group := names.Group("it-sink")

	st, err := store.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	// count runs a count query over the run's rows of table.
	count := func(expr, table string) uint64 {
		t.Helper()
		var n uint64
		q := "SELECT " + expr + " FROM " + table + " WHERE run_id = ?"
		if err := st.Conn().QueryRow(ctx, q, runID).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}

	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The test's own topics, created with the count the run will adopt.
	nParts, err := kafka.ResolvePartitions(ctx, cl, 0, append(names.Topics(), names.Topic(sink.TopicRuns))...)
	if err != nil {
		t.Fatal(err)
	}
	// The runs table's record (runClosedLoop writes it only with a store).
	v, err := proto.Marshal(&stratapb.Run{RunId: runID, Source: "real"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: names.Topic(sink.TopicRuns), Key: []byte(runID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	args := []string{"sink", "--kafka", strings.Join(brokers, ","), "--clickhouse", dsn, "--prefix", names.Prefix, "--group", group,
		"--batch-rows", "200", "--flush-interval", "100ms", "--json", "--instance-id", "it-sink-" + runID}
	startSink := func() *sinkProc {
		t.Helper()
		p := &sinkProc{cmd: exec.CommandContext(ctx, bin, args...), exited: make(chan struct{})}
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
	first := startSink()

	// The loop, with no in-process store: the twin writes decisions and
	// rewards to Kafka for the sink process.
	o := pipelinetest.LoopConfig(t, runID, loopKillSpeed, &pipelinetest.BatchLog{})
	o.Brokers, o.NATSURL, o.Names, o.Partitions = brokers, natsURL, names, nParts
	tr, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	var (
		res     pipeline.LoopResult
		loopErr error
	)
	loopDone := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(loopDone)
		res, loopErr = pipeline.ClosedLoop(ctx, o, tr, "real", 0)
	}()
	defer func() { cancel(); <-loopDone }()

	// Kill the sink once some of the run's decisions are in, mid-run.
	deadline := time.Now().Add(time.Minute)
	for count("count()", "decisions FINAL") == 0 {
		select {
		case <-loopDone:
			t.Fatalf("the loop ended (%v) before the sink wrote a decision of the run\n%s", loopErr, &first.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote no decision of the run in a minute\n%s", &first.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	killedAt := time.Since(t0)
	select {
	case <-loopDone:
		t.Fatalf("the loop ended (%v) before the sink was killed: not mid-run", loopErr)
	default:
	}
	midDecisions, midRewards := count("count()", "decisions FINAL"), count("count()", "rewards FINAL")

	// A killed member stays in the group until its session times out (45 s
	// by default); restarted with the same --instance-id (static
	// membership) the sink takes its partitions back at once.
	second := startSink()

	<-loopDone
	if loopErr != nil {
		t.Fatalf("closed loop: %v", loopErr)
	}
	loopWall := time.Since(t0)
	want := map[string]int64{"decisions": res.Twin.Decisions, "rewards": res.Twin.Rewards, "runs": 1}
	if res.Twin.Ticks != 431 || res.Twin.Telemetry != 998 || res.Twin.Decisions == 0 || res.Twin.Rewards == 0 {
		t.Fatalf("twin %+v: want 431 ticks, 998 invocations observed, some decisions and rewards", res.Twin)
	}
	t.Logf("sink killed %v into the loop with %d decisions and %d rewards of the run written; loop ran %v: twin wrote %d decisions, %d rewards",
		killedAt.Round(time.Millisecond), midDecisions, midRewards, loopWall.Round(time.Millisecond), res.Twin.Decisions, res.Twin.Rewards)
	if int64(midDecisions) >= res.Twin.Decisions || int64(midRewards) >= res.Twin.Rewards {
		t.Fatalf("the sink was killed after it wrote everything (%d decisions, %d rewards): not mid-run", midDecisions, midRewards)
	}

	// The restarted sink catches up: every key exactly once under FINAL.
	deadline = time.Now().Add(time.Minute)
	for {
		done := true
		for table, n := range want {
			if count("count()", table+" FINAL") != uint64(n) {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case <-second.exited:
			t.Fatalf("the restarted sink exited: %v\n%s", second.err, &second.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute decisions FINAL = %d, rewards FINAL = %d, runs FINAL = %d; want %v\n%s",
				count("count()", "decisions FINAL"), count("count()", "rewards FINAL"), count("count()", "runs FINAL"), want, &second.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	caughtUp := time.Since(t0)
	// A clean stop: the sink flushes and commits on SIGTERM.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-second.exited
	if second.err != nil {
		t.Fatalf("restarted sink: %v\n%s", second.err, &second.stderr)
	}
	var s2 sink.Stats
	if err := json.Unmarshal([]byte(second.stdout.String()), &s2); err != nil {
		t.Fatalf("restarted sink output %q: %v", &second.stdout, err)
	}
	t.Logf("caught up %v after the loop started; restarted sink: %+v", caughtUp.Round(time.Millisecond), s2)

	// Before merging a key may have several rows (a batch written but not
	// committed when the sink died is written again); its distinct keys are
	// exactly the twin's.
	for table, n := range want {
		keys := "count(DISTINCT layer, tick, app, func)"
		if table == "runs" {
			keys = "count(DISTINCT run_id)"
		}
		final, all, distinct := count("count()", table+" FINAL"), count("count()", table), count(keys, table)
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

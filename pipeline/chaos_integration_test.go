//go:build integration

package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// chaosServer is a server of one test's own — infra/scripts/kafka.sh or
// nats.sh with its own ports and state directory — that the test SIGKILLs
// and restarts without disturbing the shared servers of the other tests.
type chaosServer struct {
	t      *testing.T
	script string
	env    []string
	// pidFile is where the script keeps the server's pid.
	pidFile string
	addr    string
}

// chaosKafka is a Kafka broker of the test's own.
type chaosKafka = chaosServer

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startChaosKafka starts a broker of the test's own, with kafka.sh's
// environment extended by env, and stops it when the test ends.
func startChaosKafka(t *testing.T, env ...string) *chaosKafka {
	t.Helper()
	port, ctrl := freePort(t), freePort(t)
	state := filepath.Join(t.TempDir(), "kafka")
	k := &chaosServer{t: t, script: "kafka.sh", pidFile: filepath.Join(state, "kafka.pid"), addr: fmt.Sprintf("127.0.0.1:%d", port)}
	k.env = append(append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(port), "KAFKA_CONTROLLER_PORT="+strconv.Itoa(ctrl), "KAFKA_STATE_DIR="+state), env...)
	k.run("start")
	t.Cleanup(func() { k.run("stop") })
	return k
}

// startChaosNATS starts a nats-server with JetStream (file store) of the
// test's own, with nats.sh's environment extended by env, and stops it
// when the test ends; addr is its client URL.
func startChaosNATS(t *testing.T, env ...string) *chaosServer {
	t.Helper()
	port, http := freePort(t), freePort(t)
	state := filepath.Join(t.TempDir(), "nats")
	n := &chaosServer{t: t, script: "nats.sh", pidFile: filepath.Join(state, "nats.pid"), addr: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	n.env = append(append(os.Environ(), "NATS_PORT="+strconv.Itoa(port), "NATS_HTTP_PORT="+strconv.Itoa(http), "NATS_STATE_DIR="+state), env...)
	n.run("start")
	t.Cleanup(func() { n.run("stop") })
	return n
}

func (k *chaosServer) run(cmd string) {
	k.t.Helper()
	c := exec.CommandContext(context.Background(), "bash", filepath.Join("..", "infra", "scripts", k.script), cmd)
	c.Env = k.env
	if out, err := c.CombinedOutput(); err != nil {
		k.t.Errorf("%s %s: %v\n%s", k.script, cmd, err, out)
	}
}

// signal sends sig to the server and returns its pid (0 after a failure,
// which it reports).
func (k *chaosServer) signal(sig syscall.Signal) int {
	k.t.Helper()
	b, err := os.ReadFile(k.pidFile)
	if err != nil {
		k.t.Errorf("reading the server's pid: %v", err)
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		k.t.Errorf("server pid %q: %v", b, err)
		return 0
	}
	if err := syscall.Kill(pid, sig); err != nil {
		k.t.Errorf("sending %v to the server (pid %d): %v", sig, pid, err)
		return 0
	}
	k.t.Logf("%s pid %d: %v", strings.TrimSuffix(k.script, ".sh"), pid, sig)
	return pid
}

// kill SIGKILLs the server and waits until it is gone.
func (k *chaosServer) kill() {
	k.t.Helper()
	pid := k.signal(syscall.SIGKILL)
	for i := 0; pid != 0 && i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// chaosLoop runs the 998 real rows through the closed loop of o into a
// DuckDB store of the test's own; at tick `at` (logged) it calls fault on
// a goroutine of its own. It returns the loop's result, the store and the
// loop's error.
func chaosLoop(t *testing.T, o pipeline.LoopConfig, at int64, fault func()) (pipeline.LoopResult, store.Store, error) {
	t.Helper()
	st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "chaos.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	res, err := chaosLoopOn(t, o, st, at, fault)
	return res, st, err
}

// chaosLoopOn is chaosLoop into the store st.
func chaosLoopOn(t *testing.T, o pipeline.LoopConfig, st store.Store, at int64, fault func()) (pipeline.LoopResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	o.Store, o.Run = st, &stratapb.Run{RunId: o.RunID, Source: "real"}
	faulted := make(chan struct{})
	if fault != nil {
		fired := false
		o.Record = func(tick int64, _ []*schemas.DecisionBatch) {
			if tick == at && !fired {
				fired = true
				t.Logf("fault at tick %d", tick)
				go func() { defer close(faulted); fault() }()
			}
		}
	} else {
		close(faulted)
	}
	r, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	res, err := pipeline.ClosedLoop(ctx, o, r, "real", 0)
	<-faulted
	return res, err
}

// tableCounts returns the run's rows in the decisions and rewards tables.
func tableCounts(t *testing.T, st store.Store, runID string) [2]string {
	t.Helper()
	var out [2]string
	for i, table := range []string{schemas.TableDecisions, schemas.TableRewards} {
		_, rows, err := st.Query(context.Background(), "SELECT count(*) FROM "+table+" WHERE run_id = '"+runID+"'")
		if err != nil {
			t.Fatal(err)
		}
		out[i] = fmt.Sprint(rows[0][0])
	}
	return out
}

// TestChaosKafkaRestartMidLoop SIGKILLs the Kafka broker in the middle of
// a closed loop (tick 150 of the 998 real rows' 431) and restarts it 5 s
// later: the run completes, its decision and reward digests equal an
// uninterrupted run's (on the embedded broker, same run id and config),
// and the store holds exactly the twin's decisions and rewards.
func TestChaosKafkaRestartMidLoop(t *testing.T) {
	const runID = "chaos-restart"
	ref, refStore, err := chaosLoop(t, pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{}), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := startChaosKafka(t)
	o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
	o.Brokers = []string{k.addr}
	o.Logger = pipelinetest.FailureLog(t)
	res, st, err := chaosLoop(t, o, 150, func() {
		k.kill()
		time.Sleep(5 * time.Second)
		k.run("start")
		t.Log("broker restarted")
	})
	if err != nil {
		t.Fatalf("the run did not survive the broker's restart: %v", err)
	}
	if res.Twin.Ticks != ref.Twin.Ticks || res.Twin.DecisionsSHA256 != ref.Twin.DecisionsSHA256 || res.Twin.RewardsSHA256 != ref.Twin.RewardsSHA256 {
		t.Fatalf("after the broker's restart: %d ticks, digests %s / %s; uninterrupted: %d ticks, %s / %s",
			res.Twin.Ticks, res.Twin.DecisionsSHA256, res.Twin.RewardsSHA256, ref.Twin.Ticks, ref.Twin.DecisionsSHA256, ref.Twin.RewardsSHA256)
	}
	want := [2]string{fmt.Sprint(ref.Twin.Decisions), fmt.Sprint(ref.Twin.Rewards)}
	if got, refGot := tableCounts(t, st, runID), tableCounts(t, refStore, runID); got != want || refGot != want {
		t.Fatalf("decisions and rewards in the store %v (uninterrupted run's store %v), the twin wrote %v", got, refGot, want)
	}
	t.Logf("%d ticks, %d decisions, %d rewards; %d arrivals read again and dropped as late, %d as duplicates",
		res.Twin.Ticks, res.Twin.Decisions, res.Twin.Rewards, res.Twin.LateArrivals, res.Twin.DuplicateArrivals)
}

// TestChaosKafkaOutageBound SIGKILLs the broker mid-loop and leaves it
// down: the run ends, once the outage bound (5 s here) has passed, with one
// error that says Kafka was unreachable for longer than the bound.
func TestChaosKafkaOutageBound(t *testing.T) {
	k := startChaosKafka(t)
	o := pipelinetest.LoopConfig(t, "chaos-outage", 0, &pipelinetest.BatchLog{})
	o.Brokers, o.KafkaOutage = []string{k.addr}, 5*time.Second
	o.Logger = pipelinetest.FailureLog(t)
	var killed time.Time
	_, _, err := chaosLoop(t, o, 150, func() { k.kill(); killed = time.Now() })
	if err == nil || !strings.Contains(err.Error(), "longer than the outage bound 5s") {
		t.Fatalf("run with the broker gone: %v, want the outage bound's error", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the run hit the test's deadline instead of the outage bound: %v", err)
	}
	t.Logf("ended %s after the broker died: %v", time.Since(killed).Round(time.Second), err)
}

// TestChaosNATSRestartMidLoop SIGKILLs nats-server (JetStream with its
// file store) in the middle of a closed loop (tick 150 of the 998 real
// rows' 431) and restarts it 3 s later: the run completes, its decision
// and reward digests equal an uninterrupted run's, and the store holds
// exactly the twin's decisions and rewards. The state and decision
// batches published through the outage are sent again in order
// (natsbus.BatchPublisher) and the followers resume after their last
// batch (natsbus.Follow).
func TestChaosNATSRestartMidLoop(t *testing.T) {
	const runID = "chaos-nats-restart"
	ref, refStore, err := chaosLoop(t, pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{}), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startChaosNATS(t)
	o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
	o.NATSURL = n.addr
	o.Logger = pipelinetest.FailureLog(t)
	res, st, err := chaosLoop(t, o, 150, func() {
		n.kill()
		time.Sleep(3 * time.Second)
		n.run("start")
		t.Log("nats-server restarted")
	})
	if err != nil {
		t.Fatalf("the run did not survive nats-server's restart: %v", err)
	}
	if res.Twin.Ticks != ref.Twin.Ticks || res.Twin.DecisionsSHA256 != ref.Twin.DecisionsSHA256 || res.Twin.RewardsSHA256 != ref.Twin.RewardsSHA256 {
		t.Fatalf("after nats-server's restart: %d ticks, digests %s / %s; uninterrupted: %d ticks, %s / %s",
			res.Twin.Ticks, res.Twin.DecisionsSHA256, res.Twin.RewardsSHA256, ref.Twin.Ticks, ref.Twin.DecisionsSHA256, ref.Twin.RewardsSHA256)
	}
	want := [2]string{fmt.Sprint(ref.Twin.Decisions), fmt.Sprint(ref.Twin.Rewards)}
	if got, refGot := tableCounts(t, st, runID), tableCounts(t, refStore, runID); got != want || refGot != want {
		t.Fatalf("decisions and rewards in the store %v (uninterrupted run's store %v), the twin wrote %v", got, refGot, want)
	}
	t.Logf("%d ticks, %d decisions, %d rewards, equal digests after the restart", res.Twin.Ticks, res.Twin.Decisions, res.Twin.Rewards)
}

// TestChaosNATSOutageBound SIGKILLs nats-server mid-loop and leaves it
// down: the run ends, once the NATS outage bound (5 s here) has passed,
// with one error that says NATS was unreachable for longer than the
// bound.
func TestChaosNATSOutageBound(t *testing.T) {
	n := startChaosNATS(t)
	o := pipelinetest.LoopConfig(t, "chaos-nats-outage", 0, &pipelinetest.BatchLog{})
	o.NATSURL, o.NATSOutage = n.addr, 5*time.Second
	o.Logger = pipelinetest.FailureLog(t)
	var killed time.Time
	_, _, err := chaosLoop(t, o, 150, func() { n.kill(); killed = time.Now() })
	if err == nil || !strings.Contains(err.Error(), "longer than the outage bound 5s") {
		t.Fatalf("run with nats-server gone: %v, want the outage bound's error", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the run hit the test's deadline instead of the outage bound: %v", err)
	}
	t.Logf("ended %s after nats-server died: %v", time.Since(killed).Round(time.Second), err)
}

// startChaosClickHouse starts a ClickHouse server of the test's own and
// stops it when the test ends; addr is its DSN.
func startChaosClickHouse(t *testing.T, env ...string) *chaosServer {
	t.Helper()
	tcp, http := freePort(t), freePort(t)
	state := filepath.Join(t.TempDir(), "clickhouse")
	c := &chaosServer{t: t, script: "clickhouse.sh", pidFile: filepath.Join(state, "clickhouse.pid"),
		addr: fmt.Sprintf("clickhouse://127.0.0.1:%d/default?dial_timeout=5s", tcp)}
	c.env = append(append(os.Environ(), "CH_TCP_PORT="+strconv.Itoa(tcp), "CH_HTTP_PORT="+strconv.Itoa(http), "CH_STATE_DIR="+state), env...)
	c.run("start")
	t.Cleanup(func() { c.run("stop") })
	return c
}

// counter sums the samples of the counter name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	sum, err := metricSum(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestChaosClickHouseStoppedMidLoop SIGSTOPs the ClickHouse server under
// the closed loop's sink at tick 150 of the 998 real rows' 431 and
// SIGCONTs it 30 s later. Meanwhile the sink's inserts hang until their
// write timeout (10 s) and are retried with backoff, and the sink polls no
// more from Kafka than one batch (10,000 records; this run's 1,800 or so
// fit in one, so TestSinkBackpressureWhileStoreHangs checks the bound with
// small batches). The run completes, and decisions and rewards in
// ClickHouse (FINAL, and their distinct keys) equal the twin's counts. It
// logs the sink's retries, the records it polled during the stop and the
// process's peak heap then.
func TestChaosClickHouseStoppedMidLoop(t *testing.T) {
	const runID = "chaos-ch-stop"
	c := startChaosClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := store.OpenClickHouse(ctx, c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	reg := prometheus.NewRegistry()
	o := pipelinetest.LoopConfig(t, runID, 0, &pipelinetest.BatchLog{})
	o.Logger, o.Registerer = pipelinetest.FailureLog(t), reg
	var polledBefore, polledDuring float64
	var heapBefore, heapPeak uint64
	res, err := chaosLoopOn(t, o, st, 150, func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapBefore = ms.HeapInuse
		c.signal(syscall.SIGSTOP)
		polledBefore = counter(t, reg, "strata_sink_records_total")
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			runtime.ReadMemStats(&ms)
			heapPeak = max(heapPeak, ms.HeapInuse)
		}
		polledDuring = counter(t, reg, "strata_sink_records_total") - polledBefore
		c.signal(syscall.SIGCONT)
	})
	if err != nil {
		t.Fatalf("the run did not survive ClickHouse's stop: %v", err)
	}
	retries := counter(t, reg, "strata_sink_write_retries_total")
	if retries == 0 {
		t.Errorf("the sink retried no write through a 30 s stop")
	}
	if polledDuring > 10000 {
		t.Errorf("the sink polled %.0f records while ClickHouse was stopped, more than one batch (10000)", polledDuring)
	}
	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := st.Conn().QueryRow(ctx, q, runID).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	for _, tc := range []struct {
		table string
		want  int64
	}{{schemas.TableDecisions, res.Twin.Decisions}, {schemas.TableRewards, res.Twin.Rewards}} {
		final := count("SELECT count() FROM " + tc.table + " FINAL WHERE run_id = ?")
		distinct := count("SELECT count(DISTINCT (layer, tick, app, func)) FROM " + tc.table + " WHERE run_id = ?")
		all := count("SELECT count() FROM " + tc.table + " WHERE run_id = ?")
		if final != uint64(tc.want) || distinct != uint64(tc.want) {
			t.Errorf("%s: %d rows FINAL, %d distinct keys (%d rows before merging); the twin wrote %d", tc.table, final, distinct, all, tc.want)
		}
		t.Logf("%s: %d rows FINAL = %d distinct keys = the twin's %d (%d rows before merging)", tc.table, final, distinct, tc.want, all)
	}
	t.Logf("%d ticks; sink: %.0f write retries, %.0f records polled while stopped (%.0f before), %d batches; heap in use %d MiB before the stop, peak %d MiB during it",
		res.Twin.Ticks, retries, polledDuring, polledBefore, res.Sink.Batches, heapBefore>>20, heapPeak>>20)
}

// TestChaosKafkaDownDuringIngest SIGKILLs the Kafka broker in the middle of
// a live load through `strata ingest` (in process) and restarts it 5 s
// later: requests meanwhile are answered 503 with Retry-After, the load
// generator's retries deliver every record, every acknowledged record is
// on Kafka, and a feature consumer downstream — itself polling through the
// outage — counts each invocation id once.
func TestChaosKafkaDownDuringIngest(t *testing.T) {
	k := startChaosKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	runID := "chaos-ingest"
	logger := pipelinetest.FailureLog(t)
	cfg := pipeline.Config{Brokers: []string{k.addr}, Partitions: 3, RunID: runID, Logger: logger}
	env, closeEnv, err := cfg.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	names := env.Names
	srv, err := ingest.New(ctx, ingest.Config{Brokers: env.Brokers, RunID: runID, Names: names, Topic: names.Topic(schemas.TopicTelemetry),
		Tokens: []string{"tok"}, Lateness: 15 * time.Minute, WatermarkEvery: time.Second,
		ProduceTimeout: 2 * time.Second, WriteTimeout: 10 * time.Second}, logger.With("role", "ingest"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln, "", "") }()
	kv, err := env.JS.KeyValue(ctx, names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		t.Fatal(err)
	}
	fsvc, err := features.NewService(ctx, features.Config{Brokers: env.Brokers, Names: names, Epoch: pipeline.LiveEpoch, RunID: runID},
		natsbus.NewBatchPublisher(env.JS, 0), features.KVCheckpoints{KV: kv}, logger.With("role", "features"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFeatures := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	go func() { fdone <- fsvc.Run(fctx) }()

	src, err := replay.NewSynth(replay.SynthConfig{Days: 2, Seed: 5, Apps: 40})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	load := pipelinetest.StartLoad(ctx, "http://"+ln.Addr().String(), n, 4, src)
	pipelinetest.WaitFor(t, ctx, "a fifth of the load to be acknowledged", func() bool { return load.Acked() >= n/5 })
	k.kill()
	time.Sleep(5 * time.Second)
	k.run("start")
	res := load.Wait(t)
	stopServe()
	if err := <-served; err != nil {
		t.Fatalf("ingest did not stop cleanly after the outage: %v", err)
	}
	obs, _ := pipelinetest.ReadRun(t, ctx, env.Brokers, names, runID)
	inKafka := load.OnKafka(t, res, obs)
	if res.Records != n {
		t.Fatalf("%d records sent, want %d", res.Records, n)
	}
	pipelinetest.WaitFor(t, ctx, "the feature consumer to read every record", func() bool {
		select {
		case err := <-fdone:
			fdone <- err
			t.Fatalf("the feature consumer stopped (%+v): %v", fsvc.Stats(), err)
		default:
		}
		st := fsvc.Stats()
		return st.Invocations+st.Duplicates+st.Late >= int64(len(obs))
	})
	stopFeatures()
	<-fdone
	st := fsvc.Stats()
	if st.Invocations != int64(len(inKafka)) || st.Late != 0 {
		t.Fatalf("features counted %d invocations (%d duplicates, %d late); Kafka holds %d distinct ids in %d records",
			st.Invocations, st.Duplicates, st.Late, len(inKafka), len(obs))
	}
	t.Logf("load %+v; Kafka holds %d records of %d ids; features counted %d, dropped %d duplicates",
		res, len(obs), len(inKafka), st.Invocations, st.Duplicates)
}

//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// TestIntegrationReplayScaledOut runs the 998 real rows' closed loop on real
// Kafka and NATS as six processes — two twin shards (`strata run
// --twin-shard I/2 --external-features --operational external`, shard 0
// with the replay and the strategic and tactical agents), two `strata
// features` processes in one group and two `strata agent` processes
// serving the operational layer — with the replay paced (--speed 200,
// about 32 s) so that one process of each role can be killed by SIGKILL
// and restarted mid-run: a feature process (restarted with its instance
// id), an agent, and twin shard 1 (STRATA_FAULT after a tick, restarted
// with --resume from its checkpoint). The decisions and rewards topics
// must hold exactly the records of one `strata run` of the same rows
// (digests equal), the state stream each (layer, tick, shard) batch once
// and every invocation counted once, and the shards' invocations must add
// up to the run's.
func TestIntegrationReplayScaledOut(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	const runID = "it-scaled-out"
	dir := t.TempDir()
	run := func(names schemas.Names, summary string, extra ...string) []string {
		return realRowsRun(brokers, natsURL, names, runID, summary, append([]string{"--partitions", "4", "--store", ""}, extra...)...)
	}
	refNames := testNames(t)
	refJS := jetStreamForTest(ctx, t, natsURL, refNames)
	if out, err := exec.CommandContext(ctx, bin, run(refNames, filepath.Join(dir, "ref.json"))...).CombinedOutput(); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	want := readSummary(t, filepath.Join(dir, "ref.json"))

	names := testNames(t)
	js := jetStreamForTest(ctx, t, natsURL, names)
	var procs procSet
	defer procs.kill(t)
	shardArgs := func(i int, extra ...string) []string {
		return run(names, filepath.Join(dir, fmt.Sprintf("shard%d.json", i)), append([]string{"--twin-shard", fmt.Sprintf("%d/2", i),
			"--external-features", "--operational", "external", "--speed", "200", "--twin-checkpoint-every", "15m", "--log-level", "info"}, extra...)...)
	}
	// Shard 1's twin kills itself after tick 310's telemetry; its last
	// checkpoint is after tick 299.
	const faultTick = 310
	shard0 := procs.start(ctx, t, "twin shard 0", nil, bin, shardArgs(0)...)
	shard1 := procs.start(ctx, t, "twin shard 1", []string{pipeline.FaultEnv + "=twin-tick:" + fmt.Sprint(faultTick)}, bin, shardArgs(1)...)
	featureArgs := func(id string) []string {
		return []string{"features", "--kafka", brokers[0], "--nats", natsURL, "--prefix", names.Prefix, "--run-id", runID,
			"--checkpoint-every", "100ms", "--stop-after-final", "--instance-id", id, "--log-level", "info"}
	}
	featA := procs.start(ctx, t, "features a", nil, bin, featureArgs("features-a")...)
	featB := procs.start(ctx, t, "features b", nil, bin, featureArgs("features-b")...)
	agentArgs := []string{"agent", "--layer", "operational", "--policy", pipeline.DefaultOperationalPolicy,
		"--run-id", runID, "--nats", natsURL, "--prefix", names.Prefix, "--log-level", "info"}
	agentA := procs.start(ctx, t, "agent a", nil, bin, agentArgs...)
	agentB := procs.start(ctx, t, "agent b", nil, bin, agentArgs...)

	// The run's operational batches: 431 ticks × 4 partitions.
	const opBatches = 431 * 4
	count := func(stream string) func() uint64 {
		return func() uint64 {
			s, err := js.Stream(ctx, names.Stream(stream))
			if err != nil {
				return 0
			}
			info, err := s.Info(ctx)
			if err != nil {
				return 0
			}
			return info.State.Msgs
		}
	}
	states, decisions := count(schemas.StreamState), count(schemas.StreamDecision)
	pipelinetest.WaitFor(t, ctx, "a fifth of the run's state batches", func() bool { return states() > opBatches/5 })
	featA.sigkill(t)
	t.Logf("feature process a killed at %d state batches", states())
	featA = procs.start(ctx, t, "features a, restarted", nil, bin, featureArgs("features-a")...)
	pipelinetest.WaitFor(t, ctx, "two fifths of the run decided", func() bool { return decisions() > 2*opBatches/5 })
	agentA.sigkill(t)
	t.Logf("agent a killed at %d decision batches", decisions())
	agentA = procs.start(ctx, t, "agent a, restarted", nil, bin, agentArgs...)
	if err := shard1.wait(); err == nil {
		t.Fatalf("twin shard 1 ended without its fault at tick %d:\n%s", faultTick, shard1.out)
	}
	if !bytes.Contains(shard1.out.Bytes(), []byte("fault injection: SIGKILL")) {
		t.Fatalf("twin shard 1 ended before its fault:\n%s", shard1.out)
	}
	t.Logf("twin shard 1 killed itself after tick %d (%d decision batches)", faultTick, decisions())
	shard1 = procs.start(ctx, t, "twin shard 1, resumed", nil, bin, shardArgs(1, "--resume")...)

	for _, p := range []*proc{shard0, shard1, featA, featB} {
		if err := p.wait(); err != nil {
			t.Fatalf("%s: %v\n%s", p.name, err, p.out)
		}
	}
	// Both feature processes windowed part of the run, the restarted one
	// on the partitions it took back.
	checkBothPublished(t, lineOf(featA.out.String(), "features: "), lineOf(featB.out.String(), "features: "))
	if !bytes.Contains(shard1.out.Bytes(), []byte("resuming the run")) {
		t.Errorf("the restarted twin shard 1 did not resume from a checkpoint:\n%s", shard1.out)
	}
	for _, p := range []*proc{agentA, agentB} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(); err != nil {
			t.Fatalf("%s did not stop cleanly: %v\n%s", p.name, err, p.out)
		}
	}

	var invocations float64
	for i := range 2 {
		got := readSummary(t, filepath.Join(dir, fmt.Sprintf("shard%d.json", i)))
		if got["twin_ticks"] != want["twin_ticks"] {
			t.Errorf("shard %d: %v ticks, the run %v", i, got["twin_ticks"], want["twin_ticks"])
		}
		n, _ := got["invocations"].(float64)
		invocations += n
	}
	if invocations != want["invocations"] {
		t.Errorf("the shards' invocations add up to %v, the run has %v", invocations, want["invocations"])
	}
	wantSeen, wantCounted := stateBatches(ctx, t, refJS, refNames, 1, runID)
	seen, counted := stateBatches(ctx, t, js, names, 1, runID)
	if len(seen) != len(wantSeen) {
		t.Errorf("%d distinct state batches on the stream, one process published %d", len(seen), len(wantSeen))
	}
	for h, n := range seen {
		if n != 1 || wantSeen[h] != 1 {
			t.Errorf("state batch %+v: %d times on the stream, %d times from one process", h, n, wantSeen[h])
		}
	}
	for k, n := range wantCounted {
		if counted[k] != n {
			t.Errorf("%s/%s: %d invocations windowed, %d by one process", k.app[:8], k.fn[:8], counted[k], n)
		}
	}
	t.Logf("state: %d batches, each once; invocations of %d functions counted as by one process", len(seen), len(counted))
	for _, topic := range []string{schemas.TopicDecisions, schemas.TopicRewards} {
		w, wd := keyedRecords(ctx, t, brokers, refNames.Topic(topic), topic)
		g, gd := keyedRecords(ctx, t, brokers, names.Topic(topic), topic)
		t.Logf("%s: %d records, digest %s from one process; %d, digest %s from six processes", topic, len(w), wd, len(g), gd)
		if len(w) == 0 || len(g) != len(w) || gd != wd {
			t.Errorf("%s: the scaled-out run wrote %d records (digest %s), one process %d (%s)", topic, len(g), gd, len(w), wd)
		}
	}
}

// lineOf returns the last line of out that begins with prefix, or "".
func lineOf(out, prefix string) string {
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			line = l
		}
	}
	return line
}

// proc is a strata process of a test, its output kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
	err  error
}

// wait waits for the process to end and returns how it ended.
func (p *proc) wait() error {
	<-p.done
	return p.err
}

// sigkill kills the process and waits for it.
func (p *proc) sigkill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
}

// procSet is the processes a test started.
type procSet []*proc

// start starts bin with args (and env added to the test's environment)
// as a process named name.
func (ps *procSet) start(ctx context.Context, t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.CommandContext(ctx, bin, args...), out: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	*ps = append(*ps, p)
	return p
}

// kill kills the processes still running and waits for them, so that a
// test that failed half way leaves none behind; if t failed, it logs the
// tail of what each printed.
func (ps *procSet) kill(t *testing.T) {
	for _, p := range *ps {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			out := p.out.Bytes()
			t.Logf("%s printed (tail):\n%s", p.name, out[max(0, len(out)-3000):])
		}
	}
}

// TestIntegrationLiveScaledOut runs a live run on real Kafka and NATS as
// eight processes behind a round-robin load balancer (a reverse proxy in the
// test): three `strata ingest` (each its own watermark writer), two
// `strata features` in one group, two `strata agent` serving the
// operational layer and a `strata shadow` twin. Under a paced load over
// HTTP (50 records a second for 60 s of wall time, the load generator
// retrying what was not acknowledged) one process of each role is killed
// by SIGKILL and restarted on the run: an ingest instance (same writer id
// and address), a feature process (same instance id), an agent, and the
// shadow (STRATA_FAULT after a tick; it goes on from its checkpoint).
// Nothing acknowledged may be lost or counted twice: the outcomes on
// Kafka hold exactly the acknowledged invocation ids, the restarted
// shadow's arrivals equal their number, and the state stream holds each
// (layer, tick, shard) batch once, counting every acknowledged invocation
// once.
func TestIntegrationLiveScaledOut(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	names := testNames(t)
	js := jetStreamForTest(ctx, t, natsURL, names)
	const runID = "it-live-scaled-out"
	epoch := pipeline.LiveEpoch.Format(time.RFC3339)
	common := []string{"--kafka", strings.Join(brokers, ","), "--nats", natsURL, "--prefix", names.Prefix, "--run-id", runID}
	var procs procSet
	defer procs.kill(t)

	// The shadow kills itself after the tick after the load's first, which
	// it evaluates when the watermarks have passed its end by the lateness
	// (about 50 s into the load); its checkpoints are a tick apart.
	k0 := grid.TickOf(time.Now().UnixMicro(), grid.OperationalTickUS)
	shadowArgs := append([]string{"shadow", "--partitions", "4", "--layers", "operational", "--checkpoint-every", "15s", "--log-level", "info"}, common...)
	shadow := procs.start(ctx, t, "shadow", []string{pipeline.FaultEnv + "=" + fmt.Sprintf("%s:%d", twin.FaultTick, k0+1)}, bin, shadowArgs...)
	// The shadow creates the run's topics; ingest writes to them.
	admin, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	pipelinetest.WaitFor(t, ctx, "the shadow to create the topics", func() bool {
		n, err := kafka.PartitionCount(ctx, admin, names.Topic(schemas.TopicTelemetry))
		return err == nil && n == 4
	})
	addrs := make([]string, 3)
	targets := make([]*url.URL, 3)
	for i := range addrs {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		_ = ln.Close()
		targets[i] = &url.URL{Scheme: "http", Host: addrs[i]}
	}
	// Lateness 20 s: a request the kill interrupted is retried, through
	// another instance, within it.
	ingestArgs := func(i int) []string {
		return append([]string{"ingest", "--tokens", "tok", "--listen", addrs[i], "--lateness", "20s",
			"--writer-id", fmt.Sprintf("ingest-%d", i), "--log-level", "warn"}, common...)
	}
	startIngest := func(i int, name string) *proc {
		p := procs.start(ctx, t, name, nil, bin, ingestArgs(i)...)
		waitServing(t, ctx, name, addrs[i])
		return p
	}
	ingests := make([]*proc, 3)
	for i := range ingests {
		ingests[i] = startIngest(i, fmt.Sprintf("ingest %d", i))
	}
	featureArgs := func(id string) []string {
		return append([]string{"features", "--trace-epoch", epoch, "--checkpoint-every", "1s", "--instance-id", id, "--log-level", "info"}, common...)
	}
	featA := procs.start(ctx, t, "features a", nil, bin, featureArgs("features-a")...)
	featB := procs.start(ctx, t, "features b", nil, bin, featureArgs("features-b")...)
	agentArgs := []string{"agent", "--layer", "operational", "--policy", pipeline.DefaultOperationalPolicy, "--trace-epoch", epoch,
		"--run-id", runID, "--nats", natsURL, "--prefix", names.Prefix, "--log-level", "info"}
	agentA := procs.start(ctx, t, "agent a", nil, bin, agentArgs...)
	agentB := procs.start(ctx, t, "agent b", nil, bin, agentArgs...)

	// The load balancer: each request to the next instance; a dead one
	// answers 502, which the load generator retries.
	var next atomic.Uint64
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(targets[next.Add(1)%uint64(len(targets))])
	}, ErrorLog: log.New(io.Discard, "", 0)})
	defer lb.Close()
	synth, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 9, Apps: 20})
	if err != nil {
		t.Fatal(err)
	}
	const rate, seconds = 50, 60
	load := pipelinetest.StartLoadWith(ctx, loadgen.Config{URL: lb.URL, Rate: rate, Batch: 10, Concurrency: 2, Limit: rate * seconds},
		shortInvocations{src: synth, maxUS: 5_000_000})
	killAt := func(acked int, p *proc, restart func() *proc) *proc {
		pipelinetest.WaitFor(t, ctx, fmt.Sprintf("%d records acknowledged", acked), func() bool { return load.Acked() >= acked })
		p.sigkill(t)
		t.Logf("%s killed at %d records acknowledged", p.name, load.Acked())
		return restart()
	}
	ingests[1] = killAt(rate*seconds/6, ingests[1], func() *proc {
		// Down for two seconds of load: the balancer's requests to it
		// fail and are retried through the others.
		n := load.Acked()
		pipelinetest.WaitFor(t, ctx, "the load to go on without ingest 1", func() bool { return load.Acked() >= n+2*rate })
		return startIngest(1, "ingest 1, restarted")
	})
	featA = killAt(rate*seconds/3, featA, func() *proc {
		return procs.start(ctx, t, "features a, restarted", nil, bin, featureArgs("features-a")...)
	})
	agentA = killAt(rate*seconds/2, agentA, func() *proc { return procs.start(ctx, t, "agent a, restarted", nil, bin, agentArgs...) })
	select {
	case <-shadow.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the shadow was not killed at tick %d:\n%s", k0+1, shadow.out)
	}
	if !bytes.Contains(shadow.out.Bytes(), []byte("fault injection: SIGKILL")) {
		t.Fatalf("the shadow ended, but not at its fault (%v):\n%s", shadow.err, shadow.out)
	}
	t.Logf("the shadow killed itself after tick %d, at %d records acknowledged", k0+1, load.Acked())
	shadow = procs.start(ctx, t, "shadow, restarted", nil, bin, shadowArgs...)
	res := load.Wait(t)
	acked := load.AckedIDs()
	if int64(len(acked)) != res.Records {
		t.Fatalf("%d distinct ids acknowledged, %d records sent", len(acked), res.Records)
	}
	t.Logf("load: %+v", res)
	if res.Retries == 0 {
		t.Error("no request was retried: the load never met the killed ingest instance")
	}

	// Every acknowledged record's outcome, once the ingest watermarks have
	// closed its tick and the shadow has evaluated it.
	outcomes := func() map[string]bool {
		ids := map[string]bool{}
		for _, r := range kafkatest.ReadTopics(t, ctx, brokers, names.Topic(schemas.TopicOutcomes)) {
			var o stratapb.Outcome
			if err := proto.Unmarshal(r.Value, &o); err != nil {
				t.Fatal(err)
			}
			if o.GetRunId() == runID {
				ids[o.GetInvocationId()] = true
			}
		}
		return ids
	}
	var got map[string]bool
	pipelinetest.WaitFor(t, ctx, "the outcomes of every acknowledged record", func() bool {
		select {
		case <-shadow.done:
			t.Fatalf("the restarted shadow stopped: %v\n%s", shadow.err, shadow.out)
		default:
		}
		got = outcomes()
		return len(got) >= len(acked)
	})
	for id := range acked {
		if !got[id] {
			t.Fatalf("acknowledged record %s has no outcome", id)
		}
	}
	if len(got) != len(acked) {
		t.Errorf("the outcomes hold %d invocation ids, %d were acknowledged", len(got), len(acked))
	}
	for _, p := range append([]*proc{shadow, featA, featB, agentA, agentB}, ingests...) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(); err != nil {
			t.Fatalf("%s did not stop cleanly: %v\n%s", p.name, err, p.out)
		}
	}
	checkBothPublished(t, lineOf(featA.out.String(), "features: "), lineOf(featB.out.String(), "features: "))
	if !bytes.Contains(shadow.out.Bytes(), []byte("twin restored from its checkpoint")) {
		t.Errorf("the restarted shadow did not go on from a checkpoint:\n%s", shadow.out)
	}
	var ticks, arrivals int64
	if l := lineOf(shadow.out.String(), "shadow: "); l != "" {
		if _, err := fmt.Sscanf(l, "shadow: %d ticks, %d arrivals", &ticks, &arrivals); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	if arrivals != int64(len(acked)) {
		t.Errorf("the restarted shadow counts %d arrivals over %d ticks; %d invocation ids were acknowledged", arrivals, ticks, len(acked))
	}
	seen, counted := stateBatches(ctx, t, js, names, 1, runID)
	var windowed int64
	for _, n := range counted {
		windowed += n
	}
	for h, n := range seen {
		if n != 1 {
			t.Errorf("state batch %+v: %d times on the stream", h, n)
		}
	}
	if windowed != int64(len(acked)) {
		t.Errorf("the state batches count %d invocations, %d were acknowledged", windowed, len(acked))
	}
	t.Logf("%d outcomes = acknowledged ids; shadow %d arrivals over %d ticks; %d state batches counting %d invocations",
		len(got), arrivals, ticks, len(seen), windowed)
}

//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestIntegrationIngestKilledMidLoad kills `strata ingest` (SIGKILL) in the
// middle of a load and restarts it; the load generator retries what was not
// acknowledged. Every acknowledged record must be on Kafka at least once,
// and a feature consumer downstream must count every invocation id exactly
// once.
func TestIntegrationIngestKilledMidLoad(t *testing.T) {
	brokers, natsURL := servers(t)
	names := testNames(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	runID := fmt.Sprintf("it-ingest-kill-%d", time.Now().UnixNano())
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	// The test's own topics (ingest writes telemetry and dead letters,
	// the feature consumer below reads the telemetry from the start).
	admin, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kafka.ResolvePartitions(ctx, admin, 3, names.Topics()...); err != nil {
		t.Fatal(err)
	}
	// 15 min: above the synthetic trace's longest durations, so that no
	// record is late (telemetry arrives when an invocation ends).
	args := []string{"ingest", "--kafka", brokers[0], "--run-id", runID, "--prefix", names.Prefix, "--tokens", "tok", "--listen", addr,
		"--lateness", "15m", "--log-level", "warn"}
	startIngest := func() *exec.Cmd {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitServing(t, ctx, "strata ingest", addr)
		return cmd
	}

	// Downstream: a feature consumer of the run.
	js := jetStreamForTest(ctx, t, natsURL, names)
	kv, err := js.KeyValue(ctx, names.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		t.Fatal(err)
	}
	fsvc, err := features.NewService(ctx, features.Config{Brokers: brokers, Names: names, Epoch: pipeline.LiveEpoch, RunID: runID},
		natsbus.NewBatchPublisher(js, 0), features.KVCheckpoints{KV: kv},
		slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFeatures := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	go func() { fdone <- fsvc.Run(fctx) }()
	defer func() {
		stopFeatures()
		<-fdone
	}()

	first := startIngest()
	s, err := replay.NewSynth(replay.SynthConfig{Days: 2, Seed: 5, Apps: 40})
	if err != nil {
		t.Fatal(err)
	}
	// As fast as ingest takes them, eight requests in flight: the kill
	// interrupts requests whose records may be on Kafka unacknowledged.
	const n = 40000
	load := pipelinetest.StartLoad(ctx, "http://"+addr, n, 8, s)
	pipelinetest.WaitFor(t, ctx, "a fifth of the load to be acknowledged", func() bool { return load.Acked() >= n/5 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := load.Acked()
	second := startIngest()
	res := load.Wait(t)
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("restarted ingest did not stop cleanly: %v", err)
	}

	obs, _ := pipelinetest.ReadRun(t, ctx, brokers, names, runID)
	inKafka := load.OnKafka(t, res, obs)
	if res.Records < n/2 {
		t.Fatalf("%d records acknowledged, want at least %d", res.Records, n/2)
	}
	lastLog := time.Now()
	pipelinetest.WaitFor(t, ctx, "the feature consumer to read every record", func() bool {
		select {
		case err := <-fdone:
			fdone <- err
			t.Fatalf("the feature consumer stopped early (%+v): %v", fsvc.Stats(), err)
		default:
		}
		st := fsvc.Stats()
		if st.Invocations+st.Duplicates+st.Late >= int64(len(obs)) {
			return true
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			t.Logf("features so far: %d invocations, %d duplicates, %d late, %d other runs of %d records",
				st.Invocations, st.Duplicates, st.Late, st.OtherRuns, len(obs))
		}
		return false
	})
	st := fsvc.Stats()
	if st.Invocations != int64(len(inKafka)) || st.Late != 0 {
		t.Fatalf("features counted %d invocations (%d duplicates, %d late); Kafka holds %d distinct ids in %d records",
			st.Invocations, st.Duplicates, st.Late, len(inKafka), len(obs))
	}
	t.Logf("killed after %d acknowledged; load %+v; Kafka holds %d records of %d ids; features counted %d, dropped %d duplicates",
		atKill, res, len(obs), len(inKafka), st.Invocations, st.Duplicates)
}

// shadowRestartSeed seeds the ticks TestIntegrationLiveShadowKilledAndRestarted
// kills `strata live` at; the test logs them.
const shadowRestartSeed = 23

// TestIntegrationLiveShadowKilledAndRestarted runs `strata live` on real
// Kafka, nats-server and ClickHouse with the shadow twin checkpointing
// every tick, under a paced load over HTTP on the wall clock (30 records
// a second for 100 s). It SIGKILLs the process — ingest, features, agents,
// shadow and sink together — at one of three seeded points of the shadow
// (after a tick's simulation, inside its scoring, half way through a
// checkpoint's write; 2 to 4 ticks after the load's first), restarts it on the same run while the load
// generator retries what was not acknowledged, and checks that no
// acknowledged record was lost and none counted twice: the outcomes table
// (FINAL) holds exactly the acknowledged invocation ids, and the restarted
// shadow's arrivals — restored from its checkpoint plus those it read
// since — equal their number. The three run side by side, each on names
// of its own; live ticks are 15 s of wall time, so this takes about 2.5
// minutes.
func TestIntegrationLiveShadowKilledAndRestarted(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	rng := rand.New(rand.NewPCG(shadowRestartSeed, 0))
	points := []struct {
		point string
		after int64 // ticks after the load's first
	}{
		{twin.FaultTick, 2 + rng.Int64N(3)},
		{twin.FaultScoring, 2 + rng.Int64N(3)},
		{twin.FaultCheckpointWrite, 2 + rng.Int64N(3)},
	}
	// Side by side in goroutines, not with t.Parallel: -parallel is
	// GOMAXPROCS, 2 here, and these mostly wait on the wall clock.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, p := range points {
		wg.Go(func() {
			t.Run(p.point, func(t *testing.T) {
				names := testNames(t)
				dsn := pipelinetest.ClickHouseDB(t)
				runID := "it-live-restart-" + p.point
				ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				_ = ln.Close()
				// Lateness 20 s: a request the kill interrupted is retried
				// after the restart, its records still within the lateness.
				args := []string{"live", "--kafka", strings.Join(brokers, ","), "--nats", natsURL, "--prefix", names.Prefix, "--clickhouse", dsn,
					"--run-id", runID, "--tokens", "tok", "--listen", addr, "--lateness", "20s", "--shadow-checkpoint-every", "15s", "--log-level", "info"}
				type proc struct {
					cmd            *exec.Cmd
					stdout, stderr bytes.Buffer
					exited         chan error
				}
				start := func(env ...string) *proc {
					t.Helper()
					p := &proc{cmd: exec.CommandContext(ctx, bin, args...), exited: make(chan error, 1)}
					p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
					p.cmd.Env = append(os.Environ(), env...)
					if err := p.cmd.Start(); err != nil {
						t.Fatal(err)
					}
					go func() { p.exited <- p.cmd.Wait() }()
					waitServing(t, ctx, "strata live", addr)
					return p
				}
				k0 := grid.TickOf(time.Now().UnixMicro(), grid.OperationalTickUS)
				kill := k0 + p.after
				t.Logf("killing strata live at %s, tick %d = the load's first + %d (seed %d)", p.point, kill, p.after, shadowRestartSeed)
				first := start(pipeline.FaultEnv + "=" + fmt.Sprintf("%s:%d", p.point, kill))
				synth, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 9, Apps: 20})
				if err != nil {
					t.Fatal(err)
				}
				// Ingest refuses a record that started before its watermark:
				// only invocations well within the lateness.
				src := shortInvocations{src: synth, maxUS: 5_000_000}
				const rate, seconds = 30, 100
				load := pipelinetest.StartLoadWith(ctx, loadgen.Config{URL: "http://" + addr, Rate: rate, Batch: 10, Concurrency: 2, Limit: rate * seconds}, src)
				var err1 error
				select {
				case err1 = <-first.exited:
				case <-time.After(3 * time.Minute):
					t.Fatalf("strata live was not killed at tick %d\n%s", kill, first.stderr.String())
				}
				var ee *exec.ExitError
				if !errors.As(err1, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("want strata live killed by SIGKILL, got %v\n%s", err1, first.stderr.String())
				}
				if !strings.Contains(first.stderr.String(), "fault injection: SIGKILL") {
					t.Fatalf("strata live was killed, but not at the fault point\n%s", first.stderr.String())
				}
				atKill := load.Acked()
				second := start()
				res := load.Wait(t)
				acked := load.AckedIDs()
				if int64(len(acked)) != res.Records {
					t.Fatalf("%d distinct ids acknowledged, %d records sent", len(acked), res.Records)
				}
				t.Logf("%d of %d records acknowledged at the kill; load %+v", atKill, res.Records, res)

				st, err := store.OpenClickHouse(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = st.Close() }()
				count := func(q string) int64 {
					var n uint64
					if err := st.Conn().QueryRow(ctx, q, runID).Scan(&n); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
					return int64(n)
				}
				pipelinetest.WaitFor(t, ctx, "the outcomes of every acknowledged record", func() bool {
					select {
					case err := <-second.exited:
						t.Fatalf("the restarted strata live stopped: %v\n%s", err, second.stderr.String())
					default:
					}
					return count("SELECT count() FROM outcomes FINAL WHERE run_id = ?") >= int64(len(acked))
				})
				rows, err := st.Conn().Query(ctx, "SELECT invocation_id FROM outcomes FINAL WHERE run_id = ?", runID)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for rows.Next() {
					var id string
					if err := rows.Scan(&id); err != nil {
						t.Fatal(err)
					}
					got[id] = true
				}
				_ = rows.Close()
				for id := range acked {
					if !got[id] {
						t.Fatalf("acknowledged record %s has no outcome", id)
					}
				}
				if len(got) != len(acked) {
					t.Errorf("outcomes hold %d invocation ids, %d were acknowledged", len(got), len(acked))
				}
				if n := count("SELECT count() FROM rewards FINAL WHERE run_id = ?"); n == 0 {
					t.Error("the shadow wrote no reward")
				}
				t.Logf("outcomes: %d rows written, %d under FINAL", count("SELECT count() FROM outcomes WHERE run_id = ?"), len(got))

				if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if err := <-second.exited; err != nil {
					t.Fatalf("the restarted strata live did not stop cleanly: %v\n%s", err, second.stderr.String())
				}
				restored := false
				for _, l := range strings.Split(second.stderr.String(), "\n") {
					if strings.Contains(l, "twin restored from its checkpoint") {
						restored = true
						t.Log(l)
					}
				}
				if !restored {
					t.Errorf("the restarted shadow did not go on from a checkpoint\n%s", second.stderr.String())
				}
				var ticks, arrivals int64
				if l := lineOf(second.stdout.String(), "shadow: "); l != "" {
					if _, err := fmt.Sscanf(l, "shadow: %d ticks, %d arrivals", &ticks, &arrivals); err != nil {
						t.Fatalf("%q: %v", l, err)
					}
				}
				if arrivals != int64(len(acked)) {
					t.Errorf("the restarted shadow counts %d arrivals over %d ticks; %d invocation ids were acknowledged\n%s",
						arrivals, ticks, len(acked), second.stdout.String())
				}
			})
		})
	}
}

// shortInvocations is src less its invocations longer than maxUS.
type shortInvocations struct {
	src   replay.Source
	maxUS int64
}

// Next returns the next invocation of src no longer than maxUS.
func (s shortInvocations) Next() (replay.Invocation, error) {
	for {
		in, err := s.src.Next()
		if err != nil || in.DurationUS <= s.maxUS {
			return in, err
		}
	}
}

// waitServing waits until the strata HTTP service what at addr answers its
// health check.
func waitServing(t *testing.T, ctx context.Context, what, addr string) {
	t.Helper()
	pipelinetest.WaitFor(t, ctx, what+" to serve", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz") //nolint:noctx // a probe
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

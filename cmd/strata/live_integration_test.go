//go:build integration

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
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
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building strata: %v\n%s", err, out)
	}
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
		pipelinetest.WaitFor(t, ctx, "strata ingest to serve", func() bool {
			resp, err := http.Get("http://" + addr + "/healthz") //nolint:noctx // a probe
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
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

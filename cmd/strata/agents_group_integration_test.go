//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
)

// TestIntegrationAgentsRedundant serves the operational layer of the 998
// real rows' closed loop (`strata run --operational external` on real
// Kafka and NATS) from two `strata agent` processes at once, and SIGKILLs
// one of them a third of the way through. Both decide every state batch;
// JetStream keeps one decision batch per message id (run, layer, tick,
// shard), so the twin sees each once. The run must complete with the
// decision and reward digests and figures of a run whose operational
// worker ran inside `strata run`.
func TestIntegrationAgentsRedundant(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	const runID = "it-agents-redundant"
	dir := t.TempDir()
	run := func(names schemas.Names, summary string, extra ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, realRowsRun(brokers, natsURL, names, runID, summary, append([]string{"--store", ""}, extra...)...)...)
		cmd.Stderr = os.Stderr
		return cmd
	}
	refSum := filepath.Join(dir, "ref.json")
	if err := run(testNames(t), refSum).Run(); err != nil {
		t.Fatalf("reference run: %v", err)
	}
	want := readSummary(t, refSum)

	names := testNames(t)
	js := jetStreamForTest(ctx, t, natsURL, names)
	agent := func(out *bytes.Buffer) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "agent", "--layer", "operational", "--policy", pipeline.DefaultOperationalPolicy,
			"--run-id", runID, "--nats", natsURL, "--prefix", names.Prefix, "--log-level", "info")
		cmd.Stderr = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var logA, logB bytes.Buffer
	a, b := agent(&logA), agent(&logB)
	sum := filepath.Join(dir, "redundant.json")
	loop := run(names, sum, "--operational", "external")
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill a once a third of the run's operational batches are decided
	// (431 ticks × 4 shards).
	stream, err := js.Stream(ctx, names.Stream(schemas.StreamDecision))
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		info, err := stream.Info(ctx) // the operational batches and a few of the other layers
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	pipelinetest.WaitFor(t, ctx, "a third of the run decided", func() bool { return msgs() > 431*4/3 })
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	atKill := msgs()
	if err := loop.Wait(); err != nil {
		t.Fatalf("the run with redundant agents: %v", err)
	}
	if end := msgs(); end <= atKill {
		t.Fatalf("no decision batch after the kill (%d at the kill, %d at the end): the kill came too late", atKill, end)
	} else {
		t.Logf("one agent killed at %d decision batches of %d; the other decided the rest", atKill, end)
	}
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("the surviving agent did not stop cleanly: %v\n%s", err, logB.String())
	}
	got := readSummary(t, sum)
	for _, k := range []string{"decisions_sha256", "rewards_sha256", "twin_ticks", "layers", "invocations", "cost_per_million_usd",
		"gco2e_per_million", "latency_p95_ms", "cold_start_rate"} {
		if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
			t.Errorf("%s: %v with redundant agents, %v in process", k, got[k], want[k])
		}
	}

}

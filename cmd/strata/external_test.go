package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
)

// TestRunExternalLayer runs the 998 real rows with `--tactical external`
// and the tactical layer served by `strata agent` on the same NATS server,
// outside the run: the twin waits for the agent's batches, and the run's
// decisions and rewards are byte-identical to a run that serves the same
// policy in process. (TestPythonWorkerServesTactical does the same with a
// worker in Python.)
func TestRunExternalLayer(t *testing.T) {
	t.Parallel() // its own embedded servers; the loop waits on round trips
	inProcess := runSummary(t, "--tactical", "greedy-cost")

	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The streams exist before the agent and the run start, as on a
	// deployed server: two processes creating them at the same instant on
	// a fresh server can race (one gets "stream name already in use").
	nc, err := natsbus.Connect(srv.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	err = natsbus.EnsureStreams(context.Background(), js, natsbus.StreamConfig{})
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	var agentOut, agentErr bytes.Buffer
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- run(actx, []string{"agent", "--layer", "tactical", "--policy", "greedy-cost", "--nats", srv.URL(), "--run-id", "ext"}, &agentOut, &agentErr)
	}()
	external := runSummary(t, "--tactical", pipeline.PolicyExternal, "--nats", srv.URL())
	stopAgent()
	if err := <-agentDone; err != nil {
		t.Fatalf("strata agent: %v\n%s", err, &agentErr)
	}

	if external.TwinTicks != 431 || external.Policies["tactical"] != pipeline.PolicyExternal || external.Layers["tactical"].Decisions == 0 {
		t.Fatalf("external tactical layer: %d ticks, policy %q, %d decisions; want 431 ticks and the agent's decisions",
			external.TwinTicks, external.Policies["tactical"], external.Layers["tactical"].Decisions)
	}
	if external.DecisionsSHA256 != inProcess.DecisionsSHA256 || external.RewardsSHA256 != inProcess.RewardsSHA256 {
		t.Fatalf("greedy-cost in process and served by strata agent differ: decisions %s vs %s, rewards %s vs %s\nagent: %s",
			inProcess.DecisionsSHA256, external.DecisionsSHA256, inProcess.RewardsSHA256, external.RewardsSHA256, &agentOut)
	}
}

// runSummary runs `strata run` on the 998 real rows (run id ext, two
// partitions, no store) with extra flags and returns its summary.
func runSummary(t *testing.T, flags ...string) pipeline.LoopSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "summary.json")
	var out, errb bytes.Buffer
	args := append([]string{"run", "--trace", pipelinetest.RealTrace, "--run-id", "ext", "--partitions", "2", "--store=", "--summary", path, "--progress=false"}, flags...)
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("strata %v: %v\n%s", args, err, &errb)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sum pipeline.LoopSummary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

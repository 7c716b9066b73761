package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
)

// pyWorkerDir holds the example tactical worker in Python.
const pyWorkerDir = "../../agents/pyworker"

// TestPythonWorkerServesTactical runs `strata run --tactical external` on the
// 998 real rows with the Python worker of agents/pyworker, a process of its
// own on the same NATS server, as the tactical layer's only worker: the
// twin evaluates every tick, the tactical decisions it applied are the
// Python policy's, the worker publishes one decision batch per state batch
// and stops cleanly on SIGTERM, a restarted worker's batches are all
// dropped as duplicates, and a second run gives identical decision and
// reward digests (determinism across the process boundary). It needs the
// worker's virtual environment, whose python STRATA_PYTHON names
// (infra/scripts/pyenv.sh; `make test` sets it).
func TestPythonWorkerServesTactical(t *testing.T) {
	py := os.Getenv("STRATA_PYTHON")
	if py == "" {
		t.Skip("STRATA_PYTHON is not set: `make test` sets it, or run `export STRATA_PYTHON=$(infra/scripts/pyenv.sh)` (a cached virtual environment with agents/pyworker/requirements.txt)")
	}
	t.Parallel() // its own servers and processes; the loop waits on round trips
	// The worker's own tests first: wire format and policy, without NATS.
	ut := exec.CommandContext(t.Context(), py, "-m", "unittest", "discover", "-s", pyWorkerDir)
	ut.Env = pyEnv()
	if out, err := ut.CombinedOutput(); err != nil {
		t.Fatalf("python -m unittest discover -s agents/pyworker: %v\n%s", err, out)
	}

	db := filepath.Join(t.TempDir(), "py.duckdb")
	first := runWithPyWorker(t, py, db)
	// The 998 rows start in ticks 0..430 (TestEmbeddedClosedLoop).
	if first.TwinTicks != 431 || first.Invocations != 998 {
		t.Fatalf("twin evaluated %d ticks of %d invocations, want 431 of 998", first.TwinTicks, first.Invocations)
	}
	if first.Policies["tactical"] != pipeline.PolicyExternal || first.Layers["tactical"].Decisions == 0 {
		t.Fatalf("tactical layer: policy %q, %d decisions; want external with decisions", first.Policies["tactical"], first.Layers["tactical"].Decisions)
	}
	st, err := store.OpenDuckDB(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	_, rows, err := st.Query(context.Background(), "SELECT layer, policy, policy_version, count(*) FROM decisions WHERE run_id = '"+pyRunID+"' GROUP BY ALL ORDER BY layer")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[fmt.Sprint(r[0])] = fmt.Sprintf("%v %v", r[1], r[2])
	}
	// No strategic decisions (day 0 has no state before it), operational
	// ones from the in-process worker.
	if got["tactical"] != "py-rightsize 1/p95-limit=1000ms/headroom=0.25" || got["operational"] != "hybrid-histogram 1" || len(rows) != 2 {
		t.Fatalf("decisions by layer and policy: %v", rows)
	}

	again := runWithPyWorker(t, py, "")
	if again.DecisionsSHA256 != first.DecisionsSHA256 || again.RewardsSHA256 != first.RewardsSHA256 {
		t.Fatalf("two runs with the Python worker differ: decisions %s vs %s, rewards %s vs %s",
			first.DecisionsSHA256, again.DecisionsSHA256, first.RewardsSHA256, again.RewardsSHA256)
	}
}

const pyRunID = "pyworker"

// pyEnv is the environment of the Python processes: no bytecode caches
// written into the source tree.
func pyEnv() []string { return append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1") }

// pyProcess is the Python worker running as a subprocess.
type pyProcess struct {
	cmd  *exec.Cmd
	logs pipelinetest.SyncBuffer
	done chan struct{}
	err  error
	once sync.Once
}

func startPyWorker(t *testing.T, py, natsURL string, args ...string) *pyProcess {
	t.Helper()
	p := &pyProcess{done: make(chan struct{})}
	// Killed when the test ends, should a cleanup not have stopped it.
	p.cmd = exec.CommandContext(t.Context(), py, append([]string{filepath.Join(pyWorkerDir, "worker.py"), "--nats", natsURL}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = &p.logs, &p.logs, pyEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the Python worker: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { _ = p.stop() })
	return p
}

// stop sends SIGTERM, waits up to 20 s for the exit (then kills) and
// returns the exit error.
func (p *pyProcess) stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = fmt.Errorf("still running 20 s after SIGTERM (killed): %w", p.err)
		}
	})
	<-p.done
	return p.err
}

var servedRE = regexp.MustCompile(`served (\d+) decision batches`)

// runWithPyWorker starts a nats-server and the Python worker on it, then
// `strata run` with the tactical layer external on the same server (Kafka
// embedded, two partitions) and store (DuckDB file; "" for none), stops the
// worker with SIGTERM and returns the run's summary.
func runWithPyWorker(t *testing.T, py, store string) pipeline.LoopSummary {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close) // after the workers' cleanups: they stop first
	p := startPyWorker(t, py, srv.URL(), "--run-id", pyRunID)
	sumPath := filepath.Join(t.TempDir(), "summary.json")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, []string{"run", "--trace", pipelinetest.RealTrace, "--nats", srv.URL(), "--tactical", pipeline.PolicyExternal,
			"--run-id", pyRunID, "--partitions", "2", "--store=" + store, "--summary", sumPath, "--progress=false"}, &out, &errb)
	}()
	select {
	case err = <-ran:
	case <-p.done:
		cancel()
		<-ran
		t.Fatalf("the Python worker exited during the run: %v\n%s", p.err, &p.logs)
	}
	if err != nil {
		_ = p.stop()
		t.Fatalf("strata run: %v\n%s\nPython worker:\n%s", err, &errb, &p.logs)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("the Python worker did not stop cleanly on SIGTERM: %v\n%s", err, &p.logs)
	}
	var sum pipeline.LoopSummary
	b, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	// One decision batch per tactical state batch: every hour's two shards.
	m := servedRE.FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("the Python worker did not say what it served:\n%s", &p.logs)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if n != 2*sum.Ticks["tactical"] || n == 0 {
		t.Fatalf("the Python worker published %d decision batches for %d tactical ticks of 2 shards:\n%s", n, sum.Ticks["tactical"], &p.logs)
	}
	if store != "" {
		// A restarted worker reads the state stream from its start again
		// and republishes every batch under the same message ids:
		// JetStream keeps the first copies.
		p2 := startPyWorker(t, py, srv.URL(), "--run-id", pyRunID, "--log-level", "debug")
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(p2.logs.String(), ", duplicate)") < int(n) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if err := p2.stop(); err != nil {
			t.Fatalf("the restarted Python worker did not stop cleanly: %v\n%s", err, &p2.logs)
		}
		if want := fmt.Sprintf("served %d decision batches (%d duplicates)", n, n); !strings.Contains(p2.logs.String(), want) {
			t.Fatalf("the restarted Python worker did not log %q:\n%s", want, &p2.logs)
		}
	}
	return sum
}

//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/consumers/twin"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// twinRestartSeed seeds the ticks TestIntegrationTwinKilledAndResumed
// kills `strata run` at; the test logs them.
const twinRestartSeed = 17

// TestIntegrationTwinKilledAndResumed runs the 998 real rows' closed loop
// (431 ticks) as `strata run` on real Kafka, nats-server and ClickHouse,
// with the twin checkpointing every 60 ticks. It SIGKILLs the process —
// the twin with the replay, features, workers and sink beside it — at
// three seeded points: after a tick's telemetry, inside a tick's scoring,
// and half way through writing a checkpoint; then runs it again with
// --resume until it ends. The resumed run's summary must hold the
// uninterrupted run's decision and reward digests and figures, and the
// decisions and rewards tables (FINAL, every column but the write time,
// in key order) must hash to the uninterrupted run's tables, with as many
// rows as the twin wrote.
func TestIntegrationTwinKilledAndResumed(t *testing.T) {
	brokers, natsURL := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := buildStrata(ctx, t)
	const runID = "it-twin-restart"
	dir := t.TempDir()
	// run runs `strata run` of the real rows under names into dsn, its
	// summary to summary, with extra flags and the environment env; it
	// returns stderr and the error Wait gave.
	run := func(names schemas.Names, dsn, summary string, env []string, extra ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, realRowsRun(brokers, natsURL, names, runID, summary, append([]string{"--clickhouse", dsn,
			"--twin-checkpoint-every", "15m", "--transitions", "strategic,tactical,operational"}, extra...)...)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
		cmd.Env = append(os.Environ(), env...)
		err := cmd.Run()
		return stderr.String(), err
	}

	refNames := testNames(t)
	refDSN := pipelinetest.ClickHouseDB(t)
	refSum := filepath.Join(dir, "ref.json")
	if stderr, err := run(refNames, refDSN, refSum, nil); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, stderr)
	}
	want := readSummary(t, refSum)
	wantTables := tableDigests(ctx, t, refDSN, runID)
	wantTr := transitionsOf(ctx, t, brokers, refNames)
	perLayer := map[string]int{}
	for k := range wantTr {
		perLayer[strings.SplitN(k, "/", 2)[0]]++
	}
	t.Logf("uninterrupted run: transitions per layer %v", perLayer)
	if perLayer[string(schemas.Operational)] == 0 {
		t.Fatal("the uninterrupted run wrote no operational transition")
	}

	rng := rand.New(rand.NewPCG(twinRestartSeed, 0))
	points := []struct {
		point string
		tick  int64
	}{
		{twin.FaultTick, 61 + rng.Int64N(300)},
		{twin.FaultScoring, 61 + rng.Int64N(300)},
		{twin.FaultCheckpointWrite, 60 * (2 + rng.Int64N(4))},
	}
	for _, p := range points {
		t.Run(p.point, func(t *testing.T) {
			t.Logf("killing strata run at %s, tick %d (seed %d)", p.point, p.tick, twinRestartSeed)
			names := testNames(t)
			dsn := pipelinetest.ClickHouseDB(t)
			sum := filepath.Join(dir, p.point+".json")
			stderr, err := run(names, dsn, sum, []string{pipeline.FaultEnv + "=" + fmt.Sprintf("%s:%d", p.point, p.tick)})
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("want the run killed by SIGKILL, got %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "fault injection: SIGKILL") {
				t.Fatalf("the run was killed, but not at the fault point\n%s", stderr)
			}
			if _, err := os.Stat(sum); err == nil {
				t.Fatal("the killed run wrote its summary")
			}
			stderr, err = run(names, dsn, sum, nil, "--resume", "--log-level", "info")
			if err != nil {
				t.Fatalf("resumed run: %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "twin restored from its checkpoint") || !strings.Contains(stderr, "resuming the run") {
				t.Errorf("the resumed run did not say where it went on from\n%s", stderr)
			}
			for _, l := range strings.Split(stderr, "\n") {
				if strings.Contains(l, "resuming the run") || strings.Contains(l, "twin telemetry already written") {
					t.Log(l)
				}
			}
			got := readSummary(t, sum)
			for _, k := range []string{"decisions_sha256", "rewards_sha256", "twin_ticks", "layers", "invocations", "cost_per_million_usd",
				"keep_warm_per_million_usd", "gco2e_per_million", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cold_start_rate", "sla_violation_rate"} {
				if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
					t.Errorf("%s: %v resumed, %v uninterrupted", k, got[k], want[k])
				}
			}
			gotTables := tableDigests(ctx, t, dsn, runID)
			for table, w := range wantTables {
				if gotTables[table] != w {
					t.Errorf("%s: %s resumed, %s uninterrupted", table, gotTables[table], w)
				}
			}
			// The transitions of every layer, operational ones too (whose
			// sequences the restored twin rebuilt from the state stream):
			// the uninterrupted run's, each once or, after the
			// checkpoint, twice alike.
			gotTr := transitionsOf(ctx, t, brokers, names)
			if len(gotTr) != len(wantTr) {
				t.Errorf("%d distinct transitions resumed, %d uninterrupted", len(gotTr), len(wantTr))
			}
			for k, w := range wantTr {
				if gotTr[k] != w {
					t.Errorf("transition %s differs resumed or is missing", k)
					break
				}
			}
		})
	}
}

// transitionsOf reads the transitions topic of names and returns each
// transition (end-of-interval markers left out) by layer, tick, app and
// function, as its deterministic encoding; it fails t if one key holds two
// different transitions.
func transitionsOf(ctx context.Context, t *testing.T, brokers []string, names schemas.Names) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range kafkatest.ReadTopics(t, ctx, brokers, names.Topic(schemas.TopicTransitions)) {
		var tr stratapb.Transition
		if err := proto.Unmarshal(r.Value, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.GetEndOfInterval() {
			continue
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&tr)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%s/%d/%s/%s", tr.GetLayer(), tr.GetTick(), tr.GetApp(), tr.GetFunc())
		if prev, ok := out[k]; ok && prev != string(b) {
			t.Fatalf("transition %s written twice, differently", k)
		}
		out[k] = string(b)
	}
	return out
}

// readSummary reads a `strata run --summary` file.
func readSummary(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s["decisions_sha256"] == nil || s["twin_ticks"] == nil {
		t.Fatalf("%s has no twin figures", path)
	}
	return s
}

// tableDigests returns, for decisions and rewards, the row count and a
// SHA-256 over the run's rows under FINAL in key order, every column but
// the write time.
func tableDigests(ctx context.Context, t *testing.T, dsn, runID string) map[string]string {
	t.Helper()
	st, err := store.OpenClickHouse(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	out := map[string]string{}
	for _, table := range []string{schemas.TableDecisions, schemas.TableRewards} {
		var cols []string
		for _, c := range store.Columns(table) {
			if c != "written" {
				cols = append(cols, `ifNull(toString("`+c+`"), 'NULL')`)
			}
		}
		q := "SELECT concat(" + strings.Join(cols, ", '|', ") + ") FROM " + table + " FINAL WHERE run_id = ? ORDER BY layer, tick, app, func"
		rows, err := st.Conn().Query(ctx, q, runID)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		h := sha256.New()
		var n int
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			h.Write([]byte(s + "\n"))
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
		if n == 0 {
			t.Fatalf("%s holds no row of run %s", table, runID)
		}
		out[table] = fmt.Sprintf("%d rows, %s", n, hex.EncodeToString(h.Sum(nil))[:16])
	}
	return out
}

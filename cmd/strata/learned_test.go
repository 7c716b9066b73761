package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/strata-rl/strata/agents/agentstest"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
)

// TestRunServesLearnedPolicies runs the closed loop on the 998 real rows
// with dqn, ppo and lstm loaded from a models directory (untrained
// checkpoints): the layers' decisions name the learned policies.
func TestRunServesLearnedPolicies(t *testing.T) {
	dir := t.TempDir()
	agentstest.WriteCheckpoints(t, dir)
	db := filepath.Join(t.TempDir(), "learned.duckdb")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"run", "--trace", pipelinetest.RealTrace, "--models", dir, "--strategic", "dqn", "--tactical", "ppo",
		"--operational", "lstm", "--store", db, "--run-id", "learned", "--progress=false"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, &errb)
	}
	st, err := store.OpenDuckDB(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	_, rows, err := st.Query(context.Background(), "SELECT layer, policy, count(*) FROM decisions WHERE run_id = 'learned' GROUP BY layer, policy ORDER BY layer")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[fmt.Sprint(r[0])] = fmt.Sprint(r[1])
	}
	// The 998 rows span under two hours: no strategic decision (day 0 has
	// no state before it); tactical from hour 1, operational every tick.
	if got["tactical"] != "ppo" || got["operational"] != "lstm" || len(rows) != 2 {
		t.Fatalf("decisions by layer and policy: %v\n%s", rows, &out)
	}
}

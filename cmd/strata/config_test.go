package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
)

// TestRunConfigFileChangesReward runs the closed loop on the 998 real rows
// twice, the second time with a config file that gives the trace and a
// reward weight: the runs row records the file and its overrides, and
// the rewards differ from the default's.
func TestRunConfigFileChangesReward(t *testing.T) {
	t.Parallel() // its own embedded servers; the loop waits on round trips, so others use the idle cores
	dir := t.TempDir()
	conf := filepath.Join(dir, "reward.yaml")
	if err := os.WriteFile(conf, []byte("trace: "+pipelinetest.RealTrace+"\nprogress: false\nreward:\n  w_cost: 0.8\n  w_perf: 0.1\n  w_carbon: 0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runOnce := func(name string, args ...string) (digest, configJSON string) {
		t.Helper()
		db, sum := filepath.Join(dir, name+".duckdb"), filepath.Join(dir, name+".json")
		var out, errb bytes.Buffer
		if err := run(context.Background(), append([]string{"run", "--store", db, "--run-id", name, "--summary", sum}, args...), &out, &errb); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, &errb)
		}
		var s pipeline.LoopSummary
		b, err := os.ReadFile(sum)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.OpenDuckDB(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.Close() }()
		_, rows, err := st.Query(context.Background(), "SELECT config_json FROM runs WHERE run_id = '"+name+"'")
		if err != nil || len(rows) != 1 {
			t.Fatalf("runs row of %s: %v, %v", name, rows, err)
		}
		return s.RewardsSHA256, fmt.Sprint(rows[0][0])
	}
	defDigest, defJSON := runOnce("default", "--trace", pipelinetest.RealTrace, "--progress=false")
	digest, cj := runOnce("reward", "--config", conf)
	if digest == defDigest {
		t.Errorf("reward weights 0.8/0.1/0.1 left the rewards digest at the default's %s", digest)
	}
	var rec struct {
		Args       []string `json:"args"`
		ConfigFile string   `json:"config_file"`
		Overrides  struct {
			Flags  map[string]string  `json:"flags"`
			Reward map[string]float64 `json:"reward"`
		} `json:"overrides"`
	}
	if err := json.Unmarshal([]byte(cj), &rec); err != nil {
		t.Fatalf("config_json %s: %v", cj, err)
	}
	if rec.ConfigFile != conf || rec.Overrides.Reward["w_cost"] != 0.8 || rec.Overrides.Flags["trace"] != pipelinetest.RealTrace || rec.Args[0] != "--store" {
		t.Errorf("config_json %s: want the file %s, its flags and its reward", cj, conf)
	}
	if strings.Contains(defJSON, "config_file") || strings.Contains(defJSON, "overrides") {
		t.Errorf("config_json of a run without a file: %s", defJSON)
	}
}

// TestConfigDocCoversEveryFlag checks docs/config.md against the commands:
// every flag of every command in its command's block, every parameter of
// the model and reward sections and every price of the catalog section.
func TestConfigDocCoversEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, c := range tableCommands() {
		if g, _ := findCommand(commands(), c[0]); len(c) == 1 && g.group {
			continue
		}
		name := strings.Join(c, " ")
		_, block, ok := strings.Cut(doc, "### strata "+name+"\n")
		if !ok {
			t.Errorf("docs/config.md has no block for strata %s", name)
			continue
		}
		block, _, _ = strings.Cut(block, "\n### ")
		var help bytes.Buffer
		_ = run(context.Background(), append(c, "-h"), &help, &help)
		for _, m := range flagLine.FindAllStringSubmatch(help.String(), -1) {
			if m[1] != "config" && !strings.Contains(block, "# "+m[1]+": ") {
				t.Errorf("docs/config.md: strata %s's block lacks --%s", name, m[1])
			}
		}
	}
	for _, p := range cloud.Params() {
		if !strings.Contains(doc, "`"+strings.TrimPrefix(p.Name, "reward.")+"`") {
			t.Errorf("docs/config.md does not list the parameter %s", p.Name)
		}
	}
	for p := range cloud.Provider(cloud.NumProviders) {
		names, _ := cloud.PriceNames(p)
		for _, n := range names {
			if !strings.Contains(doc, "`"+n+"`") {
				t.Errorf("docs/config.md does not list the price %s", n)
			}
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// sqlFixture writes a DuckDB file with three decisions and returns its path.
func sqlFixture(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "strata.duckdb")
	st, err := store.OpenDuckDB(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	lp := -0.25
	ds := []*stratapb.Decision{
		{RunId: "r1", Layer: "strategic", Tick: 0, App: "shop", Policy: "greedy-cost", Provider: "aws"},
		{RunId: "r1", Layer: "tactical", Tick: 0, App: "shop", Func: "checkout", Policy: "ppo", Provider: "aws",
			Region: "us-east-1", MemoryMb: 512, LogProb: &lp},
		{RunId: "r1", Layer: "tactical", Tick: 1, App: "shop", Func: "checkout", Policy: "ppo", Provider: "gcp",
			Region: "europe-west1", MemoryMb: 1024, Carried: true},
	}
	if err := st.WriteDecisions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	return path
}

func runSQL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := sqlMain(context.Background(), args, &out, &errOut)
	return out.String(), err
}

func TestSQLFormats(t *testing.T) {
	path := sqlFixture(t)
	q := "SELECT layer, func, memory_mb, log_prob, carried FROM decisions FINAL ORDER BY layer, tick"

	got, err := runSQL(t, "--store", path, q)
	if err != nil {
		t.Fatal(err)
	}
	want := `layer      func      memory_mb  log_prob  carried
strategic            0          NULL      0
tactical   checkout  512        -0.25     0
tactical   checkout  1024       NULL      1
(3 rows)
`
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}

	got, err = runSQL(t, "--store", path, "--format", "csv", q)
	if err != nil {
		t.Fatal(err)
	}
	want = "layer,func,memory_mb,log_prob,carried\nstrategic,,0,,0\ntactical,checkout,512,-0.25,0\ntactical,checkout,1024,,1\n"
	if got != want {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want)
	}

	got, err = runSQL(t, "--store", path, "--format", "json", q)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal([]byte(got), &objs); err != nil {
		t.Fatalf("json output %q: %v", got, err)
	}
	if len(objs) != 3 || objs[1]["func"] != "checkout" || objs[1]["log_prob"] != -0.25 || objs[0]["log_prob"] != nil {
		t.Errorf("json = %v", objs)
	}
	if !strings.HasPrefix(got, `[`+"\n"+`  {"layer": "strategic", "func": "", "memory_mb": 0,`) {
		t.Errorf("json keys are not in column order: %s", got)
	}

	got, err = runSQL(t, "--store", path, "--format", "json", "SELECT 1 AS x WHERE false")
	if err != nil || got != "[]\n" {
		t.Errorf("empty json = %q, %v", got, err)
	}
}

func TestSQLErrors(t *testing.T) {
	path := sqlFixture(t)
	for _, args := range [][]string{
		{"--store", path},
		{"--store", path, "--format", "xml", "SELECT 1"},
		{"--store", path, "SELECT nope FROM decisions"},
	} {
		if _, err := runSQL(t, args...); err == nil {
			t.Errorf("strata sql %v: want an error", args)
		}
	}
}

// TestSinkThenSQL runs `strata sink` on the embedded broker into a DuckDB
// file until idle (3 s: joining the group can take a while on a loaded
// machine, and idleness counts from the start), then reads the counts back
// with `strata sql`.
func TestSinkThenSQL(t *testing.T) {
	k, err := kafka.StartEmbedded(2)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	cl, err := kgo.NewClient(kafka.CommonOpts(k.Brokers(), nil)...)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 50 {
		d := &stratapb.Decision{RunId: "r-sink", Layer: "operational", Tick: int64(i % 25), App: "a", Func: fmt.Sprint(i % 2)}
		b, _ := proto.Marshal(d)
		recs = append(recs, &kgo.Record{Topic: schemas.TopicDecisions, Key: []byte("a"), Value: b})
	}
	err = cl.ProduceSync(context.Background(), recs...).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.duckdb")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sink", "--kafka", strings.Join(k.Brokers(), ","), "--store", path,
		"--stop-after-idle", "3s", "--flush-interval", "20ms"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "50 records") {
		t.Errorf("sink output %q", out.String())
	}
	got, err := runSQL(t, "--store", path, "--format", "csv", "SELECT count() AS n FROM decisions FINAL WHERE run_id = 'r-sink'")
	if err != nil {
		t.Fatal(err)
	}
	if got != "n\n50\n" {
		t.Errorf("count = %q, want 50 distinct keys", got)
	}
}

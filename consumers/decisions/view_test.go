package decisions_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-rl/strata/consumers/decisions"
	"github.com/strata-rl/strata/schemas"
)

const run = "live"

var (
	epoch    = time.Unix(0, 0).UTC()
	received = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	defPl    = decisions.Placement{Provider: "aws", Region: "us-east", MemoryMB: 1024}
)

func newView(t *testing.T, reg prometheus.Registerer, maxEntities int) *decisions.View {
	t.Helper()
	return decisions.NewView(decisions.Config{RunID: run, Epoch: epoch, Default: defPl, MaxEntities: maxEntities,
		Now: func() time.Time { return received }}, nil, reg)
}

func batch(runID string, l schemas.Layer, tick int64, shard, nShards int, rows ...schemas.DecisionRow) *schemas.DecisionBatch {
	return &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: runID, Layer: l, Tick: tick, Shard: shard, NShards: nShards}, Rows: rows}
}

func strategic(app, provider, policy string) schemas.DecisionRow {
	return schemas.DecisionRow{App: app, Provider: provider, Policy: policy, PolicyVersion: "v1"}
}

func tact(app, fn, region string, mem int32, policy string) schemas.DecisionRow {
	return schemas.DecisionRow{App: app, Func: fn, Region: region, MemoryMB: mem, Policy: policy, PolicyVersion: "v1"}
}

func oper(app, fn string, prewarm int32, policy string) schemas.DecisionRow {
	return schemas.DecisionRow{App: app, Func: fn, Action: prewarm, Prewarm: prewarm, Policy: policy, PolicyVersion: "v1"}
}

// held summarises a function's decisions as layer=tick/policy, "-" for none.
func held(fd decisions.FunctionDecisions) string {
	f := func(d *decisions.Decision) string {
		if d == nil {
			return "-"
		}
		return fmt.Sprintf("%d/%s", d.Tick, d.Row.Policy)
	}
	return fmt.Sprintf("s=%s t=%s o=%s", f(fd.Strategic), f(fd.Tactical), f(fd.Operational))
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		batches []*schemas.DecisionBatch
		// want maps "app/func" to held(...) or "" for not found.
		want map[string]string
	}{
		{
			name: "newest tick wins",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Operational, 1, 0, 1, oper("a", "f", 1, "p1")),
				batch(run, schemas.Operational, 2, 0, 1, oper("a", "f", 2, "p2")),
			},
			want: map[string]string{"a/f": "s=- t=- o=2/p2"},
		},
		{
			name: "late older tick ignored",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Tactical, 5, 0, 1, tact("a", "f", "eu-west", 512, "new")),
				batch(run, schemas.Tactical, 4, 0, 1, tact("a", "f", "us-west", 256, "old"), tact("a", "g", "us-west", 256, "old")),
			},
			// g had nothing newer, so its tick-4 decision is the one in force.
			want: map[string]string{"a/f": "s=- t=5/new o=-", "a/g": "s=- t=4/old o=-"},
		},
		{
			name: "shards of one tick merge",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Operational, 7, 0, 2, oper("a", "f", 1, "s0")),
				batch(run, schemas.Operational, 7, 1, 2, oper("b", "g", 3, "s1")),
			},
			want: map[string]string{"a/f": "s=- t=- o=7/s0", "b/g": "s=- t=- o=7/s1"},
		},
		{
			name: "same tick again replaces",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Operational, 7, 0, 1, oper("a", "f", 1, "first")),
				batch(run, schemas.Operational, 7, 0, 1, oper("a", "f", 2, "again")),
			},
			want: map[string]string{"a/f": "s=- t=- o=7/again"},
		},
		{
			name: "other run ignored",
			batches: []*schemas.DecisionBatch{
				batch("replay-1", schemas.Operational, 9, 0, 1, oper("a", "f", 1, "other")),
				batch(run, schemas.Operational, 3, 0, 1, oper("a", "g", 1, "ours")),
			},
			want: map[string]string{"a/f": "", "a/g": "s=- t=- o=3/ours"},
		},
		{
			name: "missing entity keeps its last decision",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Operational, 1, 0, 1, oper("a", "f", 1, "p"), oper("a", "g", 1, "p")),
				batch(run, schemas.Operational, 2, 0, 1, oper("a", "f", 0, "p")),
				batch(run, schemas.Operational, 3, 0, 1),
			},
			want: map[string]string{"a/f": "s=- t=- o=2/p", "a/g": "s=- t=- o=1/p"},
		},
		{
			name: "layers are independent",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Strategic, 0, 0, 1, strategic("a", "gcp", "dqn")),
				batch(run, schemas.Tactical, 3, 0, 1, tact("a", "f", "eu-west", 512, "ppo")),
				batch(run, schemas.Operational, 900, 0, 1, oper("a", "f", 2, "lstm")),
			},
			// the app's strategic decision is in force for any function of it.
			want: map[string]string{"a/f": "s=0/dqn t=3/ppo o=900/lstm", "a/other": "s=0/dqn t=- o=-", "b/f": ""},
		},
		{
			name: "bad rows skipped",
			batches: []*schemas.DecisionBatch{
				batch(run, schemas.Operational, 1, 0, 1, oper("a", strings.Repeat("x", decisions.MaxNameBytes+1), 1, "p"), oper("a", "", 1, "p")),
				batch(run, schemas.Operational, -1, 0, 1, oper("b", "f", 1, "p")),
			},
			want: map[string]string{"a/f": "", "b/f": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(t, nil, 0)
			for _, b := range tt.batches {
				v.Apply(b)
			}
			for key, want := range tt.want {
				app, fn, _ := strings.Cut(key, "/")
				fd, ok := v.Function(app, fn)
				got := ""
				if ok {
					got = held(fd)
				}
				if got != want {
					t.Errorf("Function(%q, %q) = %q, want %q", app, fn, got, want)
				}
			}
		})
	}
}

func TestApplyCopiesRows(t *testing.T) {
	v := newView(t, nil, 0)
	b := batch(run, schemas.Operational, 1, 0, 1, oper("a", "f", 1, "p"))
	v.Apply(b)
	b.Rows[0].Policy, b.Rows[0].Prewarm = "mutated", 99
	fd, _ := v.Function("a", "f")
	if fd.Operational.Row.Policy != "p" || fd.Placement.Prewarm != 1 {
		t.Errorf("the view shares the batch's rows: %+v", fd.Operational.Row)
	}
}

func TestPlacementAndInForce(t *testing.T) {
	v := newView(t, nil, 0)
	v.Apply(batch(run, schemas.Strategic, 2, 0, 1, strategic("a", "azure", "dqn")))
	v.Apply(batch(run, schemas.Tactical, 50, 0, 1, tact("a", "f", "ap-southeast", 2048, "ppo")))
	v.Apply(batch(run, schemas.Operational, 4, 0, 1, schemas.DecisionRow{App: "a", Func: "g", Prewarm: 3, KeepWarmMS: 60000}))
	tests := []struct {
		fn      string
		want    decisions.Placement
		def     []string
		inForce map[schemas.Layer]time.Time
	}{
		{"f", decisions.Placement{Provider: "azure", Region: "ap-southeast", MemoryMB: 2048}, []string{"prewarm", "keep_warm_ms"},
			map[schemas.Layer]time.Time{schemas.Strategic: epoch.Add(48 * time.Hour), schemas.Tactical: epoch.Add(50 * time.Hour)}},
		{"g", decisions.Placement{Provider: "azure", Region: "us-east", MemoryMB: 1024, Prewarm: 3, KeepWarmMS: 60000}, []string{"region", "memory_mb"},
			map[schemas.Layer]time.Time{schemas.Strategic: epoch.Add(48 * time.Hour), schemas.Operational: epoch.Add(60 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			fd, ok := v.Function("a", tt.fn)
			if !ok {
				t.Fatal("not found")
			}
			if fd.Placement.Placement != tt.want || strings.Join(fd.Placement.Default, ",") != strings.Join(tt.def, ",") {
				t.Errorf("placement %+v, want %+v default %v", fd.Placement, tt.want, tt.def)
			}
			for l, d := range map[schemas.Layer]*decisions.Decision{schemas.Strategic: fd.Strategic, schemas.Tactical: fd.Tactical, schemas.Operational: fd.Operational} {
				want, ok := tt.inForce[l]
				if (d != nil) != ok {
					t.Errorf("%s decision %v, want one: %v", l, d, ok)
					continue
				}
				if d != nil && (!d.InForceFrom.Equal(want) || !d.ReceivedAt.Equal(received)) {
					t.Errorf("%s in force from %v received %v, want %v and %v", l, d.InForceFrom, d.ReceivedAt, want, received)
				}
			}
		})
	}
}

func TestAppListsFunctionsSorted(t *testing.T) {
	v := newView(t, nil, 0)
	v.Apply(batch(run, schemas.Operational, 1, 0, 1, oper("a", "zeta", 1, "p"), oper("a", "alpha", 1, "p"), oper("b", "x", 1, "p")))
	v.Apply(batch(run, schemas.Tactical, 1, 0, 1, tact("a", "mid", "eu-west", 512, "p")))
	ad, ok := v.App("a")
	if !ok {
		t.Fatal("app a not found")
	}
	var fns []string
	for _, f := range ad.Functions {
		fns = append(fns, f.Func)
	}
	if got := strings.Join(fns, ","); got != "alpha,mid,zeta" || ad.Strategic != nil {
		t.Errorf("functions %s strategic %v, want alpha,mid,zeta and none", got, ad.Strategic)
	}
	if _, ok := v.App("c"); ok {
		t.Error("unknown app found")
	}
}

func TestEvictionAndMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	v := newView(t, reg, 16)
	// One new function per tick: at 17 functions the layer is cut to 15
	// (15/16 of the cap), oldest decisions first; 20 functions end as 16
	// held and 4 evicted.
	for tick := range int64(20) {
		v.Apply(batch(run, schemas.Operational, tick, 0, 1, oper("a", fmt.Sprintf("f%02d", tick), 1, "p")))
	}
	ad, _ := v.App("a")
	if n := len(ad.Functions); n != 16 || ad.Functions[0].Func != "f04" {
		t.Errorf("%d functions held from %s, want 16 from f04", n, ad.Functions[0].Func)
	}
	if _, ok := v.Function("a", "f03"); ok {
		t.Error("an evicted function is still found")
	}
	v.Apply(batch("other", schemas.Strategic, 1, 0, 1, strategic("a", "gcp", "p")))
	v.Apply(batch(run, schemas.Operational, 1, 0, 1, oper("a", "f19", 1, "late")))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP strata_decisions_batches_applied_total Decision batches of the view's run applied, by layer (one per shard and tick).
# TYPE strata_decisions_batches_applied_total counter
strata_decisions_batches_applied_total{layer="operational"} 21
# HELP strata_decisions_evicted_total Decisions evicted because the layer held more entities than the cap, by layer.
# TYPE strata_decisions_evicted_total counter
strata_decisions_evicted_total{layer="operational"} 4
# HELP strata_decisions_rows_held Decisions held, by layer: apps (strategic) or functions (tactical, operational).
# TYPE strata_decisions_rows_held gauge
strata_decisions_rows_held{layer="operational"} 16
# HELP strata_decisions_rows_skipped_total Decision rows not applied, by reason: stale (older than the decision held), name (empty or too long), tick (out of range).
# TYPE strata_decisions_rows_skipped_total counter
strata_decisions_rows_skipped_total{reason="stale"} 1
`), "strata_decisions_batches_applied_total", "strata_decisions_evicted_total", "strata_decisions_rows_held", "strata_decisions_rows_skipped_total"); err != nil {
		t.Error(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	v := newView(t, nil, 64)
	h := v.Handler()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tick := range int64(200) {
			v.Apply(batch(run, schemas.Operational, tick, 0, 1, oper("a", fmt.Sprintf("f%d", tick%100), int32(tick), "p")))
			v.Apply(batch(run, schemas.Strategic, tick/50, 0, 1, strategic("a", "gcp", "p")))
		}
	}()
	for range 200 {
		v.App("a")
		v.Function("a", "f1")
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/decisions/a", nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	<-done
	if ad, ok := v.App("a"); !ok || len(ad.Functions) > 64 || ad.Strategic == nil || ad.Strategic.Tick != 3 {
		t.Errorf("after concurrent use: %v %d functions", ok, len(ad.Functions))
	}
}

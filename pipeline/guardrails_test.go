package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/store"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// guardTrial are the guardrails the tests hold every policy to on the
// real rows: every app off AWS (where every run starts) and out of the
// US, between 256 and 1024 MB, with 2 warm instances at most; the
// trace's first app on Azure us-west only with no keep-warm at all, and
// its first function at 2048 MB or more.
func guardTrial(t *testing.T) (*guard.Rules, string) {
	t.Helper()
	r, err := replay.OpenTrace(pipelinetest.RealTrace)
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Next()
	_ = r.Close()
	if err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`apps:
  "*":
    providers: [gcp, azure]
    regions: [eu-west, ap-southeast]
    memory_mb: {min: 256, max: 1024}
    max_prewarm: 2
  %q:
    providers: [azure]
    regions: [us-west]
    max_prewarm: 0
functions:
  %q:
    memory_mb: {min: 2048}
`, first.App, first.App+"/"+first.Func)
	rules, err := guard.Parse("trial.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return rules, yaml
}

// budgetCheck follows the operational decisions in force and reports an
// app whose functions keep more warm instances than its budget allows.
type budgetCheck struct {
	rules *guard.Rules
	warm  map[guard.Function]int
}

func (c *budgetCheck) apply(rows []schemas.DecisionRow) error {
	if c.warm == nil {
		c.warm = map[guard.Function]int{}
	}
	apps := map[string]bool{}
	for _, r := range rows {
		c.warm[guard.Function{App: r.App, Func: r.Func}] = guard.WarmOf(r)
		apps[r.App] = true
	}
	for app := range apps {
		limit := c.rules.App(app).MaxPrewarm
		if limit < 0 {
			continue
		}
		sum := 0
		for f, w := range c.warm {
			if f.App == app {
				sum += w
			}
		}
		if sum > limit {
			return fmt.Errorf("app %s keeps %d instances warm, its budget is %d", app, sum, limit)
		}
	}
	return nil
}

// check returns the first guardrail a batch of layer's decisions breaks.
func (c *budgetCheck) check(layer schemas.Layer, rows []schemas.DecisionRow) error {
	for _, r := range rows {
		if err := c.rules.Check(layer, r); err != nil {
			return err
		}
	}
	if layer == schemas.Operational {
		return c.apply(rows)
	}
	return nil
}

// TestGuardrailsClosedLoop runs the 998 real rows through the closed loop
// with the baselines of `strata run`, served under guardrails by the
// loop's workers: no decision the twin evaluates breaks them, the
// projections are counted on the registry, and the state batches of the
// run are kept for TestGuardrailsEveryPolicy.
func TestGuardrailsClosedLoop(t *testing.T) {
	states := guardedLoop(t)
	for _, l := range schemas.Layers {
		if states.n[l] == 0 {
			t.Errorf("the run published no %s state batch", l)
		}
	}
}

// loopStates are the state batches a closed loop published, by layer.
type loopStates struct {
	log *pipelinetest.BatchLog
	n   map[schemas.Layer]int
}

// TestGuardrailsRun runs `strata run`'s closed loop (RunLoop, the
// guardrails file given as --guardrails gives it) on two synthetic days of
// a few apps, the second of which the strategic layer decides: every
// decision in the decisions table honours the guardrails, and the runs row
// records the file's SHA-256 and contents.
func TestGuardrailsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("two synthetic days through the loop: the unit tier runs it; -race adds nothing to what it checks")
	}
	synth := synthRun(t)
	if synth.n[schemas.Strategic] == 0 {
		t.Fatal("no strategic state batch")
	}
}

var (
	synthOnce   sync.Once
	synthResult *loopStates
	synthErr    string
)

// synthRun runs the guarded two-day loop once per test binary.
func synthRun(t *testing.T) *loopStates {
	t.Helper()
	synthOnce.Do(func() { synthResult, synthErr = runSynth(t) })
	if synthErr != "" {
		t.Fatal(synthErr)
	}
	return synthResult
}

func runSynth(t *testing.T) (*loopStates, string) {
	rules, yaml := guardTrial(t)
	file := filepath.Join(t.TempDir(), "guardrails.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		return nil, err.Error()
	}
	flags := pipeline.ServeFlags{Guardrails: file, Fallback: "operational=reactive"}
	if err := flags.Validate(); err != nil {
		return nil, err.Error()
	}
	sv, err := flags.Load()
	if err != nil {
		return nil, err.Error()
	}
	db := filepath.Join(t.TempDir(), "run.duckdb")
	log := &pipelinetest.BatchLog{}
	o := pipelinetest.Config("synth-guarded", 0, 1, log)
	src := pipeline.Source{SynthDays: 2, Seed: 1, Apps: 6}
	srcR, name, lenUS, closeSrc, err := src.Open()
	if err != nil {
		return nil, err.Error()
	}
	defer closeSrc()
	var out strings.Builder
	lo := pipeline.LoopOptions{Strategic: "random", Tactical: "random", Operational: "static-2x", Placement: cloud.Placement{Provider: cloud.AWS, Metro: cloud.USEast, Tier: 3},
		PolicySeed: 1, Source: &src, Store: db, Transitions: nil, Serving: sv, RunJSON: `["--guardrails","` + file + `"]`}
	if err := pipeline.RunLoop(t.Context(), lo, o, srcR, name, lenUS, &out); err != nil {
		return nil, err.Error()
	}
	t.Log(out.String())
	st, err := store.Open(context.Background(), db)
	if err != nil {
		return nil, err.Error()
	}
	defer func() { _ = st.Close() }()
	_, rows, err := st.Query(context.Background(), "SELECT layer, app, func, provider, region, memory_mb FROM decisions WHERE run_id = 'synth-guarded'")
	if err != nil {
		return nil, err.Error()
	}
	byLayer := map[string]int{}
	for _, r := range rows {
		layer := schemas.Layer(fmt.Sprint(r[0]))
		byLayer[string(layer)]++
		d := schemas.DecisionRow{App: fmt.Sprint(r[1]), Func: fmt.Sprint(r[2]), Provider: fmt.Sprint(r[3]), Region: fmt.Sprint(r[4])}
		mb, _ := strconv.Atoi(fmt.Sprint(r[5]))
		d.MemoryMB = int32(mb)
		// The table records the placement in force: its provider is the
		// strategic layer's decision (or, before the first, the run's
		// default placement, which guardrails do not change), its region
		// and tier the tactical layer's.
		if layer == schemas.Operational {
			continue
		}
		if layer == schemas.Tactical {
			d.Provider = ""
		}
		if err := rules.Check(layer, d); err != nil {
			return nil, fmt.Sprintf("decisions table: %v", err)
		}
	}
	t.Logf("decisions stored by layer: %v", byLayer)
	if byLayer["strategic"] == 0 || byLayer["tactical"] == 0 {
		return nil, fmt.Sprintf("decisions stored by layer %v: want strategic and tactical ones", byLayer)
	}
	_, cfg, err := st.Query(context.Background(), "SELECT config_json FROM runs WHERE run_id = 'synth-guarded'")
	if err != nil || len(cfg) != 1 {
		return nil, fmt.Sprintf("runs row: %v, %v", cfg, err)
	}
	if js := fmt.Sprint(cfg[0][0]); !strings.Contains(js, `"guardrails_sha256":"`+rules.SHA256+`"`) || !strings.Contains(js, `"fallback":{"operational":"reactive"}`) || !strings.Contains(js, "max_prewarm: 2") {
		return nil, fmt.Sprintf("runs.config_json does not record the guardrails and fallback: %s", js)
	}
	res := &loopStates{log: log, n: map[schemas.Layer]int{}}
	for _, b := range log.Batches {
		res.n[b.H.Layer]++
	}
	return res, ""
}

var (
	loopOnce   sync.Once
	loopResult *loopStates
	loopErr    string
)

// guardedLoop runs the guarded closed loop once per test binary.
func guardedLoop(t *testing.T) *loopStates {
	t.Helper()
	loopOnce.Do(func() { loopResult, loopErr = runGuardedLoop(t) })
	if loopErr != "" {
		t.Fatal(loopErr)
	}
	return loopResult
}

func runGuardedLoop(t *testing.T) (*loopStates, string) {
	rules, _ := guardTrial(t)
	log := &pipelinetest.BatchLog{}
	o := pipelinetest.LoopConfig(t, "guarded", 0, log)
	reg := prometheus.NewPedanticRegistry()
	o.Registerer = reg
	for l, n := range map[schemas.Layer]string{schemas.Strategic: "random", schemas.Tactical: "random", schemas.Operational: "static-2x"} {
		p, err := agents.New(n, l, agents.Options{Seed: 1, Model: o.Model})
		if err != nil {
			return nil, err.Error()
		}
		o.Policies[l] = p
	}
	o.Serving = &pipeline.Serving{Rules: rules}
	var mu sync.Mutex
	var broken []string
	evaluated := map[schemas.Layer]int{}
	chk := &budgetCheck{rules: rules}
	o.Record = func(tick int64, batches []*schemas.DecisionBatch) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range batches {
			evaluated[b.Header.Layer] += len(b.Rows)
			if err := chk.check(b.Header.Layer, b.Rows); err != nil {
				broken = append(broken, fmt.Sprintf("tick %d: %v", tick, err))
			}
		}
	}
	res := pipelinetest.RunLoopInto(t, o, storeFor(t))
	if res.Twin.Ticks != 431 {
		return nil, fmt.Sprintf("twin evaluated %d ticks, want 431", res.Twin.Ticks)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(broken) > 0 {
		return nil, fmt.Sprintf("%d batches the twin evaluated break the guardrails; first: %s", len(broken), broken[0])
	}
	// The real rows span 431 ticks, under two hours: the twin evaluates
	// tactical and operational decisions, and the strategic decision of
	// the first day only decides the next.
	t.Logf("decisions evaluated by layer: %v", evaluated)
	for _, l := range []schemas.Layer{schemas.Tactical, schemas.Operational} {
		if evaluated[l] == 0 {
			return nil, fmt.Sprintf("the twin evaluated no %s decision", l)
		}
	}
	// Random placements and static-2x's pre-warm break the trial's rules
	// all the time: the workers must have projected some of each kind.
	for _, c := range guard.Constraints {
		n := 0.0
		for _, l := range schemas.Layers {
			n += gatherCounter(t, reg, "strata_worker_guardrail_projections_total", map[string]string{"layer": string(l), "constraint": string(c)})
		}
		if n == 0 {
			return nil, fmt.Sprintf("no %s projection counted", c)
		}
		t.Logf("%s projections: %v", c, n)
	}
	st := &loopStates{log: log, n: map[schemas.Layer]int{}}
	for _, b := range log.Batches {
		st.n[b.H.Layer]++
	}
	return st, ""
}

// storeFor opens a DuckDB store in the test's directory.
func storeFor(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenDuckDB(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// gatherCounter returns the value of the counter name with labels, 0 when
// there is none.
func gatherCounter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// modelDir returns a directory of results/models, from any package's
// directory.
func modelDir(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "results", "models"}, parts...)...)
}

// TestGuardrailsEveryPolicy runs every policy of every layer — each
// baseline, strata's own, random, and the learned dqn, ppo and lstm from
// the checkpoints in results/models — on the state batches of the real
// closed loop, in order, and projects each batch onto the guardrails as
// the worker does: no decision breaks them. It also checks that the
// rules bite: without the projection, decisions break them.
func TestGuardrailsEveryPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("every policy on two runs' batches, one goroutine: the unit tier runs it; -race adds nothing")
	}
	logs := []*pipelinetest.BatchLog{guardedLoop(t).log, synthRun(t).log}
	rules, _ := guardTrial(t)
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.NewModel(cat, cloud.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	learned := map[schemas.Layer]string{
		schemas.Strategic:   modelDir("hierarchy-hh", "s1"),
		schemas.Tactical:    modelDir("hierarchy-hh", "s1"),
		schemas.Operational: modelDir("lstm-ma5-residual", "s1"),
	}
	rawBroken := map[schemas.Layer]int{}
	var mu sync.Mutex
	for _, layer := range schemas.Layers {
		names := slices.Concat(agents.Names(layer), agents.Own(layer), []string{agents.LearnedName(layer)})
		for _, name := range names {
			t.Run(string(layer)+"/"+name, func(t *testing.T) {
				opts := agents.Options{Seed: 1, Model: m, Models: learned[layer]}
				p, err := agents.New(name, layer, opts)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := agents.New(name, layer, opts)
				if err != nil {
					t.Fatal(err)
				}
				enf, err := guard.NewEnforcer(rules, layer, cat)
				if err != nil {
					t.Fatal(err)
				}
				guarded, unguarded := &budgetCheck{rules: rules}, &budgetCheck{rules: rules}
				decided := 0
				for run, log := range logs {
					// Each run is a run of its own: fresh policies,
					// enforcer and sequences.
					if run > 0 {
						if p, err = agents.New(name, layer, opts); err != nil {
							t.Fatal(err)
						}
						if raw, err = agents.New(name, layer, opts); err != nil {
							t.Fatal(err)
						}
						if enf, err = guard.NewEnforcer(rules, layer, cat); err != nil {
							t.Fatal(err)
						}
						guarded, unguarded = &budgetCheck{rules: rules}, &budgetCheck{rules: rules}
					}
					var seq, rawSeq schemas.Sequences
					for _, b := range log.Batches {
						if b.H.Layer != layer {
							continue
						}
						out := decide(t, p, &seq, b.Data)
						enf.Apply(out)
						decided += len(out.Rows)
						if err := guarded.check(layer, out.Rows); err != nil {
							t.Fatalf("%s, run %d, tick %d shard %d: %v", name, run, b.H.Tick, b.H.Shard, err)
						}
						if err := unguarded.check(layer, decide(t, raw, &rawSeq, b.Data).Rows); err != nil {
							mu.Lock()
							rawBroken[layer]++
							mu.Unlock()
						}
					}
				}
				if decided == 0 {
					t.Errorf("%s decided no row on the runs' state batches", name)
				}
			})
		}
	}
	for _, l := range schemas.Layers {
		if rawBroken[l] == 0 {
			t.Errorf("no %s policy broke the trial's rules without the guardrails: the test proves nothing there", l)
		}
	}
}

// decide decodes a state batch, completes its sequences as the worker
// does and returns p's decisions.
func decide(t *testing.T, p worker.Policy, seq *schemas.Sequences, data []byte) *schemas.DecisionBatch {
	t.Helper()
	st, err := schemas.DecodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	seq.Fill(st)
	out := &schemas.DecisionBatch{Header: st.Header}
	if err := p.Decide(context.Background(), st, out); err != nil {
		t.Fatalf("%s deciding %s tick %d: %v", p.Name(), st.Header.Layer, st.Header.Tick, err)
	}
	return out
}

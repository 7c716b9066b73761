package learner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// modelStore starts an in-process nats-server with JetStream and returns a
// model store on it.
func modelStore(t testing.TB) *natsbus.ModelStore {
	t.Helper()
	js, _ := natstest.JetStream(t, "learner-test", natsbus.StreamConfig{Memory: true})
	ctx := context.Background()
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// tacticalRun builds the transitions of hours 0..hours−1 of run, perFunc
// functions each, as the twin writes them: hour h's transitions carry the
// version in force at h under a 64-transition rollout with 40 functions
// (v0 for hours 0–1, v1 for 2–3, …), then the hour's marker. The reward
// favours action 3.
func tacticalRun(run string, hours, funcs int) []*stratapb.Transition {
	var out []*stratapb.Transition
	for h := range hours {
		for f := range funcs {
			state := make([]float32, schemas.TacticalDim)
			for i := range state {
				state[i] = float32((f*7+i*3+h)%11) / 10
			}
			state[7], state[8], state[9] = 1, 0, 0
			a := int32((f + h) % 24)
			r := -0.2
			if a == 3 {
				r = 1
			}
			next := append([]float32(nil), state...)
			next[0] += 0.1
			out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), App: "app" + strconv.Itoa(f%5),
				Func: "f" + strconv.Itoa(f), State: state, Action: a, Reward: r, NextState: next, PolicyVersion: ppo.FormatVersion(uint64(h / 2)),
				LogProb: ptr(math.Log(1.0 / 24)), Policy: ppo.Name})
		}
		out = append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Tactical), Tick: int64(h), EndOfInterval: true, Count: int64(funcs)})
	}
	return out
}

func ptr(x float64) *float64 { return &x }

func newLearner(t *testing.T) *learner.Learner {
	t.Helper()
	cfg := learner.DefaultConfig(7, schemas.Tactical)
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 64, 32, 2
	return mustLearner(t, cfg, nil)
}

// mustLearner returns a learner of cfg (its metrics on reg, if any), closed
// when the test ends.
func mustLearner(t *testing.T, cfg learner.Config, reg prometheus.Registerer) *learner.Learner {
	t.Helper()
	l, err := learner.New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// begun returns mustLearner(t, cfg, reg) after Begin of run's episode on ms.
func begun(t *testing.T, cfg learner.Config, reg prometheus.Registerer, run string, episode int, ms learner.Store) *learner.Learner {
	t.Helper()
	l := mustLearner(t, cfg, reg)
	if err := l.Begin(context.Background(), run, episode, ms); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLearnerOrderIndependent feeds the same run's transitions in their
// order and shuffled (markers anywhere, as from several partitions): the
// learner trains on whole intervals in interval order, so both publish
// the same checkpoints, byte for byte, in force from the same hours.
func TestLearnerOrderIndependent(t *testing.T) {
	ctx := context.Background()
	ms := modelStore(t)
	const hours, funcs = 6, 40
	feed := func(run string, shuffle bool) []natsbus.IndexEntry {
		l := newLearner(t)
		if err := l.Begin(ctx, run, 0, ms); err != nil {
			t.Fatal(err)
		}
		trs := tacticalRun(run, hours, funcs)
		if shuffle {
			// Markers keep their relative order (one partition, key =
			// layer); transitions go anywhere.
			rng := rand.New(rand.NewPCG(1, 2))
			rng.Shuffle(len(trs), func(i, j int) {
				if !trs[i].EndOfInterval && !trs[j].EndOfInterval {
					trs[i], trs[j] = trs[j], trs[i]
				}
			})
			// Move every marker to the front half at random, keeping order.
			var marks, rest []*stratapb.Transition
			for _, tr := range trs {
				if tr.EndOfInterval {
					marks = append(marks, tr)
				} else {
					rest = append(rest, tr)
				}
			}
			trs = append(marks, rest...)
		}
		for _, tr := range trs {
			if err := l.Handle(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		if got := l.Done(schemas.Tactical); got != hours {
			t.Fatalf("%s: %d hours processed, want %d", run, got, hours)
		}
		st := l.Stats()
		// Each update leaves the rest of its second hour stale: 16 of 40.
		if st.Rejected["stale-version"] != 3*16 {
			t.Fatalf("%s: rejected %v, want 48 stale", run, st.Rejected)
		}
		idx, err := ms.Index(ctx, run, schemas.Tactical)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	a, b := feed("ordered", false), feed("shuffled", true)
	want := []int64{0, 2, 4, 6}
	if len(a) != len(want) || len(b) != len(want) {
		t.Fatalf("index entries %v and %v, want in force from %v", a, b, want)
	}
	for i := range a {
		if a[i].InForce != want[i] || b[i].InForce != want[i] || a[i].Version != b[i].Version || a[i].Version != ppo.FormatVersion(uint64(i)) {
			t.Fatalf("entry %d: %+v vs %+v, want v%d in force from %d", i, a[i], b[i], i, want[i])
		}
		ca, _, err := ms.InForce(ctx, "ordered", schemas.Tactical, a[i].InForce)
		if err != nil {
			t.Fatal(err)
		}
		cb, _, err := ms.InForce(ctx, "shuffled", schemas.Tactical, b[i].InForce)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ca.Data, cb.Data) {
			t.Fatalf("checkpoint %s differs between the orders", a[i].Version)
		}
	}
}

// TestLearnerRejectsNonFinite counts a NaN transition and trains on.
func TestLearnerRejectsNonFinite(t *testing.T) {
	ctx := context.Background()
	l := newLearner(t)
	if err := l.Begin(ctx, "nan", 0, modelStore(t)); err != nil {
		t.Fatal(err)
	}
	trs := tacticalRun("nan", 1, 3)
	trs[1].State[2] = float32(math.NaN())
	trs[2].Reward = math.Inf(1)
	for _, tr := range trs {
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.Rejected["non-finite"] != 2 || st.PPO.Accepted != 1 || l.Done(schemas.Tactical) != 1 {
		t.Fatalf("rejected %v, accepted %d, done %d: want 2 non-finite, 1 accepted, the hour done", st.Rejected, st.PPO.Accepted, l.Done(schemas.Tactical))
	}
}

// TestLearnerRefusesAnotherFeatureSet fails on a transition whose state is
// in another feature set than its network reads, naming both sets; a
// transition that names none is in the seed's set.
func TestLearnerRefusesAnotherFeatureSet(t *testing.T) {
	tests := []struct {
		name    string
		set     schemas.FeatureSet
		wantErr bool
	}{
		{"unnamed: the seed's set", "", false},
		{"the seed's set named", schemas.TacticalSeed, false},
		{"the placement set", schemas.TacticalPlacement, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := newLearner(t)
			if err := l.Begin(ctx, "fs", 0, modelStore(t)); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, tr := range tacticalRun("fs", 1, 3) {
				tr.FeatureSet = string(tc.set)
				if err = l.Handle(ctx, tr); err != nil {
					break
				}
			}
			if tc.wantErr != (err != nil) || err != nil && (!errors.Is(err, learner.ErrFeatureSet) || !strings.Contains(err.Error(), string(schemas.TacticalSeed))) {
				t.Fatalf("Handle: %v, want an error %v naming %s", err, tc.wantErr, schemas.TacticalSeed)
			}
		})
	}
}

// TestLearnerIgnoresOtherRuns drops transitions of another run.
func TestLearnerIgnoresOtherRuns(t *testing.T) {
	ctx := context.Background()
	l := newLearner(t)
	if err := l.Begin(ctx, "mine", 0, modelStore(t)); err != nil {
		t.Fatal(err)
	}
	for _, tr := range tacticalRun("theirs", 2, 5) {
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.Transitions[schemas.Tactical] != 0 || l.Done(schemas.Tactical) != 0 {
		t.Fatalf("took another run's transitions: %+v", st)
	}
}

// versionPolicy serves a checkpoint's version and records its decisions.
type versionPolicy struct{ v string }

func (p versionPolicy) Name() string    { return "test" }
func (p versionPolicy) Version() string { return p.v }
func (p versionPolicy) Decide(_ context.Context, st *schemas.StateBatch, out *schemas.DecisionBatch) error {
	out.Rows = append(out.Rows, schemas.DecisionRow{App: "a", PolicyVersion: p.v})
	return nil
}

// recordingModels is the model store as the follower sees it, with a log
// of its calls: a WaitProgress call is also announced on entered, and an
// InForce call notes whether progress had been published by then.
type recordingModels struct {
	learner.Models
	entered   chan int64
	published atomic.Bool // set before the progress that ends the wait is put
	mu        sync.Mutex
	log       []string
}

func (r *recordingModels) record(e string) {
	r.mu.Lock()
	r.log = append(r.log, e)
	r.mu.Unlock()
}

func (r *recordingModels) WaitProgress(ctx context.Context, runID string, l schemas.Layer, i int64) error {
	r.record(fmt.Sprintf("wait %d", i))
	r.entered <- i
	err := r.Models.WaitProgress(ctx, runID, l, i)
	r.record(fmt.Sprintf("waited %d: %v", i, err))
	return err
}

func (r *recordingModels) InForce(ctx context.Context, runID string, l schemas.Layer, i int64) (schemas.Checkpoint, bool, error) {
	r.record(fmt.Sprintf("in force %d (progress published %v)", i, r.published.Load()))
	return r.Models.InForce(ctx, runID, l, i)
}

// TestFollowerSwitchesAtNamedInterval: in replay the follower waits for
// the learner's progress before deciding, then serves the checkpoint in
// force at the interval; a checkpoint in force later does not leak in.
// The wait is checked by events, not by timing: the follower must ask for
// progress i−1 (observed before anything else is published) and look the
// model up only after that wait returned, and only once the progress was
// being published.
func TestFollowerSwitchesAtNamedInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := modelStore(t)
	put := func(v string, from int64) {
		if err := ms.PutCheckpoint(ctx, "run", schemas.Checkpoint{Layer: schemas.Tactical, Version: v, InForce: from, Data: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	load := func(c schemas.Checkpoint) (learner.Policy, error) { return versionPolicy{v: string(c.Data)}, nil }
	rm := &recordingModels{Models: ms, entered: make(chan int64, 1)}
	f := learner.NewFollower("ppo", schemas.Tactical, "run", rm, load, false)
	decide := func(i int64) (string, error) {
		out := &schemas.DecisionBatch{}
		err := f.Decide(ctx, &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "run", Layer: schemas.Tactical, Tick: i}}, out)
		if err != nil {
			return "", err
		}
		return out.Rows[0].PolicyVersion, nil
	}
	if _, err := decide(0); !errors.Is(err, learner.ErrNoModel) {
		t.Fatalf("deciding without a model: %v, want ErrNoModel", err)
	}
	put("v0", 0)
	if v, err := decide(0); err != nil || v != "v0" {
		t.Fatalf("interval 0: %q %v, want v0", v, err)
	}
	// Interval 3 waits for progress 2 (the learner is at 1); meanwhile v1
	// (from 3) and v2 (from 5) are published.
	if err := ms.PutProgress(ctx, "run", schemas.Tactical, 1); err != nil {
		t.Fatal(err)
	}
	rm.mu.Lock()
	rm.log = nil
	rm.mu.Unlock()
	got := make(chan string, 1)
	go func() {
		v, err := decide(3)
		if err != nil {
			v = err.Error()
		}
		got <- v
	}()
	select {
	case i := <-rm.entered:
		if i != 2 {
			t.Fatalf("deciding interval 3 waited for progress %d, want 2", i)
		}
	case v := <-got:
		t.Fatalf("decided interval 3 without waiting for the learner's progress: %s", v)
	}
	put("v1", 3)
	put("v2", 5)
	rm.published.Store(true)
	if err := ms.PutProgress(ctx, "run", schemas.Tactical, 2); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "v1" {
		t.Fatalf("interval 3 served %q, want v1", v)
	}
	rm.mu.Lock()
	log := rm.log
	rm.mu.Unlock()
	if want := []string{"wait 2", "waited 2: <nil>", "in force 3 (progress published true)"}; !slices.Equal(log, want) {
		t.Fatalf("the follower's calls deciding interval 3: %q, want %q", log, want)
	}
	if f.Switches != 2 {
		t.Fatalf("%d switches, want 2", f.Switches)
	}
	// Live mode serves the newest at once.
	live := learner.NewFollower("ppo", schemas.Tactical, "run", ms, load, true)
	out := &schemas.DecisionBatch{}
	if err := live.Decide(ctx, &schemas.StateBatch{Header: schemas.BatchHeader{Tick: 1}}, out); err != nil || out.Rows[0].PolicyVersion != "v2" {
		t.Fatalf("live follower: %v %v, want v2", out.Rows, err)
	}
}

// TestLearnerDQNPublishesPerDay trains the strategic DQN off-policy on
// three days of app transitions (the last day's terminal, without a next
// state): once warmed up, each day's steps give a checkpoint in force
// from the next day, and the follower's loader can serve it.
func TestLearnerDQNPublishesPerDay(t *testing.T) {
	ctx := context.Background()
	ms := modelStore(t)
	cfg := learner.DefaultConfig(5, schemas.Strategic)
	cfg.DQN.WarmUp, cfg.DQN.ScalerFit, cfg.DQN.BatchSize, cfg.DQN.UpdatesPerTransition = 16, 16, 8, 2
	l := begun(t, cfg, nil, "dqn", 2, ms)
	const apps, days = 20, 3
	for d := range days {
		for a := range apps {
			st := make([]float32, schemas.StrategicDim)
			for i := range st {
				st[i] = float32((a*5+i+d)%9) + 0.5
			}
			tr := &stratapb.Transition{RunId: "dqn", Layer: string(schemas.Strategic), Tick: int64(d), App: "app" + strconv.Itoa(a),
				State: st, Action: int32(a % 3), Reward: float64(a%3) - 1, Policy: "dqn"}
			if d < days-1 {
				tr.NextState = st
			} else {
				tr.Done = true
			}
			if err := l.Handle(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Handle(ctx, &stratapb.Transition{RunId: "dqn", Layer: string(schemas.Strategic), Tick: int64(d), EndOfInterval: true, Count: apps}); err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.DQN.Added != apps*days || len(st.Rejected) != 0 || st.DQN.Steps == 0 {
		t.Fatalf("DQN added %d, rejected %v, %d steps: want all %d added and trained on", st.DQN.Added, st.Rejected, st.DQN.Steps, apps*days)
	}
	idx, err := ms.Index(ctx, "dqn", schemas.Strategic)
	if err != nil {
		t.Fatal(err)
	}
	// Begin's e2-s0 from day 0; days 0 (16 of 20 warm up, 8 steps), 1
	// and 2 each add steps and a checkpoint in force the next day.
	if len(idx) != 4 || idx[0].InForce != 0 || idx[1].InForce != 1 || idx[3].InForce != 3 || idx[0].Version != "e2-s0" {
		t.Fatalf("index %+v, want e2-s0 from day 0 then one checkpoint per day from day 1", idx)
	}
}

// TestLearnerMetrics exposes the rejection counters on the registerer.
func TestLearnerMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cfg := learner.DefaultConfig(1, schemas.Tactical)
	l := begun(t, cfg, reg, "m", 0, modelStore(t))
	trs := tacticalRun("m", 1, 2)
	trs[0].Reward = math.NaN()
	for _, tr := range trs {
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP strata_learner_rejected_transitions_total Transitions the algorithms refused (NaN/Inf, malformed, stale version, duplicate, full buffer), by reason.
# TYPE strata_learner_rejected_transitions_total counter
strata_learner_rejected_transitions_total{reason="non-finite"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_learner_rejected_transitions_total"); err != nil {
		t.Fatal(err)
	}
}

// TestLearnerStateRestore checks Restore: a state restores into a learner
// of the same configuration (and saves back byte for byte), while one of
// another PPO configuration or other layers is refused with ErrState and
// leaves the learner as it was.
func TestLearnerStateRestore(t *testing.T) {
	ctx := context.Background()
	l := newLearner(t)
	if err := l.Begin(ctx, "state", 0, modelStore(t)); err != nil {
		t.Fatal(err)
	}
	for _, tr := range tacticalRun("state", 3, 40) {
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	var st bytes.Buffer
	if err := l.SaveState(&st); err != nil {
		t.Fatal(err)
	}
	same := newLearner(t)
	if err := same.Restore(bytes.NewReader(st.Bytes())); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := same.SaveState(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Bytes(), again.Bytes()) {
		t.Fatal("a restored learner saves another state")
	}
	other := learner.DefaultConfig(7, schemas.Tactical)
	other.PPO.Rollout, other.PPO.Minibatch, other.PPO.Epochs = 64, 32, 3
	dqnOnly := learner.DefaultConfig(7, schemas.Strategic)
	for name, cfg := range map[string]learner.Config{"another PPO configuration": other, "other layers": dqnOnly} {
		t.Run(name, func(t *testing.T) {
			o := mustLearner(t, cfg, nil)
			before := o.Stats()
			if err := o.Restore(bytes.NewReader(st.Bytes())); !errors.Is(err, learner.ErrState) {
				t.Fatalf("Restore: %v, want ErrState", err)
			}
			if after := o.Stats(); after.PPO.Accepted != before.PPO.Accepted || after.DQN.Added != before.DQN.Added {
				t.Fatal("a refused state changed the learner")
			}
		})
	}
}

// TestSwitchPenalty checks the training-time switching cost: only a
// transition whose action moves the function off the metro and tier its
// placement-v1 state names is shaped (one that stays, or whose state does
// not say where it ran, is not), and the penalty needs the placement set.
func TestSwitchPenalty(t *testing.T) {
	ctx := context.Background()
	cfg := learner.DefaultConfig(7, schemas.Tactical)
	cfg.PPO = cfg.PPO.WithFeatures(schemas.TacticalPlacement)
	cfg.SwitchPenalty = 0.5
	l := begun(t, cfg, nil, "shape", 0, modelStore(t))
	state := func(metro, tier int) []float32 {
		r := schemas.TacticalRow{Provider: "aws", RequestRate: 0.1}
		if metro >= 0 {
			r.Region, r.MemoryMB = schemas.PlacementMetros[metro], schemas.PlacementTiersMB[tier]
		}
		return r.AppendFeatures(nil, schemas.TacticalPlacement)
	}
	trs := []*stratapb.Transition{
		{Func: "stays", State: state(1, 2), Action: 1*6 + 2},
		{Func: "moves", State: state(1, 2), Action: 0},
		{Func: "unknown", State: state(-1, 0), Action: 5},
	}
	for _, tr := range trs {
		tr.RunId, tr.Layer, tr.App, tr.Reward, tr.Done = "shape", string(schemas.Tactical), "a", 0.3, true
		tr.PolicyVersion, tr.LogProb, tr.Policy, tr.FeatureSet = ppo.FormatVersion(0), ptr(math.Log(1.0/24)), ppo.Name, string(schemas.TacticalPlacement)
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Handle(ctx, &stratapb.Transition{RunId: "shape", Layer: string(schemas.Tactical), EndOfInterval: true, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Shaped != 1 || st.PPO.Accepted != 3 {
		t.Fatalf("shaped %d of %d accepted, want 1 of 3", st.Shaped, st.PPO.Accepted)
	}
	seed := learner.DefaultConfig(7, schemas.Tactical)
	seed.SwitchPenalty = 0.5
	if _, err := learner.New(seed, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), string(schemas.TacticalPlacement)) {
		t.Fatalf("a switching penalty on the seed's state: %v, want a refusal naming %s", err, schemas.TacticalPlacement)
	}
}

// TestPPOMemoryMask checks that a learner whose PPO acts under the memory
// mask rebuilds it from each transition's state: an action below the
// state's memory peak is refused as invalid (no policy under the mask
// takes it), one at or above it is trained on.
func TestPPOMemoryMask(t *testing.T) {
	ctx := context.Background()
	cfg := learner.DefaultConfig(7, schemas.Tactical)
	cfg.PPO = cfg.PPO.WithFeatures(schemas.TacticalPlacementV2)
	cfg.PPO.Mask = ppo.MaskMemory
	l := begun(t, cfg, nil, "mem", 0, modelStore(t))
	row := schemas.TacticalRow{Provider: "aws", RequestRate: 0.1, MemoryPeakMB: 1500}
	state := row.AppendFeatures(nil, schemas.TacticalPlacementV2)
	trs := []*stratapb.Transition{
		{Func: "fits", State: state, Action: 1*6 + 4},      // 2,048 MB
		{Func: "too-small", State: state, Action: 1*6 + 3}, // 1,024 MB
		{Func: "largest", State: state, Action: 5},         // 3,008 MB
	}
	for _, tr := range trs {
		tr.RunId, tr.Layer, tr.App, tr.Reward, tr.Done = "mem", string(schemas.Tactical), "a", 0.3, true
		tr.PolicyVersion, tr.LogProb, tr.Policy, tr.FeatureSet = ppo.FormatVersion(0), ptr(math.Log(1.0/8)), ppo.Name, string(schemas.TacticalPlacementV2)
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Handle(ctx, &stratapb.Transition{RunId: "mem", Layer: string(schemas.Tactical), EndOfInterval: true, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.PPO.Accepted != 2 || st.Rejected["invalid"] != 1 {
		t.Fatalf("accepted %d, rejected %v; want 2 accepted and the 1,024 MB action refused", st.PPO.Accepted, st.Rejected)
	}
}

// TestDQNSwitchPenalty checks the DQN's switching shaping: on a
// placement-v1 state that names the provider, the taken and the
// counterfactual transitions whose provider differs are shaped (two of a
// day's three on an app that ran somewhere; none on an app whose state
// names no provider), and the penalty needs placement-v1.
func TestDQNSwitchPenalty(t *testing.T) {
	ctx := context.Background()
	cfg := learner.DefaultConfig(5, schemas.Strategic)
	cfg.DQN = cfg.DQN.WithFeatures(schemas.StrategicPlacement)
	cfg.DQN.WarmUp, cfg.DQN.ScalerFit, cfg.DQN.BatchSize = 8, 8, 4
	cfg.DQNCounterfactual, cfg.DQNSwitchPenalty = true, 0.3
	l := begun(t, cfg, nil, "dshape", 0, modelStore(t))
	for i, provider := range []string{"azure", ""} {
		st := (&schemas.StrategicRow{App: "a", Invocations: 10, Provider: provider}).AppendFeatures(nil, schemas.StrategicPlacement)
		tr := &stratapb.Transition{RunId: "dshape", Layer: string(schemas.Strategic), Tick: 0, App: "app" + strconv.Itoa(i), State: st,
			Action: 1, Reward: 0.5, ActionRewards: []float32{0.1, 0.5, 0.2}, Done: true, Policy: "dqn", FeatureSet: string(schemas.StrategicPlacement)}
		if err := l.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Handle(ctx, &stratapb.Transition{RunId: "dshape", Layer: string(schemas.Strategic), Tick: 0, EndOfInterval: true, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.DQNShaped != 2 || st.DQN.Added != 6 {
		t.Fatalf("shaped %d of %d added, want 2 of 6", st.DQNShaped, st.DQN.Added)
	}
	seed := learner.DefaultConfig(5, schemas.Strategic)
	seed.DQNSwitchPenalty = 0.3
	if _, err := learner.New(seed, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), string(schemas.StrategicPlacement)) {
		t.Fatalf("a DQN switching penalty on the seed's state: %v, want a refusal naming %s", err, schemas.StrategicPlacement)
	}
}

// TestDQNCounterfactual checks that with DQNCounterfactual each strategic
// transition that carries the 3 providers' rewards adds 3 rows to the
// replay buffer (the taken action's and two counterfactual ones), one
// without them adds 1, and without the option every transition adds 1.
func TestDQNCounterfactual(t *testing.T) {
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("on=%v", on), func(t *testing.T) {
			cfg := learner.DefaultConfig(5, schemas.Strategic)
			cfg.DQN.WarmUp, cfg.DQN.ScalerFit, cfg.DQN.BatchSize = 8, 8, 4
			cfg.DQNCounterfactual = on
			l := begun(t, cfg, nil, "cf", 2, modelStore(t))
			trs := strategicDay("cf", 0, 6, 2)
			for _, tr := range trs[:4] { // four of the six apps carry every provider's reward
				tr.ActionRewards = []float32{-0.5, 0.25, 1}
				tr.ActionRewards[tr.GetAction()] = float32(tr.GetReward())
			}
			for _, tr := range trs {
				if err := l.Handle(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			want := uint64(6)
			if on {
				want = 4*3 + 2
			}
			if st := l.Stats(); st.DQN.Added != want || len(st.Rejected) != 0 {
				t.Fatalf("DQN added %d (rejected %v), want %d", st.DQN.Added, st.Rejected, want)
			}
		})
	}
}

package dqn

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.BufferSize != 100_000 || c.BatchSize != 64 || c.Gamma != 0.99 || c.Tau != 0.005 ||
		c.QMin != -100 || c.QMax != 100 || c.Net.Optimizer.LearningRate != 1e-4 ||
		c.Net.Optimizer.ClipNorm != 1 || c.Net.Loss != nn.LossHuber || c.WarmUp != 1_000 ||
		c.UpdatesPerTransition != 1 || c.EpsilonStart != 1 || c.EpsilonEnd != 0.05 || c.EpsilonEpisodes != 40 {
		t.Errorf("defaults differ from docs/agents.md: %+v", c)
	}
	if c.Net.Inputs() != schemas.StrategicDim || c.Net.Actions != 3 {
		t.Errorf("network of %d inputs and %d actions", c.Net.Inputs(), c.Net.Actions)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"buffer":     func(c *Config) { c.BufferSize = 0 },
		"batch":      func(c *Config) { c.BatchSize = 0 },
		"warm-up":    func(c *Config) { c.WarmUp = 0 },
		"gamma":      func(c *Config) { c.Gamma = 1.5 },
		"tau":        func(c *Config) { c.Tau = 0 },
		"bounds":     func(c *Config) { c.QMin, c.QMax = 1, -1 },
		"reward":     func(c *Config) { c.RewardClip = -1 },
		"updates":    func(c *Config) { c.UpdatesPerTransition = math.NaN() },
		"eps end 0":  func(c *Config) { c.EpsilonEnd = 0 },
		"eps order":  func(c *Config) { c.EpsilonStart, c.EpsilonEnd = 0.1, 0.5 },
		"episodes":   func(c *Config) { c.EpsilonEpisodes = 0 },
		"scaler":     func(c *Config) { c.ScalerKind = "zscore" },
		"scaler fit": func(c *Config) { c.ScalerFit = 0 },
		"log1p":      func(c *Config) { c.ScalerLog1p = []bool{true} },
		"net":        func(c *Config) { c.Net.Actions = 0 },
		"backend":    func(c *Config) { c.Backend = "tpu" },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
		if _, err := NewLearner(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: NewLearner got %v, want ErrConfig", name, err)
		}
	}
}

// TestEpsilonSchedule checks ε_e = max(0.05, 0.05^(e/40)) at episodes 0,
// 20, 40 and 50.
func TestEpsilonSchedule(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		e    int
		want float64
	}{{0, 1}, {20, math.Sqrt(0.05)}, {40, 0.05}, {50, 0.05}, {-1, 1}, {10, math.Pow(0.05, 0.25)}} {
		if got := c.Epsilon(tc.e); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ε(%d) = %v, want %v", tc.e, got, tc.want)
		}
	}
	if got := c.Epsilon(20); math.Abs(got-0.2236068) > 1e-7 {
		t.Errorf("ε(20) = %v, want 0.2236068", got)
	}
	for e := range 60 {
		if c.Epsilon(e+1) > c.Epsilon(e) {
			t.Errorf("ε rises from episode %d to %d", e, e+1)
		}
	}
	l := mustLearner(t, smallConfig())
	l.SetEpisode(20)
	if l.Episode() != 20 || l.Epsilon() != c.Epsilon(20) {
		t.Errorf("learner at episode %d has ε %v", l.Episode(), l.Epsilon())
	}
	p, err := l.Policy(1, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Epsilon() != c.Epsilon(20) {
		t.Errorf("exploring policy ε %v, want %v", p.Epsilon(), c.Epsilon(20))
	}
	if p, _ = l.Policy(1, false); p.Epsilon() != 0 {
		t.Errorf("evaluation policy ε %v, want 0", p.Epsilon())
	}
}

// TestTargetsHandComputed checks the bootstrapped targets of a
// 2-transition batch against hand computation: the first row's best next
// Q-value (150) is clipped to 100 and its target 5 + 0.99·100 = 104 to 100;
// the second row is terminal, so its target is its reward whatever the
// next Q-values (even NaN).
func TestTargetsHandComputed(t *testing.T) {
	c := DefaultConfig()
	nan := float32(math.NaN())
	got, clipped, err := c.Targets(nil, []float32{5, -3}, []bool{false, true}, []float32{2, 150, -5, nan, 1e6, nan})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{100, -3}; !slices.Equal(got, want) || clipped != 1 {
		t.Errorf("targets %v (%d clipped), want %v (1 clipped)", got, clipped, want)
	}
	// Lower bound and a target inside the bounds: 0.5 + 0.99·max(−100,
	// −100, −100) = −98.5 (next Q-values clipped up to −100), and
	// 1 + 0.99·3 = 3.97.
	got, clipped, err = c.Targets(got, []float32{0.5, 1}, []bool{false, false}, []float32{-200, -150, -120, 3, -1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(got[0])+98.5) > 1e-5 || math.Abs(float64(got[1])-3.97) > 1e-5 || clipped != 0 {
		t.Errorf("targets %v (%d clipped), want [-98.5 3.97] (0 clipped)", got, clipped)
	}
	// A target below −100: −10 + 0.99·(−100) = −109 → −100.
	if got, clipped, _ = c.Targets(got, []float32{-10}, []bool{false}, []float32{-100, -100, -100}); got[0] != -100 || clipped != 1 {
		t.Errorf("target %v (%d clipped), want -100 (1 clipped)", got, clipped)
	}
	if _, _, err := c.Targets(nil, []float32{1}, []bool{false}, []float32{nan, 0, 0}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN next Q-value of a non-terminal row: got %v, want ErrNonFinite", err)
	}
	if _, _, err := c.Targets(nil, []float32{1}, []bool{false}, []float32{0, 0}); !errors.Is(err, ErrTransition) {
		t.Errorf("short next Q-values: got %v, want ErrTransition", err)
	}
}

// TestTrainStepUsesTargets checks that a learner's step regresses on
// Config.Targets of the target network before the step.
func TestTrainStepUsesTargets(t *testing.T) {
	cfg := smallConfig()
	cfg.UpdatesPerTransition = 0
	cfg.Gamma = 0.5
	l := mustLearner(t, cfg)
	fill(t, l, 1, 40)
	// Move the networks apart so that the target network's Q-values are
	// not the online network's.
	for range 5 {
		if _, err := l.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	before := l.Target().Export()
	if _, err := l.TrainStep(); err != nil {
		t.Fatal(err)
	}
	qn, err := before.Forward(nil, l.batch.Next) // l.batch holds the scaled sample
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := cfg.Targets(nil, l.batch.Rewards, l.batch.Dones, qn)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(float64(want[i]-l.targets[i])) > 1e-5 {
			t.Fatalf("target %d: %v, want %v", i, l.targets[i], want[i])
		}
	}
}

// TestSoftUpdateMovesTargetByTau checks θ_target ← τ·θ + (1−τ)·θ_target
// after a gradient step, on every parameter.
func TestSoftUpdateMovesTargetByTau(t *testing.T) {
	cfg := smallConfig()
	cfg.UpdatesPerTransition = 0
	l := mustLearner(t, cfg)
	fill(t, l, 2, 40)
	for range 3 {
		if _, err := l.TrainStep(); err != nil {
			t.Fatal(err)
		}
	}
	oldTarget := flatten(l.Target().Export())
	if _, err := l.TrainStep(); err != nil {
		t.Fatal(err)
	}
	online, target := flatten(l.Online().Export()), flatten(l.Target().Export())
	tau := float32(cfg.Tau)
	moved := 0
	for i := range target {
		want := tau*online[i] + (1-tau)*oldTarget[i]
		if math.Abs(float64(target[i]-want)) > 1e-6 {
			t.Fatalf("parameter %d: target %v, want %v", i, target[i], want)
		}
		if target[i] != oldTarget[i] {
			moved++
		}
	}
	if moved == 0 {
		t.Error("the target network did not move")
	}
	if st := l.Stats(); st.Steps != 4 || st.Net.Steps != 4 {
		t.Errorf("steps %d (network %d), want 4", st.Steps, st.Net.Steps)
	}
}

// TestNonFiniteTransitionRejected checks that NaN and ±Inf transitions
// never reach the buffer and are counted.
func TestNonFiniteTransitionRejected(t *testing.T) {
	l := mustLearner(t, smallConfig())
	ok := func() Transition {
		return Transition{State: make([]float32, 14), Next: make([]float32, 14), Action: 1, Reward: 1}
	}
	bad := []Transition{ok(), ok(), ok(), ok()}
	bad[0].State[3] = float32(math.NaN())
	bad[1].Next[13] = float32(math.Inf(1))
	bad[2].Reward = float32(math.NaN())
	bad[3].Reward = float32(math.Inf(-1))
	for i, tr := range bad {
		if err := l.Add(tr); !errors.Is(err, ErrNonFinite) {
			t.Errorf("transition %d: got %v, want ErrNonFinite", i, err)
		}
	}
	invalid := ok()
	invalid.Action = 3
	if err := l.Add(invalid); !errors.Is(err, ErrTransition) {
		t.Errorf("action 3: got %v, want ErrTransition", err)
	}
	short := ok()
	short.Next = short.Next[:13]
	if err := l.Add(short); !errors.Is(err, ErrTransition) {
		t.Errorf("short next state: got %v, want ErrTransition", err)
	}
	huge := ok()
	huge.Reward = 1e6
	if err := l.Add(huge); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.RejectedNonFinite != 4 || st.RejectedInvalid != 2 || st.Added != 1 || l.Buffer().Len() != 1 || st.RewardsClipped != 1 {
		t.Errorf("stats %+v, buffer %d; want 4 non-finite, 2 invalid, 1 added and clipped", st, l.Buffer().Len())
	}
	if r := l.Buffer().At(0).Reward; r != 100 {
		t.Errorf("stored reward %v, want 100 (clipped)", r)
	}
}

// TestBufferWraps checks the ring: past its capacity the oldest
// transitions are overwritten, and sampling sees only the ones held.
func TestBufferWraps(t *testing.T) {
	b, err := NewBuffer(3, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		v := []float32{float32(i), float32(-i)}
		if err := b.Add(Transition{State: v, Next: v, Action: i % 3, Reward: float32(i), Done: i == 4}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 3 || b.Cap() != 3 || b.Added() != 5 {
		t.Fatalf("len %d cap %d added %d, want 3, 3, 5", b.Len(), b.Cap(), b.Added())
	}
	for i := range 3 {
		tr := b.At(i)
		if tr.Reward != float32(i+2) || tr.State[1] != float32(-(i+2)) || tr.Action != (i+2)%3 || tr.Done != (i == 2) {
			t.Errorf("slot %d holds %+v, want transition %d", i, tr, i+2)
		}
	}
	bt, err := b.Sample(nil, 300)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float32]int{}
	for k, r := range bt.Rewards {
		seen[r]++
		if bt.States[2*k] != r || bt.Next[2*k+1] != -r || bt.Actions[k] != int(r)%3 {
			t.Fatalf("sample %d is not one transition: %+v", k, bt)
		}
	}
	if len(seen) != 3 || seen[2] == 0 || seen[3] == 0 || seen[4] == 0 {
		t.Errorf("sampled rewards %v, want only 2, 3 and 4", seen)
	}
	// Same seed, same samples.
	b2, _ := NewBuffer(3, 2, 5)
	for i := range 5 {
		v := []float32{float32(i), float32(-i)}
		_ = b2.Add(Transition{State: v, Next: v, Action: i % 3, Reward: float32(i), Done: i == 4})
	}
	bt2, _ := b2.Sample(nil, 300)
	if !slices.Equal(bt.Rewards, bt2.Rewards) {
		t.Error("equal seeds sampled differently")
	}
	if _, err := NewBuffer(0, 2, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("capacity 0: got %v", err)
	}
	empty, _ := NewBuffer(2, 2, 1)
	if _, err := empty.Sample(nil, 4); !errors.Is(err, ErrNotReady) {
		t.Errorf("sampling an empty buffer: got %v", err)
	}
}

// TestWarmUpAndScaler checks that training waits for the warm-up and the
// scaler, that the scaler is fitted on the first ScalerFit states and
// then frozen, and that Add trains UpdatesPerTransition steps per
// transition after that.
func TestWarmUpAndScaler(t *testing.T) {
	cfg := smallConfig()
	cfg.UpdatesPerTransition = 0.5
	l := mustLearner(t, cfg)
	if _, err := l.TrainStep(); !errors.Is(err, ErrNotReady) {
		t.Errorf("step on an empty learner: got %v, want ErrNotReady", err)
	}
	fill(t, l, 3, cfg.WarmUp-1)
	if l.Ready() || l.Scaler() != nil || l.Stats().Steps != 0 {
		t.Fatalf("ready %v, scaler %v, steps %d before the warm-up", l.Ready(), l.Scaler(), l.Stats().Steps)
	}
	var states []float32
	for i := range cfg.WarmUp - 1 {
		states = append(states, l.Buffer().At(i).State...)
	}
	fill(t, l, 4, 1)
	states = append(states, l.Buffer().At(cfg.WarmUp-1).State...)
	want, err := nn.FitScaler(cfg.ScalerKind, states, 14, cfg.ScalerLog1p)
	if err != nil {
		t.Fatal(err)
	}
	sc := l.Scaler()
	if sc == nil || !slices.Equal(sc.Center, want.Center) || !slices.Equal(sc.Scale, want.Scale) || !l.Stats().ScalerFitted {
		t.Fatalf("scaler %+v, want %+v", sc, want)
	}
	if l.Target().Scaler != sc {
		t.Error("the target network has another scaler")
	}
	if err := l.SetScaler(want); !errors.Is(err, ErrConfig) {
		t.Errorf("replacing a fitted scaler: got %v, want ErrConfig", err)
	}
	fill(t, l, 5, 10)
	if st := l.Stats(); st.Steps != 5 || l.Scaler() != sc {
		t.Errorf("%d steps after 11 ready transitions at 0.5 per transition, want 5 (scaler frozen: %v)", st.Steps, l.Scaler() == sc)
	}
	// A scaler set in advance replaces the fit.
	l2 := mustLearner(t, cfg)
	if err := l2.SetScaler(want); err != nil {
		t.Fatal(err)
	}
	fill(t, l2, 6, 3)
	if l2.Scaler() != want {
		t.Error("a preset scaler was replaced")
	}
	if err := mustLearner(t, cfg).SetScaler(&nn.Scaler{Kind: nn.ScalerRobust, Dim: 3, Center: make([]float32, 3), Scale: []float32{1, 1, 1}}); !errors.Is(err, ErrConfig) {
		t.Errorf("3-feature scaler: got %v, want ErrConfig", err)
	}
}

// TestDecideDeterministicAnyOrder checks that decisions depend on (seed,
// tick, app) and the weights only: the same rows in another order, or
// decided by another policy of the same seed, give the same decisions.
func TestDecideDeterministicAnyOrder(t *testing.T) {
	l := mustLearner(t, smallConfig())
	fill(t, l, 7, 60)
	l.SetEpisode(10) // ε ≈ 0.47: about half the decisions explore
	rows := strategicRows(11, 120)
	shuffled := slices.Clone(rows)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	p1, err := l.Policy(42, true)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := l.Policy(42, true)
	a := decide(t, p1, 5, rows)
	b := decide(t, p2, 5, shuffled)
	for app, d := range a {
		if b[app] != d {
			t.Errorf("%s: %+v in order, %+v shuffled", app, d, b[app])
		}
	}
	if p1.Stats.Explored == 0 || p1.Stats.Explored == 120 || p1.Stats.Decisions != 120 {
		t.Errorf("stats %+v: want some explored decisions at ε %.2f", p1.Stats, p1.Epsilon())
	}
	// Another tick draws again; the greedy policy never explores and takes
	// the largest Q-value.
	c := decide(t, p1, 6, rows)
	differ := 0
	for app := range a {
		if a[app].Action != c[app].Action {
			differ++
		}
	}
	if differ == 0 {
		t.Error("ticks 5 and 6 gave identical exploring decisions")
	}
	g, _ := l.Policy(42, false)
	greedy := decide(t, g, 5, shuffled)
	var states []float32
	for i := range rows {
		states = append(states, rows[i].Vector()...)
	}
	q, err := l.QValues(states)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		d := greedy[r.App]
		best, v := argmax(q[3*i : 3*i+3])
		if int(d.Action) != best || math.Abs(d.Value.V-v) > 1e-5 || !d.Value.Valid {
			t.Errorf("%s: greedy action %d value %v, want %d and %v", r.App, d.Action, d.Value, best, v)
		}
		if d.Provider != [3]string{"aws", "azure", "gcp"}[d.Action] || d.Policy != "dqn" || d.PolicyVersion != l.Version() || d.Func != "" {
			t.Errorf("%s: decision %+v", r.App, d)
		}
	}
	if g.Stats.Explored != 0 {
		t.Errorf("the greedy policy explored %d times", g.Stats.Explored)
	}
	if g.Name() != "dqn" || g.Layer() != schemas.Strategic || !strings.HasPrefix(g.Version(), "e10-s") {
		t.Errorf("name %q layer %q version %q", g.Name(), g.Layer(), g.Version())
	}
}

func TestDecideGuards(t *testing.T) {
	l := mustLearner(t, smallConfig())
	p, err := l.Policy(1, false)
	if err != nil {
		t.Fatal(err)
	}
	var out schemas.DecisionBatch
	wrong := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical}}
	if err := p.Decide(t.Context(), wrong, &out); err == nil {
		t.Error("a tactical batch was accepted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Decide(ctx, stateBatch(1, strategicRows(1, 2)), &out); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
	if err := p.Decide(t.Context(), nil, &out); err == nil {
		t.Error("a nil batch was accepted")
	}
	rows := strategicRows(2, 2)
	rows[0].RequestRate = math.NaN()
	rows[1].PeakHourRate = math.Inf(1)
	d := decide(t, p, 1, rows)
	if p.Stats.NonFiniteInputs != 2 || !d[rows[0].App].Value.Valid {
		t.Errorf("stats %+v, decisions %+v", p.Stats, d)
	}
	if err := p.Decide(t.Context(), stateBatch(1, nil), &out); err != nil || len(out.Rows) != 0 {
		t.Errorf("empty batch: %v, %d rows", err, len(out.Rows))
	}
	if _, err := NewPolicy(l.Online().Export(), PolicyConfig{Epsilon: 2}); !errors.Is(err, ErrConfig) {
		t.Errorf("ε 2: got %v", err)
	}
	if _, err := NewPolicy(nil, PolicyConfig{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil weights: got %v", err)
	}
}

// TestCheckpointRoundTrip saves a trained learner, reloads it as a policy
// and as a learner, and checks identical decisions, Q-values, versions and
// bytes.
func TestCheckpointRoundTrip(t *testing.T) {
	l := mustLearner(t, smallConfig())
	fill(t, l, 8, 80)
	l.SetEpisode(7)
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	rows := strategicRows(12, 120)
	for _, explore := range []bool{false, true} {
		want, _ := l.Policy(9, explore)
		got, err := LoadPolicy(bytes.NewReader(data), LoadOptions{Seed: 9, Explore: explore})
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != want.Version() || got.Epsilon() != want.Epsilon() {
			t.Errorf("explore %v: version %q ε %v, want %q %v", explore, got.Version(), got.Epsilon(), want.Version(), want.Epsilon())
		}
		for tick := range int64(3) {
			a, b := decide(t, want, tick, rows), decide(t, got, tick, rows)
			for app, d := range a {
				if b[app] != d {
					t.Fatalf("explore %v tick %d %s: reloaded %+v, want %+v", explore, tick, app, b[app], d)
				}
			}
		}
	}
	l2, err := LoadLearner(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Version() != l.Version() || l2.Episode() != 7 || l2.Epsilon() != l.Epsilon() || l2.Scaler() == nil {
		t.Errorf("reloaded learner: version %q episode %d ε %v", l2.Version(), l2.Episode(), l2.Epsilon())
	}
	if !slices.Equal(flatten(l2.Target().Export()), flatten(l.Target().Export())) || !slices.Equal(flatten(l2.Online().Export()), flatten(l.Online().Export())) {
		t.Error("reloaded networks differ")
	}
	var again bytes.Buffer
	if err := l2.Save(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), data) {
		t.Error("saving the reloaded learner gives other bytes")
	}
	// The reloaded learner keeps training once its new buffer is warm.
	fill(t, l2, 9, 40)
	if l2.Stats().Steps <= l.Stats().Steps {
		t.Errorf("reloaded learner did not train: %d steps", l2.Stats().Steps)
	}
}

func TestCheckpointErrors(t *testing.T) {
	l := mustLearner(t, smallConfig())
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if _, err := ReadCheckpoint(bytes.NewReader(data[:len(data)/2])); !errors.Is(err, ErrCheckpoint) && !errors.Is(err, nn.ErrCheckpoint) {
		t.Errorf("truncated: got %v", err)
	}
	if _, err := ReadCheckpoint(strings.NewReader("not a tar archive at all, not at all")); err == nil {
		t.Error("garbage accepted")
	}
	newer := bytes.Replace(data, []byte(`"format": "strata-dqn/1"`), []byte(`"format": "strata-dqn/9"`), 1)
	if _, err := LoadPolicy(bytes.NewReader(newer), LoadOptions{Seed: 1}); !errors.Is(err, nn.ErrVersion) {
		t.Errorf("format 9: got %v, want ErrVersion", err)
	}
	// A bare nn checkpoint is not a DQN checkpoint.
	var bare bytes.Buffer
	if err := l.Online().Save(&bare); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLearner(&bare); err == nil {
		t.Error("a bare Q-network checkpoint was accepted")
	}
}

// TestCheckpointWithoutTarget checks that a checkpoint of the online
// network only serves and resumes (target = online).
func TestCheckpointWithoutTarget(t *testing.T) {
	l := mustLearner(t, smallConfig())
	fill(t, l, 10, 40)
	var full, slim bytes.Buffer
	if err := l.Save(&full); err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(&full), tar.NewWriter(&slim)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Name == EntryTarget {
			continue
		}
		data := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCheckpoint(bytes.NewReader(slim.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Target != nil || c.Manifest.Version != l.Version() {
		t.Errorf("target %v, version %q", c.Target, c.Manifest.Version)
	}
	l2, err := LoadLearner(bytes.NewReader(slim.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if !slices.Equal(flatten(l2.Target().Export()), flatten(l.Online().Export())) {
		t.Error("the target network is not a copy of the online network")
	}
}

// TestBufferTerminalWithoutNext stores a terminal transition whose next
// state is absent (as the twin writes a done transition) with zeros.
func TestBufferTerminalWithoutNext(t *testing.T) {
	b, err := NewBuffer(4, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(Transition{State: []float32{1, 2, 3}, Action: 1, Reward: 0.5, Done: true}); err != nil {
		t.Fatalf("terminal transition without a next state: %v", err)
	}
	if got := b.At(0); !got.Done || len(got.Next) != 3 || got.Next[0] != 0 || got.Next[2] != 0 {
		t.Fatalf("stored %+v, want done with a zero next state", got)
	}
	if err := b.Add(Transition{State: []float32{1, 2, 3}, Action: 1}); err == nil {
		t.Fatal("a non-terminal transition without a next state was accepted")
	}
}

// TestBackendSwitch runs a learner on the gorgonia reference backend and
// checks that the choice reaches both networks and survives a checkpoint,
// whose bytes do not depend on it.
func TestBackendSwitch(t *testing.T) {
	if got := mustLearner(t, smallConfig()).Online().Backend(); got != nn.BackendCPU {
		t.Errorf("default backend %q, want %q", got, nn.BackendCPU)
	}
	cfg := smallConfig()
	cfg.Backend = nn.BackendGorgonia
	l := mustLearner(t, cfg)
	if l.Online().Backend() != nn.BackendGorgonia || l.Target().Backend() != nn.BackendGorgonia {
		t.Fatalf("backends %q, %q", l.Online().Backend(), l.Target().Backend())
	}
	fill(t, l, 8, 80)
	if l.Stats().Steps == 0 {
		t.Fatal("no training step on the gorgonia backend")
	}
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	l2, err := LoadLearner(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Online().Backend() != nn.BackendGorgonia || l2.Target().Backend() != nn.BackendGorgonia {
		t.Errorf("reloaded backends %q, %q", l2.Online().Backend(), l2.Target().Backend())
	}
}

// TestFeatureSets checks a DQN on strategic/placement-v1: the extra values
// widen the app encoder, the checkpoint records the set, a policy loaded
// from it builds placement-v1 vectors (its decisions depend on the
// provider the row names, which the seed's vector leaves out), and a
// network of one set is refused under another.
func TestFeatureSets(t *testing.T) {
	cfg := smallConfig().WithFeatures(schemas.StrategicPlacement)
	if cfg.Net.Inputs() != schemas.StrategicPlacementDim || cfg.Net.StrategicInputs != 10 || len(cfg.ScalerLog1p) != schemas.StrategicPlacementDim {
		t.Fatalf("placement-v1 config: %d inputs (%d strategic), %d log1p flags; want %d (10)", cfg.Net.Inputs(), cfg.Net.StrategicInputs, len(cfg.ScalerLog1p), schemas.StrategicPlacementDim)
	}
	if DefaultConfig().Features() != schemas.StrategicSeed {
		t.Errorf("default set %s, want %s", DefaultConfig().Features(), schemas.StrategicSeed)
	}
	bad := smallConfig()
	bad.FeatureSet = schemas.StrategicPlacement // not sized by WithFeatures
	if err := bad.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("placement-v1 on a seed-sized network: %v, want ErrConfig", err)
	}
	bad = smallConfig().WithFeatures(schemas.TacticalSeed)
	if err := bad.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("a tactical set: %v, want ErrConfig", err)
	}
	l := mustLearner(t, cfg)
	rows := strategicRows(8, 64)
	providers := []string{"aws", "azure", "gcp"}
	rng := rand.New(rand.NewPCG(8, 11))
	for range 80 {
		i := rng.IntN(len(rows) - 1)
		rows[i].Provider = providers[rng.IntN(3)]
		tr := Transition{State: rows[i].AppendFeatures(nil, schemas.StrategicPlacement), Action: rng.IntN(3), Reward: float32(rng.NormFloat64()),
			Next: rows[i+1].AppendFeatures(nil, schemas.StrategicPlacement)}
		if err := l.Add(tr); err != nil {
			t.Fatal(err)
		}
	}
	p := reloadGreedy(t, l)
	q := func(provider string) []float32 {
		rs := strategicRows(12, 20)
		for i := range rs {
			rs[i].Provider = provider
		}
		ds := decide(t, p, 1, rs)
		vals := make([]float32, len(rs))
		for i, r := range rs {
			vals[i] = float32(ds[r.App].Value.V)
		}
		return vals
	}
	if a, z := q("aws"), q("azure"); slices.Equal(a, z) {
		t.Error("the policy's Q-values do not depend on the row's provider: it does not read placement-v1")
	}
	if _, err := NewPolicy(l.Online().Export(), PolicyConfig{Features: schemas.StrategicSeed}); !errors.Is(err, ErrConfig) {
		t.Errorf("a placement-v1 network served with the seed's set: %v, want ErrConfig", err)
	}
}

// TestAblatedAppID checks --ablate for the DQN: with the app-id group left
// out, neither the learner's Q-values nor a policy loaded from its
// checkpoint change when only the app id changes, while the network of the
// same seed without ablation tells the ids apart; an unknown group is a
// configuration error.
func TestAblatedAppID(t *testing.T) {
	rows := strategicRows(13, 40)
	renamed := slices.Clone(rows)
	for i := range renamed {
		renamed[i].App = "other-" + renamed[i].App
	}
	vectors := func(rs []schemas.StrategicRow) []float32 {
		var x []float32
		for i := range rs {
			x = append(x, rs[i].Vector()...)
		}
		return x
	}
	for _, tt := range []struct {
		ablate []string
		same   bool
	}{{nil, false}, {[]string{"app-id"}, true}} {
		cfg := smallConfig()
		cfg.Ablate = tt.ablate
		l := mustLearner(t, cfg)
		fill(t, l, 8, 80)
		a, err := l.QValues(vectors(rows))
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.QValues(vectors(renamed))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(a, b) != tt.same {
			t.Errorf("ablate %v: Q-values unchanged by the app ids = %v, want %v", tt.ablate, slices.Equal(a, b), tt.same)
		}
		p := reloadGreedy(t, l)
		da, db := decide(t, p, 3, rows), decide(t, p, 3, renamed)
		for _, r := range rows {
			if x, y := da[r.App], db["other-"+r.App]; tt.same && (x.Action != y.Action || x.Value != y.Value) {
				t.Errorf("ablate %v: %s decided %+v, renamed %+v", tt.ablate, r.App, x, y)
			}
		}
	}
	cfg := smallConfig()
	cfg.Ablate = []string{"hour"}
	if _, err := NewLearner(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "app-id") {
		t.Errorf("ablating an unknown group: %v, want ErrConfig listing the groups", err)
	}
}

// reloadGreedy saves l's checkpoint and returns the greedy policy loaded
// from it.
func reloadGreedy(t *testing.T, l *Learner) *Policy {
	t.Helper()
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(bytes.NewReader(buf.Bytes()), LoadOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

package lstm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestEvaluateHandComputed(t *testing.T) {
	pred := [][Targets]float32{{1, 0.5, 2}, {3, 0.5, 3}, {2, 0.5, 8}}
	actual := [][Targets]float32{{1, 0.5, 2}, {2, 0.5, 4}, {3, 0.5, 6}}
	m, err := Evaluate(pred, actual)
	if err != nil {
		t.Fatal(err)
	}
	// CPU: errors 0, 1, −1; mean 2, SS_tot 2, SS_res 2.
	// Memory: constant and exact. Rate: errors 0, −1, 2; mean 4, SS_tot 8, SS_res 5.
	want := Metrics{
		N:    3,
		RMSE: [Targets]float64{math.Sqrt(2.0 / 3), 0, math.Sqrt(5.0 / 3)},
		MAE:  [Targets]float64{2.0 / 3, 0, 1},
		R2:   [Targets]float64{0, 0, 1 - 5.0/8},
		// Only the second sample predicts a rate (3) below the actual (4).
		UnderRate: 1.0 / 3,
	}
	for j := range Targets {
		if !near(m.RMSE[j], want.RMSE[j], 1e-9) || !near(m.MAE[j], want.MAE[j], 1e-9) || !near(m.R2[j], want.R2[j], 1e-9) {
			t.Errorf("target %d: got RMSE %v MAE %v R2 %v, want %v %v %v", j, m.RMSE[j], m.MAE[j], m.R2[j], want.RMSE[j], want.MAE[j], want.R2[j])
		}
	}
	if m.N != 3 || !near(m.UnderRate, want.UnderRate, 1e-12) {
		t.Errorf("N %d, under rate %v; want 3, 1/3", m.N, m.UnderRate)
	}
	if _, err := Evaluate(pred, actual[:2]); !errors.Is(err, ErrConfig) {
		t.Errorf("mismatched lengths: %v", err)
	}
}

func TestMovingAverage5(t *testing.T) {
	var seq [SeqDim]float32
	for k := range Steps {
		s := seq[k*Features : (k+1)*Features]
		s[FeatRequestRate], s[FeatMemoryUtil], s[FeatCPUUtil], s[FeatQueueDepth] = float32(k), 0.1*float32(k), 2*float32(k), 100
	}
	// Steps 7..11: mean 9.
	got := MovingAverage5(&seq)
	want := [Targets]float32{18, 0.9, 9}
	for j := range Targets {
		if !near(float64(got[j]), float64(want[j]), 1e-5) {
			t.Errorf("target %d: %v, want %v", j, got[j], want[j])
		}
	}
}

func TestPrewarmRuleHandComputed(t *testing.T) {
	rule := DefaultPrewarmRule()
	var r schemas.OperationalRow
	r.RequestRate[9], r.ConcurrencyMean[9] = 5, 0 // excluded: no concurrency
	r.RequestRate[10], r.ConcurrencyMean[10] = 4, 2
	r.RequestRate[11], r.ConcurrencyMean[11] = 2, 3
	r.ConcurrencyMean[8] = 7 // excluded: no rate
	d, ok := MeanDurationS(&r)
	if !ok || !near(d, 5.0/6, 1e-12) {
		t.Fatalf("mean duration %v (%v), want 5/6 s", d, ok)
	}
	var empty schemas.OperationalRow
	for _, c := range []struct {
		row  *schemas.OperationalRow
		rate float64
		want int32
	}{
		{&r, 10, 9},          // 10 × 5/6 = 8.33 → 9
		{&r, 1.2, 1},         // 1.2 × 5/6 = 1 exactly → 1
		{&r, 1000, 64},       // 833 capped at Max
		{&r, 0.01, 0},        // at the threshold
		{&r, math.NaN(), 0},  // not finite
		{&r, math.Inf(1), 0}, // not finite
		{&empty, 2.5, 3},     // no history: D = 1 s
		{&empty, 0.02, 1},    // 0.02 × 1 → 1
		{&r, -3, 0},          // negative
	} {
		if got := rule.Prewarm(c.row, c.rate); got != c.want {
			t.Errorf("Prewarm(rate %v) = %d, want %d", c.rate, got, c.want)
		}
	}
	if err := (PrewarmRule{Max: -1, DefaultDurationS: 1}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("negative max accepted: %v", err)
	}
}

func TestDatasetRejectsNonFinite(t *testing.T) {
	var d Dataset
	seq := make([]float32, SeqDim)
	if ok, err := d.Add(seq, []float32{0.1, 0.2, 3}); !ok || err != nil {
		t.Fatalf("finite sample: %v %v", ok, err)
	}
	seq[17] = float32(math.NaN())
	if ok, err := d.Add(seq, []float32{0.1, 0.2, 3}); ok || err != nil {
		t.Errorf("NaN sample: %v %v", ok, err)
	}
	seq[17] = 0
	if ok, err := d.Add(seq, []float32{0.1, float32(math.Inf(1)), 3}); ok || err != nil {
		t.Errorf("Inf target: %v %v", ok, err)
	}
	if d.Len() != 1 || d.Rejected != 2 {
		t.Errorf("%d samples, %d rejected; want 1, 2", d.Len(), d.Rejected)
	}
	if _, err := d.Add(seq[:10], []float32{0, 0, 0}); !errors.Is(err, ErrConfig) {
		t.Errorf("short sequence: %v", err)
	}
	train := sineData(t, 60, 0)
	train.Rejected = 3
	cfg := smallConfig()
	cfg.MaxEpochs = 1
	res := trainResult(t, cfg, train, nil)
	if res.Stats.RejectedSamples != 3 {
		t.Errorf("trainer reports %d rejected samples, want 3", res.Stats.RejectedSamples)
	}
}

func TestAddRowsTarget(t *testing.T) {
	var cur, next schemas.OperationalRow
	cur.RequestRate[11] = 1
	next.RequestRate[11], next.CPUUtil[11], next.MemoryUtil[11] = 2.5, schemas.Some(0.7), schemas.Some(0.3)
	var d Dataset
	if ok, err := d.AddRows(&cur, &next); !ok || err != nil {
		t.Fatal(ok, err)
	}
	s := d.Samples[0]
	if s.Target != [Targets]float32{0.7, 0.3, 2.5} || s.Seq[(Steps-1)*Features+FeatRequestRate] != 1 {
		t.Errorf("sample %+v", s)
	}
}

// testModel is an untrained (seeded) small network with scalers fitted on
// sine data.
func testModel(t *testing.T) *Model {
	t.Helper()
	cfg := smallConfig()
	net, err := nn.NewLSTMNet(cfg.Net, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	sc, err := FitScalers(cfg.Scaler, sineData(t, 50, 0).Samples)
	if err != nil {
		t.Fatal(err)
	}
	net.Scaler = sc.Input
	return &Model{Weights: net.Export(), Scalers: sc, Config: cfg}
}

// stateBatch is an operational batch of n functions with distinct
// histories.
func stateBatch(n int) *schemas.StateBatch {
	b := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: 42}}
	for f := range n {
		r := schemas.OperationalRow{App: "app", Func: fmt.Sprintf("f%d", f)}
		for k := range Steps {
			u := float64(k + 3*f)
			r.RequestRate[k] = 5 + 4*math.Sin(u/4)
			r.MemoryUtil[k] = schemas.Some(0.4 + 0.1*math.Cos(u/3))
			r.CPUUtil[k] = schemas.Some(0.5)
			r.HourSin[k] = math.Sin(u / 10)
			r.ConcurrencyMean[k] = r.RequestRate[k] * 0.8
			r.ConcurrencyPeak[k] = r.RequestRate[k]
		}
		b.Operational = append(b.Operational, r)
	}
	return b
}

func decide(t *testing.T, p *Policy, b *schemas.StateBatch) map[string]schemas.DecisionRow {
	t.Helper()
	out := &schemas.DecisionBatch{Header: b.Header}
	if err := p.Decide(context.Background(), b, out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rows) != len(b.Operational) {
		t.Fatalf("%d decisions for %d rows", len(out.Rows), len(b.Operational))
	}
	m := map[string]schemas.DecisionRow{}
	for _, d := range out.Rows {
		m[d.Func] = d
	}
	return m
}

func TestPolicyDecideOrderIndependent(t *testing.T) {
	m := testModel(t)
	p, err := NewPolicy(m, PolicyConfig{Version: "v1", Rule: DefaultPrewarmRule()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "lstm" || p.Version() != "v1" || p.Layer() != schemas.Operational {
		t.Errorf("identity %s %s %s", p.Name(), p.Version(), p.Layer())
	}
	b := stateBatch(6)
	first := decide(t, p, b)
	slicesReverse(b.Operational)
	second := decide(t, p, b)
	one := decide(t, p, &schemas.StateBatch{Header: b.Header, Operational: b.Operational[:1]})
	for f, d := range first {
		if second[f] != d {
			t.Errorf("%s: %+v after reordering, %+v before", f, second[f], d)
		}
		if d.Action != d.Prewarm || !d.Predicted.Valid || d.Policy != "lstm" || d.PolicyVersion != "v1" {
			t.Errorf("%s: decision %+v", f, d)
		}
	}
	if f := b.Operational[0].Func; one[f] != first[f] {
		t.Errorf("%s alone: %+v, in a batch %+v", f, one[f], first[f])
	}
	// Predicted and Prewarm follow from Model.Predict and the rule.
	r := &b.Operational[0]
	pred, err := m.Clone().Predict(r.Vector())
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(pred[0][TargetRequestRate])
	if d := first[r.Func]; !near(d.Predicted.V, rate*StepS, 1e-9) || d.Prewarm != DefaultPrewarmRule().Prewarm(r, rate) {
		t.Errorf("decision %+v, predicted rate %v", d, rate)
	}
	if p.Stats.Decisions != 13 {
		t.Errorf("%d decisions counted, want 13", p.Stats.Decisions)
	}
	wrong := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Tactical}}
	if err := p.Decide(context.Background(), wrong, &schemas.DecisionBatch{}); err == nil {
		t.Error("tactical batch accepted")
	}
}

func slicesReverse(s []schemas.OperationalRow) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxEpochs = 2
	res := trainResult(t, cfg, sineData(t, 100, 0), nil)
	rule := PrewarmRule{Max: 10, Threshold: 0.05, DefaultDurationS: 2}
	var buf, again bytes.Buffer
	if err := res.Save(&buf, cfg, "lstm-e2", rule); err != nil {
		t.Fatal(err)
	}
	if err := res.Save(&again, cfg, "lstm-e2", rule); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("saving twice gives different bytes")
	}
	orig, err := NewPolicy(res.Model(cfg), PolicyConfig{Version: "lstm-e2", Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadPolicy(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Version() != "lstm-e2" || loaded.cfg.Rule != rule {
		t.Errorf("loaded version %q rule %+v", loaded.Version(), loaded.cfg.Rule)
	}
	b := stateBatch(8)
	want, got := decide(t, orig, b), decide(t, loaded, b)
	for f, d := range want {
		if got[f] != d {
			t.Errorf("%s: %+v after reload, %+v before", f, got[f], d)
		}
	}
	c, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	c.Net.Close()
	if c.Manifest.BestEpoch != res.BestEpoch || len(c.Manifest.Curve) != len(res.Curve) || c.Manifest.Config.Loss != cfg.Loss {
		t.Errorf("manifest %+v", c.Manifest)
	}
	if _, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()[:700])); err == nil {
		t.Error("truncated checkpoint accepted")
	}
	if _, err := ReadCheckpoint(bytes.NewReader([]byte("not a tar archive at all, not at all"))); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("garbage: %v", err)
	}
}

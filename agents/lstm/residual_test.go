package lstm

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// TestResidualHeadAtZeroIsTheMovingAverage checks the residual head's
// meaning: a network whose outputs are all 0 predicts MovingAverage5 for
// every sample, through the inverse of the target scaler's log1p.
func TestResidualHeadAtZeroIsTheMovingAverage(t *testing.T) {
	m := testModel(t)
	m.Config.Head = HeadResidual
	out := &m.Weights.Dense[1]
	clear(out.W)
	clear(out.B)
	samples := noisyData(t, 64, 3).Samples
	pred, err := m.PredictSamples(samples)
	if err != nil {
		t.Fatal(err)
	}
	ma := PredictMovingAverage5(samples)
	for i := range pred {
		for j := range Targets {
			if d := math.Abs(float64(pred[i][j]) - float64(ma[i][j])); d > 1e-5*max(1, math.Abs(float64(ma[i][j]))) {
				t.Fatalf("sample %d target %d: %v, want the moving average %v", i, j, pred[i][j], ma[i][j])
			}
		}
	}
	m.Config.Head = HeadDirect
	direct, err := m.PredictSamples(samples[:1])
	if err != nil {
		t.Fatal(err)
	}
	if direct[0] == ma[0] {
		t.Errorf("the direct head with the same weights predicts the moving average %v too", ma[0])
	}
}

// TestResidualCheckpointRoundTrip checks that a checkpoint keeps the head
// and serves the same predictions as the training result.
func TestResidualCheckpointRoundTrip(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxEpochs = 2
	cfg.Head = HeadResidual
	res := trainResult(t, cfg, sineData(t, 100, 0), nil)
	var buf bytes.Buffer
	if err := res.Save(&buf, cfg, "lstm-res", DefaultPrewarmRule()); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Net.Close()
	if c.Manifest.Config.Head != HeadResidual {
		t.Fatalf("head %q after reading, want %q", c.Manifest.Config.Head, HeadResidual)
	}
	samples := sineData(t, 20, 500).Samples
	want, err := res.Model(cfg).PredictSamples(samples)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Model().PredictSamples(samples)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sample %d: %v after reading, %v before", i, got[i], want[i])
		}
	}
}

// TestSelectRateVsMA checks the rate-vs-ma selection: every epoch has a
// score, the kept epoch has the lowest, and the kept weights reproduce it
// through the serving path (raw-unit request-rate errors against the
// moving average's on the validation samples).
func TestSelectRateVsMA(t *testing.T) {
	cfg := smallConfig()
	cfg.Loss = LossSymmetric
	cfg.Head = HeadResidual
	cfg.Select = SelectRateVsMA
	cfg.MaxEpochs = 8
	train, val := noisyData(t, 400, 4), noisyData(t, 160, 5)
	res := trainResult(t, cfg, train, val)
	best := res.Curve[res.BestEpoch-1]
	for _, e := range res.Curve {
		if !(e.Score > 0) || e.Score < best.Score {
			t.Errorf("epoch %d score %v; kept epoch %d has %v", e.Epoch, e.Score, res.BestEpoch, best.Score)
		}
	}
	if best.ValLoss != res.BestValLoss {
		t.Errorf("BestValLoss %v, the kept epoch's %v", res.BestValLoss, best.ValLoss)
	}
	pred, err := res.Model(cfg).PredictSamples(val.Samples)
	if err != nil {
		t.Fatal(err)
	}
	actual := Actuals(val.Samples)
	m, err := Evaluate(pred, actual)
	if err != nil {
		t.Fatal(err)
	}
	ma, err := Evaluate(PredictMovingAverage5(val.Samples), actual)
	if err != nil {
		t.Fatal(err)
	}
	j := TargetRequestRate
	if got := max(m.RMSE[j]/ma.RMSE[j], m.MAE[j]/ma.MAE[j]); math.Abs(got-best.Score) > 1e-4*best.Score {
		t.Errorf("served model's score %v, the kept epoch's %v", got, best.Score)
	}
	cfg.Select = "best"
	if _, err := Train(cfg, train, val); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown selection: %v", err)
	}
}

package lstm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTrainLearnsSine trains each head on a clean sine: both must beat
// the moving average by far, and the restored best weights must give the
// best validation loss through the serving path (for the residual head,
// that checks that its training targets and its predictions agree).
func TestTrainLearnsSine(t *testing.T) {
	for _, head := range []string{HeadDirect, HeadResidual} {
		t.Run(head, func(t *testing.T) { trainLearnsSine(t, head) })
	}
}

func trainLearnsSine(t *testing.T, head string) {
	start := time.Now()
	cfg := smallConfig()
	cfg.Loss = LossSymmetric
	cfg.Head = head
	train, val := sineData(t, 480, 0), sineData(t, 120, 1000)
	res := trainResult(t, cfg, train, val)
	ma := scaledLoss(t, res.Scalers.Target, PredictMovingAverage5(val.Samples), val.Samples, 1, 1)
	t.Logf("%d epochs in %v, best epoch %d val loss %.5f, moving-average val loss %.5f, lr reductions %d",
		len(res.Curve), time.Since(start), res.BestEpoch, res.BestValLoss, ma, res.Stats.LRReductions)
	for _, e := range res.Curve {
		t.Logf("epoch %2d train %.5f val %.5f lr %g", e.Epoch, e.TrainLoss, e.ValLoss, e.LR)
	}
	if !(res.BestValLoss < ma/4) {
		t.Errorf("best validation loss %v, want well below the moving average's %v", res.BestValLoss, ma)
	}
	if res.Curve[res.BestEpoch-1].ValLoss != res.BestValLoss {
		t.Errorf("best epoch %d does not hold the best loss", res.BestEpoch)
	}
	m := res.Model(cfg)
	pred, err := m.PredictSamples(val.Samples)
	if err != nil {
		t.Fatal(err)
	}
	if got := scaledLoss(t, res.Scalers.Target, pred, val.Samples, 1, 1); !near(got, res.BestValLoss, 1e-4) {
		t.Errorf("restored weights give validation loss %v, want the best %v", got, res.BestValLoss)
	}
	lm, err := Evaluate(pred, Actuals(val.Samples))
	if err != nil {
		t.Fatal(err)
	}
	mm, err := Evaluate(PredictMovingAverage5(val.Samples), Actuals(val.Samples))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LSTM %+v", lm)
	t.Logf("MA5  %+v", mm)
	for j := range Targets {
		if !(lm.RMSE[j] < mm.RMSE[j]) {
			t.Errorf("target %d: LSTM RMSE %v not below moving average's %v", j, lm.RMSE[j], mm.RMSE[j])
		}
	}
}

func TestAsymmetricUnderProvisionsLess(t *testing.T) {
	train, val := noisyData(t, 480, 1), noisyData(t, 240, 2)
	under := map[string]float64{}
	for _, loss := range []string{LossSymmetric, LossAsymmetric} {
		cfg := smallConfig()
		cfg.Loss = loss
		cfg.MaxEpochs = 15
		res := trainResult(t, cfg, train, val)
		pred, err := res.Model(cfg).PredictSamples(val.Samples)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Evaluate(pred, Actuals(val.Samples))
		if err != nil {
			t.Fatal(err)
		}
		under[loss] = m.UnderRate
		t.Logf("%s: %d epochs, under-provisioning rate %.3f, request-rate RMSE %.3f", loss, len(res.Curve), m.UnderRate, m.RMSE[TargetRequestRate])
	}
	if !(under[LossAsymmetric] < under[LossSymmetric]-0.15) {
		t.Errorf("asymmetric under-provisioning rate %v, want well below symmetric %v", under[LossAsymmetric], under[LossSymmetric])
	}
}

func TestTrainSplitAndEarlyStop(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxEpochs = 40
	cfg.EarlyStopPatience = 2
	cfg.PlateauPatience = 1
	cfg.Net.Optimizer.LearningRate = 0.5 // too large: the loss stops improving quickly
	d := sineData(t, 100, 0)
	res := trainResult(t, cfg, d, nil)
	if res.Stats.TrainSamples != 80 || res.Stats.ValSamples != 20 {
		t.Errorf("split %d/%d, want 80/20", res.Stats.TrainSamples, res.Stats.ValSamples)
	}
	if !res.Stats.EarlyStopped || len(res.Curve) != res.BestEpoch+cfg.EarlyStopPatience {
		t.Errorf("early stop: %v after %d epochs, best %d", res.Stats.EarlyStopped, len(res.Curve), res.BestEpoch)
	}
	if res.Stats.LRReductions == 0 || res.Curve[len(res.Curve)-1].LR >= cfg.Net.Optimizer.LearningRate {
		t.Errorf("no learning-rate reduction: %+v", res.Curve)
	}
	again := trainResult(t, cfg, d, nil)
	if again.BestValLoss != res.BestValLoss || len(again.Curve) != len(res.Curve) {
		t.Errorf("same seed, different run: %v/%d vs %v/%d", again.BestValLoss, len(again.Curve), res.BestValLoss, len(res.Curve))
	}
}

func TestTrainRejectsBadConfig(t *testing.T) {
	cfg := smallConfig()
	cfg.Loss = "huber"
	if _, err := Train(cfg, sineData(t, 20, 0), nil); err == nil {
		t.Error("unknown loss accepted")
	}
	cfg = smallConfig()
	cfg.Head = "ma7-residual"
	if _, err := Train(cfg, sineData(t, 20, 0), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown head: %v", err)
	}
	cfg = smallConfig()
	cfg.Backend = "tpu"
	if _, err := Train(cfg, sineData(t, 20, 0), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown backend: %v", err)
	}
}

// TestTrainWithOptions checks that given scalers replace the fitted ones,
// that OnEpoch sees every point of the curve, and that half a pair of
// scalers is refused.
func TestTrainWithOptions(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := smallConfig()
		cfg.MaxEpochs = 10
		epochs := 0
		_, err := TrainWith(cfg, Options{Context: ctx, OnEpoch: func(Epoch) {
			if epochs++; epochs == 2 {
				cancel()
			}
		}}, sineData(t, 120, 0), sineData(t, 40, 500))
		if !errors.Is(err, context.Canceled) || epochs != 2 {
			t.Fatalf("error %v after %d epochs, want context.Canceled after 2", err, epochs)
		}
	})
	train, val := sineData(t, 120, 0), sineData(t, 40, 500)
	wide, err := FitScalers(DefaultConfig().Scaler, append(append([]Sample(nil), train.Samples...), sineData(t, 400, 0).Samples...))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		scalers *Scalers
		wantErr bool
	}{
		{name: "fitted", scalers: nil},
		{name: "given", scalers: &wide},
		{name: "half given", scalers: &Scalers{Input: wide.Input}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig()
			cfg.MaxEpochs = 4
			var seen []Epoch
			res, err := TrainWith(cfg, Options{Scalers: tc.scalers, OnEpoch: func(e Epoch) { seen = append(seen, e) }}, train, val)
			if tc.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("error %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer res.Net.Close()
			if len(seen) != len(res.Curve) {
				t.Fatalf("OnEpoch saw %d epochs of %d", len(seen), len(res.Curve))
			}
			for i := range seen {
				if seen[i] != res.Curve[i] {
					t.Errorf("OnEpoch saw %+v, curve has %+v", seen[i], res.Curve[i])
				}
			}
			if tc.scalers != nil && res.Scalers != *tc.scalers {
				t.Error("the given scalers were not used")
			}
			if tc.scalers == nil && res.Scalers == wide {
				t.Error("scalers not fitted")
			}
			pred, err := res.Model(cfg).PredictSamples(val.Samples)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cfg.ScaledLoss(res.Scalers, pred, val.Samples); err != nil || !near(got, res.BestValLoss, 1e-4) {
				t.Errorf("ScaledLoss of the restored weights %v (%v), want the best validation loss %v", got, err, res.BestValLoss)
			}
			fast, err := res.PredictSamples(val.Samples)
			if err != nil {
				t.Fatal(err)
			}
			for i := range pred {
				for j := range Targets {
					if !near(float64(fast[i][j]), float64(pred[i][j]), 1e-4) {
						t.Fatalf("sample %d target %d: Result.PredictSamples %v, Model.PredictSamples %v", i, j, fast[i][j], pred[i][j])
					}
				}
			}
		})
	}
}

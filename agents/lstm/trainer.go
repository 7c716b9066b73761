package lstm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/strata-rl/strata/agents/nn"
)

// Epoch is one point of the learning curve.
type Epoch struct {
	// Epoch counts from 1.
	Epoch int `json:"epoch"`
	// TrainLoss is the mean loss of the epoch's accepted minibatch steps
	// (training mode, with dropout), on scaled targets.
	TrainLoss float64 `json:"train_loss"`
	// ValLoss is the configured loss on the validation samples in
	// evaluation mode (no dropout), on scaled targets.
	ValLoss float64 `json:"val_loss"`
	// LR is the learning rate the epoch trained with.
	LR float64 `json:"lr"`
	// Score is the selection measure under SelectRateVsMA (absent under
	// SelectLoss, where the validation loss selects).
	Score float64 `json:"score,omitempty"`
}

// TrainStats counts what the trainer did.
type TrainStats struct {
	// TrainSamples and ValSamples are the sizes of the two sets.
	TrainSamples, ValSamples int
	// RejectedSamples counts NaN/±Inf samples rejected by the datasets
	// (Dataset.Rejected of both).
	RejectedSamples uint64
	// Steps counts accepted gradient steps and RejectedSteps the steps the
	// network refused (non-finite loss or gradient).
	Steps, RejectedSteps uint64
	// LRReductions counts ReduceLROnPlateau reductions.
	LRReductions int
	// EarlyStopped is true when training stopped before MaxEpochs.
	EarlyStopped bool
}

// Result is a finished training run.
type Result struct {
	// Net is the network with the best validation epoch's weights and the
	// input scaler attached. The caller closes it.
	Net *nn.LSTMNet
	// Scalers are the fitted scalers.
	Scalers Scalers
	// Curve is the learning curve, one entry per epoch run.
	Curve []Epoch
	// BestEpoch is the epoch whose weights Net holds, and BestValLoss its
	// validation loss.
	BestEpoch   int
	BestValLoss float64
	// Stats counts samples and steps.
	Stats TrainStats
	// Config is the configuration the result was trained with (its Head
	// says how the network's outputs become predictions).
	Config Config
}

// Model returns the serving model of the result.
func (r *Result) Model(cfg Config) *Model {
	return &Model{Weights: r.Net.Export(), Scalers: r.Scalers, Config: cfg}
}

// Train fits an LSTM predictor on train (pure: no I/O). When val is nil
// or empty, a seeded ValFraction of train is held out for validation. The
// scalers are fitted on the training samples only. Each epoch shuffles the
// training samples (seeded) into minibatches of BatchSize; after each
// epoch the validation loss drives ReduceLROnPlateau and early stopping,
// and the best epoch's weights are restored at the end.
func Train(cfg Config, train, val *Dataset) (*Result, error) {
	return TrainWith(cfg, Options{}, train, val)
}

// Options are TrainWith's optional inputs.
type Options struct {
	// Scalers, when set, replace the scalers Train fits on the training
	// samples: runs whose validation losses must be on one scale (a
	// learning curve over training-sample sizes) share them. Both must be
	// set.
	Scalers *Scalers
	// OnEpoch, when set, is called after each epoch with its point of the
	// learning curve (to report progress).
	OnEpoch func(Epoch)
	// Context, when set, is checked before each epoch: once it is done
	// TrainWith returns its error instead of training on (an epoch on
	// hundreds of thousands of samples takes minutes).
	Context context.Context
}

// TrainWith is Train with options: given scalers and a per-epoch hook.
func TrainWith(cfg Config, opt Options, train, val *Dataset) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	if train == nil {
		return nil, fmt.Errorf("training LSTM: %w: no training set", ErrConfig)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6c73746d)) // "lstm"
	tr, va := train.Samples, []Sample(nil)
	rejected := train.Rejected
	if val != nil && val.Len() > 0 {
		va = val.Samples
		rejected += val.Rejected
	} else {
		tr, va = split(tr, cfg.ValFraction, rng)
	}
	if len(tr) == 0 || len(va) == 0 {
		return nil, fmt.Errorf("training LSTM: %w: %d training and %d validation samples", ErrConfig, len(tr), len(va))
	}
	var sc Scalers
	if opt.Scalers != nil {
		sc = *opt.Scalers
		if err := sc.validate(); err != nil {
			return nil, fmt.Errorf("training LSTM with given scalers: %w", err)
		}
	} else {
		var err error
		if sc, err = FitScalers(cfg.Scaler, tr); err != nil {
			return nil, fmt.Errorf("training LSTM: %w", err)
		}
	}
	trX, trY, _, err := scaled(cfg, sc, tr)
	if err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	vaX, vaY, vaBases, err := scaled(cfg, sc, va)
	if err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	netCfg := cfg.Net
	netCfg.BetaUnder, netCfg.BetaOver = cfg.betas()
	net, err := nn.NewLSTMNet(netCfg, cfg.Seed, nn.WithBackend(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("training LSTM: %w", err)
	}
	net.Scaler = sc.Input
	res := &Result{Scalers: sc, BestValLoss: math.Inf(1), Config: cfg}
	res.Stats.TrainSamples, res.Stats.ValSamples, res.Stats.RejectedSamples = len(tr), len(va), rejected
	bu, bo := netCfg.BetaUnder, netCfg.BetaOver
	var best bytes.Buffer
	idx := make([]int, len(tr))
	for i := range idx {
		idx[i] = i
	}
	bx := make([]float32, 0, cfg.BatchSize*SeqDim)
	by := make([]float32, 0, cfg.BatchSize*Targets)
	sinceBest, sincePlateau := 0, 0
	var sel *rateSelector
	if cfg.Select == SelectRateVsMA {
		if sel, err = newRateSelector(sc.Target, va, vaBases); err != nil {
			net.Close()
			return nil, fmt.Errorf("training LSTM: %w", err)
		}
	}
	bestMetric := math.Inf(1)
	for ep := 1; ep <= cfg.MaxEpochs; ep++ {
		if opt.Context != nil {
			if err := opt.Context.Err(); err != nil {
				net.Close()
				return nil, fmt.Errorf("training LSTM: before epoch %d: %w", ep, err)
			}
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		lr := net.LearningRate()
		var sum float64
		var steps int
		for s := 0; s < len(idx); s += cfg.BatchSize {
			bx, by = bx[:0], by[:0]
			for _, k := range idx[s:min(s+cfg.BatchSize, len(idx))] {
				bx = append(bx, trX[k*SeqDim:(k+1)*SeqDim]...)
				by = append(by, trY[k*Targets:(k+1)*Targets]...)
			}
			loss, err := net.TrainStep(nn.LSTMBatch{Seqs: bx, Targets: by})
			if err != nil {
				res.Stats.RejectedSteps++
				continue
			}
			sum += float64(loss)
			steps++
		}
		res.Stats.Steps += uint64(steps)
		vl, vp, err := evalLoss(net, vaX, vaY, bu, bo)
		if err != nil {
			net.Close()
			return nil, fmt.Errorf("training LSTM: epoch %d: %w", ep, err)
		}
		tl := math.NaN()
		if steps > 0 {
			tl = sum / float64(steps)
		}
		e := Epoch{Epoch: ep, TrainLoss: tl, ValLoss: vl, LR: lr}
		metric := vl
		if sel != nil {
			if e.Score, err = sel.score(vp); err != nil {
				net.Close()
				return nil, fmt.Errorf("training LSTM: epoch %d: %w", ep, err)
			}
			metric = e.Score
		}
		res.Curve = append(res.Curve, e)
		if opt.OnEpoch != nil {
			opt.OnEpoch(e)
		}
		if metric < bestMetric {
			bestMetric = metric
			res.BestValLoss, res.BestEpoch = vl, ep
			sinceBest, sincePlateau = 0, 0
			best.Reset()
			if err := net.Save(&best); err != nil {
				net.Close()
				return nil, fmt.Errorf("training LSTM: keeping epoch %d: %w", ep, err)
			}
			continue
		}
		sinceBest++
		sincePlateau++
		if sinceBest >= cfg.EarlyStopPatience {
			res.Stats.EarlyStopped = ep < cfg.MaxEpochs
			break
		}
		if sincePlateau >= cfg.PlateauPatience {
			net.SetLearningRate(max(lr*cfg.PlateauFactor, cfg.MinLR))
			res.Stats.LRReductions++
			sincePlateau = 0
		}
	}
	net.Close()
	if best.Len() == 0 {
		return nil, fmt.Errorf("training LSTM: %w: no epoch gave a finite validation loss", ErrConfig)
	}
	bn, err := nn.LoadLSTMNet(&best, nn.WithBackend(cfg.Backend))
	if err != nil {
		return nil, fmt.Errorf("training LSTM: restoring epoch %d: %w", res.BestEpoch, err)
	}
	res.Net = bn
	return res, nil
}

// split shuffles a copy of samples with rng and returns the training part
// and the validation part (frac of them, at least one when there are two
// or more samples).
func split(samples []Sample, frac float64, rng *rand.Rand) ([]Sample, []Sample) {
	s := append([]Sample(nil), samples...)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	nv := int(math.Round(frac * float64(len(s))))
	if nv == 0 && len(s) > 1 {
		nv = 1
	}
	return s[nv:], s[:nv]
}

// scaled returns the scaled sequences and the network's targets of
// samples, flattened: the scaled targets, less the scaled moving-average
// bases for a residual head (so that the loss on them equals the loss of
// base + output against the scaled target); and those bases (nil for a
// direct head).
func scaled(cfg Config, sc Scalers, samples []Sample) (x, y, bases []float32, err error) {
	x = make([]float32, 0, len(samples)*SeqDim)
	y = make([]float32, 0, len(samples)*Targets)
	for i := range samples {
		x = append(x, samples[i].Seq[:]...)
		y = append(y, samples[i].Target[:]...)
	}
	if bases, err = scaledBases(nil, cfg, sc.Target, x); err != nil {
		return nil, nil, nil, err
	}
	if _, err := sc.Input.Transform(x, x); err != nil {
		return nil, nil, nil, fmt.Errorf("scaling sequences: %w", err)
	}
	if _, err := sc.Target.Transform(y, y); err != nil {
		return nil, nil, nil, fmt.Errorf("scaling targets: %w", err)
	}
	for i := range bases {
		y[i] -= bases[i]
	}
	return x, y, bases, nil
}

// evalLoss returns the weighted squared error β·(y − t)², averaged over
// every predicted value, of the network on the validation set: the CPU
// backend's batched forward pass, or on the gorgonia backend the exported
// pass (a gorgonia graph for the whole validation set would be large).
func evalLoss(net *nn.LSTMNet, x, y []float32, betaUnder, betaOver float64) (float64, []float32, error) {
	var p []float32
	var err error
	if net.Backend() == nn.BackendGorgonia {
		p, err = net.Export().Forward(nil, x)
	} else {
		p, err = net.Forward(x)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("validation forward: %w", err)
	}
	return weightedSE(p, y, betaUnder, betaOver), p, nil
}

// rateSelector scores an epoch's validation outputs under
// SelectRateVsMA.
type rateSelector struct {
	target *nn.Scaler
	// bases are the scaled moving-average bases of a residual head (nil
	// for a direct head); actual the validation targets; rmseMA and maeMA
	// the moving average's request-rate errors on them.
	bases         []float32
	actual        [][Targets]float32
	rmseMA, maeMA float64
	buf           []float32
	pred          [][Targets]float32
}

// newRateSelector returns the selector of the validation samples va,
// whose scaled moving-average bases are bases (scaled's).
func newRateSelector(target *nn.Scaler, va []Sample, bases []float32) (*rateSelector, error) {
	s := &rateSelector{target: target, bases: bases, actual: Actuals(va), pred: make([][Targets]float32, len(va))}
	ma, err := Evaluate(PredictMovingAverage5(va), s.actual)
	if err != nil {
		return nil, err
	}
	s.rmseMA, s.maeMA = ma.RMSE[TargetRequestRate], ma.MAE[TargetRequestRate]
	if !(s.rmseMA > 0 && s.maeMA > 0) {
		return nil, fmt.Errorf("%w: the moving average predicts every validation request rate exactly; select by loss", ErrConfig)
	}
	return s, nil
}

// score returns max(RMSE ÷ RMSE_MA, MAE ÷ MAE_MA) of the request rates
// the scaled outputs p predict (inverse-scaled, clamped at 0, as Model
// predicts them).
func (s *rateSelector) score(p []float32) (float64, error) {
	s.buf = append(s.buf[:0], p...)
	addBases(s.buf, s.bases)
	raw, err := s.target.Inverse(s.buf, s.buf)
	if err != nil {
		return 0, fmt.Errorf("scoring the validation rates: %w", err)
	}
	for i := range s.pred {
		for j := range Targets {
			s.pred[i][j] = max(raw[i*Targets+j], 0)
		}
	}
	m, err := Evaluate(s.pred, s.actual)
	if err != nil {
		return 0, fmt.Errorf("scoring the validation rates: %w", err)
	}
	return max(m.RMSE[TargetRequestRate]/s.rmseMA, m.MAE[TargetRequestRate]/s.maeMA), nil
}

// weightedSE is the mean of β·(p − t)² over paired values, β = betaUnder
// where p < t and betaOver elsewhere.
func weightedSE(p, t []float32, betaUnder, betaOver float64) float64 {
	var s float64
	for i := range p {
		e := float64(p[i]) - float64(t[i])
		b := betaOver
		if e < 0 {
			b = betaUnder
		}
		s += b * e * e
	}
	return s / float64(len(p))
}

// ScaledLoss returns the configured loss (asymmetric or symmetric) of raw
// predictions against the samples' targets, both mapped by sc's target
// scaler: the scale Train's validation loss is on, so that another
// predictor (the moving average) can be compared with it.
func (c Config) ScaledLoss(sc Scalers, pred [][Targets]float32, samples []Sample) (float64, error) {
	if len(pred) != len(samples) || len(pred) == 0 {
		return 0, fmt.Errorf("scoring predictions: %w: %d predictions for %d samples", ErrConfig, len(pred), len(samples))
	}
	if err := sc.validate(); err != nil {
		return 0, fmt.Errorf("scoring predictions: %w", err)
	}
	p := make([]float32, 0, len(pred)*Targets)
	y := make([]float32, 0, len(samples)*Targets)
	for i := range pred {
		p = append(p, pred[i][:]...)
		y = append(y, samples[i].Target[:]...)
	}
	if _, err := sc.Target.Transform(p, p); err != nil {
		return 0, fmt.Errorf("scoring predictions: scaling them: %w", err)
	}
	if _, err := sc.Target.Transform(y, y); err != nil {
		return 0, fmt.Errorf("scoring predictions: scaling the targets: %w", err)
	}
	bu, bo := c.betas()
	return weightedSE(p, y, bu, bo), nil
}

// PredictSamples returns the result's predictions for the samples'
// sequences in raw units, as Model.PredictSamples does but through the
// training network's batched forward pass (on the CPU backend many times
// faster than the serving pass on a validation set).
func (r *Result) PredictSamples(samples []Sample) ([][Targets]float32, error) {
	x := make([]float32, 0, len(samples)*SeqDim)
	for i := range samples {
		x = append(x, samples[i].Seq[:]...)
	}
	bases, err := scaledBases(nil, r.Config, r.Scalers.Target, x)
	if err != nil {
		return nil, fmt.Errorf("predicting: %w", err)
	}
	if _, err := r.Scalers.Input.Transform(x, x); err != nil {
		return nil, fmt.Errorf("predicting: %w", err)
	}
	var p []float32
	if r.Net.Backend() == nn.BackendGorgonia {
		p, err = r.Net.Export().Forward(nil, x)
	} else {
		p, err = r.Net.Forward(x)
	}
	if err != nil {
		return nil, fmt.Errorf("predicting: %w", err)
	}
	addBases(p, bases)
	raw, err := r.Scalers.Target.Inverse(nil, p)
	if err != nil {
		return nil, fmt.Errorf("predicting: %w", err)
	}
	out := make([][Targets]float32, len(samples))
	for i := range out {
		copy(out[i][:], raw[i*Targets:(i+1)*Targets])
	}
	return out, nil
}

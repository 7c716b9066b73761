package lstm

import (
	"errors"
	"fmt"

	"github.com/strata-rl/strata/agents/nn"
)

// Loss names accepted by Config.Loss (the trainer's --loss flag).
const (
	// LossAsymmetric weighs squared under-predictions by BetaUnder (5) and
	// over-predictions by BetaOver (1), the seed's §2.6 loss.
	LossAsymmetric = "asymmetric"
	// LossSymmetric is the plain mean squared error (both weights 1).
	LossSymmetric = "symmetric"
)

// Heads accepted by Config.Head: what the network's outputs mean.
const (
	// HeadDirect: the outputs are the scaled next step itself (the seed's
	// §2.6 network).
	HeadDirect = "direct"
	// HeadResidual: the outputs are the scaled next step's difference from
	// the 5-step moving average's prediction (MovingAverage5 mapped by the
	// target scaler), which is added back before the inverse scaling. A
	// network whose outputs are 0 predicts exactly the moving average, so
	// training starts from the baseline and learns corrections to it.
	HeadResidual = "ma5-residual"
)

// Checkpoint selections accepted by Config.Select: which epoch's weights
// are kept, and what early stopping and ReduceLROnPlateau watch.
const (
	// SelectLoss: the lowest validation loss (the seed's).
	SelectLoss = "loss"
	// SelectRateVsMA: the lowest max(RMSE ÷ RMSE_MA, MAE ÷ MAE_MA) of the
	// request rate in raw units on the validation samples, the moving
	// average's errors on the same samples as the unit: the epoch that
	// is furthest ahead of the moving average on both of the operational
	// goal's measures.
	SelectRateVsMA = "rate-vs-ma"
)

// ErrConfig is returned (wrapped) for an invalid configuration or input
// that the trainer, the pre-warm rule or the policy cannot use.
var ErrConfig = errors.New("invalid LSTM configuration")

// Config configures the supervised trainer (docs/lstm.md, seed §2.6).
type Config struct {
	// Net is the network: 5→128→64 LSTM, dropout 0.2, dense 64→32→3, Adam
	// 1e-3. Its BetaUnder and BetaOver are the asymmetric loss's weights;
	// Loss decides whether they are used.
	Net nn.LSTMConfig `json:"net"`
	// Loss is LossAsymmetric or LossSymmetric.
	Loss string `json:"loss"`
	// Seed seeds the weights, the train/validation split and the shuffles.
	Seed uint64 `json:"seed"`
	// BatchSize is the minibatch size (128). The last batch of an epoch
	// may be smaller.
	BatchSize int `json:"batch_size"`
	// MaxEpochs bounds the number of epochs (25).
	MaxEpochs int `json:"max_epochs"`
	// ValFraction is the share of the samples held out for validation when
	// Train is given no validation set (0.2), chosen by a seeded shuffle.
	ValFraction float64 `json:"val_fraction"`
	// PlateauFactor and PlateauPatience are ReduceLROnPlateau's settings
	// (0.5 and 3): after PlateauPatience epochs without a new best
	// validation loss the learning rate is multiplied by PlateauFactor.
	PlateauFactor   float64 `json:"plateau_factor"`
	PlateauPatience int     `json:"plateau_patience"`
	// MinLR is the floor of the learning rate (1e-6).
	MinLR float64 `json:"min_lr"`
	// EarlyStopPatience stops training after that many epochs without a
	// new best validation loss (5); the best epoch's weights are kept.
	EarlyStopPatience int `json:"early_stop_patience"`
	// Scaler is nn.ScalerMinMax (default) or nn.ScalerRobust; request rate
	// and queue depth go through log1p first in either case.
	Scaler string `json:"scaler"`
	// Head is HeadDirect (also "", the default) or HeadResidual.
	Head string `json:"head,omitempty"`
	// Select is SelectLoss (also "", the default) or SelectRateVsMA.
	Select string `json:"select,omitempty"`
	// Backend computes the network's passes while training: nn.BackendCPU
	// (the default, also ""), nn.BackendGorgonia, the reference, or
	// nn.BackendCUDA (a binary built with -tags strata_cuda, on a GPU). It
	// does not change the checkpoint.
	Backend nn.Backend `json:"backend,omitempty"`
}

// DefaultConfig returns the seed's training configuration with the
// asymmetric loss.
func DefaultConfig() Config {
	return Config{
		Net: nn.DefaultLSTMConfig(), Loss: LossAsymmetric, BatchSize: 128, MaxEpochs: 25,
		ValFraction: 0.2, PlateauFactor: 0.5, PlateauPatience: 3, MinLR: 1e-6,
		EarlyStopPatience: 5, Scaler: nn.ScalerMinMax,
	}
}

// Validate reports an invalid configuration.
func (c Config) Validate() error {
	if err := c.Net.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Net.Features != Features || c.Net.Outputs != Targets {
		return fmt.Errorf("%w: network of %d features and %d outputs, want %d and %d", ErrConfig, c.Net.Features, c.Net.Outputs, Features, Targets)
	}
	if _, err := nn.ParseBackend(string(c.Backend)); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Loss != LossAsymmetric && c.Loss != LossSymmetric {
		return fmt.Errorf("%w: loss %q, want %q or %q", ErrConfig, c.Loss, LossAsymmetric, LossSymmetric)
	}
	if c.Head != "" && c.Head != HeadDirect && c.Head != HeadResidual {
		return fmt.Errorf("%w: head %q, want %q or %q", ErrConfig, c.Head, HeadDirect, HeadResidual)
	}
	if c.Select != "" && c.Select != SelectLoss && c.Select != SelectRateVsMA {
		return fmt.Errorf("%w: select %q, want %q or %q", ErrConfig, c.Select, SelectLoss, SelectRateVsMA)
	}
	if c.Scaler != nn.ScalerMinMax && c.Scaler != nn.ScalerRobust {
		return fmt.Errorf("%w: scaler %q", ErrConfig, c.Scaler)
	}
	if c.BatchSize < 1 || c.MaxEpochs < 1 || c.PlateauPatience < 1 || c.EarlyStopPatience < 1 {
		return fmt.Errorf("%w: batch size %d, max epochs %d, plateau patience %d, early-stop patience %d must be positive",
			ErrConfig, c.BatchSize, c.MaxEpochs, c.PlateauPatience, c.EarlyStopPatience)
	}
	if !(c.ValFraction > 0 && c.ValFraction < 1) || !(c.PlateauFactor > 0 && c.PlateauFactor < 1) || !(c.MinLR >= 0) {
		return fmt.Errorf("%w: validation fraction %v, plateau factor %v, minimum learning rate %v", ErrConfig, c.ValFraction, c.PlateauFactor, c.MinLR)
	}
	return nil
}

// betas returns the loss weights (under, over) the configuration trains
// with.
func (c Config) betas() (float64, float64) {
	if c.Loss == LossSymmetric {
		return 1, 1
	}
	return c.Net.BetaUnder, c.Net.BetaOver
}

// residual reports whether the network predicts the difference from the
// moving average (HeadResidual).
func (c Config) residual() bool { return c.Head == HeadResidual }

// Describe names the configuration's loss and, when not direct, its head
// ("symmetric loss", "symmetric loss, ma5-residual head"), for tables.
func (c Config) Describe() string {
	d := c.Loss + " loss"
	if c.Head != "" && c.Head != HeadDirect {
		d += ", " + c.Head + " head"
	}
	return d
}

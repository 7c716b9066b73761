package train

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/experiments/sequences"
	"github.com/strata-rl/strata/pipeline"
)

// LSTMConfig configures `strata train-lstm`: supervised training of the
// operational LSTM on exported sequences.
type LSTMConfig struct {
	// Data is the sequences file trained on (required); Valid, if set, the
	// validation file, else ValidDays of Data, else a seeded ValidFrac of
	// it.
	Data, Valid, ValidDays string
	ValidFrac              float64
	// Out is the directory lstm.ckpt and lstm_curve.csv go to (required).
	Out string
	// Loss is asymmetric or symmetric.
	Loss string
	// Head is what the network's outputs are: lstm.HeadDirect or
	// lstm.HeadResidual.
	Head string
	// Epochs bounds the epochs (early stopping may end sooner); Patience
	// is the early stop's: epochs without a better validation loss.
	Epochs, Patience int
	// ClipNorm bounds the gradient's global L2 norm (0: none, the seed's).
	ClipNorm float64
	// Select is the checkpoint selection (lstm.SelectLoss or
	// lstm.SelectRateVsMA).
	Select string
	// Seed seeds the split, the initialisation and the shuffles.
	Seed uint64
	// Batch is the minibatch size.
	Batch int
	// Hidden are the widths of the two LSTM layers ("128,64"); DenseHidden
	// the width of the dense head's hidden layer.
	Hidden      string
	DenseHidden int
	// Version is the model version in the checkpoint; "" is
	// lstm-<loss>-seed<seed>.
	Version string
	// Device is where the network trains: cpu or cuda
	// (pipeline.ParseDevice).
	Device string
}

// DefaultLSTMConfig is `strata train-lstm`'s defaults: the LSTM's
// (lstm.DefaultConfig).
func DefaultLSTMConfig() LSTMConfig {
	def := lstm.DefaultConfig()
	return LSTMConfig{ValidFrac: def.ValFraction, Loss: def.Loss, Head: lstm.HeadDirect, Select: lstm.SelectLoss, Epochs: def.MaxEpochs, Patience: def.EarlyStopPatience, Seed: 1, Batch: def.BatchSize,
		Hidden: fmt.Sprintf("%d,%d", def.Net.Hidden[0], def.Net.Hidden[1]), DenseHidden: def.Net.DenseHidden}
}

// RegisterFlags registers the training's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *LSTMConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.Data, prefix+"data", c.Data, "sequences `FILE`.parquet from 'strata export sequences' (required)")
	fs.StringVar(&c.Valid, prefix+"valid", c.Valid, "validation sequences `FILE`.parquet (default: a seeded --valid-frac of --data)")
	fs.StringVar(&c.ValidDays, prefix+"valid-days", c.ValidDays, "hold out the samples of these trace days of --data (e.g. 9-10) for validation")
	fs.Float64Var(&c.ValidFrac, prefix+"valid-frac", c.ValidFrac, "seeded share of --data held out for validation")
	fs.StringVar(&c.Out, prefix+"out", c.Out, "write lstm.ckpt and lstm_curve.csv to `DIR` (required)")
	fs.StringVar(&c.Loss, prefix+"loss", c.Loss, "training loss: asymmetric or symmetric")
	fs.StringVar(&c.Head, prefix+"head", c.Head, "what the network's outputs are: direct (the seed's: the next step) or ma5-residual (the next step's difference from the 5-step moving average, added back when predicting)")
	fs.IntVar(&c.Epochs, prefix+"epochs", c.Epochs, "at most this many epochs (early stopping may end sooner)")
	fs.StringVar(&c.Select, prefix+"select", c.Select, "which epoch is kept, and what early stopping watches: loss (the seed's: the lowest validation loss) or rate-vs-ma (the lowest max(RMSE/RMSE_MA, MAE/MAE_MA) of the validation request rate against the 5-step moving average)")
	fs.Float64Var(&c.ClipNorm, prefix+"clip-norm", c.ClipNorm, "bound the gradient's global L2 norm per step (0: no clip, the seed's)")
	fs.IntVar(&c.Patience, prefix+"patience", c.Patience, "stop after this many epochs without a better validation loss (the seed's 5)")
	fs.Uint64Var(&c.Seed, prefix+"seed", c.Seed, "seed of the split, the initialisation and the shuffles")
	fs.IntVar(&c.Batch, prefix+"batch", c.Batch, "minibatch size")
	fs.StringVar(&c.Hidden, prefix+"hidden", c.Hidden, "widths of the two LSTM layers")
	fs.IntVar(&c.DenseHidden, prefix+"dense-hidden", c.DenseHidden, "width of the dense head's hidden layer")
	pipeline.RegisterDeviceFlag(fs, prefix, &c.Device)
	fs.StringVar(&c.Version, prefix+"version", c.Version, "model version in the checkpoint (default: lstm-<loss>-seed<seed>, lstm-<loss>-ma5res-seed<seed> for the residual head)")
}

// Validate reports a missing --data or --out and a network or training
// configuration the LSTM refuses.
func (c *LSTMConfig) Validate() error {
	_, err := c.config()
	return err
}

// config returns the LSTM's training configuration.
func (c *LSTMConfig) config() (lstm.Config, error) {
	cfg := lstm.DefaultConfig()
	if c.Data == "" || c.Out == "" {
		return cfg, errors.New("strata train-lstm: --data and --out are required")
	}
	cfg.Loss, cfg.Head, cfg.MaxEpochs, cfg.Seed, cfg.BatchSize = c.Loss, c.Head, c.Epochs, c.Seed, c.Batch
	if c.Patience > 0 {
		cfg.EarlyStopPatience = c.Patience
	}
	cfg.Net.Optimizer.ClipNorm = c.ClipNorm
	cfg.Select = c.Select
	backend, err := pipeline.ParseDevice(c.Device)
	if err != nil {
		return cfg, fmt.Errorf("strata train-lstm --device: %w", err)
	}
	cfg.Backend = backend
	h0, h1, ok := strings.Cut(c.Hidden, ",")
	a, errA := strconv.Atoi(strings.TrimSpace(h0))
	b, errB := strconv.Atoi(strings.TrimSpace(h1))
	if !ok || errA != nil || errB != nil {
		return cfg, fmt.Errorf("strata train-lstm: --hidden %q: want two widths, e.g. 128,64", c.Hidden)
	}
	cfg.Net.Hidden, cfg.Net.DenseHidden = [2]int{a, b}, c.DenseHidden
	if c.ValidFrac > 0 && c.ValidFrac < 1 {
		cfg.ValFraction = c.ValidFrac
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("strata train-lstm: %w", err)
	}
	return cfg, nil
}

// TrainLSTM trains the operational LSTM on exported sequences, writes its
// checkpoint and learning curve to c.Out, and prints the curve and its
// validation metrics next to the 5-step moving average's to stdout; each
// epoch is reported on stderr as it ends.
func TrainLSTM(ctx context.Context, c LSTMConfig, stdout, stderr io.Writer) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	version := c.Version
	if version == "" {
		version = fmt.Sprintf("lstm-%s-seed%d", cfg.Loss, cfg.Seed)
		if cfg.Head == lstm.HeadResidual {
			version = fmt.Sprintf("lstm-%s-ma5res-seed%d", cfg.Loss, cfg.Seed)
		}
	}
	t0 := time.Now()
	sf, err := sequences.Read(ctx, c.Data)
	if err != nil {
		return err
	}
	var trS, vaS []lstm.Sample
	valDesc := ""
	switch {
	case c.Valid != "":
		vf, err := sequences.Read(ctx, c.Valid)
		if err != nil {
			return err
		}
		trS, vaS = sf.Samples, vf.Samples
		valDesc = c.Valid
	case c.ValidDays != "":
		vFirst, vLast, err := experiments.ParseDays(c.ValidDays)
		if err != nil {
			return err
		}
		if vaS, trS, err = sf.SplitDays(vFirst, vLast); err != nil {
			return fmt.Errorf("reading %s: %w", c.Data, err)
		}
		valDesc = "days " + c.ValidDays + " of " + c.Data
	default:
		rng := rand.New(rand.NewPCG(cfg.Seed, 0x76616c)) // "val"
		perm := rng.Perm(len(sf.Samples))
		nv := int(cfg.ValFraction * float64(len(perm)))
		if len(perm) >= 2 {
			nv = max(nv, 1)
		}
		for i, k := range perm {
			if i < nv {
				vaS = append(vaS, sf.Samples[k])
			} else {
				trS = append(trS, sf.Samples[k])
			}
		}
		valDesc = fmt.Sprintf("a seeded %.0f%% of %s", 100*cfg.ValFraction, c.Data)
	}
	train, err := sequences.Dataset(trS)
	if err != nil {
		return err
	}
	val, err := sequences.Dataset(vaS)
	if err != nil {
		return err
	}
	if train.Len() == 0 || val.Len() == 0 {
		return fmt.Errorf("strata train-lstm: %d training and %d validation samples; both must be non-empty", train.Len(), val.Len())
	}
	fmt.Fprintf(stdout, "train-lstm: %d training samples from %s (exported days %s, %s of %s seen), %d validation samples (%s), %d rejected; network LSTM 5→%d→%d, dense %d→3, loss %s, batch %d, at most %d epochs, seed %d (read in %.1f s)\n",
		train.Len(), c.Data, sf.Meta[sequences.KeyDays], sf.Meta[sequences.KeySampled], sf.Meta[sequences.KeySeen], val.Len(), valDesc, train.Rejected+val.Rejected,
		cfg.Net.Hidden[0], cfg.Net.Hidden[1], cfg.Net.DenseHidden, cfg.Loss, cfg.BatchSize, cfg.MaxEpochs, cfg.Seed, time.Since(t0).Seconds())

	// Each epoch is reported on stderr as it ends, and its wall time kept
	// for the table.
	tTrain := time.Now()
	te := tTrain
	var secs []float64
	onEpoch := func(e lstm.Epoch) {
		secs = append(secs, time.Since(te).Seconds())
		te = time.Now()
		score := ""
		if e.Score != 0 {
			score = fmt.Sprintf(", rate score vs the moving average %.4f", e.Score)
		}
		fmt.Fprintf(stderr, "train-lstm: epoch %d: train loss %.6f, validation loss %.6f%s, lr %.3g, %.1f s\n", e.Epoch, e.TrainLoss, e.ValLoss, score, e.LR, secs[len(secs)-1])
	}
	res, err := lstm.TrainWith(cfg, lstm.Options{OnEpoch: onEpoch, Context: ctx}, train, val)
	if err != nil {
		return err
	}
	defer res.Net.Close()
	trainSec := time.Since(tTrain).Seconds()
	perEpoch := trainSec / float64(len(res.Curve))
	fmt.Fprintf(stdout, "%5s  %12s  %12s  %10s  %9s\n", "epoch", "train loss", "val loss", "lr", "seconds")
	for i, e := range res.Curve {
		fmt.Fprintf(stdout, "%5d  %12.6f  %12.6f  %10.3g  %9.1f\n", e.Epoch, e.TrainLoss, e.ValLoss, e.LR, secs[i])
	}
	fmt.Fprintf(stdout, "trained in %.1f s (%.1f s per epoch, mean); best epoch %d, validation loss %.6f; %d steps (%d rejected), %d LR reductions, early stop %v\n",
		trainSec, perEpoch, res.BestEpoch, res.BestValLoss, res.Stats.Steps, res.Stats.RejectedSteps, res.Stats.LRReductions, res.Stats.EarlyStopped)

	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	ckpt := filepath.Join(c.Out, "lstm.ckpt")
	if err := writeFileWith(ckpt, func(w io.Writer) error { return res.Save(w, cfg, version, lstm.DefaultPrewarmRule()) }); err != nil {
		return err
	}
	curve := filepath.Join(c.Out, "lstm_curve.csv")
	if err := writeFileWith(curve, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"epoch", "train_loss", "val_loss", "lr"})
		for _, e := range res.Curve {
			_ = cw.Write([]string{strconv.Itoa(e.Epoch), strconv.FormatFloat(e.TrainLoss, 'g', -1, 64),
				strconv.FormatFloat(e.ValLoss, 'g', -1, 64), strconv.FormatFloat(e.LR, 'g', -1, 64)})
		}
		cw.Flush()
		return cw.Error()
	}); err != nil {
		return err
	}

	model := res.Model(cfg)
	pred, err := model.PredictSamples(val.Samples)
	if err != nil {
		return err
	}
	actual := lstm.Actuals(val.Samples)
	mL, err := lstm.Evaluate(pred, actual)
	if err != nil {
		return err
	}
	mA, err := lstm.Evaluate(lstm.PredictMovingAverage5(val.Samples), actual)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "validation metrics on %d samples (raw units; CPU and memory util as fractions, request rate in invocations/s):\n", mL.N)
	fmt.Fprintf(stdout, "| predictor | RMSE cpu | RMSE mem | RMSE rate | MAE cpu | MAE mem | MAE rate | R² cpu | R² mem | R² rate | under-provisioning |\n")
	fmt.Fprintf(stdout, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		m    lstm.Metrics
	}{{"lstm (" + cfg.Describe() + ")", mL}, {"moving-average (5 steps)", mA}} {
		m := r.m
		fmt.Fprintf(stdout, "| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.3f | %.3f | %.3f | %.2f%% |\n", r.name,
			m.RMSE[0], m.RMSE[1], m.RMSE[2], m.MAE[0], m.MAE[1], m.MAE[2], m.R2[0], m.R2[1], m.R2[2], 100*m.UnderRate)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", ckpt, curve)
	return nil
}

// writeFileWith creates path and writes it with write.
func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

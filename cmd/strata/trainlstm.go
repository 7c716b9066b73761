package main

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
	"github.com/strata-rl/strata/experiments/sequences"
)

// trainLSTMMain runs `strata train-lstm`: supervised training of the
// operational LSTM on exported sequences, its checkpoint and learning
// curve, and its validation metrics next to the 5-step moving average's.
func trainLSTMMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata train-lstm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := lstm.DefaultConfig()
	var (
		data      = fs.String("data", "", "sequences `FILE`.parquet from 'strata export sequences' (required)")
		validF    = fs.String("valid", "", "validation sequences `FILE`.parquet (default: a seeded --valid-frac of --data)")
		validDays = fs.String("valid-days", "", "hold out the samples of these trace days of --data (e.g. 9-10) for validation")
		validFrac = fs.Float64("valid-frac", def.ValFraction, "seeded share of --data held out for validation")
		outDir    = fs.String("out", "", "write lstm.ckpt and lstm_curve.csv to `DIR` (required)")
		loss      = fs.String("loss", def.Loss, "training loss: asymmetric or symmetric")
		epochs    = fs.Int("epochs", def.MaxEpochs, "at most this many epochs (early stopping may end sooner)")
		seed      = fs.Uint64("seed", 1, "seed of the split, the initialisation and the shuffles")
		batch     = fs.Int("batch", def.BatchSize, "minibatch size")
		hidden    = fs.String("hidden", fmt.Sprintf("%d,%d", def.Net.Hidden[0], def.Net.Hidden[1]), "widths of the two LSTM layers")
		dense     = fs.Int("dense-hidden", def.Net.DenseHidden, "width of the dense head's hidden layer")
		version   = fs.String("version", "", "model version in the checkpoint (default: lstm-<loss>-seed<seed>)")
	)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *data == "" || *outDir == "" {
		return errors.New("strata train-lstm: --data and --out are required")
	}
	cfg := def
	cfg.Loss, cfg.MaxEpochs, cfg.Seed, cfg.BatchSize = *loss, *epochs, *seed, *batch
	h0, h1, ok := strings.Cut(*hidden, ",")
	a, errA := strconv.Atoi(strings.TrimSpace(h0))
	b, errB := strconv.Atoi(strings.TrimSpace(h1))
	if !ok || errA != nil || errB != nil {
		return fmt.Errorf("strata train-lstm: --hidden %q: want two widths, e.g. 128,64", *hidden)
	}
	cfg.Net.Hidden, cfg.Net.DenseHidden = [2]int{a, b}, *dense
	if *validFrac > 0 && *validFrac < 1 {
		cfg.ValFraction = *validFrac
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("strata train-lstm: %w", err)
	}
	if *version == "" {
		*version = fmt.Sprintf("lstm-%s-seed%d", cfg.Loss, cfg.Seed)
	}
	t0 := time.Now()
	sf, err := sequences.Read(context.Background(), *data)
	if err != nil {
		return err
	}
	var trS, vaS []lstm.Sample
	valDesc := ""
	switch {
	case *validF != "":
		vf, err := sequences.Read(context.Background(), *validF)
		if err != nil {
			return err
		}
		trS, vaS = sf.Samples, vf.Samples
		valDesc = *validF
	case *validDays != "":
		vFirst, vLast, err := parseDays(*validDays)
		if err != nil {
			return err
		}
		if vaS, trS, err = sf.SplitDays(vFirst, vLast); err != nil {
			return fmt.Errorf("reading %s: %w", *data, err)
		}
		valDesc = "days " + *validDays + " of " + *data
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
		valDesc = fmt.Sprintf("a seeded %.0f%% of %s", 100*cfg.ValFraction, *data)
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
		train.Len(), *data, sf.Meta[sequences.KeyDays], sf.Meta[sequences.KeySampled], sf.Meta[sequences.KeySeen], val.Len(), valDesc, train.Rejected+val.Rejected,
		cfg.Net.Hidden[0], cfg.Net.Hidden[1], cfg.Net.DenseHidden, cfg.Loss, cfg.BatchSize, cfg.MaxEpochs, cfg.Seed, time.Since(t0).Seconds())

	// agents/lstm.Train has no per-epoch hook: a ticker shows it is alive,
	// and the curve is printed per epoch when training ends.
	done := make(chan struct{})
	tTrain := time.Now()
	go func() {
		tk := time.NewTicker(30 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				fmt.Fprintf(stderr, "train-lstm: training, %.0f s\n", time.Since(tTrain).Seconds())
			}
		}
	}()
	res, err := lstm.Train(cfg, train, val)
	close(done)
	if err != nil {
		return err
	}
	defer res.Net.Close()
	trainSec := time.Since(tTrain).Seconds()
	perEpoch := trainSec / float64(len(res.Curve))
	fmt.Fprintf(stdout, "%5s  %12s  %12s  %10s  %9s\n", "epoch", "train loss", "val loss", "lr", "seconds")
	for _, e := range res.Curve {
		fmt.Fprintf(stdout, "%5d  %12.6f  %12.6f  %10.3g  %9.1f\n", e.Epoch, e.TrainLoss, e.ValLoss, e.LR, perEpoch)
	}
	fmt.Fprintf(stdout, "trained in %.1f s (%.1f s per epoch, mean); best epoch %d, validation loss %.6f; %d steps (%d rejected), %d LR reductions, early stop %v\n",
		trainSec, perEpoch, res.BestEpoch, res.BestValLoss, res.Stats.Steps, res.Stats.RejectedSteps, res.Stats.LRReductions, res.Stats.EarlyStopped)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	ckpt := filepath.Join(*outDir, "lstm.ckpt")
	if err := writeFileWith(ckpt, func(w io.Writer) error { return res.Save(w, cfg, *version, lstm.DefaultPrewarmRule()) }); err != nil {
		return err
	}
	curve := filepath.Join(*outDir, "lstm_curve.csv")
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
	}{{"lstm (" + cfg.Loss + ")", mL}, {"moving-average (5 steps)", mA}} {
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

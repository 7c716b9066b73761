package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// trainCurve is one line of curves.csv: a layer's figures in one phase of
// one episode.
type trainCurve struct {
	Episode    int     `json:"episode"`
	Phase      string  `json:"phase"` // train or validation
	Layer      string  `json:"layer"`
	MeanReward float64 `json:"mean_reward"`
	MeanRegret float64 `json:"mean_regret"`
	Rewards    int64   `json:"rewards"`
	Version    string  `json:"version"`
	// Epsilon is the DQN's ε in the episode (strategic rows only).
	Epsilon float64 `json:"epsilon,omitempty"`
	Best    bool    `json:"best"`
	Seconds float64 `json:"seconds"`
}

// trainUpdate is one line of updates.csv: a published checkpoint.
type trainUpdate struct {
	Episode                        int
	Layer                          string
	Version                        string
	InForce                        int64
	RolloutReward                  float64
	PolicyLoss, ValueLoss, Entropy float64
	ApproxKL, ExplainedVariance    float64
	DQNLoss                        float64
}

// trainSummary is train.json.
type trainSummary struct {
	Seed        int64              `json:"seed"`
	Episodes    int                `json:"episodes"`
	Layers      []string           `json:"layers"`
	TrainDays   string             `json:"train_days"`
	ValidDays   string             `json:"valid_days"`
	Operational string             `json:"operational_during_episodes"`
	Best        map[string]int     `json:"best_episode"`
	BestReward  map[string]float64 `json:"best_validation_reward"`
	Curves      []trainCurve       `json:"curves"`
	Learner     learner.Stats      `json:"learner"`
	WallSeconds float64            `json:"wall_seconds"`
}

// trainMain runs `strata train`: closed-loop episodes over the training
// days through the real pipeline with an in-process learner (DQN and PPO),
// validation of each episode's greedy policies on the validation days, the
// best checkpoint per layer kept in --out, learning curves (CSV and PNG),
// and the LSTM's supervised training from exported sequences.
func trainMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cf         commonFlags
		sf         sourceFlags
		layersF    = fs.String("layers", "strategic,tactical,operational", "layers to train: strategic (DQN), tactical (PPO), operational (LSTM, supervised)")
		episodes   = fs.Int("episodes", 3, "closed-loop episodes over the training days (DQN and PPO)")
		seed       = fs.Int64("seed", 1, "seed of the networks, the exploration and the LSTM's sample order")
		outDir     = fs.String("out", "", "write the best checkpoints (dqn.ckpt, ppo.ckpt, lstm.ckpt), curves and train.json to `DIR` (required)")
		trainDaysF = fs.String("train-days", "1-10", "training days, 1-based inclusive")
		validDaysF = fs.String("valid-days", "11-12", "validation days, 1-based inclusive (the day before is replayed unscored as warm-up)")
		strategic  = fs.String("strategic", pipeline.DefaultStrategicPolicy, "strategic policy when the strategic layer is not trained")
		tactical   = fs.String("tactical", pipeline.DefaultTacticalPolicy, "tactical policy when the tactical layer is not trained")
		oper       = fs.String("operational", "none", "operational policy during the DQN/PPO episodes and their validation (none = no pre-warming, as reactive; moving-average is ~4× slower)")
		rollout    = fs.Int("rollout", ppo.DefaultConfig().Rollout, "PPO rollout size (transitions per update)")
		dqnWarm    = fs.Int("dqn-warmup", 256, "DQN: transitions before the first gradient step, and states the input scaler is fitted on")
		dqnUpdates = fs.Float64("dqn-updates", 8, "DQN: gradient steps per transition once warmed up")
		defPl      = fs.String("default-placement", pipeline.DefaultPlacement, "placement before any decision: provider/metro/memory MB")
		lateness   = fs.Duration("allowed-lateness", 600*time.Second, "how far out of start order the trace may be")
		lstmData   = fs.String("lstm-data", "", "LSTM training sequences `FILE`.parquet (default: exported from the training days into --out)")
		lstmValid  = fs.String("lstm-valid", "", "LSTM validation sequences `FILE`.parquet (default: exported from the validation days into --out)")
		lstmSample = fs.Int("lstm-sample", 200_000, "seeded sample size of the LSTM's training export (the validation export keeps a quarter of it)")
		lstmEpochs = fs.Int("lstm-epochs", lstm.DefaultConfig().MaxEpochs, "LSTM epochs at most (early stopping may end sooner)")
		lstmLoss   = fs.String("loss", "asymmetric", "LSTM training loss: asymmetric or symmetric")
	)
	cf.register(fs)
	sf.registerWith(fs, "trace-seed", 14)
	progress := fs.Bool("progress", true, "print each episode's results and PPO's updates on stderr")
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if *outDir == "" {
		return errors.New("strata train: --out DIR is required")
	}
	layers, err := parseLayers(*layersF)
	if err != nil {
		return fmt.Errorf("strata train --layers: %w", err)
	}
	pw := stderr
	if !*progress {
		pw = io.Discard
	}
	tFirst, tLast, err := parseDays(*trainDaysF)
	if err != nil {
		return fmt.Errorf("strata train --train-days: %w", err)
	}
	vFirst, vLast, err := parseDays(*validDaysF)
	if err != nil {
		return fmt.Errorf("strata train --valid-days: %w", err)
	}
	if vFirst <= tLast {
		return fmt.Errorf("strata train: validation days %d–%d must come after the training days %d–%d", vFirst, vLast, tFirst, tLast)
	}
	if *episodes < 1 {
		return errors.New("strata train: --episodes must be at least 1")
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", *outDir, err)
	}
	logger, epoch, pl, err := loopBasics(stderr, cf, *defPl)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sum := trainSummary{Seed: *seed, Episodes: *episodes, TrainDays: *trainDaysF, ValidDays: *validDaysF, Operational: *oper,
		Best: map[string]int{}, BestReward: map[string]float64{}}
	for _, l := range layers {
		sum.Layers = append(sum.Layers, string(l))
	}
	var rl []schemas.Layer
	for _, l := range layers {
		if l != schemas.Operational {
			rl = append(rl, l)
		}
	}
	if len(rl) > 0 {
		cat, err := cloud.DefaultCatalog()
		if err != nil {
			return err
		}
		lcfg := learner.DefaultConfig(uint64(*seed), rl...)
		lcfg.PPO.Rollout = *rollout
		// A 10-day episode yields only ~500 strategic transitions (one per
		// active app and day): the algorithm's defaults (1,000 warm-up, one
		// step per transition) would leave the DQN untrained for two
		// episodes and with ~500 steps per episode after (docs/learner.md).
		lcfg.DQN.WarmUp, lcfg.DQN.ScalerFit, lcfg.DQN.UpdatesPerTransition = *dqnWarm, *dqnWarm, *dqnUpdates
		lcfg.Availability = ppo.CatalogAvailability(cat)
		reg := newRegistry()
		lrn, err := learner.New(lcfg, logger.With("role", "learner"), reg)
		if err != nil {
			return err
		}
		defer lrn.Close()
		if err := serveMetrics(ctx, cf.metricsAddr, reg); err != nil {
			return err
		}
		var updates []trainUpdate
		episode := 0
		lrn.OnUpdate = func(e learner.UpdateEvent) {
			u := trainUpdate{Episode: episode + 1, Layer: string(e.Layer), Version: e.Version, InForce: e.InForce, DQNLoss: e.Loss}
			if e.PPO != nil {
				u.RolloutReward, u.PolicyLoss, u.ValueLoss, u.Entropy = e.PPO.MeanReward, e.PPO.PolicyLoss, e.PPO.ValueLoss, e.PPO.Entropy
				u.ApproxKL, u.ExplainedVariance = e.PPO.ApproxKL, e.PPO.ExplainedVariance
				fmt.Fprintf(pw, "  episode %d: ppo %s in force from hour %d (rollout mean reward %.4f, policy loss %.4f, value loss %.4f, entropy %.3f, KL %.4f)\n",
					episode+1, e.Version, e.InForce, u.RolloutReward, u.PolicyLoss, u.ValueLoss, u.Entropy, u.ApproxKL)
			}
			updates = append(updates, u)
		}
		best := map[schemas.Layer]float64{}
		for episode = 0; episode < *episodes; episode++ {
			te := time.Now()
			lf := loopFlags{strategic: *strategic, tactical: *tactical, operational: *oper, placement: pl, policySeed: *seed, sources: &sf,
				learn: &pipeline.Learn{Learner: lrn, Episode: episode}, conf: conf}
			o := fullSpeedOpts(cf, epoch, lateness.Microseconds(), logger, fmt.Sprintf("train-s%d-e%d-%d", *seed, episode+1, time.Now().UnixNano()))
			res, _, _, err := runWindow(ctx, lf, o, int64(tFirst-1)*grid.StrategicTickUS, int64(tLast)*grid.StrategicTickUS, 0)
			if err != nil {
				return fmt.Errorf("training episode %d: %w", episode+1, err)
			}
			epDir := filepath.Join(*outDir, "episodes", strconv.Itoa(episode+1))
			if err := os.MkdirAll(epDir, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", epDir, err)
			}
			versions := map[schemas.Layer]string{}
			for _, l := range rl {
				data, v, err := lrn.Snapshot(l)
				if err != nil {
					return err
				}
				versions[l] = v
				if err := os.WriteFile(filepath.Join(epDir, agents.CheckpointFile(l)), data, 0o644); err != nil {
					return fmt.Errorf("writing episode %d's %s checkpoint: %w", episode+1, l, err)
				}
			}
			eps := lcfg.DQN.Epsilon(episode)
			for _, l := range rl {
				ls := res.Twin.Layers[string(l)]
				sum.Curves = append(sum.Curves, trainCurve{Episode: episode + 1, Phase: "train", Layer: string(l), MeanReward: ls.MeanReward,
					MeanRegret: ls.MeanRegret, Rewards: ls.Rewards, Version: versions[l], Epsilon: epsIf(l, eps), Seconds: time.Since(te).Seconds()})
			}
			// Validation: the episode's greedy policies on the validation
			// days, the day before them replayed unscored.
			tv := time.Now()
			vlf := loopFlags{strategic: *strategic, tactical: *tactical, operational: *oper, placement: pl, policySeed: *seed, sources: &sf, models: epDir, conf: conf}
			for _, l := range rl {
				switch l {
				case schemas.Strategic:
					vlf.strategic = agents.LearnedName(l)
				case schemas.Tactical:
					vlf.tactical = agents.LearnedName(l)
				}
			}
			vo := fullSpeedOpts(cf, epoch, lateness.Microseconds(), logger, fmt.Sprintf("valid-s%d-e%d-%d", *seed, episode+1, time.Now().UnixNano()))
			vres, _, _, err := runWindow(ctx, vlf, vo, int64(vFirst-2)*grid.StrategicTickUS, int64(vLast)*grid.StrategicTickUS, grid.TicksPerDay)
			if err != nil {
				return fmt.Errorf("validating episode %d: %w", episode+1, err)
			}
			line := fmt.Sprintf("episode %d/%d (%.0f s train, %.0f s validation):", episode+1, *episodes, tv.Sub(te).Seconds(), time.Since(tv).Seconds())
			for _, l := range rl {
				ls := vres.Twin.Layers[string(l)]
				c := trainCurve{Episode: episode + 1, Phase: "validation", Layer: string(l), MeanReward: ls.MeanReward, MeanRegret: ls.MeanRegret,
					Rewards: ls.Rewards, Version: versions[l], Epsilon: epsIf(l, eps), Seconds: time.Since(tv).Seconds()}
				if b, ok := best[l]; !ok || ls.MeanReward > b {
					best[l], c.Best = ls.MeanReward, true
					sum.Best[string(l)], sum.BestReward[string(l)] = episode+1, ls.MeanReward
					if err := copyFile(filepath.Join(epDir, agents.CheckpointFile(l)), filepath.Join(*outDir, agents.CheckpointFile(l))); err != nil {
						return err
					}
				}
				sum.Curves = append(sum.Curves, c)
				trainR := res.Twin.Layers[string(l)].MeanReward
				line += fmt.Sprintf(" %s %s train R %.4f, validation R %.4f (regret %.4f)%s;", l, versions[l], trainR, c.MeanReward, c.MeanRegret, map[bool]string{true: " best", false: ""}[c.Best])
			}
			fmt.Fprintln(pw, line)
		}
		if err := writeUpdatesCSV(filepath.Join(*outDir, "updates.csv"), updates); err != nil {
			return err
		}
		sum.Learner = lrn.Stats()
	}
	if slices.Contains(layers, schemas.Operational) {
		if err := trainLSTMPart(ctx, stdout, stderr, conf, cf, sf, *outDir, *seed, *trainDaysF, *validDaysF, *lstmData, *lstmValid, *lstmSample, *lstmEpochs, *lstmLoss); err != nil {
			return err
		}
	}
	sum.WallSeconds = time.Since(t0).Seconds()
	if len(rl) > 0 {
		// The LSTM alone writes its own lstm_curve.csv; DQN and PPO's
		// curves and summary are left as they are.
		if err := writeCurvesCSV(filepath.Join(*outDir, "curves.csv"), sum.Curves); err != nil {
			return err
		}
		if err := plotCurves(filepath.Join(*outDir, "curves.png"), sum.Curves); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(*outDir, "train.json"), sum); err != nil {
			return err
		}
	}
	if len(rl) > 0 {
		fmt.Fprintf(stdout, "trained %v in %.0f s: best checkpoints in %s (best episode per layer %v, validation reward %v); curves in curves.csv and curves.png\n",
			sum.Layers, sum.WallSeconds, *outDir, sum.Best, roundMap(sum.BestReward))
	} else {
		fmt.Fprintf(stdout, "trained the LSTM in %.0f s: %s\n", sum.WallSeconds, filepath.Join(*outDir, agents.CheckpointFile(schemas.Operational)))
	}
	return nil
}

func epsIf(l schemas.Layer, eps float64) float64 {
	if l == schemas.Strategic {
		return eps
	}
	return 0
}

func roundMap(m map[string]float64) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = f4(v)
	}
	return out
}

// trainLSTMPart exports the operational sequences of the training and
// validation days (unless given) and trains the LSTM into outDir.
func trainLSTMPart(ctx context.Context, stdout, stderr io.Writer, conf *roleConfig, cf commonFlags, sf sourceFlags, outDir string, seed int64,
	trainDays, validDays, data, valid string, sample, epochs int, loss string) error {
	common := []string{"--trace-seed", strconv.FormatInt(sf.seed, 10), "--log-level", cf.logLevel}
	if sf.trace != "" {
		common = append(common, "--trace", sf.trace)
	} else {
		common = append(common, "--synth-days", strconv.Itoa(sf.synthDays))
	}
	if sf.apps > 0 {
		common = append(common, "--apps", strconv.Itoa(sf.apps))
	}
	if data == "" {
		data = filepath.Join(outDir, "sequences-train.parquet")
		fmt.Fprintf(stderr, "lstm: exporting operational sequences of days %s to %s\n", trainDays, data)
		if err := exportSequences(ctx, append([]string{"--out", data, "--days", trainDays, "--sample", strconv.Itoa(sample)}, common...), stderr, stderr, conf); err != nil {
			return fmt.Errorf("exporting the LSTM's training sequences: %w", err)
		}
	}
	if valid == "" {
		valid = filepath.Join(outDir, "sequences-valid.parquet")
		fmt.Fprintf(stderr, "lstm: exporting operational sequences of days %s to %s\n", validDays, valid)
		if err := exportSequences(ctx, append([]string{"--out", valid, "--days", validDays, "--sample", strconv.Itoa(max(sample/4, 1))}, common...), stderr, stderr, conf); err != nil {
			return fmt.Errorf("exporting the LSTM's validation sequences: %w", err)
		}
	}
	args := []string{"--data", data, "--valid", valid, "--out", outDir, "--seed", strconv.FormatInt(seed, 10), "--loss", loss}
	if epochs > 0 {
		args = append(args, "--epochs", strconv.Itoa(epochs))
	}
	return trainLSTMMain(ctx, args, stdout, stderr)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		return fmt.Errorf("copying %s to %s: %w", from, to, err)
	}
	return nil
}

func writeCurvesCSV(path string, rows []trainCurve) error {
	recs := [][]string{{"episode", "phase", "layer", "mean_reward", "mean_regret", "rewards", "version", "epsilon", "best", "seconds"}}
	for _, r := range rows {
		eps := ""
		if r.Layer == string(schemas.Strategic) {
			eps = strconv.FormatFloat(r.Epsilon, 'f', 4, 64)
		}
		recs = append(recs, []string{strconv.Itoa(r.Episode), r.Phase, r.Layer, f6(r.MeanReward), f6(r.MeanRegret),
			strconv.FormatInt(r.Rewards, 10), r.Version, eps, strconv.FormatBool(r.Best), fmt.Sprintf("%.1f", r.Seconds)})
	}
	return writeCSVFile(path, recs)
}

func writeUpdatesCSV(path string, rows []trainUpdate) error {
	recs := [][]string{{"episode", "layer", "version", "in_force", "rollout_mean_reward", "policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "dqn_loss"}}
	for _, u := range rows {
		recs = append(recs, []string{strconv.Itoa(u.Episode), u.Layer, u.Version, strconv.FormatInt(u.InForce, 10),
			f6(u.RolloutReward), f6(u.PolicyLoss), f6(u.ValueLoss), f6(u.Entropy), f6(u.ApproxKL), f6(u.ExplainedVariance), f6(u.DQNLoss)})
	}
	return writeCSVFile(path, recs)
}

func f6(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }

func writeCSVFile(path string, recs [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

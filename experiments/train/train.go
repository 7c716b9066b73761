package train

import (
	"context"
	"crypto/sha256"
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
	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/experiments"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Config configures `strata train`.
type Config struct {
	// Common is where Kafka and NATS are (embedded when empty), the log
	// level, the metrics address and the trace epoch.
	pipeline.Common
	Source pipeline.Source
	// Layers are the layers to train, comma-separated: strategic (DQN),
	// tactical (PPO), operational (LSTM, supervised).
	Layers string
	// Patience, when positive, ends the training early once no layer's
	// validation reward has improved for this many episodes (the seed's
	// protocol: fewer episodes only where the validation curve has been
	// flat for the last 10).
	Patience int
	// Episodes is the number of closed-loop episodes over the training
	// days (DQN and PPO).
	Episodes int
	// Seed seeds the networks, the exploration and the LSTM's sample
	// order.
	Seed int64
	// Out is the directory of the best checkpoints, the curves and
	// train.json (required).
	Out string
	// TrainDays and ValidDays are 1-based inclusive; the day before the
	// validation days is replayed unscored as warm-up.
	TrainDays, ValidDays string
	// Strategic and Tactical decide the layers not trained; Operational
	// decides the operational layer during the episodes and their
	// validation.
	Strategic, Tactical, Operational string
	// Rollout is PPO's rollout size.
	Rollout int
	// DQNWarmUp and DQNUpdates: transitions before the first gradient
	// step (and states the scaler is fitted on), and gradient steps per
	// transition after.
	DQNWarmUp  int
	DQNUpdates float64
	// DQNGamma is the DQN's discount factor (dqn.Config.Gamma; the seed's
	// 0.99).
	DQNGamma float64
	// DQNRewardClip bounds the rewards the DQN learns from
	// (dqn.Config.RewardClip; the seed's 100).
	DQNRewardClip float64
	// DQNLoss is the DQN's regression loss (nn.QConfig.Loss): nn.LossHuber,
	// the seed's (δ 1), or nn.LossMSE, whose minimiser is the mean target
	// rather than one that weighs rare large errors linearly.
	DQNLoss string
	// DQNMask is the DQN's action mask (dqn.Config.Mask): dqn.MaskNone,
	// the seed's, or dqn.MaskSLORisk; the checkpoints record it and serve
	// with it.
	DQNMask string
	// PPOMask is the PPO's state-dependent action mask (ppo.Config.Mask):
	// ppo.MaskNone, the seed's, or ppo.MaskMemory (placement-v2 only).
	PPOMask string
	// Placement is the placement before any decision.
	Placement string
	// Lateness is how far out of start order the trace may be.
	Lateness time.Duration
	// LSTMData and LSTMValid are the LSTM's sequences files (default:
	// exported into Out); LSTMSample the training export's sample size and
	// LSTMValidSample the validation export's; LSTMEpochs its epochs at
	// most; Loss its training loss.
	LSTMData, LSTMValid         string
	LSTMSample, LSTMValidSample int
	LSTMEpochs                  int
	Loss                        string
	// LSTMHead is what the LSTM's outputs mean (lstm.HeadDirect or
	// lstm.HeadResidual); LSTMPatience its early stop's patience.
	LSTMHead     string
	LSTMPatience int
	// LSTMClipNorm bounds the LSTM's gradient norm (0: none);
	// LSTMSelect is its checkpoint selection.
	LSTMClipNorm float64
	LSTMSelect   string
	// LSTMCurve, when set, is a comma-separated list of training-sample
	// sizes: instead of one LSTM, one is trained per size on nested
	// seeded samples of one export at the largest size, and the learning
	// curve is written (lstm-curve.csv, lstm-curve.png). LSTMFlat is the
	// relative improvement of the best validation loss per doubling of
	// the sample below which the curve counts as flat.
	LSTMCurve string
	LSTMFlat  float64
	// TacticalFeatures is the PPO's state feature set (--tactical-features).
	TacticalFeatures string
	// StrategicFeatures is the DQN's state feature set
	// (--strategic-features).
	StrategicFeatures string
	// SwitchPenalty is the learner's training-time switching cost
	// (learner.Config.SwitchPenalty).
	SwitchPenalty float64
	// Counterfactual is the PPO's all-action coefficient
	// (nn.PPOConfig.CounterfactualCoef; 0: the seed's PPO).
	Counterfactual float64
	// DQNCounterfactual adds the DQN counterfactual transitions for the
	// providers not taken (learner.Config.DQNCounterfactual).
	DQNCounterfactual bool
	// DQNSwitchPenalty is the DQN's switching shaping
	// (learner.Config.DQNSwitchPenalty).
	DQNSwitchPenalty float64
	// Ablate lists feature groups of the tactical set PPO never sees
	// (ppo.Config.Ablate; comma-separated), for leave-one-out studies.
	Ablate string
	// DQNAblate lists feature groups of the strategic set the DQN never
	// sees (dqn.Config.Ablate; comma-separated): metrics, app-id, context,
	// placement.
	DQNAblate string
	// Models is the directory of trained checkpoints that the layers not
	// trained serve from when their policy is a learned one (Strategic
	// dqn, Tactical ppo, Operational lstm): frozen layers beside the ones
	// that learn. Their checkpoints are copied into Out and into each
	// episode's directory, so those serve the whole hierarchy.
	Models string
	// Resume continues the training in this directory (its Out) from its
	// last finished episode (ResumeDir), with the same flags; Episodes may
	// grow.
	Resume string
	// Progress prints each episode's results and PPO's updates on stderr.
	Progress bool
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// Record says where the episodes' runs are recorded: a runs row and
	// latency histograms for each training run; those and the rewards and
	// strategic and tactical decisions of the validation days for each
	// validation run.
	Record pipeline.RecordFlags
	// RunJSON is the command's flags as JSON, for the runs rows.
	RunJSON string
	// Device is where the networks train: cpu or cuda
	// (pipeline.ParseDevice).
	Device string
}

// DefaultConfig is `strata train`'s defaults.
func DefaultConfig() Config {
	return Config{Common: pipeline.DefaultCommon(), Source: pipeline.Source{SynthDays: 14, Seed: 1, SeedFlag: "trace-seed"},
		Layers: "strategic,tactical,operational", Episodes: 3, Seed: 1, TrainDays: "1-10", ValidDays: "11-12",
		Strategic: pipeline.DefaultStrategicPolicy, Tactical: pipeline.DefaultTacticalPolicy, Operational: "none",
		Rollout: ppo.DefaultConfig().Rollout, DQNWarmUp: 256, DQNUpdates: 8, DQNGamma: dqn.DefaultConfig().Gamma, DQNRewardClip: dqn.DefaultConfig().RewardClip, DQNLoss: dqn.DefaultConfig().Net.Loss, DQNMask: dqn.MaskNone, PPOMask: ppo.MaskNone, Placement: pipeline.DefaultPlacement, Lateness: pipeline.DefaultLateness,
		LSTMSample: DefaultLSTMSample, LSTMValidSample: DefaultLSTMValidSample, LSTMEpochs: lstm.DefaultConfig().MaxEpochs, Loss: lstm.LossAsymmetric, LSTMHead: lstm.HeadDirect, LSTMSelect: lstm.SelectLoss, LSTMPatience: lstm.DefaultConfig().EarlyStopPatience,
		LSTMFlat: 0.02, Progress: true, TacticalFeatures: pipeline.DefaultTacticalFeatures,
		StrategicFeatures: pipeline.DefaultStrategicFeatures, Record: pipeline.DefaultRecordFlags()}
}

// RegisterFlags registers the training's flags, each name preceded by
// prefix; their defaults are c's values.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	c.Common.RegisterFlags(fs, prefix)
	c.Source.RegisterFlags(fs, prefix)
	fs.StringVar(&c.Layers, prefix+"layers", c.Layers, "layers to train: strategic (DQN), tactical (PPO), operational (LSTM, supervised)")
	fs.IntVar(&c.Episodes, prefix+"episodes", c.Episodes, "closed-loop episodes over the training days (DQN and PPO)")
	fs.IntVar(&c.Patience, prefix+"patience", c.Patience, "end the training early once no layer's validation reward has improved for this many episodes (0 = run every episode; the seed's protocol: --episodes 30 --patience 10)")
	fs.Int64Var(&c.Seed, prefix+"seed", c.Seed, "seed of the networks, the exploration and the LSTM's sample order")
	fs.StringVar(&c.Resume, prefix+"resume", c.Resume, "continue the training in `DIR` (its --out) from its last finished episode, with the same flags; --episodes may grow")
	fs.StringVar(&c.Out, prefix+"out", c.Out, "write the best checkpoints (dqn.ckpt, ppo.ckpt, lstm.ckpt), curves and train.json to `DIR` (required)")
	fs.StringVar(&c.TrainDays, prefix+"train-days", c.TrainDays, "training days, 1-based inclusive")
	fs.StringVar(&c.ValidDays, prefix+"valid-days", c.ValidDays, "validation days, 1-based inclusive (the day before is replayed unscored as warm-up)")
	fs.StringVar(&c.Strategic, prefix+"strategic", c.Strategic, "strategic policy when the strategic layer is not trained")
	fs.StringVar(&c.Tactical, prefix+"tactical", c.Tactical, "tactical policy when the tactical layer is not trained")
	fs.StringVar(&c.Operational, prefix+"operational", c.Operational, "operational policy during the DQN/PPO episodes and their validation (none = no pre-warming, as reactive; moving-average is ~4× slower)")
	fs.StringVar(&c.Models, prefix+"models", c.Models, "`DIR` of trained checkpoints that the layers not trained serve, frozen, during the episodes and their validation: --strategic dqn (dqn.ckpt), --tactical ppo (ppo.ckpt), --operational lstm (lstm.ckpt); copied into --out and each episode's directory")
	pipeline.RegisterTacticalFeatures(fs, prefix, &c.TacticalFeatures, "PPO's state feature set")
	pipeline.RegisterStrategicFeatures(fs, prefix, &c.StrategicFeatures, "the DQN's state feature set")
	fs.Float64Var(&c.SwitchPenalty, prefix+"switch-penalty", c.SwitchPenalty, "training-time shaping: lower the reward PPO learns from by this much when an action moves a function off the metro and tier it ran in (needs --tactical-features placement-v1 or placement-v2; the tables' rewards are unchanged)")
	fs.StringVar(&c.Ablate, prefix+"ablate", c.Ablate, "PPO: feature `GROUPS` of the tactical set the network never sees (comma-separated; their inputs are 0 in training and serving), for ablations — seed, placement, descriptors, and for placement-v2 memory-peak, users-hour, hour (docs/agents.md)")
	fs.Float64Var(&c.Counterfactual, prefix+"counterfactual", c.Counterfactual, "PPO: weight of the all-action term, which credits every placement with the reward the twin scored for it in hindsight (the transitions' action rewards; 0 = the seed's PPO, learning from the taken action only)")
	fs.BoolVar(&c.DQNCounterfactual, prefix+"dqn-counterfactual", c.DQNCounterfactual, "DQN: beside each strategic transition, add one per other provider with the reward the twin scored for it in hindsight (the transitions' action rewards); off = the seed's DQN")
	fs.StringVar(&c.DQNAblate, prefix+"dqn-ablate", c.DQNAblate, "DQN: feature `GROUPS` of the strategic set the network never sees (comma-separated; their inputs are 0 in training and serving, the checkpoint records them) — metrics, app-id, context, and for placement-v1 placement (docs/agents.md)")
	fs.Float64Var(&c.DQNSwitchPenalty, prefix+"dqn-switch-penalty", c.DQNSwitchPenalty, "training-time shaping: lower the reward the DQN learns from by this much when an action moves an app off the provider it ran on (needs --strategic-features placement-v1; the tables' rewards are unchanged)")
	fs.IntVar(&c.Rollout, prefix+"rollout", c.Rollout, "PPO rollout size (transitions per update)")
	fs.IntVar(&c.DQNWarmUp, prefix+"dqn-warmup", c.DQNWarmUp, "DQN: transitions before the first gradient step, and states the input scaler is fitted on")
	fs.Float64Var(&c.DQNUpdates, prefix+"dqn-updates", c.DQNUpdates, "DQN: gradient steps per transition once warmed up")
	fs.Float64Var(&c.DQNRewardClip, prefix+"dqn-reward-clip", c.DQNRewardClip, "DQN: clip the rewards it learns from to [-C, C] (the seed's 100, the value bound; 0 = no clip; training only)")
	fs.StringVar(&c.DQNMask, prefix+"dqn-mask", c.DQNMask, "DQN: action `MASK` applied whenever it acts, in training and in serving — none (the seed's) or slo-risk (rules out, per app-day, a provider whose expected SLA penalty no cost, latency or carbon gain can pay for; docs/agents.md)")
	fs.StringVar(&c.PPOMask, prefix+"ppo-mask", c.PPOMask, "PPO: state-dependent action `MASK` applied whenever it acts, in training and in serving — none (the seed's) or memory (rules out every tier below the memory the function has been seen using; needs --tactical-features placement-v2; docs/agents.md)")
	fs.StringVar(&c.DQNLoss, prefix+"dqn-loss", c.DQNLoss, "DQN: regression loss on Q(s, a) — huber (the seed's, δ 1) or mse (estimates the mean target; rare large penalties weigh quadratically; docs/agents.md)")
	fs.Float64Var(&c.DQNGamma, prefix+"dqn-gamma", c.DQNGamma, "DQN: discount factor (the seed's 0.99; 0 learns each day's reward alone, docs/agents.md)")
	fs.StringVar(&c.Placement, prefix+"default-placement", c.Placement, "placement before any decision: provider/metro/memory MB")
	fs.DurationVar(&c.Lateness, prefix+"allowed-lateness", c.Lateness, "how far out of start order the trace may be")
	fs.StringVar(&c.LSTMData, prefix+"lstm-data", c.LSTMData, "LSTM training sequences `FILE`.parquet (default: exported from the training days into --out)")
	fs.StringVar(&c.LSTMValid, prefix+"lstm-valid", c.LSTMValid, "LSTM validation sequences `FILE`.parquet (default: exported from the validation days into --out)")
	fs.IntVar(&c.LSTMSample, prefix+"lstm-sample", c.LSTMSample, "seeded sample size of the LSTM's training export (the size the learning curve in the README justifies)")
	fs.IntVar(&c.LSTMValidSample, prefix+"lstm-valid-sample", c.LSTMValidSample, "seeded sample size of the LSTM's validation export")
	fs.IntVar(&c.LSTMEpochs, prefix+"lstm-epochs", c.LSTMEpochs, "LSTM epochs at most (early stopping after 5 epochs without a better validation loss may end sooner)")
	fs.StringVar(&c.LSTMCurve, prefix+"lstm-curve", c.LSTMCurve, "learning curve: train one LSTM per training-sample size in `SIZES` (comma-separated, e.g. 12500,25000,50000,100000,200000) on nested seeded samples of one export at the largest size, validated on the same validation export; writes lstm-curve.csv and lstm-curve.png to --out (needs --layers operational alone)")
	fs.Float64Var(&c.LSTMFlat, prefix+"lstm-flat", c.LSTMFlat, "the learning curve is flat from the smallest size after which every doubling of the sample improves the best validation loss by less than this fraction")
	fs.StringVar(&c.Loss, prefix+"loss", c.Loss, "LSTM training loss: asymmetric or symmetric")
	fs.StringVar(&c.LSTMSelect, prefix+"lstm-select", c.LSTMSelect, "LSTM: which epoch is kept: loss (the seed's) or rate-vs-ma (furthest ahead of the 5-step moving average on the validation request rate's RMSE and MAE)")
	fs.Float64Var(&c.LSTMClipNorm, prefix+"lstm-clip-norm", c.LSTMClipNorm, "LSTM: bound the gradient's global L2 norm per step (0: no clip, the seed's)")
	fs.IntVar(&c.LSTMPatience, prefix+"lstm-patience", c.LSTMPatience, "LSTM: stop after this many epochs without a better validation loss (the seed's 5)")
	fs.StringVar(&c.LSTMHead, prefix+"lstm-head", c.LSTMHead, "what the LSTM's outputs are: direct (the seed's: the next step) or ma5-residual (the next step's difference from the 5-step moving average, added back when predicting)")
	pipeline.RegisterDeviceFlag(fs, prefix, &c.Device)
	fs.BoolVar(&c.Progress, prefix+"progress", c.Progress, "print each episode's results and PPO's updates on stderr")
	c.Record.RegisterFlags(fs, prefix)
}

// Validate reports a missing --out, layers or days that do not parse,
// validation days not after the training days and fewer than one
// episode.
func (c *Config) Validate() error {
	if c.Resume != "" {
		if c.Out != "" && filepath.Clean(c.Out) != filepath.Clean(c.Resume) {
			return fmt.Errorf("strata train: --resume %s continues in its own directory; --out %s names another", c.Resume, c.Out)
		}
		c.Out = c.Resume
	}
	if c.Out == "" {
		return errors.New("strata train: --out DIR is required")
	}
	if _, err := pipeline.ParseLayers(c.Layers); err != nil {
		return fmt.Errorf("strata train --layers: %w", err)
	}
	tFirst, tLast, err := experiments.ParseDays(c.TrainDays)
	if err != nil {
		return fmt.Errorf("strata train --train-days: %w", err)
	}
	vFirst, vLast, err := experiments.ParseDays(c.ValidDays)
	if err != nil {
		return fmt.Errorf("strata train --valid-days: %w", err)
	}
	if vFirst <= tLast {
		return fmt.Errorf("strata train: validation days %d–%d must come after the training days %d–%d", vFirst, vLast, tFirst, tLast)
	}
	if c.Episodes < 1 {
		return errors.New("strata train: --episodes must be at least 1")
	}
	if c.Patience < 0 {
		return errors.New("strata train: --patience must be 0 (off) or positive")
	}
	if !(c.DQNGamma >= 0 && c.DQNGamma <= 1) {
		return fmt.Errorf("strata train --dqn-gamma %v: want a discount factor in [0, 1]", c.DQNGamma)
	}
	mask, err := dqn.ParseMask(c.DQNMask)
	if err != nil {
		return fmt.Errorf("strata train --dqn-mask: %w", err)
	}
	c.DQNMask = mask // "" is none, in the fingerprint too
	if c.PPOMask, err = ppo.ParseMask(c.PPOMask); err != nil {
		return fmt.Errorf("strata train --ppo-mask: %w", err)
	}
	if c.DQNLoss != nn.LossHuber && c.DQNLoss != nn.LossMSE {
		return fmt.Errorf("strata train --dqn-loss %q: want %s or %s", c.DQNLoss, nn.LossHuber, nn.LossMSE)
	}
	tf, err := schemas.ParseFeatureSet(schemas.Tactical, c.TacticalFeatures)
	if err != nil {
		return fmt.Errorf("strata train --tactical-features: %w", err)
	}
	sf, err := schemas.ParseFeatureSet(schemas.Strategic, c.StrategicFeatures)
	if err != nil {
		return fmt.Errorf("strata train --strategic-features: %w", err)
	}
	if _, err := schemas.AblatedIndices(tf, c.ablate()); err != nil {
		return fmt.Errorf("strata train --ablate: %w", err)
	}
	if err := ppo.CheckMask(c.PPOMask, tf); err != nil {
		return fmt.Errorf("strata train --ppo-mask: %w", err)
	}
	if _, err := schemas.AblatedIndices(sf, pipeline.SplitList(c.DQNAblate)); err != nil {
		return fmt.Errorf("strata train --dqn-ablate: %w", err)
	}
	if c.LSTMSample < 1 || c.LSTMValidSample < 1 {
		return errors.New("strata train: --lstm-sample and --lstm-valid-sample must be positive")
	}
	if c.LSTMCurve != "" {
		if ls, _ := pipeline.ParseLayers(c.Layers); len(ls) != 1 || ls[0] != schemas.Operational {
			return fmt.Errorf("strata train --lstm-curve: needs --layers %s alone, not %q", schemas.Operational, c.Layers)
		}
		if _, err := parseSizes(c.LSTMCurve); err != nil {
			return fmt.Errorf("strata train --lstm-curve: %w", err)
		}
		if !(c.LSTMFlat > 0 && c.LSTMFlat < 1) {
			return fmt.Errorf("strata train --lstm-flat %v: want a fraction in (0, 1)", c.LSTMFlat)
		}
	}
	if _, err := pipeline.ParseDevice(c.Device); err != nil {
		return fmt.Errorf("strata train --device: %w", err)
	}
	return c.validateFrozen()
}

// frozen returns the layers that serve a learned policy without being
// trained (their checkpoints come from Models), each with its policy name.
func (c *Config) frozen() map[schemas.Layer]string {
	layers, _ := pipeline.ParseLayers(c.Layers)
	out := map[schemas.Layer]string{}
	for l, name := range map[schemas.Layer]string{schemas.Strategic: c.Strategic, schemas.Tactical: c.Tactical, schemas.Operational: c.Operational} {
		if l != schemas.Operational && slices.Contains(layers, l) {
			continue // trained: its policy name is not used
		}
		if agents.IsLearned(name, l) {
			out[l] = name
		}
	}
	return out
}

// validateFrozen checks that a learned policy of a layer not trained has
// its checkpoint in Models, and that Models serves at least one.
func (c *Config) validateFrozen() error {
	fr := c.frozen()
	if c.Models == "" {
		for _, l := range schemas.Layers {
			if name, ok := fr[l]; ok {
				return fmt.Errorf("strata train: the %s policy %q serves a trained checkpoint: give its directory with --models DIR", l, name)
			}
		}
		return nil
	}
	if len(fr) == 0 {
		return fmt.Errorf("strata train --models %s: no layer that is not trained serves a learned policy (--strategic %s, --tactical %s or --operational %s)",
			c.Models, agents.LearnedName(schemas.Strategic), agents.LearnedName(schemas.Tactical), agents.LearnedName(schemas.Operational))
	}
	for _, l := range schemas.Layers {
		if _, ok := fr[l]; !ok {
			continue
		}
		path := filepath.Join(c.Models, agents.CheckpointFile(l))
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("strata train --models %s: the frozen %s layer's checkpoint: %w", c.Models, l, err)
		}
	}
	return nil
}

// frozenModels describes the frozen layers' checkpoints for train.json:
// layer → policy, directory and SHA-256 of the checkpoint (nil when none).
func (c *Config) frozenModels() (map[string]frozenModel, error) {
	fr := c.frozen()
	if c.Models == "" || len(fr) == 0 {
		return nil, nil
	}
	out := map[string]frozenModel{}
	for l, name := range fr {
		path := filepath.Join(c.Models, agents.CheckpointFile(l))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("strata train --models: reading the frozen %s checkpoint: %w", l, err)
		}
		out[string(l)] = frozenModel{Policy: name, From: path, SHA256: fmt.Sprintf("%x", sha256.Sum256(data))}
	}
	return out, nil
}

// copyFrozen copies the frozen layers' checkpoints from Models into dir
// (nothing when dir is Models).
func (c *Config) copyFrozen(dir string) error {
	if c.Models == "" || filepath.Clean(dir) == filepath.Clean(c.Models) {
		return nil
	}
	for l := range c.frozen() {
		f := agents.CheckpointFile(l)
		if err := copyFile(filepath.Join(c.Models, f), filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("copying the frozen %s checkpoint: %w", l, err)
		}
	}
	return nil
}

// Train runs the training: closed-loop episodes over the training days
// through the real pipeline with an in-process learner (DQN and PPO),
// validation of each episode's greedy policies on the validation days, the
// best checkpoint per layer kept in c.Out, learning curves (CSV and PNG),
// and the LSTM's supervised training from exported sequences. It prints
// what it trained to stdout and its progress to stderr.
func Train(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	layers, _ := pipeline.ParseLayers(c.Layers)
	tFirst, tLast, _ := experiments.ParseDays(c.TrainDays)
	vFirst, vLast, _ := experiments.ParseDays(c.ValidDays)
	pw := stderr
	if !c.Progress {
		pw = io.Discard
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", c.Out, err)
	}
	frozen, err := c.frozenModels()
	if err != nil {
		return err
	}
	if err := c.copyFrozen(c.Out); err != nil {
		return err
	}
	logger, epoch, pl, err := c.LoopBasics(stderr, c.Placement)
	if err != nil {
		return err
	}
	// The store is opened with the first episode (an LSTM-only training
	// records nothing).
	var rec *pipeline.Recorder
	defer func() {
		if rec != nil {
			_ = rec.Close()
		}
	}()
	// record returns how an episode's run is recorded (nil: not at all).
	record := func(kind string, episode int, rowOnly bool) (*experiments.RunRecord, error) {
		if rec == nil {
			var err error
			if rec, err = c.Record.Open(ctx, logger); err != nil || rec == nil {
				return nil, err
			}
		}
		return &experiments.RunRecord{Rec: rec, RowOnly: rowOnly, Row: &stratapb.Run{Kind: kind, Label: fmt.Sprintf("seed %d episode %d", c.Seed, episode),
			Models: c.Out, Episode: int32(episode), ConfigJson: c.RunJSON}}, nil
	}
	t0 := time.Now()
	sum := summary{Seed: c.Seed, Episodes: c.Episodes, TrainDays: c.TrainDays, ValidDays: c.ValidDays, Operational: c.Operational,
		Best: map[string]int{}, BestReward: map[string]float64{}, Frozen: frozen}
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
		lcfg := learner.DefaultConfig(uint64(c.Seed), rl...)
		tf, err := schemas.ParseFeatureSet(schemas.Tactical, c.TacticalFeatures)
		if err != nil {
			return fmt.Errorf("strata train --tactical-features: %w", err)
		}
		lcfg.PPO = lcfg.PPO.WithFeatures(tf)
		sf, err := schemas.ParseFeatureSet(schemas.Strategic, c.StrategicFeatures)
		if err != nil {
			return fmt.Errorf("strata train --strategic-features: %w", err)
		}
		lcfg.DQN = lcfg.DQN.WithFeatures(sf)
		lcfg.PPO.Rollout = c.Rollout
		lcfg.SwitchPenalty = c.SwitchPenalty
		lcfg.PPO.Net.CounterfactualCoef = c.Counterfactual
		lcfg.DQNCounterfactual = c.DQNCounterfactual
		lcfg.DQNSwitchPenalty = c.DQNSwitchPenalty
		lcfg.PPO.Ablate = c.ablate()
		if c.PPOMask != ppo.MaskNone {
			lcfg.PPO.Mask = c.PPOMask // unmasked checkpoints keep the field empty, as before it existed
		}
		lcfg.DQN.Ablate = pipeline.SplitList(c.DQNAblate)
		backend, err := pipeline.ParseDevice(c.Device)
		if err != nil {
			return fmt.Errorf("strata train --device: %w", err)
		}
		lcfg.PPO.Backend, lcfg.DQN.Backend = backend, backend
		// A 10-day episode yields only ~500 strategic transitions (one per
		// active app and day): the algorithm's defaults (1,000 warm-up, one
		// step per transition) would leave the DQN untrained for two
		// episodes and with ~500 steps per episode after (docs/learner.md).
		lcfg.DQN.WarmUp, lcfg.DQN.ScalerFit, lcfg.DQN.UpdatesPerTransition = c.DQNWarmUp, c.DQNWarmUp, c.DQNUpdates
		lcfg.DQN.Gamma, lcfg.DQN.RewardClip, lcfg.DQN.Net.Loss = c.DQNGamma, c.DQNRewardClip, c.DQNLoss
		if c.DQNMask != dqn.MaskNone {
			lcfg.DQN.Mask = c.DQNMask // unmasked checkpoints keep the field empty, as before it existed
		}
		lcfg.Availability = ppo.CatalogAvailability(cat)
		reg := pipeline.NewRegistry()
		lrn, err := learner.New(lcfg, logger.With("role", "learner"), reg)
		if err != nil {
			return err
		}
		defer lrn.Close()
		if err := pipeline.ServeMetrics(ctx, c.Metrics, reg); err != nil {
			return err
		}
		var updates []update
		episode := 0
		lrn.OnUpdate = func(e learner.UpdateEvent) {
			u := update{Episode: episode + 1, Layer: string(e.Layer), Version: e.Version, InForce: e.InForce, DQNLoss: e.Loss}
			if e.PPO != nil {
				u.RolloutReward, u.PolicyLoss, u.ValueLoss, u.Entropy = e.PPO.MeanReward, e.PPO.PolicyLoss, e.PPO.ValueLoss, e.PPO.Entropy
				u.ApproxKL, u.ExplainedVariance = e.PPO.ApproxKL, e.PPO.ExplainedVariance
				fmt.Fprintf(pw, "  episode %d: ppo %s in force from hour %d (rollout mean reward %.4f, policy loss %.4f, value loss %.4f, entropy %.3f, KL %.4f)\n",
					episode+1, e.Version, e.InForce, u.RolloutReward, u.PolicyLoss, u.ValueLoss, u.Entropy, u.ApproxKL)
			}
			updates = append(updates, u)
		}
		best := map[schemas.Layer]float64{}
		var before float64 // the wall time of the runs this one resumes
		if c.Resume != "" {
			p, err := loadProgress(&c, lrn)
			if err != nil {
				return err
			}
			episode, before, updates = p.Episodes, p.Seconds, p.Updates
			sum.Curves, sum.Best, sum.BestReward = p.Summary.Curves, p.Summary.Best, p.Summary.BestReward
			for l, r := range p.Best {
				best[schemas.Layer(l)] = r
			}
			fmt.Fprintf(pw, "resuming %s after episode %d of %d\n", c.Out, episode, c.Episodes)
		}
		t0 = t0.Add(-time.Duration(before * float64(time.Second)))
		for ; episode < c.Episodes; episode++ {
			if c.Patience > 0 && episode > 0 && flatFor(sum.Best, episode) >= c.Patience {
				sum.StoppedAfter = episode
				fmt.Fprintf(pw, "stopping after episode %d of %d: no validation reward has improved for %d episodes (--patience %d)\n",
					episode, c.Episodes, flatFor(sum.Best, episode), c.Patience)
				break
			}
			te := time.Now()
			lo := pipeline.LoopOptions{Strategic: c.Strategic, Tactical: c.Tactical, Operational: c.Operational, Placement: pl, PolicySeed: c.Seed,
				Source: &c.Source, Learn: &pipeline.Learn{Learner: lrn, Episode: episode}, Models: c.Models, NewModel: c.NewModel}
			o := experiments.FullSpeed(c.Config, epoch, c.Lateness.Microseconds(), logger, fmt.Sprintf("train-s%d-e%d-%d", c.Seed, episode+1, time.Now().UnixNano()))
			trec, err := record("train", episode+1, true)
			if err != nil {
				return err
			}
			res, _, _, err := experiments.RunWindow(ctx, lo, o, int64(tFirst-1)*grid.StrategicTickUS, int64(tLast)*grid.StrategicTickUS, 0, trec)
			if err != nil {
				return fmt.Errorf("training episode %d: %w", episode+1, err)
			}
			epDir := filepath.Join(c.Out, "episodes", strconv.Itoa(episode+1))
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
			if err := c.copyFrozen(epDir); err != nil { // validation serves them from epDir
				return err
			}
			eps := lcfg.DQN.Epsilon(episode)
			for _, l := range rl {
				ls := res.Twin.Layers[string(l)]
				sum.Curves = append(sum.Curves, curve{Episode: episode + 1, Phase: "train", Layer: string(l), MeanReward: ls.MeanReward,
					MeanRegret: ls.MeanRegret, Rewards: ls.Rewards, Version: versions[l], Epsilon: epsIf(l, eps), Seconds: time.Since(te).Seconds()})
			}
			// Validation: the episode's greedy policies on the validation
			// days, the day before them replayed unscored.
			tv := time.Now()
			vlo := pipeline.LoopOptions{Strategic: c.Strategic, Tactical: c.Tactical, Operational: c.Operational, Placement: pl, PolicySeed: c.Seed,
				Source: &c.Source, Models: epDir, NewModel: c.NewModel}
			for _, l := range rl {
				switch l {
				case schemas.Strategic:
					vlo.Strategic = agents.LearnedName(l)
				case schemas.Tactical:
					vlo.Tactical = agents.LearnedName(l)
				}
			}
			vo := experiments.FullSpeed(c.Config, epoch, c.Lateness.Microseconds(), logger, fmt.Sprintf("valid-s%d-e%d-%d", c.Seed, episode+1, time.Now().UnixNano()))
			vrec, err := record("validation", episode+1, false)
			if err != nil {
				return err
			}
			vres, _, _, err := experiments.RunWindow(ctx, vlo, vo, int64(vFirst-2)*grid.StrategicTickUS, int64(vLast)*grid.StrategicTickUS, grid.TicksPerDay, vrec)
			if err != nil {
				return fmt.Errorf("validating episode %d: %w", episode+1, err)
			}
			line := fmt.Sprintf("episode %d/%d (%.0f s train, %.0f s validation):", episode+1, c.Episodes, tv.Sub(te).Seconds(), time.Since(tv).Seconds())
			for _, l := range rl {
				ls := vres.Twin.Layers[string(l)]
				cv := curve{Episode: episode + 1, Phase: "validation", Layer: string(l), MeanReward: ls.MeanReward, MeanRegret: ls.MeanRegret,
					Rewards: ls.Rewards, Version: versions[l], Epsilon: epsIf(l, eps), Seconds: time.Since(tv).Seconds()}
				if b, ok := best[l]; !ok || ls.MeanReward > b {
					best[l], cv.Best = ls.MeanReward, true
					sum.Best[string(l)], sum.BestReward[string(l)] = episode+1, ls.MeanReward
					if err := copyFile(filepath.Join(epDir, agents.CheckpointFile(l)), filepath.Join(c.Out, agents.CheckpointFile(l))); err != nil {
						return err
					}
				}
				sum.Curves = append(sum.Curves, cv)
				trainR := res.Twin.Layers[string(l)].MeanReward
				line += fmt.Sprintf(" %s %s train R %.4f, validation R %.4f (regret %.4f)%s;", l, versions[l], trainR, cv.MeanReward, cv.MeanRegret, map[bool]string{true: " best", false: ""}[cv.Best])
			}
			fmt.Fprintln(pw, line)
			bestByName := map[string]float64{}
			for l, r := range best {
				bestByName[string(l)] = r
			}
			if err := saveProgress(c.Out, progress{Fingerprint: c.fingerprint(), Episodes: episode + 1, Summary: sum, Updates: updates,
				Best: bestByName, Seconds: time.Since(t0).Seconds()}, lrn); err != nil {
				return err
			}
		}
		if err := writeUpdatesCSV(filepath.Join(c.Out, "updates.csv"), updates); err != nil {
			return err
		}
		sum.Learner = lrn.Stats()
	}
	if c.LSTMCurve != "" {
		return c.lstmCurve(ctx, stdout, stderr)
	}
	if slices.Contains(layers, schemas.Operational) {
		if err := c.trainLSTM(ctx, stdout, stderr); err != nil {
			return err
		}
	}
	sum.WallSeconds = time.Since(t0).Seconds()
	if len(rl) > 0 {
		// The LSTM alone writes its own lstm_curve.csv; DQN and PPO's
		// curves and summary are left as they are.
		if err := writeCurvesCSV(filepath.Join(c.Out, "curves.csv"), sum.Curves); err != nil {
			return err
		}
		if err := plotCurves(filepath.Join(c.Out, "curves.png"), sum.Curves); err != nil {
			return err
		}
		if err := pipeline.WriteJSON(filepath.Join(c.Out, "train.json"), sum); err != nil {
			return err
		}
	}
	if len(rl) > 0 {
		fmt.Fprintf(stdout, "trained %v in %.0f s: best checkpoints in %s (best episode per layer %v, validation reward %v); curves in curves.csv and curves.png\n",
			sum.Layers, sum.WallSeconds, c.Out, sum.Best, roundMap(sum.BestReward))
	} else {
		fmt.Fprintf(stdout, "trained the LSTM in %.0f s: %s\n", sum.WallSeconds, filepath.Join(c.Out, agents.CheckpointFile(schemas.Operational)))
	}
	return nil
}

// ablate returns the --ablate groups, nil for none.
func (c *Config) ablate() []string { return pipeline.SplitList(c.Ablate) }

// flatFor returns for how many episodes up to episode no layer's
// validation reward has improved: episode minus the latest of the layers'
// best episodes.
func flatFor(best map[string]int, episode int) int {
	latest := 0
	for _, e := range best {
		latest = max(latest, e)
	}
	return episode - latest
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
		out[k] = strconv.FormatFloat(v, 'f', 4, 64)
	}
	return out
}

// trainLSTM exports the operational sequences of the training and
// validation days (unless c names files) and trains the LSTM into c.Out.
func (c *Config) trainLSTM(ctx context.Context, stdout, stderr io.Writer) error {
	data, valid, err := c.lstmExports(ctx, stderr, c.LSTMSample)
	if err != nil {
		return err
	}
	return TrainLSTM(ctx, c.lstmConfig(data, valid), stdout, stderr)
}

// lstmConfig returns the `strata train-lstm` configuration of this
// training's LSTM on the sequences files data and valid.
func (c *Config) lstmConfig(data, valid string) LSTMConfig {
	l := DefaultLSTMConfig()
	l.Data, l.Valid, l.Out, l.Seed, l.Loss, l.Head, l.Patience, l.ClipNorm = data, valid, c.Out, uint64(c.Seed), c.Loss, c.LSTMHead, c.LSTMPatience, c.LSTMClipNorm
	l.Select, l.Device = c.LSTMSelect, c.Device
	if c.LSTMEpochs > 0 {
		l.Epochs = c.LSTMEpochs
	}
	return l
}

// lstmExports returns the LSTM's training and validation sequences files:
// c.LSTMData and c.LSTMValid, or exports of the training days (a sample
// of trainSample) and of the validation days (c.LSTMValidSample) into
// c.Out. The exports run as `strata export sequences` with the training's
// trace, seed, log level and cloud model and that command's defaults
// otherwise (the embedded environment, the default epoch, sample seed 1);
// their reports go to stderr.
func (c *Config) lstmExports(ctx context.Context, stderr io.Writer, trainSample int) (data, valid string, err error) {
	export := func(out, days string, sample int) error {
		e := DefaultExportConfig()
		e.Out, e.Days, e.Sample, e.LogLevel, e.NewModel = out, days, sample, c.LogLevel, c.NewModel
		e.Source.Seed, e.Source.Apps = c.Source.Seed, c.Source.Apps
		if c.Source.Trace != "" {
			e.Source.Trace, e.Source.Format, e.Source.Columns = c.Source.Trace, c.Source.Format, c.Source.Columns
		} else {
			e.Source.SynthDays, e.Source.SynthSet = c.Source.SynthDays, true
		}
		return Export(ctx, e, stderr, stderr)
	}
	data, valid = c.LSTMData, c.LSTMValid
	if data == "" {
		data = filepath.Join(c.Out, "sequences-train.parquet")
		fmt.Fprintf(stderr, "lstm: exporting operational sequences of days %s to %s\n", c.TrainDays, data)
		if err := export(data, c.TrainDays, trainSample); err != nil {
			return "", "", fmt.Errorf("exporting the LSTM's training sequences: %w", err)
		}
	}
	if valid == "" {
		valid = filepath.Join(c.Out, "sequences-valid.parquet")
		fmt.Fprintf(stderr, "lstm: exporting operational sequences of days %s to %s\n", c.ValidDays, valid)
		if err := export(valid, c.ValidDays, c.LSTMValidSample); err != nil {
			return "", "", fmt.Errorf("exporting the LSTM's validation sequences: %w", err)
		}
	}
	return data, valid, nil
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

package models_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/lstm"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
	"github.com/strata-rl/strata/experiments/models"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
)

// checkpoints returns a freshly initialised checkpoint of each layer.
func checkpoints(t *testing.T) map[schemas.Layer][]byte {
	t.Helper()
	out := map[schemas.Layer][]byte{}
	var b bytes.Buffer
	dl, err := dqn.NewLearner(dqn.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if err := dl.Save(&b); err != nil {
		t.Fatal(err)
	}
	out[schemas.Strategic] = bytes.Clone(b.Bytes())
	b.Reset()
	pl, err := ppo.NewLearner(ppo.DefaultConfig(), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if err := pl.Save(&b); err != nil {
		t.Fatal(err)
	}
	out[schemas.Tactical] = bytes.Clone(b.Bytes())
	b.Reset()
	out[schemas.Operational] = lstmCheckpoint(t, lstm.Manifest{Version: "lstm-test", Config: lstm.DefaultConfig(), BestEpoch: 2, BestValLoss: 0.125,
		Curve: []lstm.Epoch{{Epoch: 1, ValLoss: 0.25}, {Epoch: 2, ValLoss: 0.125}, {Epoch: 3, ValLoss: 0.5}}})
	return out
}

// TestInspect checks what is read from each kind of checkpoint, and that
// anything else is refused with ErrNotCheckpoint and its source named.
func TestInspect(t *testing.T) {
	cks := checkpoints(t)
	tests := []struct {
		layer                       schemas.Layer
		kind, format, version       string
		inputs, outputs             int
		seed                        uint64
		fitted                      bool
		bestEpoch, epochs           int
		wantSteps, wantTransitions  uint64
		wantUpdates                 uint64
		wantLoss                    string
		wantBestValLoss             float64
		wantNetworkHasInputsElement string
	}{
		{layer: schemas.Strategic, kind: nn.KindQ, format: dqn.FormatVersion, version: "e0-s0", inputs: 14, outputs: 3, seed: dqn.DefaultConfig().Seed},
		{layer: schemas.Tactical, kind: nn.KindPPO, format: ppo.CheckpointFormat, version: "v0", inputs: 11, outputs: 24, seed: 7},
		{layer: schemas.Operational, kind: nn.KindLSTM, format: lstm.FormatVersion, version: "lstm-test", inputs: lstm.SeqDim, outputs: lstm.Targets, seed: 3,
			fitted: true, bestEpoch: 2, epochs: 3, wantLoss: lstm.LossAsymmetric, wantBestValLoss: 0.125},
	}
	for _, tc := range tests {
		t.Run(string(tc.layer), func(t *testing.T) {
			in, err := models.Inspect("x.ckpt", cks[tc.layer])
			if err != nil {
				t.Fatal(err)
			}
			if in.Layer != tc.layer || in.Kind != tc.kind || in.Format != tc.format || in.Version != tc.version {
				t.Fatalf("layer %s kind %s format %s version %s, want %s %s %s %s", in.Layer, in.Kind, in.Format, in.Version, tc.layer, tc.kind, tc.format, tc.version)
			}
			if in.Inputs != tc.inputs || in.Outputs != tc.outputs || in.Seed != tc.seed {
				t.Fatalf("inputs %d outputs %d seed %d, want %d %d %d", in.Inputs, in.Outputs, in.Seed, tc.inputs, tc.outputs, tc.seed)
			}
			if in.Scaler == nil || in.Scaler.Fitted != tc.fitted {
				t.Fatalf("scaler %+v, want fitted %v", in.Scaler, tc.fitted)
			}
			if in.BestEpoch != tc.bestEpoch || in.Epochs != tc.epochs || in.Loss != tc.wantLoss || in.BestValLoss != tc.wantBestValLoss {
				t.Fatalf("LSTM training: best epoch %d of %d, loss %q %g", in.BestEpoch, in.Epochs, in.Loss, in.BestValLoss)
			}
			if in.FeatureSet != schemas.DefaultFeatureSet(tc.layer) {
				t.Fatalf("feature set %q, want %s", in.FeatureSet, schemas.DefaultFeatureSet(tc.layer))
			}
			if in.Bytes != len(cks[tc.layer]) || len(in.SHA256) != 64 || !json.Valid(in.Network) {
				t.Fatalf("bytes %d sha %q network %s", in.Bytes, in.SHA256, in.Network)
			}
		})
	}
	bad := map[string][]byte{
		"empty":              nil,
		"text":               []byte("not a checkpoint at all"),
		"truncated PPO":      cks[schemas.Tactical][:100],
		"truncated LSTM tar": cks[schemas.Operational][:1024],
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := models.Inspect("bad.ckpt", data)
			if !errors.Is(err, models.ErrNotCheckpoint) || !strings.Contains(err.Error(), "bad.ckpt") {
				t.Fatalf("Inspect(%s): %v, want ErrNotCheckpoint naming bad.ckpt", name, err)
			}
		})
	}
}

// TestReadPath checks a `strata train` directory: its best checkpoints
// first, then each episode's, with the training summary's seed, the best
// episode of each layer and each episode's validation reward.
func TestReadPath(t *testing.T) {
	cks := checkpoints(t)
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ppo.ckpt", cks[schemas.Tactical])
	write("lstm.ckpt", cks[schemas.Operational])
	write("episodes/1/ppo.ckpt", cks[schemas.Tactical])
	write("episodes/2/ppo.ckpt", cks[schemas.Tactical])
	write("episodes/2/dqn.ckpt", cks[schemas.Strategic])
	write("train.json", []byte(`{"seed": 5, "episodes": 2, "layers": ["tactical"], "train_days": "1-10", "valid_days": "11-12",
		"operational_during_episodes": "none", "best_episode": {"tactical": 2}, "best_validation_reward": {"tactical": 0.3},
		"curves": [{"episode": 1, "phase": "validation", "layer": "tactical", "mean_reward": 0.2},
		           {"episode": 2, "phase": "train", "layer": "tactical", "mean_reward": 0.9},
		           {"episode": 2, "phase": "validation", "layer": "tactical", "mean_reward": 0.3}], "wall_seconds": 12}`))
	infos, err := models.ReadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		rel     string
		episode int
		valid   float64 // 0: none
	}
	want := []row{{"ppo.ckpt", 2, 0.3}, {"lstm.ckpt", 0, 0}, {"episodes/1/ppo.ckpt", 1, 0.2}, {"episodes/2/dqn.ckpt", 2, 0}, {"episodes/2/ppo.ckpt", 2, 0.3}}
	if len(infos) != len(want) {
		t.Fatalf("%d checkpoints, want %d", len(infos), len(want))
	}
	for i, w := range want {
		in := infos[i]
		var valid float64
		if in.ValidationReward != nil {
			valid = *in.ValidationReward
		}
		if in.Source != filepath.Join(dir, w.rel) || in.Episode != w.episode || valid != w.valid {
			t.Errorf("checkpoint %d: %s episode %d validation %g, want %s %d %g", i, in.Source, in.Episode, valid, w.rel, w.episode, w.valid)
		}
		if in.Training == nil || in.Training.Seed != 5 || in.Training.Episodes != 2 {
			t.Errorf("checkpoint %d: training %+v", i, in.Training)
		}
	}
	var out bytes.Buffer
	if err := models.WriteTable(&out, infos); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reward 0.3000") || !strings.Contains(out.String(), "loss 0.125 (epoch 2 of 3, asymmetric)") {
		t.Fatalf("table without the validation results:\n%s", out.String())
	}
	// Without train.json (a training stopped before its end), a
	// directory's own checkpoint is numbered by the episode it copies.
	bare := t.TempDir()
	for rel, data := range map[string][]byte{"dqn.ckpt": cks[schemas.Strategic], "ppo.ckpt": cks[schemas.Tactical],
		"episodes/1/ppo.ckpt": cks[schemas.Tactical], "episodes/3/dqn.ckpt": cks[schemas.Strategic], "episodes/3/ppo.ckpt": cks[schemas.Tactical]} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(bare, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bare, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	infos, err = models.ReadPath(bare)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		rel     string
		episode int
	}{{"dqn.ckpt", 3}, {"ppo.ckpt", 1}} {
		for _, in := range infos {
			if in.Source == filepath.Join(bare, w.rel) && in.Episode != w.episode {
				t.Errorf("%s without train.json: episode %d, want %d (the episode it is a copy of)", w.rel, in.Episode, w.episode)
			}
		}
	}
	if _, err := models.ReadPath(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds none of") {
		t.Fatalf("an empty directory: %v, want an error saying it holds no checkpoint", err)
	}
}

// TestReadRegistry checks the JetStream registry: index entries per run
// and layer, filtered, and inspected when asked.
func TestReadRegistry(t *testing.T) {
	cks := checkpoints(t)
	js, _ := natstest.JetStream(t, "models-test", natsbus.StreamConfig{Memory: true})
	ctx := context.Background()
	ms, err := natsbus.OpenModelStore(ctx, js, schemas.Names{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		run     string
		layer   schemas.Layer
		version string
		from    int64
	}{{"run-b", schemas.Tactical, "v0", 0}, {"run-a", schemas.Tactical, "v0", 0}, {"run-a", schemas.Tactical, "v0", 5}, {"run-a", schemas.Strategic, "e0-s0", 1}} {
		if err := ms.PutCheckpoint(ctx, c.run, schemas.Checkpoint{Layer: c.layer, Version: c.version, InForce: c.from, Data: cks[c.layer]}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		run     string
		layer   schemas.Layer
		inspect bool
		want    []string // run/layer@in_force
	}{
		{"all", "", "", false, []string{"run-a/strategic@1", "run-a/tactical@0", "run-a/tactical@5", "run-b/tactical@0"}},
		{"one run", "run-b", "", true, []string{"run-b/tactical@0"}},
		{"one layer", "", schemas.Strategic, true, []string{"run-a/strategic@1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := models.ReadRegistry(ctx, ms, tc.run, tc.layer, tc.inspect)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range infos {
				got = append(got, in.Run+"/"+string(in.Layer)+"@"+strings.TrimSpace(jsonOf(t, *in.InForce)))
				if tc.inspect != (in.Kind != "") {
					t.Errorf("%s: inspected %v (kind %q)", in.Source, tc.inspect, in.Kind)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInspectAblated shows a PPO checkpoint's ablated feature groups and
// its action mask.
func TestInspectAblated(t *testing.T) {
	cfg := ppo.DefaultConfig().WithFeatures(schemas.TacticalPlacementV2)
	cfg.Ablate, cfg.Mask = []string{"hour"}, ppo.MaskMemory
	pl, err := ppo.NewLearner(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	var b bytes.Buffer
	if err := pl.Save(&b); err != nil {
		t.Fatal(err)
	}
	in, err := models.Inspect("x.ckpt", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if in.FeatureSet != schemas.TacticalPlacementV2 || len(in.Ablated) != 1 || in.Ablated[0] != "hour" {
		t.Fatalf("feature set %s, ablated %v; want placement-v2 without hour", in.FeatureSet, in.Ablated)
	}
	if in.Mask != ppo.MaskMemory {
		t.Fatalf("mask %q, want %s", in.Mask, ppo.MaskMemory)
	}
}

// TestInspectResidualLSTM checks that an LSTM trained with the residual
// head and the rate-vs-ma selection shows both, and the kept epoch's
// score, in its Info and the table.
func TestInspectResidualLSTM(t *testing.T) {
	cfg := lstm.DefaultConfig()
	cfg.Loss, cfg.Head, cfg.Select = lstm.LossSymmetric, lstm.HeadResidual, lstm.SelectRateVsMA
	ck := lstmCheckpoint(t, lstm.Manifest{Version: "lstm-res", Config: cfg, BestEpoch: 2, BestValLoss: 0.25,
		Curve: []lstm.Epoch{{Epoch: 1, ValLoss: 0.125, Score: 1.01}, {Epoch: 2, ValLoss: 0.25, Score: 0.975}}})
	in, err := models.Inspect("lstm.ckpt", ck)
	if err != nil {
		t.Fatal(err)
	}
	if in.Head != lstm.HeadResidual || in.Select != lstm.SelectRateVsMA || in.BestScore != 0.975 {
		t.Fatalf("head %q select %q best score %v, want %q %q 0.975", in.Head, in.Select, in.BestScore, lstm.HeadResidual, lstm.SelectRateVsMA)
	}
	var out bytes.Buffer
	if err := models.WriteTable(&out, []models.Info{in}); err != nil {
		t.Fatal(err)
	}
	if want := "score 0.9750 of the moving average's errors, loss 0.25 (epoch 2 of 2, symmetric, ma5-residual head)"; !strings.Contains(out.String(), want) {
		t.Fatalf("table %q, want %q", out.String(), want)
	}
}

// lstmCheckpoint returns an LSTM checkpoint of a fresh network (seed 3) of
// m's configuration, with m's manifest, scalers fitted on four samples
// and the default pre-warm rule.
func lstmCheckpoint(t *testing.T, m lstm.Manifest) []byte {
	t.Helper()
	net, err := nn.NewLSTMNet(m.Config.Net, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	samples := make([]lstm.Sample, 4)
	for i := range samples {
		for j := range samples[i].Seq {
			samples[i].Seq[j] = float32(i + j%5)
		}
		samples[i].Target = [lstm.Targets]float32{float32(i), 0.5, float32(2 * i)}
	}
	if m.Scalers, err = lstm.FitScalers(nn.ScalerMinMax, samples); err != nil {
		t.Fatal(err)
	}
	m.Rule = lstm.DefaultPrewarmRule()
	var b bytes.Buffer
	if err := lstm.Save(&b, net, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

package ppo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// TestCheckpointRoundTrip writes a trained learner, reads it back as a
// model and as a learner, and checks identical decisions, version, scaler
// and configuration; the reloaded learner keeps training.
func TestCheckpointRoundTrip(t *testing.T) {
	cfg := smallConfig(128)
	cfg.Gamma, cfg.StateClip = 0.97, 7
	l, data := trainedCheckpoint(t, cfg, 51, 52)
	if size := binary.LittleEndian.Uint64(data); (8+size)%8 != 0 {
		t.Errorf("header of %d bytes breaks the 8-byte alignment", size)
	}
	ck, err := nn.ReadCheckpoint(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Metadata["ppo.format"] != CheckpointFormat || ck.Metadata["ppo.version"] != "v1" || ck.Kind() != nn.KindPPO {
		t.Errorf("metadata %v", ck.Metadata)
	}
	// nn reads it as a plain actor-critic checkpoint too.
	if n, err := nn.LoadPPONet(bytes.NewReader(data)); err != nil {
		t.Errorf("nn.LoadPPONet: %v", err)
	} else {
		n.Close()
	}

	m, err := LoadModel(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "v1" || m.Config().Gamma != 0.97 || m.Config().StateClip != 7 || !m.Fitted() {
		t.Errorf("loaded model %s, config %+v, fitted %v", m.Version(), m.Config(), m.Fitted())
	}
	rows := tacticalRows(53, 200)
	for _, greedy := range []bool{false, true} {
		want := decide(t, mustPolicy(t, l.Model(), PolicyOptions{Seed: 4, Greedy: greedy}), 77, rows)
		got := decide(t, mustPolicy(t, m, PolicyOptions{Seed: 4, Greedy: greedy}), 77, rows)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("greedy %v row %d: reloaded %+v, original %+v", greedy, i, got[i], want[i])
			}
		}
	}

	l2, err := LoadLearner(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Version() != "v1" || l2.Seed() != 51 || l2.Config().Rollout != 128 || l2.Config().Net != l.Config().Net {
		t.Errorf("reloaded learner %s seed %d config %+v", l2.Version(), l2.Seed(), l2.Config())
	}
	sc, sc2 := l.Model().Scaler(), l2.Model().Scaler()
	for j := range sc.Center {
		if sc.Center[j] != sc2.Center[j] || sc.Scale[j] != sc2.Scale[j] || sc.Log1p[j] != sc2.Log1p[j] {
			t.Errorf("scaler feature %d differs after reload", j)
		}
	}
	fillRollout(t, l2, 54)
	if _, err := l2.Update(); err != nil || l2.Version() != "v2" {
		t.Errorf("update after reload: %v, version %s", err, l2.Version())
	}
}

// TestCheckpointErrors checks that a plain nn checkpoint (no PPO metadata)
// and a corrupt version are refused.
func TestCheckpointErrors(t *testing.T) {
	l := mustLearner(t, smallConfig(8), 61)
	var plain bytes.Buffer
	if err := l.Net().Save(&plain); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(bytes.NewReader(plain.Bytes())); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("plain nn checkpoint: got %v, want ErrCheckpoint", err)
	}
	var buf bytes.Buffer
	if err := l.Save(&buf); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(buf.Bytes(), []byte(`"ppo.version":"v0"`), []byte(`"ppo.version":"x0"`), 1)
	if _, err := LoadLearner(bytes.NewReader(bad)); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("corrupt version: got %v, want ErrCheckpoint", err)
	}
	if _, err := LoadModel(strings.NewReader("short")); err == nil {
		t.Error("a truncated checkpoint loaded")
	}
	// Version 0 without a scaler round-trips as the uniform policy.
	m, err := LoadModel(bytes.NewReader(buf.Bytes()))
	if err != nil || m.Fitted() || m.Version() != "v0" {
		t.Errorf("unfitted v0: %v, fitted %v, version %v", err, m != nil && m.Fitted(), m)
	}
}

// TestCheckpointFeatureSet trains on each tactical feature set and checks
// that the checkpoint records it, the reloaded model decides as the
// original on rows with placements, and a configuration naming no set (as
// checkpoints before sets were named) is the seed's.
func TestCheckpointFeatureSet(t *testing.T) {
	rows := tacticalRows(61, 120)
	metros, tiers := []string{"us-east", "us-west", "eu-west", "ap-southeast", ""}, []int32{128, 256, 512, 1024, 2048, 3008, 0}
	for i := range rows {
		rows[i].Region, rows[i].MemoryMB = metros[i%len(metros)], tiers[i%len(tiers)]
		rows[i].DurationMeanMS, rows[i].DurationP95MS, rows[i].PeakRate = float64(10*i), float64(40*i), float64(i)/100
	}
	tests := []struct {
		name string
		set  schemas.FeatureSet
		want schemas.FeatureSet
	}{
		{"seed", schemas.TacticalSeed, schemas.TacticalSeed},
		{"placement", schemas.TacticalPlacement, schemas.TacticalPlacement},
		{"unnamed", "", schemas.TacticalSeed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(64)
			if tc.set != "" {
				cfg = cfg.WithFeatures(tc.set)
			} else {
				cfg.FeatureSet = ""
			}
			l, data := trainedCheckpoint(t, cfg, 5, 6)
			m, err := LoadModel(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if m.Config().Features() != tc.want || m.Config().Net.Inputs != tc.want.Dim() {
				t.Fatalf("reloaded: feature set %q (%s), %d inputs; want %s, %d", m.Config().FeatureSet, m.Config().Features(), m.Config().Net.Inputs, tc.want, tc.want.Dim())
			}
			want := decide(t, mustPolicy(t, l.Model(), PolicyOptions{Seed: 2, Greedy: true}), 9, rows)
			got := decide(t, mustPolicy(t, m, PolicyOptions{Seed: 2, Greedy: true}), 9, rows)
			if len(got) != len(rows) || !slices.Equal(got, want) {
				t.Fatalf("reloaded model decides %d rows differently from the original's %d", len(got), len(want))
			}
		})
	}
	bad := DefaultConfig().WithFeatures(schemas.TacticalPlacement)
	bad.Net.Inputs = schemas.TacticalDim
	if err := bad.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), string(schemas.TacticalPlacement)) {
		t.Fatalf("a placement set on an 11-input network: %v, want ErrConfig naming the set", err)
	}
}

package train

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/dqn"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/agents/ppo"
)

// TestFingerprintTrace checks the trace part of the resume fingerprint:
// at the default format and mapping it is what it was before
// --trace-format and --trace-columns existed, so older trainings resume;
// a format or mapping changes it.
func TestFingerprintTrace(t *testing.T) {
	tests := []struct {
		name            string
		format, columns string
		want            string
	}{
		{"default", "", "", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0}`},
		{"auto", "auto", "", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0}`},
		{"parquet", "parquet", "start=s", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0,"Format":"parquet","Columns":"start=s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Source.Trace, c.Source.Format, c.Source.Columns = "x.csv", tt.format, tt.columns
			if got := c.fingerprint()["trace"]; got != tt.want {
				t.Errorf("fingerprint trace %s, want %s", got, tt.want)
			}
		})
	}
}

// TestResumeBeforeDQNLoss checks that a resume state written before
// --dqn-loss or --dqn-mask existed (its fingerprint has no such key)
// resumes with what it ran with, the seed's Huber loss and no mask, and
// is refused with --dqn-loss mse or --dqn-mask slo-risk.
func TestResumeBeforeDQNLoss(t *testing.T) {
	tests := []struct {
		flag, value string
		set         func(*Config, string)
		refused     bool
	}{
		{"dqn-loss", nn.LossHuber, func(c *Config, v string) { c.DQNLoss = v }, false},
		{"dqn-loss", nn.LossMSE, func(c *Config, v string) { c.DQNLoss = v }, true},
		{"dqn-mask", dqn.MaskNone, func(c *Config, v string) { c.DQNMask = v }, false},
		{"dqn-mask", dqn.MaskSLORisk, func(c *Config, v string) { c.DQNMask = v }, true},
		{"ppo-mask", ppo.MaskNone, func(c *Config, v string) { c.PPOMask = v }, false},
		{"ppo-mask", ppo.MaskMemory, func(c *Config, v string) { c.PPOMask = v }, true},
	}
	for _, tt := range tests {
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			c := DefaultConfig()
			c.Out = t.TempDir()
			old := c.fingerprint()
			delete(old, tt.flag)
			p := progress{Format: progressFormat, Fingerprint: old, Episodes: 1, State: "missing.state"}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(c.Out, ResumeDir), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.Out, ResumeDir, "progress.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			tt.set(&c, tt.value)
			_, err = loadProgress(&c, nil)
			// Past the fingerprint, the missing state file is what fails.
			if got := err != nil && strings.Contains(err.Error(), "--"+tt.flag); got != tt.refused {
				t.Fatalf("%s %s: refused %v (err %v), want %v", tt.flag, tt.value, got, err, tt.refused)
			}
			if !tt.refused && (err == nil || !errors.Is(err, fs.ErrNotExist)) {
				t.Fatalf("%s %s: err %v, want the missing state file's", tt.flag, tt.value, err)
			}
		})
	}
}

// TestValidateMasks checks that --dqn-mask takes none or slo-risk,
// --ppo-mask none or memory (memory only with placement-v2), and that
// anything else is refused naming the flag.
func TestValidateMasks(t *testing.T) {
	for _, tt := range []struct {
		flag, mask, features string
		ok                   bool
	}{
		{"--dqn-mask", dqn.MaskNone, "", true}, {"--dqn-mask", dqn.MaskSLORisk, "", true},
		{"--dqn-mask", "", "", true}, {"--dqn-mask", "slo", "", false},
		{"--ppo-mask", ppo.MaskNone, "", true}, {"--ppo-mask", ppo.MaskMemory, "tactical/placement-v2", true},
		{"--ppo-mask", ppo.MaskMemory, "tactical/seed-v1", false}, {"--ppo-mask", "ram", "tactical/placement-v2", false},
	} {
		c := DefaultConfig()
		c.Out = t.TempDir()
		if tt.features != "" {
			c.TacticalFeatures = tt.features
		}
		if tt.flag == "--dqn-mask" {
			c.DQNMask = tt.mask
		} else {
			c.PPOMask = tt.mask
		}
		err := c.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), tt.flag)) {
			t.Errorf("%s %q (features %q): %v, want ok %v", tt.flag, tt.mask, tt.features, err, tt.ok)
		}
	}
}

// TestValidateDQNLoss checks that --dqn-loss takes huber or mse and
// refuses anything else, naming the flag.
func TestValidateDQNLoss(t *testing.T) {
	for _, tt := range []struct {
		loss string
		ok   bool
	}{{nn.LossHuber, true}, {nn.LossMSE, true}, {"l1", false}, {"", false}} {
		c := DefaultConfig()
		c.Out, c.DQNLoss = t.TempDir(), tt.loss
		err := c.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "--dqn-loss")) {
			t.Errorf("--dqn-loss %q: %v, want ok %v", tt.loss, err, tt.ok)
		}
	}
}

package train

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
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
// --dqn-loss existed (its fingerprint has no such key) resumes with the
// loss it ran with, the seed's Huber, and is refused with --dqn-loss mse.
func TestResumeBeforeDQNLoss(t *testing.T) {
	tests := []struct {
		loss    string
		refused bool
	}{
		{nn.LossHuber, false},
		{nn.LossMSE, true},
	}
	for _, tt := range tests {
		t.Run(tt.loss, func(t *testing.T) {
			c := DefaultConfig()
			c.Out = t.TempDir()
			old := c.fingerprint()
			delete(old, "dqn-loss")
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
			c.DQNLoss = tt.loss
			_, err = loadProgress(&c, nil)
			// Past the fingerprint, the missing state file is what fails.
			if got := err != nil && strings.Contains(err.Error(), "--dqn-loss"); got != tt.refused {
				t.Fatalf("loss %s: refused %v (err %v), want %v", tt.loss, got, err, tt.refused)
			}
			if !tt.refused && (err == nil || !errors.Is(err, fs.ErrNotExist)) {
				t.Fatalf("loss %s: err %v, want the missing state file's", tt.loss, err)
			}
		})
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

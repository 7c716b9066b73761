package pipeline

import (
	"strings"
	"testing"
)

// TestScaleOutFlagsValidate checks what `strata shadow` and `strata run
// --external-features` refuse before they start, and that each refusal
// names what was wrong.
func TestScaleOutFlagsValidate(t *testing.T) {
	servers := func(c *Config) { c.Brokers, c.NATSURL = []string{"127.0.0.1:9092"}, "nats://127.0.0.1:4222" }
	for _, c := range []struct {
		name    string
		shadow  func(*ShadowRole)
		run     func(*RunRole)
		wantErr string // "" for none
	}{
		{name: "shadow on servers", shadow: func(r *ShadowRole) { servers(&r.Config); r.RunID = "r" }},
		{name: "shadow without servers", shadow: func(r *ShadowRole) { r.RunID = "r" }, wantErr: "needs --kafka and --nats"},
		{name: "shadow without a run", shadow: func(r *ShadowRole) { servers(&r.Config) }, wantErr: "--run-id"},
		{name: "shadow with a bad layer", shadow: func(r *ShadowRole) { servers(&r.Config); r.RunID, r.Layers = "r", "operational,hourly" },
			wantErr: "--layers"},
		{name: "shadow checkpoints off the grid", shadow: func(r *ShadowRole) {
			servers(&r.Config)
			r.RunID, r.CheckpointEvery = "r", 20e9
		}, wantErr: "checkpoint-every"},
		{name: "run, features outside, on servers", run: func(r *RunRole) {
			servers(&r.Config)
			r.ExternalFeatures, r.Replay.RunID = true, "r"
		}},
		{name: "run, features outside, embedded", run: func(r *RunRole) { r.ExternalFeatures, r.Replay.RunID = true, "r" },
			wantErr: "--external-features"},
		{name: "run, features outside, no run id", run: func(r *RunRole) { servers(&r.Config); r.ExternalFeatures = true },
			wantErr: "--run-id"},
		{name: "open loop, features outside", run: func(r *RunRole) {
			servers(&r.Config)
			r.ExternalFeatures, r.Observed, r.Replay.RunID = true, true, "r"
		}, wantErr: "--external-features"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.shadow != nil {
				r := DefaultShadowRole()
				c.shadow(&r)
				err = r.Validate()
			} else {
				r := DefaultRunRole()
				c.run(&r)
				err = r.Validate()
			}
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want an error naming %q", err, c.wantErr)
			}
		})
	}
}

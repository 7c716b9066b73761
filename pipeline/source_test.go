package pipeline_test

import (
	"flag"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
)

// TestSourceFlags checks that the days --synth-days -h reports are the
// days a command replays, and that only an explicit --synth-days clashes
// with --trace.
func TestSourceFlags(t *testing.T) {
	tests := []struct {
		name     string
		days     int // the command's default
		args     []string
		wantName string // substring of the source's name
		wantErr  string
	}{
		{"run's default", 1, nil, "synthetic(days=1,", ""},
		{"eval's default", 14, nil, "synthetic(days=14,", ""},
		{"given", 14, []string{"--synth-days", "3"}, "synthetic(days=3,", ""},
		{"trace with a default", 14, []string{"--trace", pipelinetest.RealTrace}, pipelinetest.RealTrace, ""},
		{"trace and synth-days", 1, []string{"--trace", pipelinetest.RealTrace, "--synth-days", "1"}, "", "exclusive"},
		{"zero days", 1, []string{"--synth-days", "0"}, "", "invalid synthetic trace config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sf := pipeline.Source{SynthDays: tt.days, Seed: 1}
			sf.RegisterFlags(fs, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fs.SetOutput(&b)
			fs.PrintDefaults()
			if want := "(default " + strconv.Itoa(tt.days) + ")"; !strings.Contains(b.String(), want) {
				t.Errorf("help does not say %s:\n%s", want, &b)
			}
			_, name, _, closeSrc, err := sf.Open()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeSrc()
			if !strings.Contains(name, tt.wantName) {
				t.Errorf("source %q, want %q", name, tt.wantName)
			}
		})
	}
}

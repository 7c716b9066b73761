package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

// TestHelpExitsZero asks every command and subcommand for help: each prints
// its usage and exits 0 (help is not an error), while a missing command is
// a usage error (2) and a failing command 1.
func TestHelpExitsZero(t *testing.T) {
	commands := [][]string{
		{"run"}, {"replay"}, {"features"}, {"agent"}, {"sink"}, {"sql"}, {"eval"},
		{"trace"}, {"trace", "synth"}, {"trace", "stats"},
		{"export"}, {"export", "sequences"},
		{"learner"}, {"train"}, {"train-lstm"},
		{"ingest"}, {"ingest", "load"}, {"live"},
		{"bench"}, {"bench", "pipeline"}, {"bench", "twin"}, {"bench", "loop"}, {"bench", "sink"}, {"bench", "ingest"},
		{},
	}
	for _, cmd := range commands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), cmd...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errOut bytes.Buffer
				err := run(context.Background(), args, &out, &errOut)
				if code := exitCode(err); code != 0 {
					t.Fatalf("strata %s: exit status %d (error %v), want 0", strings.Join(args, " "), code, err)
				}
				if out.Len()+errOut.Len() == 0 {
					t.Fatalf("strata %s printed no usage", strings.Join(args, " "))
				}
			})
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{fmt.Errorf("parsing: %w", flag.ErrHelp), 0},
		{errUsage, 2},
		{errors.New("opening trace: no such file"), 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if err := run(context.Background(), nil, &bytes.Buffer{}, &bytes.Buffer{}); exitCode(err) != 2 {
		t.Errorf("strata without a command: %v, want exit status 2", err)
	}
}

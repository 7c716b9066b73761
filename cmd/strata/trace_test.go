package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

func TestTraceSynthThenStats(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	plain := filepath.Join(dir, "synth.csv")
	gz := filepath.Join(dir, "synth.csv.gz")
	for _, out := range []string{plain, gz} {
		var stdout bytes.Buffer
		if err := traceMain(ctx, []string{"synth", "--days", "1", "--seed", "4", "--apps", "5", "--out", out}, &stdout); err != nil {
			t.Fatalf("trace synth --out %s: %v", out, err)
		}
		if !strings.Contains(stdout.String(), "wrote ") {
			t.Errorf("synth summary = %q", stdout.String())
		}
	}
	// The same flags on stdout give the same bytes as the file.
	var direct bytes.Buffer
	if err := traceRun(ctx, []string{"synth", "--days=1", "--seed=4", "--apps=5", "--out", "-"}, &direct, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(direct.Bytes(), onDisk) {
		t.Fatalf("--out - wrote %d bytes, the file holds %d", direct.Len(), len(onDisk))
	}

	var want replay.Stats
	for i, path := range []string{plain, gz} {
		var stdout, stderr bytes.Buffer
		if err := traceRun(ctx, []string{"stats", path, "--json"}, &stdout, &stderr); err != nil {
			t.Fatalf("trace stats %s: %v", path, err)
		}
		var st replay.Stats
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			t.Fatalf("decoding stats JSON: %v\n%s", err, stdout.String())
		}
		if i == 0 {
			want = st
			rows := int64(bytes.Count(onDisk, []byte("\n")) - 1)
			if st.Invocations != rows || st.Apps > 5 || st.Malformed != 0 {
				t.Fatalf("stats: %d invocations, %d apps, %d malformed; want %d, ≤5, 0", st.Invocations, st.Apps, st.Malformed, rows)
			}
			continue
		}
		if st.Invocations != want.Invocations || st.Duration != want.Duration {
			t.Fatalf("gzip trace stats differ from plain: %+v vs %+v", st, want)
		}
	}

	var text bytes.Buffer
	if err := traceRun(ctx, []string{"stats", plain}, &text, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "top 1/5/20 app share") {
		t.Errorf("text report:\n%s", text.String())
	}
}

func TestTraceStatsReportsMalformedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.csv")
	data := "app,func,end_timestamp,duration\n" +
		"a,f,1.5,0.5\n" +
		"a,f,not-a-number,0.1\n" +
		"a,f,3.0,0.2,extra\n" +
		"b,g,4.0,0.0\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := traceRun(context.Background(), []string{"stats", "--json", path}, &stdout, &stderr); err != nil {
		t.Fatalf("malformed lines must not be fatal: %v", err)
	}
	var st replay.Stats
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Invocations != 2 || st.Malformed != 2 {
		t.Errorf("invocations %d, malformed %d; want 2, 2", st.Invocations, st.Malformed)
	}
	for _, want := range []string{path + ":3:", "is not a number", path + ":4:", "too many fields", "2 malformed lines skipped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestTraceUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "help" means flag.ErrHelp, "usage" errUsage
	}{
		{"no subcommand", nil, "usage"},
		{"unknown subcommand", []string{"shuffle"}, `unknown trace command "shuffle"`},
		{"synth without out", []string{"synth", "--days", "1"}, "--out is required"},
		{"synth bad days", []string{"synth", "--days", "0", "--out", filepath.Join(dir, "x.csv")}, "invalid synthetic trace config"},
		{"synth bad flag", []string{"synth", "--dayz", "1"}, "flag provided but not defined"},
		{"synth stray argument", []string{"synth", "--out", "-", "extra"}, "unexpected arguments"},
		{"synth help", []string{"synth", "-h"}, "help"},
		{"stats without file", []string{"stats", "--json"}, "exactly one trace FILE"},
		{"stats missing file", []string{"stats", filepath.Join(dir, "missing.csv")}, "opening trace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := traceRun(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
			if tt.wantErr == "help" {
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("error = %v, want flag.ErrHelp", err)
				}
				return
			}
			if tt.wantErr == "usage" {
				if !errors.Is(err, errUsage) {
					t.Fatalf("error = %v, want errUsage", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); !os.IsNotExist(err) {
		t.Errorf("a failed synth left its output file behind (stat: %v)", err)
	}
}

func TestTraceSynthStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "cancelled.csv")
	err := traceRun(ctx, []string{"synth", "--days", "2", "--out", out}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("cancelled synth left %s behind", out)
	}
}

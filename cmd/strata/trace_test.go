package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

func TestTraceSynthThenStats(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	plain := filepath.Join(dir, "synth.csv")
	gz := filepath.Join(dir, "synth.csv.gz")
	pq := filepath.Join(dir, "synth.parquet")
	for _, out := range []string{plain, gz, pq} {
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
	for i, path := range []string{plain, gz, pq} {
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
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("%s: stats differ from the plain CSV's: %+v vs %+v", path, st, want)
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
		{"stats without file", []string{"stats", "--json"}, "exactly one trace PATH"},
		{"stats unknown format", []string{"stats", "--trace-format", "xml", "x.csv"}, `trace format "xml"`},
		{"stats parquet on stdin", []string{"stats", "--trace-format", "parquet", "-"}, "stdin holds a CSV trace"},
		{"stats columns of a directory", []string{"stats", "--trace-columns", "start=s", dir}, "is a directory"},
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

// TestTraceStatsAzure2019 reads an Azure 2019 directory: the counts give
// the invocations whatever the seed, and the seed moves the durations.
func TestTraceStatsAzure2019(t *testing.T) {
	dir := t.TempDir()
	minutes := make([]string, 1440)
	counts := make([]string, 1440)
	for i := range minutes {
		minutes[i], counts[i] = strconv.Itoa(i+1), strconv.Itoa(i%3)
	}
	files := map[string]string{
		"invocations_per_function_md.anon.d01.csv": "HashOwner,HashApp,HashFunction,Trigger," + strings.Join(minutes, ",") + "\n" +
			"o,a,f,timer," + strings.Join(counts, ",") + "\n",
		"function_durations_percentiles.anon.d01.csv": "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n" +
			"o,a,f,50,1440,1,900,1,2,10,50,100,800,900\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stats := func(seed string) replay.Stats {
		var stdout bytes.Buffer
		if err := traceRun(context.Background(), []string{"stats", "--json", "--seed", seed, dir}, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		var st replay.Stats
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	one, two := stats("1"), stats("2")
	if one.Invocations != 1440 || two.Invocations != 1440 || one.Apps != 1 {
		t.Errorf("invocations %d and %d, apps %d; want 1440 each, 1 app", one.Invocations, two.Invocations, one.Apps)
	}
	if one.Duration == two.Duration {
		t.Errorf("seeds 1 and 2 gave the same durations %+v", one.Duration)
	}
}

package pipeline_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/pipelinetest"
	"github.com/strata-rl/strata/replay"
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
		{"format named", 1, []string{"--trace", pipelinetest.RealTrace, "--trace-format", "azure2021"}, pipelinetest.RealTrace, ""},
		{"format without a trace", 1, []string{"--trace-format", "parquet"}, "", "--trace-format parquet needs a --trace"},
		{"columns without a trace", 1, []string{"--trace-columns", "start=s"}, "", "--trace-columns needs a --trace"},
		{"unknown format", 1, []string{"--trace", pipelinetest.RealTrace, "--trace-format", "tsv"}, "", `trace format "tsv": want one of`},
		{"columns of a fixed format", 1, []string{"--trace", pipelinetest.RealTrace, "--trace-format", "azure2021", "--trace-columns", "start=s"}, "", "fixed columns"},
		{"bad columns", 1, []string{"--trace", pipelinetest.RealTrace, "--trace-columns", "start"}, "", "not key=value"},
		{"csv by the default mapping", 1, []string{"--trace", pipelinetest.RealTrace, "--trace-format", "csv"}, "(csv app=app,func=func,end=end_timestamp:s,duration=duration:s)", ""},
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

// TestSourceFormats opens a Parquet file and an Azure 2019 directory
// through --trace: auto detects them, the name records the format and the
// seed, and a 2019 trace declares its length in days.
func TestSourceFormats(t *testing.T) {
	dir := t.TempDir()
	pq := filepath.Join(dir, "t.parquet")
	f, err := os.Create(pq)
	if err != nil {
		t.Fatal(err)
	}
	syn, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 1, Apps: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.WriteParquet(f, syn, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	az := filepath.Join(dir, "az")
	if err := os.Mkdir(az, 0o755); err != nil {
		t.Fatal(err)
	}
	counts := "o,a,f,http" + strings.Repeat(",1", 1440)
	minutes := make([]string, 1440)
	for i := range minutes {
		minutes[i] = strconv.Itoa(i + 1)
	}
	for _, d := range []int{1, 2} {
		files := map[string]string{
			fmt.Sprintf("invocations_per_function_md.anon.d%02d.csv", d): "HashOwner,HashApp,HashFunction,Trigger," + strings.Join(minutes, ",") + "\n" + counts + "\n",
			fmt.Sprintf("function_durations_percentiles.anon.d%02d.csv", d): "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n" +
				"o,a,f,5,1440,1,9,1,2,3,4,5,6,7\n",
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(az, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name     string
		args     []string
		wantName string
		wantLen  int64
		wantN    int
	}{
		{"parquet", []string{"--trace", pq}, pq + " (parquet app=app,func=func,end=end_timestamp:s,duration=duration:s)", 0, -1},
		{"azure2019", []string{"--trace", az, "--seed", "3"}, az + " (azure2019, seed 3)", 2 * 86_400_000_000, 2 * 1440},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sf := pipeline.DefaultSource()
			sf.RegisterFlags(fs, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			src, name, lenUS, closeSrc, err := sf.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer closeSrc()
			if name != tt.wantName || lenUS != tt.wantLen {
				t.Errorf("source %q of %d us, want %q of %d us", name, lenUS, tt.wantName, tt.wantLen)
			}
			n := len(pipelinetest.ReadAll(t, src))
			if tt.wantN >= 0 && n != tt.wantN {
				t.Errorf("read %d invocations, want %d", n, tt.wantN)
			}
		})
	}
}

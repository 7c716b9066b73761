package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-rl/strata/experiments/dataset"
)

// TestExportDataset runs `strata export dataset` in-process on a small
// synthetic trace, with a --config file that changes the cloud model's
// profile seed, and checks the files it reports and what metadata.json
// records; bad flags fail with exit status 1 and a message naming them.
func TestExportDataset(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dataset.yaml")
	if err := os.WriteFile(conf, []byte("splits: \"1,2,3\"\nmodel:\n  seed: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ds")
	var stdout, stderr bytes.Buffer
	args := []string{"export", "dataset", "--config", conf, "--apps", "2", "--seed", "3", "--out", out}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	for _, f := range []string{"train.parquet", "valid.parquet", "test.parquet", dataset.ScalerFile, dataset.ProfileFile, dataset.MetadataFile} {
		if !strings.Contains(stdout.String(), filepath.Join(out, f)) {
			t.Errorf("the summary does not list %s:\n%s", f, &stdout)
		}
	}
	var md dataset.Metadata
	b, err := os.ReadFile(filepath.Join(out, dataset.MetadataFile))
	if err == nil {
		err = json.Unmarshal(b, &md)
	}
	if err != nil {
		t.Fatal(err)
	}
	if md.Source.Kind != "synthetic" || md.Source.Seed == nil || *md.Source.Seed != 3 || *md.Source.Days != 3 || md.Model.Seed != 7 || len(md.Features) != dataset.NumFeatures {
		t.Errorf("metadata: source %+v, model seed %d, %d features; want synthetic seed 3 over 3 days, model seed 7, %d features",
			md.Source, md.Model.Seed, len(md.Features), dataset.NumFeatures)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--out", out, "--splits", "1-10,9-12,13-14"}, "do not come after"},
		{[]string{"--splits", "1,2,3"}, "--out is required"},
		{[]string{"--out", out, "--synth-days", "2", "--splits", "1,2,3"}, "has 2 days, --splits 1-1,2-2,3-3 needs 3"},
		{[]string{"--out", out, "--trace", "x.csv", "--synth-days", "2"}, "exclusive"},
	} {
		err := run(context.Background(), append([]string{"export", "dataset"}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if exitCode(err) != 1 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("strata export dataset %s: %v (exit %d), want exit 1 saying %q", strings.Join(tc.args, " "), err, exitCode(err), tc.msg)
		}
	}
}

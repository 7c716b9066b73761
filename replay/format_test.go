package replay_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/replay"
)

// TestOpenFormats writes the real sample in every format and opens each
// through Open: auto detects the format from the path, and every format
// yields the 2021 reader's invocations (the Azure 2019 directory its own).
func TestOpenFormats(t *testing.T) {
	dir := t.TempDir()
	real := readRealSample(t)
	want := readAllInvocations(t, real, "real.csv")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	csvPath := write("trace.csv", real)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(real)
	_ = zw.Close()
	gzPath := write("trace.csv.gz", gz.Bytes())
	mappedPath := write("mapped.csv", remapped(want, false))
	var pq bytes.Buffer
	r, err := replay.NewCSVReader(bytes.NewReader(real), "real.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.WriteParquet(&pq, r, 0); err != nil {
		t.Fatal(err)
	}
	pqPath := write("trace.PARQUET", pq.Bytes())
	azDir := filepath.Join(dir, "azure2019")
	if err := os.Mkdir(azDir, 0o755); err != nil {
		t.Fatal(err)
	}
	knownTrace().write(t, azDir)
	wantAz := readAll2019(t, azDir, 5)

	const mapping = "app=owner_app,func=fn,end=ts_ms,duration=dur_ms,unit=ms"
	tests := []struct {
		name    string
		path    string
		cfg     replay.OpenConfig
		format  replay.Format
		want    []replay.Invocation
		wantErr string
	}{
		{"csv auto", csvPath, replay.OpenConfig{}, replay.FormatAzure2021, want, ""},
		{"gzip auto", gzPath, replay.OpenConfig{Format: replay.FormatAuto}, replay.FormatAzure2021, want, ""},
		{"parquet auto", pqPath, replay.OpenConfig{}, replay.FormatParquet, want, ""},
		{"parquet named", pqPath, replay.OpenConfig{Format: replay.FormatParquet}, replay.FormatParquet, want, ""},
		{"mapped auto", mappedPath, replay.OpenConfig{Columns: mapping}, replay.FormatCSV, want, ""},
		{"mapped named", mappedPath, replay.OpenConfig{Format: replay.FormatCSV, Columns: mapping}, replay.FormatCSV, want, ""},
		{"csv with the default mapping", csvPath, replay.OpenConfig{Format: replay.FormatCSV}, replay.FormatCSV, want, ""},
		{"azure2019 auto", azDir, replay.OpenConfig{Seed: 5}, replay.FormatAzure2019, wantAz, ""},
		{"azure2019 named", azDir, replay.OpenConfig{Format: replay.FormatAzure2019, Seed: 5}, replay.FormatAzure2019, wantAz, ""},
		{"columns on a directory", azDir, replay.OpenConfig{Columns: mapping}, "", nil, "is a directory"},
		{"columns on azure2021", csvPath, replay.OpenConfig{Format: replay.FormatAzure2021, Columns: mapping}, "", nil, "fixed columns"},
		{"unknown format", csvPath, replay.OpenConfig{Format: "tsv"}, "", nil, `trace format "tsv": want one of auto, azure2021, azure2019, csv, parquet`},
		{"bad mapping", csvPath, replay.OpenConfig{Columns: "app"}, "", nil, "not key=value"},
		{"missing file", filepath.Join(dir, "nope.csv"), replay.OpenConfig{}, "", nil, "no such file"},
		{"mapping a file lacks", csvPath, replay.OpenConfig{Columns: mapping}, "", nil, `no column "owner_app"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, f, err := replay.Open(tt.path, tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = src.Close() }()
			if f != tt.format {
				t.Errorf("format %s, want %s", f, tt.format)
			}
			if got := readAllSource(t, src); !slices.Equal(got, tt.want) {
				t.Errorf("read %d invocations, want %d of the reference", len(got), len(tt.want))
			}
		})
	}
}

// TestOpenConfigCheck checks the errors found without opening a file.
func TestOpenConfigCheck(t *testing.T) {
	tests := []struct {
		cfg     replay.OpenConfig
		wantErr error
	}{
		{replay.OpenConfig{}, nil},
		{replay.OpenConfig{Format: replay.FormatParquet, Columns: "start=s"}, nil},
		{replay.OpenConfig{Format: "xml"}, replay.ErrFormat},
		{replay.OpenConfig{Format: replay.FormatAzure2019, Columns: "app=x"}, replay.ErrFormat},
		{replay.OpenConfig{Format: replay.FormatCSV, Columns: "app=x,app=y"}, replay.ErrColumns},
	}
	for _, tt := range tests {
		if err := tt.cfg.Check(); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("%+v.Check() = %v, want %v", tt.cfg, err, tt.wantErr)
		}
	}
}

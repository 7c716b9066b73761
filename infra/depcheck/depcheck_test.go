package depcheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/strata-rl/strata"

// moduleDir returns the module root, skipping the test without a go
// command.
func moduleDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.CommandContext(t.Context(), "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside a module")
	}
	return filepath.Dir(gomod)
}

// TestDependenciesOneWay checks the module against Rules.
func TestDependenciesOneWay(t *testing.T) {
	res, err := Check(t.Context(), Config{Dir: moduleDir(t)}, Rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%s: %d packages checked, %d violations", r.Rule, len(r.Checked), len(r.Violations))
		var short []string
		for _, p := range r.Checked {
			short = append(short, strings.TrimPrefix(p, module+"/"))
		}
		t.Logf("  checked: %s", strings.Join(short, " "))
		for _, v := range r.Violations {
			t.Errorf("%s: %s", r.Rule, v)
		}
	}
}

// TestCheckFindsPlantedImports plants, through a go list overlay (the
// tree is not touched), an import of franz-go in schemas/grid and one of
// gorgonia in infra/natsbus, and expects both rules to fail with the chains
// that bring them in.
func TestCheckFindsPlantedImports(t *testing.T) {
	dir := moduleDir(t)
	tmp := t.TempDir()
	replace := map[string]string{}
	for _, p := range []struct{ pkgDir, pkgName, imp string }{
		{"schemas/grid", "grid", "github.com/twmb/franz-go/pkg/kgo"},
		{"infra/natsbus", "natsbus", "gorgonia.org/gorgonia"},
	} {
		src := filepath.Join(tmp, p.pkgName+".go")
		body := "package " + p.pkgName + "\n\nimport _ \"" + p.imp + "\"\n"
		if err := os.WriteFile(src, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		replace[filepath.Join(dir, p.pkgDir, "zz_planted_depcheck.go")] = src
	}
	overlay, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := Check(t.Context(), Config{Dir: dir, Overlay: overlayFile}, Rules)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{module + "/cloud", module + "/schemas/grid", "github.com/twmb/franz-go/pkg/kgo"},
		{module + "/consumers/decisions", module + "/infra/natsbus", "gorgonia.org/gorgonia"},
	}
	var got []Violation
	for _, r := range res {
		t.Logf("%s (planted): %d packages checked, %d violations", r.Rule, len(r.Checked), len(r.Violations))
		got = append(got, r.Violations...)
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(v Violation) bool { return slices.Equal(v.Chain, w) })
		if i < 0 {
			t.Errorf("no violation %s among %v", strings.Join(w, " → "), got)
			continue
		}
		t.Logf("found (%s): %s", got[i].Rule, got[i])
	}
}

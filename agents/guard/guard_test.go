package guard_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

const example = `# every app: at most 20 instances kept warm
apps:
  "*":
    max_prewarm: 20
  eu-app:
    providers: [gcp, aws]
    regions: [eu-west]
    memory_mb: {min: 256, max: 1024}
    max_prewarm: 3
functions:
  eu-app/big:
    memory_mb: {min: 2048}
`

// TestParse checks what a valid file says.
func TestParse(t *testing.T) {
	r, err := guard.Parse("g.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	eu := r.App("eu-app")
	if !slices.Equal(eu.Providers, []cloud.Provider{cloud.GCP, cloud.AWS}) || !slices.Equal(eu.Metros, []cloud.Metro{cloud.EUWest}) || eu.MaxPrewarm != 3 {
		t.Errorf("eu-app: %+v", eu)
	}
	if other := r.App("other"); other.Providers != nil || other.Metros != nil || other.MaxPrewarm != 20 {
		t.Errorf("an app the file does not name: %+v", other)
	}
	for _, tc := range []struct {
		app, fn string
		want    guard.Bounds
	}{{"eu-app", "big", guard.Bounds{MinMB: 2048}}, {"eu-app", "small", guard.Bounds{MinMB: 256, MaxMB: 1024}}, {"other", "f", guard.Bounds{}}} {
		if got := r.Memory(tc.app, tc.fn); got != tc.want {
			t.Errorf("memory bounds of %s/%s: %+v, want %+v", tc.app, tc.fn, got, tc.want)
		}
	}
	if len(r.SHA256) != 64 || r.File != "g.yaml" {
		t.Errorf("file %q, sha256 %q", r.File, r.SHA256)
	}
	empty, err := guard.Parse("empty.yaml", []byte("# nothing\n"))
	if err != nil || empty.App("x").MaxPrewarm >= 0 || empty.App("x").Providers != nil {
		t.Errorf("an empty file: %+v, %v", empty, err)
	}
}

// TestParseErrors checks that every mistake is refused with the file, the
// line, the key and what is wrong.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"top-level list", "- a\n", "g.yaml:1: the file: invalid guardrails: want a mapping"},
		{"unknown top key", "apps: {}\nfallback: x\n", "g.yaml:2: fallback: invalid guardrails: unknown key (want one of apps, functions)"},
		{"unknown app key", "apps:\n  a:\n    provider: [aws]\n", "g.yaml:3: apps.a.provider: invalid guardrails: unknown key (want one of providers, regions, memory_mb, max_prewarm)"},
		{"unknown provider", "apps:\n  a:\n    providers: [aws, ibm]\n", "g.yaml:3: apps.a.providers[1]: invalid guardrails: unknown provider \"ibm\""},
		{"unknown region", "apps:\n  a:\n    regions:\n      - mars\n", "g.yaml:4: apps.a.regions[0]: invalid guardrails: unknown region \"mars\""},
		{"empty list", "apps:\n  a:\n    regions: []\n", "g.yaml:3: apps.a.regions: invalid guardrails: an empty list allows nothing"},
		{"repeated name", "apps:\n  a:\n    providers: [aws, aws]\n", "apps.a.providers[1]: invalid guardrails: \"aws\" is listed twice"},
		{"repeated app", "apps:\n  a: {}\n  a: {}\n", "g.yaml:3: apps.a: invalid guardrails: repeats line 2"},
		{"negative budget", "apps:\n  a:\n    max_prewarm: -1\n", "g.yaml:3: apps.a.max_prewarm: invalid guardrails: \"-1\" is not a whole number ≥ 0"},
		{"budget not a number", "apps:\n  a:\n    max_prewarm: lots\n", "apps.a.max_prewarm: invalid guardrails: \"lots\" is not a whole number"},
		{"no tier in bounds", "apps:\n  a:\n    memory_mb: {min: 1100, max: 2000}\n", "g.yaml:3: apps.a.memory_mb: invalid guardrails: [1100, 2000] MB holds no memory tier"},
		{"empty bounds", "apps:\n  a:\n    memory_mb: {}\n", "apps.a.memory_mb: invalid guardrails: give min, max or both"},
		{"zero bound", "apps:\n  a:\n    memory_mb: {max: 0}\n", "apps.a.memory_mb.max: invalid guardrails: 0 MB bounds nothing"},
		{"bad bound key", "apps:\n  a:\n    memory_mb: {min: 128, mx: 512}\n", "apps.a.memory_mb.mx: invalid guardrails: unknown key (want one of min, max)"},
		{"function without app", "functions:\n  f:\n    memory_mb: {min: 128}\n", "g.yaml:2: functions.f: invalid guardrails: a function is named app/function"},
		{"function key", "functions:\n  a/f:\n    max_prewarm: 1\n", "functions.a/f.max_prewarm: invalid guardrails: unknown key (want one of memory_mb)"},
		{"not yaml", "apps: [\n", "g.yaml: invalid guardrails: yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := guard.Parse("g.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, guard.ErrInvalid) {
				t.Errorf("error %v, want it to contain %q and wrap ErrInvalid", err, tc.want)
			}
		})
	}
}

// TestLoad checks that Load names the file it cannot read, and reads one.
func TestLoad(t *testing.T) {
	if _, err := guard.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(p, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := guard.Load(p)
	if err != nil || r.File != p || r.App("eu-app").MaxPrewarm != 3 {
		t.Errorf("loading %s: %+v, %v", p, r, err)
	}
}

func enforcer(t *testing.T, layer schemas.Layer, yaml string) *guard.Enforcer {
	t.Helper()
	r, err := guard.Parse("g.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e, err := guard.NewEnforcer(r, layer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func tactical(app, fn, provider, metro string, mb int) schemas.DecisionRow {
	m, _ := cloud.ParseMetro(metro)
	t, _ := cloud.TierOf(mb)
	return schemas.DecisionRow{App: app, Func: fn, Provider: provider, Region: metro, MemoryMB: int32(mb), Action: int32(int(m)*cloud.NumTiers + int(t))}
}

// TestProjectPlacement checks the strategic and tactical projections: the
// first allowed provider in the file's order, the nearest allowed metro
// by round-trip time, the nearest tier within the bounds.
func TestProjectPlacement(t *testing.T) {
	rules := `apps:
  eu:
    providers: [gcp, azure]
    regions: [ap-southeast, eu-west]
  us:
    regions: [us-west, ap-southeast]
    memory_mb: {min: 256, max: 1024}
functions:
  us/big:
    memory_mb: {min: 2048}
`
	strategicRow := func(app, p string) schemas.DecisionRow {
		return schemas.DecisionRow{App: app, Provider: p, Action: int32(mustProvider(t, p))}
	}
	for _, tc := range []struct {
		name  string
		layer schemas.Layer
		in    schemas.DecisionRow
		want  schemas.DecisionRow
		n     guard.Counts
	}{
		{"allowed provider", schemas.Strategic, strategicRow("eu", "azure"), strategicRow("eu", "azure"), guard.Counts{}},
		{"first allowed provider", schemas.Strategic, strategicRow("eu", "aws"), strategicRow("eu", "gcp"), guard.Counts{guard.ConstraintProvider: 1}},
		{"unconstrained app", schemas.Strategic, strategicRow("other", "aws"), strategicRow("other", "aws"), guard.Counts{}},
		{"nearest region (us-east → eu-west)", schemas.Tactical, tactical("eu", "f", "gcp", "us-east", 512), tactical("eu", "f", "gcp", "eu-west", 512), guard.Counts{guard.ConstraintRegion: 1}},
		{"nearest region (us-east → us-west)", schemas.Tactical, tactical("us", "f", "aws", "us-east", 512), tactical("us", "f", "aws", "us-west", 512), guard.Counts{guard.ConstraintRegion: 1}},
		{"tactical provider", schemas.Tactical, tactical("eu", "f", "aws", "eu-west", 512), tactical("eu", "f", "gcp", "eu-west", 512), guard.Counts{guard.ConstraintProvider: 1}},
		{"tier below min", schemas.Tactical, tactical("us", "f", "aws", "us-west", 128), tactical("us", "f", "aws", "us-west", 256), guard.Counts{guard.ConstraintMemory: 1}},
		{"tier above max", schemas.Tactical, tactical("us", "f", "aws", "us-west", 3008), tactical("us", "f", "aws", "us-west", 1024), guard.Counts{guard.ConstraintMemory: 1}},
		{"function bounds win", schemas.Tactical, tactical("us", "big", "aws", "us-west", 1024), tactical("us", "big", "aws", "us-west", 2048), guard.Counts{guard.ConstraintMemory: 1}},
		{"region and tier", schemas.Tactical, tactical("us", "f", "aws", "eu-west", 2048), tactical("us", "f", "aws", "us-west", 1024), guard.Counts{guard.ConstraintRegion: 1, guard.ConstraintMemory: 1}},
		{"allowed placement", schemas.Tactical, tactical("us", "f", "aws", "ap-southeast", 512), tactical("us", "f", "aws", "ap-southeast", 512), guard.Counts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := enforcer(t, tc.layer, rules)
			b := &schemas.DecisionBatch{Rows: []schemas.DecisionRow{tc.in}}
			n := e.Apply(b)
			if b.Rows[0] != tc.want {
				t.Errorf("projected to %+v, want %+v", b.Rows[0], tc.want)
			}
			for _, c := range guard.Constraints {
				if n[c] != tc.n[c] {
					t.Errorf("counts %v, want %v", n, tc.n)
					break
				}
			}
			if err := e.Rules().Check(tc.layer, b.Rows[0]); err != nil {
				t.Errorf("projected row breaks a rule: %v", err)
			}
		})
	}
}

func mustProvider(t *testing.T, s string) cloud.Provider {
	t.Helper()
	p, err := cloud.ParseProvider(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func op(fn string, prewarm int32, keepWarmMS int64) schemas.DecisionRow {
	return schemas.DecisionRow{App: "a", Func: fn, Prewarm: prewarm, Action: prewarm, KeepWarmMS: keepWarmMS}
}

// TestKeepWarmBudget follows an app with a budget of 5 instances over
// ticks: the budget is shared max-min fairly in order of name, functions
// missing from a batch keep what their decision in force holds, and a
// keep-warm window counts as one instance.
func TestKeepWarmBudget(t *testing.T) {
	e := enforcer(t, schemas.Operational, "apps:\n  a:\n    max_prewarm: 5\n")
	for i, tc := range []struct {
		in, want []schemas.DecisionRow
		cut      int
	}{
		// Within the budget: unchanged.
		{[]schemas.DecisionRow{op("f", 2, 0), op("g", 3, 0)}, []schemas.DecisionRow{op("f", 2, 0), op("g", 3, 0)}, 0},
		// g alone: f keeps 2 in force, so g gets 3 of its 6.
		{[]schemas.DecisionRow{op("g", 6, 0)}, []schemas.DecisionRow{op("g", 3, 0)}, 1},
		// All three ask for 4, 1 and 4 (in any order): level 2, one left
		// for f (first by name).
		{[]schemas.DecisionRow{op("h", 4, 0), op("g", 1, 0), op("f", 4, 0)}, []schemas.DecisionRow{op("h", 2, 0), op("g", 1, 0), op("f", 2, 0)}, 2},
		// h had 2 in force; its keep-warm window (one instance) fits.
		{[]schemas.DecisionRow{op("h", 0, 60000)}, []schemas.DecisionRow{op("h", 0, 60000)}, 0},
		// f keeps 2: g's window and h's 3 share 3 — level 2.
		{[]schemas.DecisionRow{op("h", 3, 0), op("g", 0, 60000)}, []schemas.DecisionRow{op("h", 2, 0), op("g", 0, 60000)}, 1},
		// The budget is spent: a new function gets nothing, its window
		// included.
		{[]schemas.DecisionRow{op("e", 0, 60000)}, []schemas.DecisionRow{op("e", 0, 0)}, 1},
		// f drops to 0: e's window now fits.
		{[]schemas.DecisionRow{op("f", 0, 0), op("e", 0, 60000)}, []schemas.DecisionRow{op("f", 0, 0), op("e", 0, 60000)}, 0},
	} {
		b := &schemas.DecisionBatch{Rows: slices.Clone(tc.in)}
		n := e.Apply(b)
		if !slices.Equal(b.Rows, tc.want) || n[guard.ConstraintKeepWarm] != tc.cut {
			t.Errorf("batch %d: %+v (%d cut), want %+v (%d cut)", i, b.Rows, n[guard.ConstraintKeepWarm], tc.want, tc.cut)
		}
	}
	// No budget: nothing is cut.
	free := enforcer(t, schemas.Operational, "apps:\n  a:\n    providers: [aws]\n")
	b := &schemas.DecisionBatch{Rows: []schemas.DecisionRow{op("f", 64, 0)}}
	if n := free.Apply(b); b.Rows[0].Prewarm != 64 || n[guard.ConstraintKeepWarm] != 0 {
		t.Errorf("without a budget: %+v", b.Rows[0])
	}
}

package guard

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/strata-rl/strata/cloud"
)

// ErrInvalid is wrapped by the errors of Load and Parse for a guardrails
// file that does not say what it must.
var ErrInvalid = errors.New("invalid guardrails")

// AnyApp is the key of the rule that applies to every app the file does
// not name.
const AnyApp = "*"

// Bounds are a function's memory-tier bounds in MB, inclusive; 0 leaves a
// side unbounded.
type Bounds struct {
	MinMB, MaxMB int
}

// Tiers returns the memory tiers within b, smallest first.
func (b Bounds) Tiers() []cloud.Tier {
	var out []cloud.Tier
	for t := range cloud.Tier(cloud.NumTiers) {
		if b.Allows(t) {
			out = append(out, t)
		}
	}
	return out
}

// Allows reports whether tier t is within b.
func (b Bounds) Allows(t cloud.Tier) bool {
	mb := t.MB()
	return (b.MinMB == 0 || mb >= b.MinMB) && (b.MaxMB == 0 || mb <= b.MaxMB)
}

// AppRule is what an app may do.
type AppRule struct {
	// Providers are the providers the app may run on, in the operator's
	// order of preference; nil allows every provider.
	Providers []cloud.Provider
	// Metros are the regions the app may run in; nil allows every one.
	Metros []cloud.Metro
	// Memory bounds the memory tier of the app's functions that have no
	// bounds of their own (Rules.Functions).
	Memory Bounds
	// MaxPrewarm is the most instances the app may keep pre-warmed, summed
	// over its functions; negative: no budget.
	MaxPrewarm int
}

// AllowsProvider reports whether the rule allows provider p.
func (a AppRule) AllowsProvider(p cloud.Provider) bool {
	return a.Providers == nil || slices.Contains(a.Providers, p)
}

// AllowsMetro reports whether the rule allows metro m.
func (a AppRule) AllowsMetro(m cloud.Metro) bool {
	return a.Metros == nil || slices.Contains(a.Metros, m)
}

// Function names a function of an app.
type Function struct {
	App, Func string
}

// Rules are the guardrails of a deployment.
type Rules struct {
	// File is the file the rules were read from ("" for none).
	File string
	// SHA256 is the hex SHA-256 of the file's bytes.
	SHA256 string
	// Default is the rule of every app Apps does not name (key "*");
	// without one, such apps are unconstrained.
	Default AppRule
	// Apps are the rules of the apps the file names.
	Apps map[string]AppRule
	// Functions are the memory bounds of the functions the file names;
	// they replace their app's.
	Functions map[Function]Bounds
}

// None returns rules that allow everything.
func None() *Rules { return &Rules{Default: AppRule{MaxPrewarm: -1}} }

// App returns app's rule.
func (r *Rules) App(app string) AppRule {
	if a, ok := r.Apps[app]; ok {
		return a
	}
	return r.Default
}

// Memory returns the memory bounds of app's function fn.
func (r *Rules) Memory(app, fn string) Bounds {
	if b, ok := r.Functions[Function{app, fn}]; ok {
		return b
	}
	return r.App(app).Memory
}

// Load reads and checks the guardrails file path.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading guardrails: %w", err)
	}
	return Parse(path, data)
}

// Parse checks the guardrails data, read from the file named file (for
// the errors), and returns its rules. An error names the file, the line,
// the key and what is wrong with it, and wraps ErrInvalid.
func Parse(file string, data []byte) (*Rules, error) {
	sum := sha256.Sum256(data)
	r := None()
	r.File, r.SHA256 = file, hex.EncodeToString(sum[:])
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", file, ErrInvalid, err)
	}
	if len(doc.Content) == 0 {
		return r, nil // an empty file: no constraint
	}
	p := parser{file: file}
	root := resolve(doc.Content[0])
	top, err := p.mapping("", root, "apps", "functions")
	if err != nil {
		return nil, err
	}
	if n, ok := top["apps"]; ok {
		apps, err := p.entries("apps", n)
		if err != nil {
			return nil, err
		}
		for _, e := range apps {
			a, err := p.app("apps."+e.key, e.value)
			if err != nil {
				return nil, err
			}
			if e.key == AnyApp {
				r.Default = a
				continue
			}
			if r.Apps == nil {
				r.Apps = map[string]AppRule{}
			}
			r.Apps[e.key] = a
		}
	}
	if n, ok := top["functions"]; ok {
		fns, err := p.entries("functions", n)
		if err != nil {
			return nil, err
		}
		for _, e := range fns {
			key := "functions." + e.key
			app, fn, ok := strings.Cut(e.key, "/")
			if !ok || app == "" || fn == "" {
				return nil, p.errorf(e.line, key, "a function is named app/function")
			}
			f, err := p.mapping(key, e.value, "memory_mb")
			if err != nil {
				return nil, err
			}
			b := Bounds{}
			if n, ok := f["memory_mb"]; ok {
				if b, err = p.bounds(key+".memory_mb", n); err != nil {
					return nil, err
				}
			}
			if r.Functions == nil {
				r.Functions = map[Function]Bounds{}
			}
			r.Functions[Function{app, fn}] = b
		}
	}
	return r, nil
}

// parser reads a guardrails file's nodes and reports errors with its
// name.
type parser struct{ file string }

// errorf returns an error naming the file, the line and the key.
func (p *parser) errorf(line int, key, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %w: %s", p.file, line, key, ErrInvalid, fmt.Sprintf(format, args...))
}

type entry struct {
	key   string
	line  int
	value *yaml.Node
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// entries returns the entries of mapping n, refusing repeated keys.
func (p *parser) entries(key string, n *yaml.Node) ([]entry, error) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n.Line, cmpKey(key), "want a mapping")
	}
	seen := map[string]int{}
	var out []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, p.errorf(k.Line, cmpKey(key), "a key must be a name")
		}
		if line, dup := seen[k.Value]; dup {
			return nil, p.errorf(k.Line, join(key, k.Value), "repeats line %d", line)
		}
		seen[k.Value] = k.Line
		out = append(out, entry{key: k.Value, line: k.Line, value: v})
	}
	return out, nil
}

// mapping returns the values of mapping n by key, refusing keys not in
// known.
func (p *parser) mapping(key string, n *yaml.Node, known ...string) (map[string]*yaml.Node, error) {
	es, err := p.entries(key, n)
	if err != nil {
		return nil, err
	}
	out := map[string]*yaml.Node{}
	for _, e := range es {
		if !slices.Contains(known, e.key) {
			return nil, p.errorf(e.line, join(key, e.key), "unknown key (want one of %s)", strings.Join(known, ", "))
		}
		out[e.key] = e.value
	}
	return out, nil
}

func cmpKey(key string) string {
	if key == "" {
		return "the file"
	}
	return key
}

func join(key, sub string) string {
	if key == "" {
		return sub
	}
	return key + "." + sub
}

// app reads an app's rule.
func (p *parser) app(key string, n *yaml.Node) (AppRule, error) {
	a := AppRule{MaxPrewarm: -1}
	m, err := p.mapping(key, n, "providers", "regions", "memory_mb", "max_prewarm")
	if err != nil {
		return a, err
	}
	if n, ok := m["providers"]; ok {
		names, err := p.names(key+".providers", n)
		if err != nil {
			return a, err
		}
		for i, s := range names {
			pv, err := cloud.ParseProvider(s.Value)
			if err != nil {
				return a, p.errorf(s.Line, fmt.Sprintf("%s.providers[%d]", key, i), "unknown provider %q (want aws, azure or gcp)", s.Value)
			}
			a.Providers = append(a.Providers, pv)
		}
	}
	if n, ok := m["regions"]; ok {
		names, err := p.names(key+".regions", n)
		if err != nil {
			return a, err
		}
		for i, s := range names {
			mt, err := cloud.ParseMetro(s.Value)
			if err != nil {
				return a, p.errorf(s.Line, fmt.Sprintf("%s.regions[%d]", key, i), "unknown region %q (want us-east, us-west, eu-west or ap-southeast)", s.Value)
			}
			a.Metros = append(a.Metros, mt)
		}
	}
	if n, ok := m["memory_mb"]; ok {
		if a.Memory, err = p.bounds(key+".memory_mb", n); err != nil {
			return a, err
		}
	}
	if n, ok := m["max_prewarm"]; ok {
		v, err := p.int(key+".max_prewarm", n)
		if err != nil {
			return a, err
		}
		a.MaxPrewarm = v
	}
	return a, nil
}

// names reads a non-empty list of distinct names.
func (p *parser) names(key string, n *yaml.Node) ([]*yaml.Node, error) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		return nil, p.errorf(n.Line, key, "want a list of names")
	}
	if len(n.Content) == 0 {
		return nil, p.errorf(n.Line, key, "an empty list allows nothing; leave the key out to allow every one")
	}
	var out []*yaml.Node
	seen := map[string]bool{}
	for i, c := range n.Content {
		c = resolve(c)
		k := fmt.Sprintf("%s[%d]", key, i)
		if c.Kind != yaml.ScalarNode {
			return nil, p.errorf(c.Line, k, "want a name")
		}
		if seen[c.Value] {
			return nil, p.errorf(c.Line, k, "%q is listed twice", c.Value)
		}
		seen[c.Value] = true
		out = append(out, c)
	}
	return out, nil
}

// int reads a non-negative integer.
func (p *parser) int(key string, n *yaml.Node) (int, error) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return 0, p.errorf(n.Line, key, "want a whole number")
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 0 {
		return 0, p.errorf(n.Line, key, "%q is not a whole number ≥ 0", n.Value)
	}
	return v, nil
}

// bounds reads {min: MB, max: MB}, one of them at least, that leave a
// memory tier.
func (p *parser) bounds(key string, n *yaml.Node) (Bounds, error) {
	var b Bounds
	m, err := p.mapping(key, n, "min", "max")
	if err != nil {
		return b, err
	}
	if len(m) == 0 {
		return b, p.errorf(resolve(n).Line, key, "give min, max or both")
	}
	for _, f := range []struct {
		k   string
		dst *int
	}{{"min", &b.MinMB}, {"max", &b.MaxMB}} {
		k, dst := f.k, f.dst
		if v, ok := m[k]; ok {
			if *dst, err = p.int(key+"."+k, v); err != nil {
				return b, err
			}
			if *dst == 0 {
				return b, p.errorf(resolve(v).Line, key+"."+k, "0 MB bounds nothing; leave the key out")
			}
		}
	}
	if len(b.Tiers()) == 0 {
		return b, p.errorf(resolve(n).Line, key, "[%s, %s] MB holds no memory tier (tiers: %s MB)", bound(b.MinMB), bound(b.MaxMB), tierList())
	}
	return b, nil
}

func bound(mb int) string {
	if mb == 0 {
		return "-"
	}
	return strconv.Itoa(mb)
}

func tierList() string {
	s := make([]string, cloud.NumTiers)
	for i, mb := range cloud.TierMB {
		s[i] = strconv.Itoa(mb)
	}
	return strings.Join(s, ", ")
}

package roleconf

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/secret"
)

// Usage is the help of --config.
const Usage = "read flags from the YAML `FILE` (name: value; the flags on the command line win), and for the commands that build the cloud model its reward, model and catalog sections; see docs/config.md"

// cloudSections are the top-level keys of a config file that are not
// flags: the cloud model's overrides.
var cloudSections = []string{"reward", "model", "catalog"}

// Config is what a --config file gave a command: the flags it set and,
// for a command that builds the cloud model, the model's overrides. nil
// and the zero value stand for no file: the defaults.
type Config struct {
	path string
	// flags are the flags the file set, by name: those the command line
	// did not set.
	flags map[string]string
	// cfg is the model's Config with the reward and model sections
	// applied, nil without them; cat the catalog with the catalog
	// section's prices, nil without one.
	cfg *cloud.Config
	cat *cloud.Catalog
	// sections record the reward, model and catalog sections for the
	// run's runs row.
	sections map[string]any
}

// Parse registers --config on fs, parses args and sets every flag the
// command line left unset that the file names (Apply). The file may not
// hold the cloud model's sections: the command builds no model.
func Parse(fs *flag.FlagSet, args []string) (*Config, error) {
	return parse(fs, args, false)
}

// ParseModel is Parse for a command that builds the cloud model: the file
// may hold its reward, model and catalog sections.
func ParseModel(fs *flag.FlagSet, args []string) (*Config, error) {
	return parse(fs, args, true)
}

func parse(fs *flag.FlagSet, args []string, model bool) (*Config, error) {
	path := Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return Load(fs, *path, model)
}

// Register registers --config on fs, for the commands that parse their
// arguments themselves (then Load).
func Register(fs *flag.FlagSet) *string {
	return fs.String("config", "", Usage)
}

// Load reads the config file at path ("" for none) and applies it to fs,
// parsed already; with model the file may hold the cloud model's
// sections.
func Load(fs *flag.FlagSet, path string, model bool) (*Config, error) {
	if path == "" {
		return &Config{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Apply(fs, path, data, model)
}

// Apply applies the YAML config data, read from the file name, to
// fs: a mapping of flag names to values (a list is joined with commas, for
// the flags that take comma-separated lists), each set with fs.Set unless
// the command line set the flag (or an alias of it); with model, also the
// cloud model's reward, model and catalog sections. An unknown key, a
// repeated one and a value the flag refuses are errors naming the file
// and the line.
func Apply(fs *flag.FlagSet, name string, data []byte, model bool) (*Config, error) {
	rc := &Config{path: name, flags: map[string]string{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return rc, nil // empty, or only comments
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of flag names to values", name, root.Line)
	}
	var cmdLine []flag.Value
	fs.Visit(func(f *flag.Flag) { cmdLine = append(cmdLine, f.Value) })
	sections := map[string]entry{}
	entries, err := mappingEntries(name, root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pos := fmt.Sprintf("%s:%d", name, e.line)
		switch {
		case slices.Contains(cloudSections, e.key):
			if !model {
				return nil, fmt.Errorf("%s: %s: %s builds no cloud model; the reward, model and catalog sections are for the commands that do (docs/config.md)", pos, e.key, fs.Name())
			}
			sections[e.key] = e
			continue
		case e.key == "config":
			return nil, fmt.Errorf("%s: config: a config file cannot name another", pos)
		}
		f := fs.Lookup(e.key)
		if f == nil {
			return nil, fmt.Errorf("%s: unknown key %q: %s has no flag --%s", pos, e.key, fs.Name(), e.key)
		}
		val, err := flagText(e.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", pos, e.key, err)
		}
		if slices.ContainsFunc(cmdLine, func(v flag.Value) bool { return sameValue(v, f.Value) }) {
			continue // the command line wins
		}
		if err := fs.Set(e.key, val); err != nil {
			return nil, fmt.Errorf("%s: %s: invalid value %q: %w", pos, e.key, val, err)
		}
		rc.flags[e.key] = val
	}
	if len(sections) > 0 {
		if err := rc.applyCloud(name, sections); err != nil {
			return nil, err
		}
	}
	return rc, nil
}

// sameValue reports whether two flags share their value (one is an alias
// of the other, as --raw-runs of --runs).
func sameValue(a, b flag.Value) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Kind() == reflect.Pointer && vb.Kind() == reflect.Pointer && va.Type() == vb.Type() && va.Pointer() == vb.Pointer()
}

// entry is one key of a YAML mapping with its line and value.
type entry struct {
	key   string
	line  int
	value *yaml.Node
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// mappingEntries returns the entries of mapping n, refusing a repeated or
// non-scalar key.
func mappingEntries(file string, n *yaml.Node) ([]entry, error) {
	seen := map[string]int{}
	var out []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: a key must be a name", file, k.Line)
		}
		if line, ok := seen[k.Value]; ok {
			return nil, fmt.Errorf("%s:%d: %s repeats line %d", file, k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		out = append(out, entry{key: k.Value, line: k.Line, value: v})
	}
	return out, nil
}

// scalarText returns the text of a scalar value.
func scalarText(n *yaml.Node) (string, error) {
	switch {
	case n.Kind != yaml.ScalarNode:
		return "", errors.New("want a single value")
	case n.ShortTag() == "!!null":
		return "", errors.New("no value")
	}
	return n.Value, nil
}

// flagText returns a flag's value as its text: a scalar's, or a list's
// items joined with commas.
func flagText(n *yaml.Node) (string, error) {
	if n.Kind != yaml.SequenceNode {
		s, err := scalarText(n)
		if err != nil && n.Kind != yaml.ScalarNode {
			return "", errors.New("want a value or a list of values")
		}
		return s, err
	}
	items := make([]string, len(n.Content))
	for i, it := range n.Content {
		s, err := scalarText(resolve(it))
		if err != nil {
			return "", fmt.Errorf("list item %d: %w", i+1, err)
		}
		items[i] = s
	}
	return strings.Join(items, ","), nil
}

// recordValue is a scalar as the runs row records it: a number, a boolean
// or the text.
func recordValue(n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		return n.Value
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return n.Value
	}
	return v
}

// applyCloud applies the reward, model and catalog sections.
func (rc *Config) applyCloud(file string, sections map[string]entry) error {
	rc.sections = map[string]any{}
	var (
		sets  []cloud.Setting
		where []string // each setting's file:line and name, for errors
	)
	add := func(e entry, label string, s cloud.Setting) error {
		val, err := scalarText(e.value)
		if err != nil {
			return fmt.Errorf("%s:%d: %s: %w", file, e.line, label, err)
		}
		s.Value = val
		sets, where = append(sets, s), append(where, fmt.Sprintf("%s:%d: %s", file, e.line, label))
		return nil
	}
	for _, sec := range []string{"reward", "model"} {
		s, ok := sections[sec]
		if !ok {
			continue
		}
		entries, err := sectionEntries(file, sec, s)
		if err != nil {
			return err
		}
		rec := map[string]any{}
		rc.sections[sec] = rec
		for _, e := range entries {
			label := sec + "." + e.key
			name := e.key
			if sec == "reward" {
				name = "reward." + e.key
			} else if strings.Contains(e.key, ".") {
				return fmt.Errorf("%s:%d: %s: unknown parameter (the reward's go in the reward section)", file, e.line, label)
			}
			if e.value.Kind != yaml.MappingNode || sec == "reward" {
				if err := add(e, label, cloud.Setting{Name: name}); err != nil {
					return err
				}
				rec[e.key] = recordValue(e.value)
				continue
			}
			per, err := mappingEntries(file, e.value)
			if err != nil {
				return err
			}
			m := map[string]any{}
			for _, k := range per {
				if err := add(k, label+"."+k.key, cloud.Setting{Name: name, Key: k.key}); err != nil {
					return err
				}
				m[k.key] = recordValue(k.value)
			}
			rec[e.key] = m
		}
	}
	if len(sets) > 0 {
		cfg := cloud.DefaultConfig()
		var oe *cloud.OverrideError
		if err := cfg.Override(sets); errors.As(err, &oe) && oe.Index >= 0 {
			return fmt.Errorf("%s: %w", where[oe.Index], oe.Err)
		} else if err != nil {
			return fmt.Errorf("%s: the reward and model sections: %w", file, err)
		}
		rc.cfg = &cfg
	}
	if c, ok := sections["catalog"]; ok {
		if err := rc.applyCatalog(file, c); err != nil {
			return err
		}
	}
	return nil
}

// sectionEntries returns the entries of section s, which must be a
// mapping.
func sectionEntries(file, name string, s entry) ([]entry, error) {
	if s.value.Kind != yaml.MappingNode {
		if s.value.ShortTag() == "!!null" {
			return nil, nil // an empty section
		}
		return nil, fmt.Errorf("%s:%d: %s: want a mapping", file, s.line, name)
	}
	return mappingEntries(file, s.value)
}

// applyCatalog applies the catalog section: provider → metro (or all) →
// price → USD, or for the per-tier prices memory MB → USD. The entries for
// every metro apply first, so a metro's own entry wins.
func (rc *Config) applyCatalog(file string, s entry) error {
	type located struct {
		price cloud.Price
		where string
	}
	var all, one []located
	rec := map[string]any{}
	provs, err := sectionEntries(file, "catalog", s)
	if err != nil {
		return err
	}
	for _, pe := range provs {
		p, err := cloud.ParseProvider(pe.key)
		if err != nil {
			return fmt.Errorf("%s:%d: catalog.%s: %w", file, pe.line, pe.key, err)
		}
		metros, err := sectionEntries(file, "catalog."+pe.key, pe)
		if err != nil {
			return err
		}
		precs := map[string]any{}
		rec[pe.key] = precs
		for _, me := range metros {
			label := "catalog." + pe.key + "." + me.key
			base := cloud.Price{Provider: p, AllMetros: me.key == "all"}
			if !base.AllMetros {
				if base.Metro, err = cloud.ParseMetro(me.key); err != nil {
					return fmt.Errorf("%s:%d: %s: %w (or all)", file, me.line, label, err)
				}
			}
			fields, err := sectionEntries(file, label, me)
			if err != nil {
				return err
			}
			mrec := map[string]any{}
			precs[me.key] = mrec
			for _, fe := range fields {
				items := []entry{fe}
				perTier := fe.value.Kind == yaml.MappingNode
				if perTier {
					if items, err = mappingEntries(file, fe.value); err != nil {
						return err
					}
				}
				trec := map[string]any{}
				for _, it := range items {
					pr, l := base, label+"."+fe.key
					pr.Name = fe.key
					if perTier {
						l += "." + it.key
						if pr.TierMB, err = strconv.Atoi(it.key); err != nil {
							return fmt.Errorf("%s:%d: %s: a memory tier in MB (128, 256, 512, 1024, 2048, 3008)", file, it.line, l)
						}
					}
					txt, err := scalarText(it.value)
					if err == nil {
						pr.USD, err = strconv.ParseFloat(strings.TrimSpace(txt), 64)
						if err != nil {
							err = fmt.Errorf("%q is not a number", txt)
						}
					}
					if err != nil {
						return fmt.Errorf("%s:%d: %s: %w", file, it.line, l, err)
					}
					loc := located{pr, fmt.Sprintf("%s:%d: %s", file, it.line, l)}
					if pr.AllMetros {
						all = append(all, loc)
					} else {
						one = append(one, loc)
					}
					if perTier {
						trec[it.key] = recordValue(it.value)
					} else {
						mrec[fe.key] = recordValue(it.value)
					}
				}
				if perTier {
					mrec[fe.key] = trec
				}
			}
		}
	}
	list := append(all, one...)
	prices := make([]cloud.Price, len(list))
	for i, l := range list {
		prices[i] = l.price
	}
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		return err
	}
	var oe *cloud.OverrideError
	if rc.cat, err = cat.WithPrices(prices); errors.As(err, &oe) && oe.Index >= 0 {
		return fmt.Errorf("%s: %w", list[oe.Index].where, oe.Err)
	} else if err != nil {
		return err
	}
	rc.sections["catalog"] = rec
	return nil
}

// HasCloud reports whether the file held cloud model sections.
func (rc *Config) HasCloud() bool { return rc != nil && len(rc.sections) > 0 }

// Catalog returns the catalog the command's model is built on.
func (rc *Config) Catalog() (*cloud.Catalog, error) {
	if rc != nil && rc.cat != nil {
		return rc.cat, nil
	}
	return cloud.DefaultCatalog()
}

// ModelConfig returns the model's Config: the defaults with the file's
// reward and model sections.
func (rc *Config) ModelConfig() cloud.Config {
	if rc != nil && rc.cfg != nil {
		return *rc.cfg
	}
	return cloud.DefaultConfig()
}

// NewModel builds the command's cloud model with trace time 0 at epoch.
func (rc *Config) NewModel(epoch time.Time) (*cloud.Model, error) {
	cat, err := rc.Catalog()
	if err != nil {
		return nil, err
	}
	cfg := rc.ModelConfig()
	cfg.Epoch = epoch
	return cloud.NewModel(cat, cfg)
}

// RunJSON is a run's config_json before pipeline.RunConfigJSON completes
// it: the command line's arguments and, with a config file, its path and
// what it set — the flags the command line did not set and the cloud
// model's sections.
func (rc *Config) RunJSON(args []string) string {
	rec := struct {
		Args       []string       `json:"args"`
		ConfigFile string         `json:"config_file,omitempty"`
		Overrides  map[string]any `json:"overrides,omitempty"`
	}{Args: secret.RedactArgs(args)}
	if rec.Args == nil {
		rec.Args = []string{}
	}
	if rc != nil && rc.path != "" {
		rec.ConfigFile = rc.path
		rec.Overrides = map[string]any{}
		if len(rc.flags) > 0 {
			flags := make(map[string]string, len(rc.flags))
			for k, v := range rc.flags {
				flags[k] = secret.RedactFlag(k, v)
			}
			rec.Overrides["flags"] = flags
		}
		for k, v := range rc.sections {
			rec.Overrides[k] = v
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		b, _ = json.Marshal(struct {
			Args []string `json:"args"`
		}{rec.Args})
	}
	return string(b)
}

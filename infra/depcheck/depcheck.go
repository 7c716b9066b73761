package depcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Databases are the module paths of the database clients.
var Databases = []string{
	"github.com/duckdb/duckdb-go",
	"github.com/ClickHouse/clickhouse-go",
}

// Clients are the module paths of the Kafka, NATS and database clients.
var Clients = append([]string{
	"github.com/twmb/franz-go",
	"github.com/nats-io/nats.go",
	"github.com/nats-io/nats-server",
}, Databases...)

// Rules are strata's dependency rules (see the package documentation).
var Rules = []Rule{
	{
		Name: "pure core: no Kafka, NATS or database client",
		Packages: []string{
			"./schemas/...", "./replay/...", "./cloud/...", "./agents/...",
			"./consumers/internal/...", "./ingest/telemetry/...", "./ingest/loadgen/...",
			"./experiments/dataset/...",
		},
		Except:    []string{"./agents/worker/..."},
		Forbidden: Clients,
	},
	{
		Name:      "twin and decisions view: no gorgonia",
		Packages:  []string{"./consumers/twin/...", "./consumers/decisions/..."},
		Forbidden: []string{"gorgonia.org"},
	},
	{
		Name:      "consumers: no database client",
		Packages:  []string{"./consumers/..."},
		Forbidden: Databases,
	},
}

// Rule says which packages must not link which others.
type Rule struct {
	// Name says what the rule protects.
	Name string
	// Packages are the go list patterns, relative to the module root, of
	// the packages checked.
	Packages []string
	// Except are patterns of packages that Packages match but the rule
	// leaves out (adapters inside a pure folder).
	Except []string
	// Forbidden are import path prefixes: a package is forbidden when its
	// path is one of them or starts with one followed by a slash.
	Forbidden []string
}

// forbids returns the prefix of r.Forbidden that path falls under, or "".
func (r *Rule) forbids(path string) string {
	for _, f := range r.Forbidden {
		if path == f || strings.HasPrefix(path, f+"/") {
			return f
		}
	}
	return ""
}

// Violation is a checked package that links a forbidden one.
type Violation struct {
	// Rule is the name of the rule broken.
	Rule string
	// Chain is a shortest import chain from the checked package (first)
	// to the forbidden one (last).
	Chain []string
}

// String returns the chain as "a → b → c".
func (v Violation) String() string { return strings.Join(v.Chain, " → ") }

// RuleResult is the outcome of one rule.
type RuleResult struct {
	// Rule is the rule's name.
	Rule string
	// Checked are the import paths of the packages checked, sorted.
	Checked []string
	// Violations lists, for each checked package and forbidden prefix it
	// links, a shortest chain that brings it in.
	Violations []Violation
}

// Config says where and how Check runs go list.
type Config struct {
	// Dir is the module root (the directory of go.mod).
	Dir string
	// Overlay, if not empty, is a file passed to go list -overlay: it
	// replaces or adds source files without touching the tree.
	Overlay string
	// Go is the go command (default "go" from PATH).
	Go string
}

// pkg is the part of go list -json output that Check reads.
type pkg struct {
	ImportPath string
	Imports    []string
	Match      []string
	Standard   bool
	Error      *struct{ Err string }
}

// Check lists the packages the rules name and everything they link (one go
// list -deps run) and returns, per rule, the packages it checked and the
// import chains that break it. A pattern that matches no package is an
// error: the rule would check nothing.
func Check(ctx context.Context, cfg Config, rules []Rule) ([]RuleResult, error) {
	var patterns []string
	for _, r := range rules {
		for _, p := range slices.Concat(r.Packages, r.Except) {
			if !slices.Contains(patterns, p) {
				patterns = append(patterns, p)
			}
		}
	}
	pkgs, err := goList(ctx, cfg, patterns)
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]*pkg, len(pkgs))
	matched := map[string]bool{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
		for _, m := range p.Match {
			matched[m] = true
		}
	}
	for _, p := range patterns {
		if !matched[p] {
			return nil, fmt.Errorf("checking dependencies: pattern %s matches no package", p)
		}
	}
	var res []RuleResult
	for _, r := range rules {
		rr := RuleResult{Rule: r.Name}
		for _, p := range pkgs {
			if !matchesAny(p.Match, r.Packages) || matchesAny(p.Match, r.Except) {
				continue
			}
			rr.Checked = append(rr.Checked, p.ImportPath)
			rr.Violations = append(rr.Violations, chains(&r, p.ImportPath, byPath)...)
		}
		slices.Sort(rr.Checked)
		res = append(res, rr)
	}
	return res, nil
}

func matchesAny(match, patterns []string) bool {
	for _, m := range match {
		if slices.Contains(patterns, m) {
			return true
		}
	}
	return false
}

// chains walks the import graph from root breadth first and returns, for
// each forbidden prefix it reaches, the first (so a shortest) chain to a
// package under it. It does not walk past a forbidden package.
func chains(r *Rule, root string, byPath map[string]*pkg) []Violation {
	parent := map[string]string{root: ""}
	found := map[string]bool{}
	var out []Violation
	for queue := []string{root}; len(queue) > 0; queue = queue[1:] {
		p := byPath[queue[0]]
		if p == nil || p.Standard {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = p.ImportPath
			if f := r.forbids(imp); f != "" {
				if !found[f] {
					found[f] = true
					out = append(out, Violation{Rule: r.Name, Chain: chainTo(imp, parent)})
				}
				continue
			}
			queue = append(queue, imp)
		}
	}
	return out
}

func chainTo(p string, parent map[string]string) []string {
	var c []string
	for ; p != ""; p = parent[p] {
		c = append(c, p)
	}
	slices.Reverse(c)
	return c
}

// goList runs go list -deps -json over patterns in cfg.Dir.
func goList(ctx context.Context, cfg Config, patterns []string) ([]*pkg, error) {
	goCmd := cfg.Go
	if goCmd == "" {
		goCmd = "go"
	}
	args := []string{"list", "-deps", "-json=ImportPath,Imports,Match,Standard,Error"}
	if cfg.Overlay != "" {
		args = append(args, "-overlay", cfg.Overlay)
	}
	args = append(args, patterns...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = cfg.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("running go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []*pkg
	for dec := json.NewDecoder(&stdout); ; {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("listing %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

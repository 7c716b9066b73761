package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// tableCommands lists every command and subcommand of the command table,
// and each group by itself.
func tableCommands() [][]string {
	var out [][]string
	for _, c := range commands() {
		out = append(out, []string{c.name})
		for _, s := range c.subs {
			out = append(out, []string{c.name, s.name})
		}
	}
	return out
}

// TestHelpExitsZero asks every command and subcommand for help: each prints
// its usage and exits 0 (help is not an error), while a missing command is
// a usage error (2) and a failing command 1.
func TestHelpExitsZero(t *testing.T) {
	commands := append(tableCommands(), []string{})
	for _, cmd := range commands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), cmd...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errOut bytes.Buffer
				err := run(context.Background(), args, &out, &errOut)
				if code := exitCode(err); code != 0 {
					t.Fatalf("strata %s: exit status %d (error %v), want 0", strings.Join(args, " "), code, err)
				}
				if out.Len()+errOut.Len() == 0 {
					t.Fatalf("strata %s printed no usage", strings.Join(args, " "))
				}
			})
		}
	}
}

// TestUsageListsEveryCommand checks that the top-level usage has a line
// for every command and subcommand the dispatch knows (both read the
// command table), each with a description, and that each group's own
// usage names its subcommands.
func TestUsageListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range tableCommands() {
		name := strings.Join(c, " ")
		if seen[name] {
			t.Errorf("command table lists %q twice", name)
		}
		seen[name] = true
		if g, _ := findCommand(commands(), c[0]); len(c) == 1 && g.group {
			continue // a group is its subcommands
		}
		line := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +\S.*$`)
		if !line.MatchString(out.String()) {
			t.Errorf("usage has no line for %q with a description:\n%s", name, &out)
		}
	}
	for _, c := range commands() {
		if len(c.subs) == 0 {
			continue
		}
		var help bytes.Buffer
		err := run(context.Background(), []string{c.name, "-h"}, &help, &help)
		if exitCode(err) != 0 {
			t.Fatalf("strata %s -h: %v", c.name, err)
		}
		for _, s := range c.subs {
			listed := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(s.name) + `\s`)
			if !strings.Contains(help.String(), c.name+" "+s.name) && !listed.MatchString(help.String()) {
				t.Errorf("strata %s -h does not name its subcommand %s:\n%s", c.name, s.name, &help)
			}
		}
	}
	// Every command reads a config file.
	for _, c := range tableCommands() {
		if g, _ := findCommand(commands(), c[0]); len(c) == 1 && g.group {
			continue
		}
		var help bytes.Buffer
		_ = run(context.Background(), append(c, "-h"), &help, &help)
		if !strings.Contains(help.String(), "-config FILE") {
			t.Errorf("strata %s -h lists no --config FILE", strings.Join(c, " "))
		}
		// A backquoted phrase in a flag's help becomes its value's name:
		// a placeholder is one word.
		for _, l := range regexp.MustCompile(`(?m)^  -[a-z0-9-]+ .*$`).FindAllString(help.String(), -1) {
			if strings.Count(l, " ") != 3 {
				t.Errorf("strata %s -h: flag line %q: its value's name is more than a word", strings.Join(c, " "), l)
			}
		}
	}
	for _, args := range [][]string{{"nope"}, {"bench", "nope"}, {"trace", "nope"}, {"export", "nope"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `unknown`) {
			t.Errorf("strata %s: %v, want an unknown-command error", strings.Join(args, " "), err)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{fmt.Errorf("parsing: %w", flag.ErrHelp), 0},
		{errUsage, 2},
		{errors.New("opening trace: no such file"), 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if err := run(context.Background(), nil, &bytes.Buffer{}, &bytes.Buffer{}); exitCode(err) != 2 {
		t.Errorf("strata without a command: %v, want exit status 2", err)
	}
}

package flagtest

import (
	"flag"
	"io"
	"testing"
)

// Registerer is a configuration that registers its flags, each name
// preceded by a prefix, with its current values as their defaults.
type Registerer interface {
	RegisterFlags(fs *flag.FlagSet, prefix string)
}

// Parse registers c's flags on a flag set of its own (no prefix, output
// discarded) and parses args into them; a parse error fails t.
func Parse(t testing.TB, c Registerer, args ...string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
}

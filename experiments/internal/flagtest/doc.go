// Package flagtest parses a command configuration's flags in tests, as the
// command's own flag set would: one flag set per call, output discarded,
// a parse error failing the test.
package flagtest

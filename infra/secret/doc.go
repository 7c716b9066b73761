// Package secret keeps credentials out of what strata writes down — logs,
// summaries, the runs table's record of the command line: Redact hides
// the password of a URL or DSN, RedactArgs also the values of the flags
// that carry tokens.
package secret

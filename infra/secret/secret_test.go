package secret

import (
	"slices"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@127.0.0.1:4222", "nats://alice:REDACTED@127.0.0.1:4222"},
		{"nats://tokenonly@127.0.0.1:4222", "nats://tokenonly@127.0.0.1:4222"},
		{"clickhouse://default:pw@127.0.0.1:9000/strata", "clickhouse://default:REDACTED@127.0.0.1:9000/strata"},
		{"clickhouse://127.0.0.1:9000/strata?username=u&password=pw", "clickhouse://127.0.0.1:9000/strata?password=REDACTED&username=u"},
		{"strata.duckdb", "strata.duckdb"},
		{"127.0.0.1:9092", "127.0.0.1:9092"},
		{"nats://u:p%zz@host", "nats://REDACTED@host"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"--tokens", "s3cret,other", "--token=tok9", "-nats", "nats://u:natspw@h:4222",
		"--clickhouse=clickhouse://d:chpw@h:9000/db", "--store", "x.duckdb", "--tactical", "ppo"}
	got := RedactArgs(in)
	for _, secret := range []string{"s3cret", "other", "tok9", "natspw", "chpw"} {
		if strings.Contains(strings.Join(got, " "), secret) {
			t.Errorf("RedactArgs kept %q: %q", secret, got)
		}
	}
	want := []string{"--tokens", "REDACTED", "--token=REDACTED", "-nats", "nats://u:REDACTED@h:4222",
		"--clickhouse=clickhouse://d:REDACTED@h:9000/db", "--store", "x.duckdb", "--tactical", "ppo"}
	if !slices.Equal(got, want) {
		t.Errorf("RedactArgs = %q, want %q", got, want)
	}
	if in[1] != "s3cret,other" {
		t.Error("RedactArgs changed its input")
	}
}

package agents_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/schemas"
)

// TestModelsDigest checks what identifies a run's checkpoints: only the
// learned layers' files count, a changed file changes the digest, a
// checkpoint absent from the directory is left out, and no learned layer
// (or no directory) gives "".
func TestModelsDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dqn.ckpt", "dqn v1")
	write("ppo.ckpt", "ppo v1")
	digest := func(dir, s, tc, o string) string {
		t.Helper()
		d, err := agents.ModelsDigest(dir, map[schemas.Layer]string{schemas.Strategic: s, schemas.Tactical: tc, schemas.Operational: o})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	both := digest(dir, "dqn", "ppo", "hybrid-histogram")
	dqnOnly := digest(dir, "dqn", "greedy-cost", "none")
	tests := []struct {
		name string
		got  string
		same bool
		want string
	}{
		{"no directory", digest("", "dqn", "ppo", "lstm"), true, ""},
		{"no learned layer", digest(dir, "static-best", "oracle", "hybrid-histogram"), true, ""},
		{"only its checkpoint present", digest(dir, "dqn", "ppo", "lstm"), true, both},
		{"another operational baseline", digest(dir, "dqn", "ppo", "none"), true, both},
		{"a layer less", dqnOnly, false, both},
		{"parameters after the name", digest(dir, "dqn:x=1", "greedy-cost", "none"), true, dqnOnly},
	}
	for _, tt := range tests {
		if (tt.got == tt.want) != tt.same {
			t.Errorf("%s: digest %q against %q, want same=%v", tt.name, tt.got, tt.want, tt.same)
		}
	}
	if len(both) != 64 {
		t.Errorf("digest %q, want 64 hex digits", both)
	}
	write("ppo.ckpt", "ppo v2")
	if d := digest(dir, "dqn", "ppo", "none"); d == both {
		t.Error("a retrained ppo.ckpt left the digest unchanged")
	}
	if d := digest(dir, "dqn", "greedy-cost", "none"); d != dqnOnly {
		t.Error("a changed ppo.ckpt changed the digest of a run that serves only dqn")
	}
	if err := os.Mkdir(filepath.Join(dir, "lstm.ckpt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := agents.ModelsDigest(dir, map[schemas.Layer]string{schemas.Operational: "lstm"}); err == nil {
		t.Error("an unreadable lstm.ckpt gave no error")
	}
}

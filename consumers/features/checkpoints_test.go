package features_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/infra/natsbus/natstest"
	"github.com/strata-rl/strata/schemas"
)

// TestKVCheckpointsSpillToObjects checks that a checkpoint over SpillBytes
// goes to the object store with the entry naming it, that each new one
// replaces the one before (whose object is deleted), that a small one
// goes back into the entry, and that one over NATS's maximum payload (the
// failure measured at 10× the trace's apps) is stored and read back whole.
func TestKVCheckpointsSpillToObjects(t *testing.T) {
	js, _ := natstest.JetStream(t, "ckpt-test", natsbus.StreamConfig{})
	ctx := t.Context()
	kv, err := js.KeyValue(ctx, schemas.Names{}.Bucket(schemas.BucketCheckpoints))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(ctx, schemas.Names{}.Bucket(schemas.BucketFeatures))
	if err != nil {
		t.Fatal(err)
	}
	objects := func() int {
		t.Helper()
		list, err := obj.List(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			t.Fatal(err)
		}
		return len(list)
	}
	big := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	c := features.KVCheckpoints{KV: kv, Obj: obj, SpillBytes: 64}
	for _, step := range []struct {
		name    string
		c       features.KVCheckpoints
		value   []byte
		objects int
	}{
		{"small: in the entry", c, []byte("state-1"), 0},
		{"large: an object the entry names", c, big(1000, 'a'), 1},
		{"larger: a new object, the old one deleted", c, big(5000, 'b'), 1},
		{"small again: in the entry, the object deleted", c, []byte("state-2"), 0},
		{"over NATS's maximum payload, default spill size", features.KVCheckpoints{KV: kv, Obj: obj}, big(3<<20, 'c'), 1},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.c.Put(ctx, "p0", step.value); err != nil {
				t.Fatal(err)
			}
			got, err := step.c.Get(ctx, "p0")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, step.value) {
				t.Fatalf("read back %d bytes, want the %d written", len(got), len(step.value))
			}
			if n := objects(); n != step.objects {
				t.Errorf("%d objects in the store, want %d", n, step.objects)
			}
		})
	}
	// Without an object store a checkpoint stays in the entry, as before.
	if err := (features.KVCheckpoints{KV: kv}).Put(ctx, "p1", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "p1"); err != nil || string(got) != "plain" {
		t.Fatalf("an entry written without an object store reads back %q, %v", got, err)
	}
	if _, err := c.Get(ctx, "absent"); !errors.Is(err, features.ErrNoCheckpoint) {
		t.Fatalf("a missing checkpoint: %v, want ErrNoCheckpoint", err)
	}
}

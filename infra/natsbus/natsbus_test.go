package natsbus_test

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// TestEnsureStreamsConcurrently starts several roles' stream setup at once
// against a fresh server, each on a connection of its own and with a
// retention of its own, as the roles of a deployment do: every one
// succeeds (a create that loses the race to another retries as an
// update).
func TestEnsureStreamsConcurrently(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const roles = 8
	var wg sync.WaitGroup
	errs := make([]error, roles)
	for i := range roles {
		wg.Go(func() {
			nc, err := natsbus.Connect(srv.URL(), "role")
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[i] = err
				return
			}
			// Roles differ in retention, as a run and a standalone agent
			// may: an identical create would be idempotent on the server.
			errs[i] = natsbus.EnsureStreams(t.Context(), js, natsbus.StreamConfig{Names: schemas.Names{Prefix: "race"}, Memory: true, MaxBytes: int64(64+i) << 20})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("role %d: %v", i, err)
		}
	}
}

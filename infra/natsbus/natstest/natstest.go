// Package natstest starts strata's NATS environment for tests: an
// in-process nats-server with JetStream, a connection and strata's streams
// and buckets, all stopped at the test's cleanup.
package natstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// JetStream starts an in-process nats-server with JetStream in a temporary
// directory, connects to it as name and makes sure strata's streams and
// buckets exist with cfg; the server and the connection close at cleanup.
func JetStream(t testing.TB, name string, cfg natsbus.StreamConfig) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := natsbus.Connect(srv.URL(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsbus.EnsureStreams(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return js, nc
}

// DeleteNamed deletes the JetStream streams, key-value buckets and object
// stores under names' prefix on the server at url, logging (not failing
// on) what it cannot delete: the cleanup of a test on shared servers.
func DeleteNamed(t testing.TB, url string, names schemas.Names) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := natsbus.Connect(url, "test-cleanup")
	if err != nil {
		t.Logf("cleaning up %s: %v", names.Prefix, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Logf("cleaning up %s: %v", names.Prefix, err)
		return
	}
	// A stream is names.Stream(base); a key-value bucket is the stream
	// KV_<bucket>, an object store OBJ_<bucket>.
	sl := js.StreamNames(ctx)
	var streams []string
	for s := range sl.Name() {
		for _, p := range []string{names.Stream(""), "KV_" + names.Bucket(""), "OBJ_" + names.Bucket("")} {
			if strings.HasPrefix(s, p) {
				streams = append(streams, s)
				break
			}
		}
	}
	if err := sl.Err(); err != nil {
		t.Logf("cleaning up %s: listing streams: %v", names.Prefix, err)
	}
	for _, s := range streams {
		if err := js.DeleteStream(ctx, s); err != nil {
			t.Logf("cleaning up %s: deleting stream %s: %v", names.Prefix, s, err)
		}
	}
}

// Package natstest starts strata's NATS environment for tests: an
// in-process nats-server with JetStream, a connection and strata's streams
// and buckets, all stopped at the test's cleanup.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/infra/natsbus"
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

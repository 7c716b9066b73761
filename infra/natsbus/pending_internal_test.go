package natsbus

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/schemas"
)

// TestUnsentBatchIsSentByFlushAndCheck covers a batch left pending
// without a future — its Publish failed before the send did (a
// connection lost or closed under it during a shutdown). Flush and Check
// send it instead of dereferencing the missing future (which panicked in
// the features service's checkpoint on revocation), and it is stored once.
func TestUnsentBatchIsSentByFlushAndCheck(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := srv.ConnectInProcess("unsent")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := schemas.Names{Prefix: "unsent"}
	if err := EnsureStreams(t.Context(), js, StreamConfig{Names: names, Memory: true}); err != nil {
		t.Fatal(err)
	}
	subject := names.StateSubject(schemas.Tactical)
	for _, via := range []string{"flush", "check"} {
		p := NewBatchPublisher(js, 0)
		msg := &nats.Msg{Subject: subject, Data: []byte(via), Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "unsent-"+via)
		p.pending = append(p.pending, pendingPub{msg: msg})
		if via == "check" {
			if err := p.Check(); err != nil {
				t.Fatalf("check: %v", err)
			}
		}
		if err := p.Flush(t.Context()); err != nil {
			t.Fatalf("%s: %v", via, err)
		}
	}
	st, err := js.Stream(t.Context(), names.Stream(schemas.StreamState))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("the stream holds %d messages, want the 2 unsent batches once each", info.State.Msgs)
	}
}

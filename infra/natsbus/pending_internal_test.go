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
// the features service's checkpoint on revocation), a later Publish sends
// it first, and it is stored once.
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
	for _, via := range []string{"flush", "check", "publish"} {
		p := NewBatchPublisher(js, 0)
		msg := &nats.Msg{Subject: subject, Data: []byte(via), Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "unsent-"+via)
		p.pending = append(p.pending, pendingPub{msg: msg})
		switch via {
		case "check":
			if err := p.Check(); err != nil {
				t.Fatalf("check: %v", err)
			}
		case "publish":
			if err := p.Publish(t.Context(), subject, "after-unsent", []byte("after")); err != nil {
				t.Fatalf("publish: %v", err)
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
	if info.State.Msgs != 4 {
		t.Errorf("the stream holds %d messages, want the 3 unsent batches once each and the one after", info.State.Msgs)
	}
	// The unsent batch went before the one published after it.
	for seq, want := range map[uint64]string{3: "publish", 4: "after"} {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if string(m.Data) != want {
			t.Errorf("message %d: %q, want %q", seq, m.Data, want)
		}
	}
}

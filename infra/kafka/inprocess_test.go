package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/strata-rl/strata/schemas"
)

// roundTrip produces one record with value v to topic through a client
// built from opts and reads the topic from the start until it sees v.
func roundTrip(ctx context.Context, opts []kgo.Opt, topic, v string) error {
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("app"), Value: []byte(v)}).FirstErr(); err != nil {
		return fmt.Errorf("producing %q: %w", v, err)
	}
	for {
		f := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %q back: %w", v, err)
		}
		for r := range f.RecordsAll() {
			if string(r.Value) == v {
				return nil
			}
		}
	}
}

// TestEmbeddedBrokerInMemoryAndOverTCP checks that the embedded broker
// serves this process's clients (CommonOpts) over in-memory connections
// and any other client over its advertised loopback address, and that it
// forgets the address when it closes.
func TestEmbeddedBrokerInMemoryAndOverTCP(t *testing.T) {
	defer goleak.VerifyNone(t)
	e, err := StartEmbedded(1)
	if err != nil {
		t.Fatal(err)
	}
	brokers := e.Brokers()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := schemas.Names{}.Topic(schemas.TopicInvocations)

	v, ok := inProcess.Load(brokers[0])
	if !ok {
		e.Close()
		t.Fatalf("the embedded broker at %v is not registered for in-process dialing", brokers)
	}
	l := v.(*dualListener)

	tests := []struct {
		name      string
		opts      []kgo.Opt
		pipesMore bool
	}{
		{"this process's client, in memory", CommonOpts(brokers, nil), true},
		{"a plain client, over loopback TCP", []kgo.Opt{kgo.SeedBrokers(brokers...)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := l.pipes.Load()
			if err := roundTrip(ctx, tc.opts, topic, tc.name); err != nil {
				t.Fatal(err)
			}
			if more := l.pipes.Load() > before; more != tc.pipesMore {
				t.Errorf("in-memory connections %d → %d, want more: %v", before, l.pipes.Load(), tc.pipesMore)
			}
		})
	}

	e.Close()
	if _, ok := inProcess.Load(brokers[0]); ok {
		t.Error("a closed broker's address is still registered")
	}
	if inProcessDialer(brokers) != nil {
		t.Error("CommonOpts dials a closed broker in memory")
	}
	if _, err := l.dial(ctx); err == nil {
		t.Error("dialing a closed broker in memory succeeded")
	}
}

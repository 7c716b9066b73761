package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/pipeline"
)

// TestTrimConsumed checks the embedded broker's retention: records go up to
// the lowest offset every reading group committed, all of them when no
// group reads the topic, and none while a reading group has committed
// nothing.
func TestTrimConsumed(t *testing.T) {
	tests := []struct {
		name      string
		groups    []string
		commits   map[string]int64 // group → committed offset
		wantStart int64
	}{
		{"two groups: the lower commit", []string{"g1", "g2"}, map[string]int64{"g1": 7, "g2": 4}, 4},
		{"no reader: everything", nil, nil, 10},
		{"a reader without a commit: nothing", []string{"g1", "g2"}, map[string]int64{"g1": 7}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.Embedded(t, 1)
			topic := c.Names.Topic("strata.trim-test.v1")
			cl, err := kgo.NewClient(kafka.CommonOpts(c.Brokers, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx := t.Context()
			if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte{byte(i)}}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			for g, at := range tc.commits {
				offs := kadm.Offsets{}
				offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
				if _, err := adm.CommitOffsets(ctx, g, offs); err != nil {
					t.Fatal(err)
				}
			}
			tctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				pipeline.TrimConsumed(tctx, cl, []pipeline.Retention{{Readers: tc.groups, Topics: []string{topic}}}, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
			}()
			// Several rounds of the trimmer: the start offset reaches the
			// expected one and stays there.
			var start int64
			for range 20 {
				time.Sleep(20 * time.Millisecond)
				offs, err := adm.ListStartOffsets(ctx, topic)
				if err != nil {
					t.Fatal(err)
				}
				o, _ := offs.Lookup(topic, 0)
				if start = o.Offset; start > tc.wantStart {
					break
				}
			}
			stop()
			<-done
			if start != tc.wantStart {
				t.Fatalf("log start offset %d, want %d", start, tc.wantStart)
			}
		})
	}
}

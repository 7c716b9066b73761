package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
)

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"TestIntegrationClosedLoop/sub", "closedloop-sub"},
		{"TestEmbeddedPipeline", "embeddedpipeline"},
		{"TestA_B__C", "a-b-c"},
		{"TestIntegrationAVeryLongNameThatGoesOnAndOnForever", "averylongnamethatgoesonandonfo"},
	} {
		if got := slug(c.in); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNewHasTopics(t *testing.T) {
	c := New(t, 2)
	if useReal == c.Embedded {
		t.Fatalf("Embedded = %v with useReal = %v", c.Embedded, useReal)
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(c.Brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n, err := kafka.PartitionCount(t.Context(), cl, c.Names.Topic(schemas.TopicTelemetry))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d partitions, want 2", n)
	}
}

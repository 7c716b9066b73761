package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/schemas"
)

// newFakeCluster starts an in-process broker with no topics (kfake.NewCluster
// directly: StartEmbedded seeds strata's) and returns a client of it.
func newFakeCluster(t *testing.T) *kgo.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(CommonOpts(c.ListenAddrs(), nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// partitionCounts returns each topic's partition count.
func partitionCounts(t *testing.T, ctx context.Context, cl *kgo.Client, topics []string) []int {
	t.Helper()
	out := make([]int, len(topics))
	for i, tp := range topics {
		n, err := PartitionCount(ctx, cl, tp)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

func TestResolvePartitions(t *testing.T) {
	topics := schemas.Names{Prefix: "rp"}.Topics()
	for _, c := range []struct {
		name     string
		existing map[string]int32 // topics created before, with their counts
		asked    int
		want     int    // 0: an error is wanted
		wantErr  string // words the error must hold (space-separated)
	}{
		{name: "none exist, none asked", asked: 0, want: DefaultPartitions},
		{name: "none exist, 3 asked", asked: 3, want: 3},
		{name: "none exist, 1 asked", asked: 1, want: 1},
		{name: "3 exist, none asked", existing: map[string]int32{topics[1]: 3}, asked: 0, want: 3},
		{name: "3 exist, 3 asked", existing: map[string]int32{topics[0]: 3, topics[4]: 3}, asked: 3, want: 3},
		{name: "all 3 exist, none asked", existing: all(topics, 3), asked: 0, want: 3},
		{name: "3 exist, 4 asked", existing: map[string]int32{topics[1]: 3}, asked: 4,
			wantErr: topics[1] + " 3 partitions --partitions 4"},
		{name: "3 and 4 exist", existing: map[string]int32{topics[1]: 3, topics[2]: 4}, asked: 0,
			wantErr: topics[1] + " " + topics[2] + " 3 4"},
		{name: "negative asked", asked: -1, wantErr: "-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl := newFakeCluster(t)
			for tp, n := range c.existing {
				if err := EnsureTopics(ctx, cl, n, tp); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ResolvePartitions(ctx, cl, c.asked, topics...)
			if c.wantErr != "" {
				if err == nil {
					t.Fatalf("got %d partitions, want an error", got)
				}
				for _, w := range strings.Fields(c.wantErr) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				// Nothing was created or changed.
				for tp, n := range c.existing {
					if got := partitionCounts(t, ctx, cl, []string{tp}); got[0] != int(n) {
						t.Errorf("%s has %d partitions after the refusal, had %d", tp, got[0], n)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("resolved %d partitions, want %d", got, c.want)
			}
			// Every topic exists now, with the resolved count.
			for i, n := range partitionCounts(t, ctx, cl, topics) {
				if n != c.want {
					t.Errorf("%s has %d partitions, want %d", topics[i], n, c.want)
				}
			}
			// Resolving again adopts the count; asking for it explicitly
			// is accepted too.
			for _, asked := range []int{0, c.want} {
				if again, err := ResolvePartitions(ctx, cl, asked, topics...); err != nil || again != c.want {
					t.Errorf("resolving again with %d asked: %d, %v; want %d", asked, again, err, c.want)
				}
			}
		})
	}
}

// all maps every topic to n.
func all(topics []string, n int32) map[string]int32 {
	m := map[string]int32{}
	for _, tp := range topics {
		m[tp] = n
	}
	return m
}

// TestAwaitPartitionCount waits for a topic that another client creates
// later, and gives up with ctx, saying which topic it waited for.
func TestAwaitPartitionCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newFakeCluster(t)
	created := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		created <- EnsureTopics(ctx, cl, 3, "later")
	}()
	n, err := AwaitPartitionCount(ctx, cl, "later", nil)
	if err != nil || n != 3 {
		t.Fatalf("got %d partitions, %v; want 3", n, err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	if n, err := AwaitPartitionCount(short, cl, "never", nil); err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("got %d, %v; want an error naming the topic", n, err)
	}
}

package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
)

// Cluster is the Kafka a test runs against.
type Cluster struct {
	// Brokers are the seed addresses.
	Brokers []string
	// Names prefixes the test's topics and groups: empty on an embedded
	// broker (the test owns all of it), it-<test>-<random> on real
	// brokers.
	Names schemas.Names
	// Embedded is true for the in-process broker.
	Embedded bool
}

// New returns a cluster with strata's topics created under the cluster's
// name prefix with the given number of partitions (kafka.DefaultPartitions
// when 0). It is embedded unless the test binary was built with the
// integration tag, which makes it the brokers in STRATA_KAFKA (the test
// fails when that is unset).
func New(t testing.TB, partitions int) Cluster {
	t.Helper()
	if useReal {
		return Real(t, partitions)
	}
	return Embedded(t, partitions)
}

// Embedded starts an in-process broker with strata's topics and stops it
// at cleanup.
func Embedded(t testing.TB, partitions int) Cluster {
	t.Helper()
	k, err := kafka.StartEmbedded(partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return Cluster{Brokers: k.Brokers(), Embedded: true}
}

// Real connects to the brokers in STRATA_KAFKA, creates strata's topics
// under a prefix of the test's own and deletes the topics and groups under
// it at cleanup.
func Real(t testing.TB, partitions int) Cluster {
	t.Helper()
	env := os.Getenv("STRATA_KAFKA")
	if env == "" {
		t.Fatal("STRATA_KAFKA must be set (run infra/scripts/up.sh, or make test-integration)")
	}
	if partitions <= 0 {
		partitions = kafka.DefaultPartitions
	}
	c := Cluster{Brokers: kafka.ParseBrokers(env), Names: TestNames(t)}
	cl, err := kgo.NewClient(kafka.CommonOpts(c.Brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t.Cleanup(func() { DeleteNamed(t, c.Brokers, c.Names) })
	if err := kafka.EnsureTopics(t.Context(), cl, int32(partitions), c.Names.Topics()...); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNames returns a name prefix of the test's own, it-<test>-<random>,
// so that a test on shared servers reads only what it created.
func TestNames(t testing.TB) schemas.Names {
	t.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	names := schemas.Names{Prefix: "it-" + Slug(t) + "-" + hex.EncodeToString(r[:])}
	if err := schemas.ValidatePrefix(names.Prefix); err != nil {
		t.Fatal(err)
	}
	return names
}

// Slug is the test's name, short and in lower case, for the names of what
// the test creates: TestIntegrationClosedLoop/sub → closedloop-sub.
func Slug(t testing.TB) string { return slug(t.Name()) }

func slug(name string) string {
	name = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(name, "TestIntegration"), "Test"))
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	if len(s) > 30 {
		s = strings.TrimSuffix(s[:30], "-")
	}
	return s
}

// DeleteNamed deletes the topics and consumer groups under names' prefix,
// logging (not failing on) what it cannot delete.
func DeleteNamed(t testing.TB, brokers []string, names schemas.Names) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notUnder := func(prefix string) func(string) bool {
		return func(s string) bool { return !strings.HasPrefix(s, prefix) }
	}
	cl, err := kgo.NewClient(kafka.CommonOpts(brokers, nil)...)
	if err != nil {
		t.Errorf("cleaning up %s: %v", names.Prefix, err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if tds, err := adm.ListTopics(ctx); err != nil {
		t.Logf("cleaning up %s: listing topics: %v", names.Prefix, err)
	} else if topics := slices.DeleteFunc(tds.Names(), notUnder(names.Topic(""))); len(topics) > 0 {
		if resp, err := adm.DeleteTopics(ctx, topics...); err != nil || resp.Error() != nil {
			t.Logf("cleaning up %s: deleting topics %v: %v %v", names.Prefix, topics, err, resp.Error())
		}
	}
	ls, err := adm.ListGroups(ctx)
	if err != nil {
		t.Logf("cleaning up %s: listing groups: %v", names.Prefix, err)
		return
	}
	groups := slices.DeleteFunc(ls.Groups(), notUnder(names.Group("")))
	if len(groups) == 0 {
		return
	}
	// A static member (a sink with --instance-id) stays in its group after
	// it stops, until its session expires, and a group with a member
	// cannot be deleted: remove such members first.
	if dgs, err := adm.DescribeGroups(ctx, groups...); err == nil {
		for _, g := range dgs.Sorted() {
			var ids []string
			for _, m := range g.Members {
				if m.InstanceID != nil {
					ids = append(ids, *m.InstanceID)
				}
			}
			if len(ids) > 0 {
				_, _ = adm.LeaveGroup(ctx, kadm.LeaveGroup(g.Group).InstanceIDs(ids...).Reason("test cleanup"))
			}
		}
	}
	if resp, err := adm.DeleteGroups(ctx, groups...); err != nil || resp.Error() != nil {
		t.Logf("cleaning up %s: deleting groups %v: %v %v", names.Prefix, groups, err, resp.Error())
	}
}

// ReadTopics reads topics from their starts to the end offsets they had
// when it began and returns their records, each partition's in order.
func ReadTopics(t testing.TB, ctx context.Context, brokers []string, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, nil),
		kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]map[int32]int64{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
			remaining++
		}
	})
	var out []*kgo.Record
	for remaining > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("reading the topics: ", ctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			if r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				remaining--
			}
		})
	}
	return out
}

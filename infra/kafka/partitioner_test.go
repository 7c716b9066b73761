package kafka

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/schemas"
)

// TestMurmur2KafkaVectors checks murmur2 against the golden values of Apache
// Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/
// common/utils/UtilsTest.java), which franz-go's partitioner tests repeat.
func TestMurmur2KafkaVectors(t *testing.T) {
	cases := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tc := range cases {
		if got := int32(murmur2([]byte(tc.in))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestKeyPartitionMatchesFranzGo compares KeyPartition with the partition
// franz-go's default Kafka-compatible key partitioner picks for keyed records.
func TestKeyPartitionMatchesFranzGo(t *testing.T) {
	r := rand.New(rand.NewPCG(2021, 1))
	keys := [][]byte{{}, {0}, {0xff}, {0xff, 0xff}, {1, 2, 3}, []byte("7b2c43a2bc30f6bb438074df88b603d2cb982d3e7961de05270735055950a568")}
	for len(keys) < 10_000 {
		k := make([]byte, r.IntN(80))
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		keys = append(keys, k)
	}
	for _, n := range []int{1, 3, 4, 12} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
			ours := Partitioner().ForTopic("t")
			seen := make([]int, n)
			for _, k := range keys {
				rec := &kgo.Record{Topic: "t", Key: k}
				if !ref.RequiresConsistency(rec) || !ours.RequiresConsistency(rec) {
					t.Fatalf("a keyed record must be partitioned consistently")
				}
				want := ref.Partition(rec, n)
				if got := KeyPartition(k, n); got != want {
					t.Fatalf("KeyPartition(%x, %d) = %d, franz-go picks %d", k, n, got, want)
				}
				if got := ours.Partition(rec, n); got != want {
					t.Fatalf("Partitioner().Partition(key %x, %d) = %d, franz-go picks %d", k, n, got, want)
				}
				seen[want]++
			}
			for p, c := range seen {
				if c < len(keys)/n/2 {
					t.Errorf("partition %d of %d got %d of %d keys", p, n, c, len(keys))
				}
			}
		})
	}
}

func TestPartitionerWatermarksKeepTheirPartition(t *testing.T) {
	p := Partitioner().ForTopic(schemas.TopicInvocations)
	for _, n := range []int{1, 3, 4, 12} {
		for part := range n {
			wm := &kgo.Record{Topic: schemas.TopicInvocations, Partition: int32(part), Headers: WatermarkHeaders}
			if !IsWatermark(wm) {
				t.Fatal("IsWatermark(watermark record) = false")
			}
			if got := p.Partition(wm, n); got != part {
				t.Errorf("watermark preset to partition %d of %d went to %d", part, n, got)
			}
			// A keyed watermark still keeps its partition.
			wm.Key = []byte("app")
			if got := p.Partition(wm, n); got != part {
				t.Errorf("keyed watermark preset to partition %d of %d went to %d", part, n, got)
			}
		}
	}

	// Other headers, or another kind, do not make a watermark.
	for _, hs := range [][]kgo.RecordHeader{
		nil,
		{{Key: "other", Value: []byte(schemas.KindWatermark)}},
		{{Key: schemas.HeaderKind, Value: []byte("arrival")}},
		{{Key: "trace", Value: []byte("x")}, {Key: schemas.HeaderKind, Value: []byte("Watermark")}},
	} {
		rec := &kgo.Record{Key: []byte("app-1"), Partition: 2, Headers: hs}
		if IsWatermark(rec) {
			t.Errorf("IsWatermark(headers %v) = true", hs)
		}
		if got, want := p.Partition(rec, 12), KeyPartition(rec.Key, 12); got != want {
			t.Errorf("non-watermark record with preset partition 2 went to %d, want its key's %d", got, want)
		}
	}
	rec := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("x")}, {Key: schemas.HeaderKind, Value: []byte(schemas.KindWatermark)}}}
	if !IsWatermark(rec) {
		t.Error("IsWatermark misses the kind header after another header")
	}
}

func BenchmarkKeyPartition(b *testing.B) {
	key := []byte("7b2c43a2bc30f6bb438074df88b603d2cb982d3e7961de05270735055950a568")
	for b.Loop() {
		_ = KeyPartition(key, 12)
	}
}

func TestProducedAt(t *testing.T) {
	at := time.UnixMicro(1_764_900_000_123_456)
	ts := time.UnixMilli(1_764_900_000_123)
	for _, c := range []struct {
		name    string
		headers []kgo.RecordHeader
		want    time.Time
	}{
		{"header to the microsecond", WatermarkHeadersAt(at), at},
		{"no header: the Kafka timestamp", WatermarkHeaders, ts},
		{"malformed header: the Kafka timestamp", []kgo.RecordHeader{{Key: schemas.HeaderProducedUS, Value: []byte("soon")}}, ts},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &kgo.Record{Headers: c.headers, Timestamp: ts}
			if got := ProducedAt(r); !got.Equal(c.want) {
				t.Fatalf("ProducedAt = %v, want %v", got, c.want)
			}
			if c.name == "header to the microsecond" && !IsWatermark(r) {
				t.Fatal("WatermarkHeadersAt: not a watermark")
			}
		})
	}
}

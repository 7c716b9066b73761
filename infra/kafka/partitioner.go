package kafka

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/schemas"
)

// Partitioner returns strata's partitioner: a keyed record goes to
// murmur2(key) mod n, exactly as the Java client's default partitioner and
// franz-go's StickyKeyPartitioner place keyed records, so other Kafka clients
// that key by app agree with strata; a watermark record (header strata-kind:
// watermark) keeps the partition set on it, because watermarks are written to
// every partition in turn.
func Partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int {
			if IsWatermark(r) {
				return int(r.Partition)
			}
			return KeyPartition(r.Key, n)
		}
	})
}

// KeyPartition returns the partition of a record key among n partitions.
func KeyPartition(key []byte, n int) int {
	return int(murmur2(key)&0x7fffffff) % n
}

// IsWatermark reports whether r is a watermark record.
func IsWatermark(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderKind {
			return string(h.Value) == schemas.KindWatermark
		}
	}
	return false
}

// WatermarkHeaders are the headers of a watermark record.
var WatermarkHeaders = []kgo.RecordHeader{{Key: schemas.HeaderKind, Value: []byte(schemas.KindWatermark)}}

// WatermarkHeadersAt are the headers of a watermark record produced at t:
// WatermarkHeaders and the production time in microseconds
// (schemas.HeaderProducedUS; ProducedAt reads it).
func WatermarkHeadersAt(t time.Time) []kgo.RecordHeader {
	return []kgo.RecordHeader{WatermarkHeaders[0], {Key: schemas.HeaderProducedUS, Value: strconv.AppendInt(nil, t.UnixMicro(), 10)}}
}

// WriterHeaders are the headers of a watermark record written by the
// named writer (an ingest instance; schemas.HeaderWriter).
func WriterHeaders(writer string) []kgo.RecordHeader {
	return []kgo.RecordHeader{WatermarkHeaders[0], {Key: schemas.HeaderWriter, Value: []byte(writer)}}
}

// Writer returns the writer a watermark record names, "" when it names
// none (the one writer of a replay).
func Writer(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderWriter {
			return string(h.Value)
		}
	}
	return ""
}

// ProducedAt returns when r was produced: its schemas.HeaderProducedUS
// header, to the microsecond, or else its Kafka timestamp (milliseconds).
func ProducedAt(r *kgo.Record) time.Time {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderProducedUS {
			if us, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				return time.UnixMicro(us)
			}
		}
	}
	return r.Timestamp
}

// murmur2 is the 32-bit MurmurHash2 variant Kafka uses for keys (seed
// 0x9747b28c), as specified by Apache Kafka's Utils.murmur2.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	i := 0
	for ; n-i >= 4; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

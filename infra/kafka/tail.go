package kafka

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// ReadTail reads up to the last n records of every partition of topic, in
// offset order per partition, and hands each to fn; it returns once every
// partition's end (as listed when it began) is reached. A restarting
// producer uses it to learn what it wrote before it stopped (the twin
// finds its last telemetry watermark this way).
func ReadTail(ctx context.Context, brokers []string, logger *slog.Logger, topic string, n int64, fn func(*kgo.Record)) error {
	adm, err := kgo.NewClient(CommonOpts(brokers, logger)...)
	if err != nil {
		return fmt.Errorf("reading the tail of %s: %w", topic, err)
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	starts, err := ka.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("listing the start offsets of %s: %w", topic, err)
	}
	ends, err := ka.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("listing the end offsets of %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	left := map[int32]int64{} // per partition, the end offset still to reach
	ends.Each(func(e kadm.ListedOffset) {
		start := e.Offset - n
		if s, ok := starts.Lookup(topic, e.Partition); ok {
			start = max(start, s.Offset)
		}
		if start < e.Offset {
			from[e.Partition] = kgo.NewOffset().At(start)
			left[e.Partition] = e.Offset
		}
	})
	if len(from) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(CommonOpts(brokers, logger), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))...)
	if err != nil {
		return fmt.Errorf("reading the tail of %s: %w", topic, err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("reading the tail of %s: %w", topic, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if Transient(fe.Err) {
				continue
			}
			return fmt.Errorf("reading the tail of %s: %w", topic, fe.Err)
		}
		for r := range fs.RecordsAll() {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				continue
			}
			fn(r)
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		}
	}
	return nil
}

// WatermarkTail is how many of a partition's newest records LastWatermarks
// reads by default for the newest watermark: a watermark comes after each
// tick's records, and a tick of the 14-day synthetic trace holds at most a
// few hundred.
const WatermarkTail = 50_000

// LastWatermarks returns, per partition of topic, the newest watermark of
// run runID among the last n records (partitions without one are left
// out): what a producer of the run wrote before it stopped.
func LastWatermarks(ctx context.Context, brokers []string, logger *slog.Logger, topic, runID string, n int64) (map[int32]int64, error) {
	newest := map[int32]int64{}
	err := ReadTail(ctx, brokers, logger, topic, n, func(r *kgo.Record) {
		if !IsWatermark(r) {
			return
		}
		var w stratapb.Watermark
		if proto.Unmarshal(r.Value, &w) == nil && w.RunId == runID {
			newest[r.Partition] = max(newest[r.Partition], w.WatermarkUs)
		}
	})
	return newest, err
}

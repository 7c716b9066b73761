package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/schemas"
)

// NewProgress shows replay progress in trace seconds on w (nil: none) and
// hooks it into cfg; the caller finishes the returned bar.
func NewProgress(w io.Writer, traceLenUS int64, cfg *producers.ReplayConfig) *progressbar.ProgressBar {
	if w == nil {
		return nil
	}
	total := int64(-1)
	if traceLenUS > 0 {
		total = traceLenUS / 1e6
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("replaying (trace seconds)"), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	cfg.Progress = func(t, _ int64) { _ = bar.Set64(t / 1e6) }
	return bar
}

// TrimConsumed is the embedded broker's retention: every interval it deletes
// the records of topics that every one of groups has committed (the feature
// service and the sink commit only after their work is durable), so a long
// run does not keep every record in memory. Real Kafka has its own
// retention; this runs only against the in-process broker, which strata
// owns for the run. With no groups, no role of the run reads topics, and
// their records are deleted up to the end of each partition.
func TrimConsumed(ctx context.Context, cl *kgo.Client, groups []string, topics []string, every time.Duration, log *slog.Logger) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(every)
	defer t.Stop()
	type tp struct {
		topic string
		part  int32
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		del := kadm.Offsets{}
		if len(groups) == 0 {
			// No role of the run reads these topics: records go as soon
			// as they are written.
			ends, err := adm.ListEndOffsets(ctx, topics...)
			if err != nil {
				continue
			}
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err == nil && o.Offset > 0 {
					del.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
				}
			})
			deleteRecords(ctx, adm, del, log)
			continue
		}
		// The lowest offset committed by every group, per partition.
		low := map[tp]int64{}
		seen := map[tp]int{}
		for _, g := range groups {
			offs, err := adm.FetchOffsets(ctx, g)
			if err != nil {
				break // the group may not have committed yet
			}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil || !slices.Contains(topics, o.Topic) || o.At <= 0 {
					return
				}
				k := tp{o.Topic, o.Partition}
				if v, ok := low[k]; !ok || o.At < v {
					low[k] = o.At
				}
				seen[k]++
			})
		}
		for k, at := range low {
			if seen[k] == len(groups) {
				del.Add(kadm.Offset{Topic: k.topic, Partition: k.part, At: at, LeaderEpoch: -1})
			}
		}
		deleteRecords(ctx, adm, del, log)
	}
}

// deleteRecords deletes the records before del's offsets, logging a failure
// (the next round tries again).
func deleteRecords(ctx context.Context, adm *kadm.Client, del kadm.Offsets, log *slog.Logger) {
	if len(del) == 0 {
		return
	}
	if _, err := adm.DeleteRecords(ctx, del); err != nil && ctx.Err() == nil {
		log.Warn("trimming consumed records from the embedded broker", "err", err)
	}
}

// RunConfigJSON is the config_json of a run's record: the command line's
// arguments (args: a JSON list as flags gave them, or roleconf.Config.RunJSON's
// object, which adds the config file and what it set) with what the run
// resolved — the topics' partition count and the name prefix.
func RunConfigJSON(args string, partitions int, names schemas.Names) string {
	var rec struct {
		Args       []string        `json:"args"`
		ConfigFile string          `json:"config_file,omitempty"`
		Overrides  json.RawMessage `json:"overrides,omitempty"`
	}
	if json.Unmarshal([]byte(args), &rec) != nil {
		_ = json.Unmarshal([]byte(args), &rec.Args)
	}
	b, err := json.Marshal(struct {
		Args       []string        `json:"args"`
		Partitions int             `json:"partitions"`
		Prefix     string          `json:"name_prefix,omitempty"`
		ConfigFile string          `json:"config_file,omitempty"`
		Overrides  json.RawMessage `json:"overrides,omitempty"`
	}{rec.Args, partitions, names.Prefix, rec.ConfigFile, rec.Overrides})
	if err != nil {
		return args
	}
	return string(b)
}

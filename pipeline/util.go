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

// Retention names topics and the consumer groups that read them, for
// TrimConsumed.
type Retention struct {
	// Readers are the groups that read Topics; none: no role of the run
	// reads them.
	Readers []string
	// Topics are the topics' full names.
	Topics []string
}

// TrimConsumed is the embedded broker's retention: every interval it
// deletes, for each rule, the records of the rule's topics that every one
// of its readers has committed (the feature service and the sink commit
// only after their work is durable), so a long run does not keep every
// record in memory. Real Kafka has its own retention; this runs only
// against the in-process broker, which strata owns for the run. A rule
// with no readers has its topics' records deleted up to the end of each
// partition. It returns when ctx is done.
func TrimConsumed(ctx context.Context, cl *kgo.Client, rules []Retention, every time.Duration, log *slog.Logger) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		del := kadm.Offsets{}
		for _, r := range rules {
			consumed(ctx, adm, r, del)
		}
		deleteRecords(ctx, adm, del, log)
	}
}

// consumed adds to del, per partition of r's topics, the offset before
// which every reader of r has committed (the end offset when r has no
// readers). A partition some reader has not committed in gets nothing.
func consumed(ctx context.Context, adm *kadm.Client, r Retention, del kadm.Offsets) {
	if len(r.Readers) == 0 {
		ends, err := adm.ListEndOffsets(ctx, r.Topics...)
		if err != nil {
			return
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset > 0 {
				del.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
			}
		})
		return
	}
	type tp struct {
		topic string
		part  int32
	}
	low := map[tp]int64{}
	seen := map[tp]int{}
	for _, g := range r.Readers {
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return // the group may not have committed yet
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil || !slices.Contains(r.Topics, o.Topic) || o.At <= 0 {
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
		if seen[k] == len(r.Readers) {
			del.Add(kadm.Offset{Topic: k.topic, Partition: k.part, At: at, LeaderEpoch: -1})
		}
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
// resolved — the topics' partition count and the name prefix — and the
// serving setup WithServing added (guardrails and fallbacks), if any.
func RunConfigJSON(args string, partitions int, names schemas.Names) string {
	var rec struct {
		Args       []string        `json:"args"`
		ConfigFile string          `json:"config_file,omitempty"`
		Overrides  json.RawMessage `json:"overrides,omitempty"`
		Serving    json.RawMessage `json:"serving,omitempty"`
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
		Serving    json.RawMessage `json:"serving,omitempty"`
	}{rec.Args, partitions, names.Prefix, rec.ConfigFile, rec.Overrides, rec.Serving})
	if err != nil {
		return args
	}
	return string(b)
}

// WithServing returns config_json args (as RunConfigJSON takes it) with
// the serving setup sv records (Serving.Record) under "serving"; args
// unchanged when sv records nothing.
func WithServing(args string, sv *Serving) string {
	rec := sv.Record()
	if rec == nil {
		return args
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &obj) != nil {
		var list []string
		_ = json.Unmarshal([]byte(args), &list)
		if list == nil {
			list = []string{}
		}
		b, _ := json.Marshal(list)
		obj = map[string]json.RawMessage{"args": b}
	}
	obj["serving"] = rec
	b, err := json.Marshal(obj)
	if err != nil {
		return args
	}
	return string(b)
}

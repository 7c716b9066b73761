package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// LearnerStateFormat is the format of the state `strata learner` persists
// for each run: a tar archive of position.json (learnerPosition) and
// learner.state (learner.Learner.SaveState).
const LearnerStateFormat = "strata-learner-role-state/1"

// Entries of a persisted learner-role state.
const (
	roleStatePosition = "position.json"
	roleStateLearner  = "learner.state"
)

// maxRoleStateBytes bounds one entry of a persisted learner-role state.
const maxRoleStateBytes = 1 << 31

// learnerPosition is position.json: where on the transitions topic the
// learner state next to it stands.
type learnerPosition struct {
	Format string `json:"format"`
	RunID  string `json:"run_id"`
	Topic  string `json:"topic"`
	// Offsets are, per partition of Topic, the offset of the next record
	// to read: every record before it (of any run) was handed to the
	// learner before the state was saved, none after. A partition not
	// listed is read from its start.
	Offsets map[int32]int64 `json:"offsets"`
	// Done counts the intervals processed per layer, for the log.
	Done map[schemas.Layer]int64 `json:"done"`
	// Saved is when the state was saved, for the log.
	Saved time.Time `json:"saved"`
}

// encodeLearnerState is the persisted state of l at pos.
func encodeLearnerState(l *learner.Learner, pos learnerPosition) ([]byte, error) {
	var st bytes.Buffer
	if err := l.SaveState(&st); err != nil {
		return nil, err
	}
	pj, err := json.Marshal(pos)
	if err != nil {
		return nil, fmt.Errorf("encoding the learner's position: %w", err)
	}
	var out bytes.Buffer
	if err := nn.WriteArchive(&out, []nn.ArchiveEntry{{Name: roleStatePosition, Data: pj}, {Name: roleStateLearner, Data: st.Bytes()}}); err != nil {
		return nil, fmt.Errorf("writing the learner-role state: %w", err)
	}
	return out.Bytes(), nil
}

// decodeLearnerState splits a persisted state into its position and the
// learner's training state, checking it is of run runID on topic.
func decodeLearnerState(data []byte, runID, topic string) (learnerPosition, []byte, error) {
	var pos learnerPosition
	raw, err := nn.ReadArchive(bytes.NewReader(data), []string{roleStatePosition, roleStateLearner}, maxRoleStateBytes)
	if err != nil {
		return pos, nil, fmt.Errorf("reading the persisted learner state of %s: %w", runID, err)
	}
	if raw[roleStatePosition] == nil || raw[roleStateLearner] == nil {
		return pos, nil, fmt.Errorf("reading the persisted learner state of %s: it lacks %s or %s", runID, roleStatePosition, roleStateLearner)
	}
	if err := json.Unmarshal(raw[roleStatePosition], &pos); err != nil {
		return pos, nil, fmt.Errorf("decoding the position of the persisted learner state of %s: %w", runID, err)
	}
	switch {
	case pos.Format != LearnerStateFormat:
		return pos, nil, fmt.Errorf("the persisted learner state of %s is in format %q, want %q", runID, pos.Format, LearnerStateFormat)
	case pos.RunID != runID || pos.Topic != topic:
		return pos, nil, fmt.Errorf("the persisted learner state of %s is of run %s on topic %s, not of run %s on %s", runID, pos.RunID, pos.Topic, runID, topic)
	}
	return pos, raw[roleStateLearner], nil
}

// learnerPersister saves a learner's training state with its position on
// the transitions topic to the model store, every every-th interval
// processed.
type learnerPersister struct {
	l      *learner.Learner
	ms     *natsbus.ModelStore
	adm    *kadm.Client // commits the position to group, for lag monitoring
	group  string
	runID  string
	topic  string
	every  int64
	logger *slog.Logger

	// offsets is the position after the last record handled.
	offsets map[int32]int64
	// done is the intervals processed at the last save; saves count them.
	done, saves int64
	// commitWarned is set once a commit to the group failed (logged once).
	commitWarned bool
}

// processed returns the intervals of the run processed, all layers.
func processed(l *learner.Learner) int64 {
	var n int64
	for _, layer := range schemas.Layers {
		if l.Trains(layer) {
			n += l.Done(layer)
		}
	}
	return n
}

// handled records that the record at partition p, offset off was handed
// to the learner, and persists the state when it was the due-th interval
// processed since the last save.
func (p *learnerPersister) handled(ctx context.Context, part int32, off int64) error {
	p.offsets[part] = off + 1
	if p.every <= 0 {
		return nil
	}
	if d := processed(p.l); d-p.done >= p.every {
		return p.save(ctx, d)
	}
	return nil
}

// save persists the learner's state at the current position.
func (p *learnerPersister) save(ctx context.Context, done int64) error {
	start := time.Now()
	pos := p.l.Position()
	lp := learnerPosition{Format: LearnerStateFormat, RunID: p.runID, Topic: p.topic, Offsets: maps.Clone(p.offsets), Done: pos.Done, Saved: start.UTC()}
	data, err := encodeLearnerState(p.l, lp)
	if err != nil {
		return fmt.Errorf("persisting the learner state of %s: %w", p.runID, err)
	}
	encoded := time.Since(start)
	if err := p.ms.PutLearnerState(ctx, p.runID, data); err != nil {
		return fmt.Errorf("persisting the learner state of %s: %w", p.runID, err)
	}
	p.done = done
	p.saves++
	p.logger.Debug("learner state persisted", "run", p.runID, "bytes", len(data), "encode", encoded, "took", time.Since(start),
		"done", pos.Done, "pending", pos.Pending, "offsets", lp.Offsets)
	p.commit(ctx)
	return nil
}

// commit records the persisted position as the consumer group's offsets:
// the learner reads with explicit offsets, and the group only shows its
// lag to the usual tools. A failure is logged once and otherwise ignored.
func (p *learnerPersister) commit(ctx context.Context) {
	var os kadm.Offsets
	for part, off := range p.offsets {
		os.Add(kadm.Offset{Topic: p.topic, Partition: part, At: off, LeaderEpoch: -1})
	}
	if err := p.adm.CommitAllOffsets(ctx, p.group, os); err != nil && !p.commitWarned && ctx.Err() == nil {
		p.commitWarned = true
		p.logger.Warn("committing the learner's position to its consumer group (monitoring only) failed", "group", p.group, "err", err)
	}
}

// consumeTransitionsFrom polls cl — its options say which topic it reads
// and from where: explicit per-partition offsets for the restartable
// learner role, a consumer group for the in-process learner
// (ConsumeTransitions) — and hands every record of runID to fn, then reports every record read to
// after (if not nil), in order, until ctx ends. A record that does not
// decode is logged and skipped.
func consumeTransitionsFrom(ctx context.Context, cl *kgo.Client, runID string, logger *slog.Logger,
	fn func(*stratapb.Transition) error, after func(partition int32, offset int64) error) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var herr error
		fs.EachRecord(func(r *kgo.Record) {
			if herr != nil {
				return
			}
			var tr stratapb.Transition
			if err := proto.Unmarshal(r.Value, &tr); err != nil {
				logger.Warn("skipping a transition record that does not decode", "partition", r.Partition, "offset", r.Offset, "err", err)
			} else if tr.GetRunId() == runID {
				if herr = fn(&tr); herr != nil {
					return
				}
			}
			if after != nil {
				herr = after(r.Partition, r.Offset)
			}
		})
		if herr != nil {
			return herr
		}
	}
}

// startOffsets returns the offsets to consume topic's n partitions from:
// the persisted ones, the start for the others.
func startOffsets(topic string, n int, persisted map[int32]int64) (map[string]map[int32]kgo.Offset, error) {
	ps := map[int32]kgo.Offset{}
	for p := range int32(n) {
		ps[p] = kgo.NewOffset().AtStart()
	}
	for _, p := range slices.Sorted(maps.Keys(persisted)) {
		if p < 0 || int(p) >= n {
			return nil, fmt.Errorf("the persisted learner position names partition %d of %s, which has %d partitions", p, topic, n)
		}
		ps[p] = kgo.NewOffset().At(persisted[p])
	}
	return map[string]map[int32]kgo.Offset{topic: ps}, nil
}

// newTransitionsConsumer returns a client that reads topic's partitions
// from offsets (startOffsets) and, without a reset, fails on an offset
// that is no longer in the log (trimmed by retention) instead of silently
// skipping what the learner has not seen.
func newTransitionsConsumer(ctx context.Context, brokers []string, admin *kgo.Client, topic string, persisted map[int32]int64, logger *slog.Logger) (*kgo.Client, error) {
	n, err := kafka.ResolvePartitions(ctx, admin, 0, topic)
	if err != nil {
		return nil, err
	}
	offs, err := startOffsets(topic, n, persisted)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(kafka.CommonOpts(brokers, logger), kgo.ConsumePartitions(offs), kgo.ConsumeResetOffset(kgo.NoResetOffset()))...)
	if err != nil {
		return nil, fmt.Errorf("creating the learner's kafka consumer: %w", err)
	}
	return cl, nil
}

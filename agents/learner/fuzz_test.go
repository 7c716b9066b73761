package learner_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// discardStore takes what a learner publishes and keeps nothing.
type discardStore struct{}

func (discardStore) PutCheckpoint(context.Context, string, schemas.Checkpoint) error { return nil }
func (discardStore) PutProgress(context.Context, string, schemas.Layer, int64) error { return nil }

// fuzzLearner returns a learner of both layers with narrow networks and
// tiny buffers, so that a handful of transitions trains and publishes.
func fuzzLearner(tb testing.TB) *learner.Learner {
	cfg := learner.DefaultConfig(5, schemas.Strategic, schemas.Tactical)
	cfg.DQN.Net.StrategicHidden, cfg.DQN.Net.AppHidden, cfg.DQN.Net.HeadHidden = [2]int{4, 3}, 2, [2]int{3, 2}
	cfg.DQN.BufferSize, cfg.DQN.WarmUp, cfg.DQN.BatchSize, cfg.DQN.ScalerFit = 16, 4, 4, 4
	cfg.PPO.Net.Shared, cfg.PPO.Net.ActorHidden, cfg.PPO.Net.CriticHidden = [2]int{4, 3}, [2]int{3, 2}, 2
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 4, 4, 1
	l, err := learner.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// records frames serialised transitions as a stream of records: each a
// uvarint length and the bytes, as FuzzHandle reads them.
func records(tb testing.TB, trs []*stratapb.Transition) []byte {
	var out []byte
	for _, tr := range trs {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tr)
		if err != nil {
			tb.Fatal(err)
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

// fuzzRun is the transitions of a short run of both layers: two tactical
// hours of three functions and one strategic day of three apps, markers
// included.
func fuzzRun() []*stratapb.Transition {
	return append(tacticalRun("fuzz", 2, 3), strategicDay("fuzz", 0, 3, 2)...)
}

// FuzzHandle reads a stream of transition records as the learner role does
// from the transitions topic (a record that does not decode is skipped) and
// hands each to Handle on a fresh learner in run "fuzz". Whatever the
// records, Handle returns (an error or not) without panicking, and the
// learner's training state then saves, restores into another learner and
// saves again to the same bytes.
func FuzzHandle(f *testing.F) {
	run := fuzzRun()
	f.Add(records(f, run))
	f.Add(records(f, run[:4]))
	odd := proto.Clone(run[0]).(*stratapb.Transition)
	odd.State, odd.Action, odd.Tick = odd.State[:3], 99, -1
	marker := &stratapb.Transition{RunId: "fuzz", Layer: string(schemas.Tactical), Tick: -1, EndOfInterval: true, Count: 1}
	f.Add(records(f, []*stratapb.Transition{marker, odd}))
	f.Add([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		l := fuzzLearner(t)
		defer l.Close()
		if err := l.Begin(ctx, "fuzz", 0, discardStore{}); err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 {
			n, k := binary.Uvarint(data)
			if k <= 0 || n > uint64(len(data)-k) {
				break
			}
			rec := data[k : k+int(n)]
			data = data[k+int(n):]
			var tr stratapb.Transition
			if proto.Unmarshal(rec, &tr) != nil {
				continue
			}
			if err := l.Handle(ctx, &tr); err != nil {
				break // the role stops on an error
			}
		}
		var s1, s2 bytes.Buffer
		if err := l.SaveState(&s1); err != nil {
			t.Fatalf("saving the state: %v", err)
		}
		again := fuzzLearner(t)
		defer again.Close()
		if err := again.Restore(bytes.NewReader(s1.Bytes())); err != nil {
			t.Fatalf("restoring a saved state: %v", err)
		}
		if err := again.SaveState(&s2); err != nil || !bytes.Equal(s1.Bytes(), s2.Bytes()) {
			t.Fatalf("the state changed through a restore and save (%v)", err)
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore, the learner role's saved
// training state: it must return nil or an error and leave the learner
// usable, never panic or allocate what the state claims. A state that
// restores saves a state that restores into another learner and saves again
// to the same bytes.
func FuzzRestore(f *testing.F) {
	ctx := context.Background()
	for _, n := range []int{-1, 0, 5, len(fuzzRun())} { // before any run, at its start, mid-interval, after intervals
		l := fuzzLearner(f)
		if n >= 0 {
			if err := l.Begin(ctx, "fuzz", 1, discardStore{}); err != nil {
				f.Fatal(err)
			}
			for _, tr := range fuzzRun()[:n] {
				if err := l.Handle(ctx, tr); err != nil {
					f.Fatal(err)
				}
			}
		}
		var b bytes.Buffer
		if err := l.SaveState(&b); err != nil {
			f.Fatal(err)
		}
		l.Close()
		f.Add(b.Bytes())
	}
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	l, again := fuzzLearner(f), fuzzLearner(f)
	f.Cleanup(l.Close)
	f.Cleanup(again.Close)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := l.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		var s1, s2 bytes.Buffer
		if err := l.SaveState(&s1); err != nil {
			t.Fatalf("saving a restored state: %v", err)
		}
		if err := again.Restore(bytes.NewReader(s1.Bytes())); err != nil {
			t.Fatalf("restoring a saved state: %v", err)
		}
		if err := again.SaveState(&s2); err != nil || !bytes.Equal(s1.Bytes(), s2.Bytes()) {
			t.Fatalf("the state changed through a restore and save (%v)", err)
		}
	})
}

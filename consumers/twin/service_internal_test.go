package twin

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestServiceDecisionsWaitForEveryLayerAndState checks when the
// replay-synchronous Service has the decisions of a tick: every enabled
// layer whose interval starts at the tick has a complete batch, and every
// transition layer whose interval i > 0 starts there has its state.
func TestServiceDecisionsWaitForEveryLayerAndState(t *testing.T) {
	const hour = grid.TicksPerHour
	op, tac := schemas.Operational, schemas.Tactical
	type batch struct {
		layer      schemas.Layer
		tick       int64
		shards, of int // shards in, of
	}
	for _, tc := range []struct {
		name        string
		layers      []schemas.Layer
		transitions []schemas.Layer
		k           int64
		batches     []batch
		state       bool // the tactical state of k's hour is complete
		want        []schemas.Layer
	}{
		{name: "operational batch complete", layers: []schemas.Layer{op}, k: 5,
			batches: []batch{{layer: op, tick: 5, shards: 2, of: 2}}, want: []schemas.Layer{op}},
		{name: "operational batch missing a shard", layers: []schemas.Layer{op}, k: 5,
			batches: []batch{{layer: op, tick: 5, shards: 1, of: 2}}},
		{name: "another tick's batch", layers: []schemas.Layer{op}, k: 5,
			batches: []batch{{layer: op, tick: 4, shards: 1, of: 1}}},
		{name: "mid-hour: the tactical layer is not waited for", layers: []schemas.Layer{tac, op}, k: hour + 1,
			batches: []batch{{layer: op, tick: hour + 1, shards: 1, of: 1}}, want: []schemas.Layer{op}},
		{name: "hour start without the hour's tactical batch", layers: []schemas.Layer{tac, op}, k: hour,
			batches: []batch{{layer: op, tick: hour, shards: 1, of: 1}}},
		{name: "hour start with both, slowest layer first", layers: []schemas.Layer{tac, op}, k: hour,
			batches: []batch{{layer: op, tick: hour, shards: 1, of: 1}, {layer: tac, tick: 1, shards: 1, of: 1}},
			want:    []schemas.Layer{tac, op}},
		{name: "hour start without the hour's state", layers: []schemas.Layer{tac, op}, transitions: []schemas.Layer{tac}, k: hour,
			batches: []batch{{layer: op, tick: hour, shards: 1, of: 1}, {layer: tac, tick: 1, shards: 1, of: 1}}},
		{name: "hour start with the hour's state", layers: []schemas.Layer{tac, op}, transitions: []schemas.Layer{tac}, k: hour,
			batches: []batch{{layer: op, tick: hour, shards: 1, of: 1}, {layer: tac, tick: 1, shards: 1, of: 1}}, state: true,
			want: []schemas.Layer{tac, op}},
		{name: "the first hour needs no state", layers: []schemas.Layer{tac, op}, transitions: []schemas.Layer{tac}, k: 0,
			batches: []batch{{layer: op, tick: 0, shards: 1, of: 1}, {layer: tac, tick: 0, shards: 1, of: 1}},
			want:    []schemas.Layer{tac, op}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{core: &core{cfg: CommonConfig{RunID: "r", Layers: tc.layers, Transitions: tc.transitions},
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), batches: map[batchKey]*pendingBatch{},
				states: map[batchKey]*stateAcc{}, wake: make(chan struct{}, 1)}}
			for _, b := range tc.batches {
				for shard := range b.shards {
					data, err := schemas.EncodeDecisions(&schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: "r", Layer: b.layer,
						Tick: b.tick, Shard: shard, NShards: b.of}})
					if err != nil {
						t.Fatal(err)
					}
					if err := s.onDecision(data); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.state {
				s.states[batchKey{tac, tc.k / hour}] = &stateAcc{n: 1, shards: map[int]bool{0: true}}
			}
			held := len(s.batches)
			got, ok := s.decisions(tc.k, nil)
			if ok != (tc.want != nil) {
				t.Fatalf("ready %v, want %v", ok, tc.want != nil)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d batches, want %d", len(got), len(tc.want))
			}
			for i, b := range got {
				if b.Header.Layer != tc.want[i] || b.Header.NShards != 1 {
					t.Errorf("batch %d: layer %s of %d shards, want %s merged into one", i, b.Header.Layer, b.Header.NShards, tc.want[i])
				}
			}
			if left := held - len(got); len(s.batches) != left {
				t.Errorf("%d batches held after, want %d (those taken are forgotten)", len(s.batches), left)
			}
		})
	}
}

// TestInputCovers checks when the input a service has read covers a tick:
// every partition's watermark reached the tick's end, or every partition
// sent its final watermark.
func TestInputCovers(t *testing.T) {
	const tick = grid.OperationalTickUS
	for _, tc := range []struct {
		name                 string
		nParts               int
		wm                   map[int32]int64
		final                []int32
		k                    int64
		watermarked, reached bool
		covers, ended        bool
	}{
		{name: "no record read yet", nParts: -1, k: 0},
		{name: "a partition without a watermark", nParts: 2, wm: map[int32]int64{0: 5 * tick}, k: 0},
		{name: "the slowest partition short of the tick's end", nParts: 2, wm: map[int32]int64{0: 5 * tick, 1: 3 * tick}, k: 3,
			watermarked: true},
		{name: "the slowest partition at the tick's end", nParts: 2, wm: map[int32]int64{0: 5 * tick, 1: 4 * tick}, k: 3,
			watermarked: true, reached: true, covers: true},
		{name: "every partition final, short of the tick", nParts: 2, wm: map[int32]int64{0: 2 * tick, 1: 2 * tick}, final: []int32{0, 1}, k: 3,
			watermarked: true, covers: true, ended: true},
		{name: "one partition final", nParts: 2, wm: map[int32]int64{0: 2 * tick, 1: 2 * tick}, final: []int32{1}, k: 3,
			watermarked: true, ended: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInput(true, nil)
			in.nParts = tc.nParts
			for p, w := range tc.wm {
				in.wm[p] = w
			}
			for _, p := range tc.final {
				in.final[p] = true
				in.horizon = max(in.horizon, in.wm[p])
			}
			if got := in.watermarked(); got != tc.watermarked {
				t.Errorf("watermarked %v, want %v", got, tc.watermarked)
			}
			if got := in.reached(tc.k); got != tc.reached {
				t.Errorf("reached(%d) %v, want %v", tc.k, got, tc.reached)
			}
			if got := in.covers(tc.k); got != tc.covers {
				t.Errorf("covers(%d) %v, want %v", tc.k, got, tc.covers)
			}
			if got := in.ended(tc.k); got != tc.ended {
				t.Errorf("ended(%d) %v, want %v", tc.k, got, tc.ended)
			}
		})
	}
}

// TestWakeOutlivesItsPoll: a decision batch that arrives after the twin's
// poll returned wakes the next poll. The watcher of the poll that returned
// may still take the token; it must hand it on, or the next poll sleeps
// stallAfter with the batch already in.
func TestWakeOutlivesItsPoll(t *testing.T) {
	tests := []struct {
		name      string
		pollEnded bool
		wantToken bool
	}{
		{name: "the poll returned first: the token stays for the next poll", pollEnded: true, wantToken: true},
		{name: "the poll is waiting: the token cancels it", pollEnded: false, wantToken: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &core{wake: make(chan struct{}, 1)}
			// The watcher chooses at random between two ready cases; 200
			// rounds make a lost token all but certain to show.
			for range 200 {
				pctx, cancel := context.WithCancel(t.Context())
				if tc.pollEnded {
					cancel()
				}
				c.poke()
				c.cancelOnWake(pctx, cancel)
				if pctx.Err() == nil {
					t.Fatal("the poll was not cancelled")
				}
				got := len(c.wake) == 1
				if got != tc.wantToken {
					t.Fatalf("token left for the next poll: %v, want %v", got, tc.wantToken)
				}
				select {
				case <-c.wake:
				default:
				}
				cancel()
			}
		})
	}
}

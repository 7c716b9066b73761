package learner_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// twoLayerLearner returns a learner of both layers with small buffers, so
// a few hours publish several DQN and PPO checkpoints.
func twoLayerLearner(t *testing.T) *learner.Learner {
	t.Helper()
	cfg := learner.DefaultConfig(11, schemas.Strategic, schemas.Tactical)
	cfg.PPO.Rollout, cfg.PPO.Minibatch, cfg.PPO.Epochs = 64, 32, 2
	cfg.DQN.WarmUp, cfg.DQN.ScalerFit, cfg.DQN.BatchSize, cfg.DQN.UpdatesPerTransition = 16, 16, 8, 1
	l, err := learner.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// mixedRun is 12 tactical hours (tacticalRun, 40 functions) and 3
// strategic days of 20 apps, each day's transitions after its fourth hour,
// with transitions moved up to 50 places (as from several partitions) and
// markers kept in order: intervals of both layers are pending together.
func mixedRun(run string) []*stratapb.Transition {
	tac := tacticalRun(run, 12, 40)
	var out []*stratapb.Transition
	day := 0
	for _, tr := range tac {
		out = append(out, tr)
		if tr.EndOfInterval && tr.Tick%4 == 3 {
			out = append(out, strategicDay(run, day, 20, 3)...)
			day++
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range out {
		j := min(len(out)-1, i+rng.IntN(50))
		if !out[i].EndOfInterval && !out[j].EndOfInterval {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// strategicDay is day d of apps strategic transitions of a days-long run,
// then the day's marker.
func strategicDay(run string, d, apps, days int) []*stratapb.Transition {
	var out []*stratapb.Transition
	for a := range apps {
		st := make([]float32, schemas.StrategicDim)
		for i := range st {
			st[i] = float32((a*5+i+d)%9) + 0.5
		}
		tr := &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), App: "app" + strconv.Itoa(a),
			State: st, Action: int32(a % 3), Reward: float64(a%3) - 1, Policy: "dqn"}
		if d < days-1 {
			tr.NextState = st
		} else {
			tr.Done = true
		}
		out = append(out, tr)
	}
	return append(out, &stratapb.Transition{RunId: run, Layer: string(schemas.Strategic), Tick: int64(d), EndOfInterval: true, Count: int64(apps)})
}

// publishedCheckpoints returns the run's index of both layers and each
// entry's checkpoint bytes, keyed by layer, version and in-force interval.
func publishedCheckpoints(t *testing.T, ms *natsbus.ModelStore, run string) ([]string, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	data := map[string][]byte{}
	for _, layer := range []schemas.Layer{schemas.Strategic, schemas.Tactical} {
		idx, err := ms.Index(ctx, run, layer)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range idx {
			k := string(layer) + "/" + e.Version + "@" + strconv.FormatInt(e.InForce, 10)
			b, err := ms.Object(ctx, e.Object)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
			data[k] = b
		}
	}
	return keys, data
}

// TestLearnerRestartMidRun saves a learner's state at points inside a run
// — with intervals of both layers pending — and lets it go on handling
// (and publishing) a while, as a learner killed some time after its last
// save does; a fresh learner restored from the state (Restore, Resume) and
// handed every transition after the save publishes the same checkpoints,
// byte for byte and in force from the same intervals, as an uninterrupted
// learner, without duplicating index entries.
func TestLearnerRestartMidRun(t *testing.T) {
	ctx := context.Background()
	ms := modelStore(t)
	whole := twoLayerLearner(t)
	if err := whole.Begin(ctx, "whole", 2, ms); err != nil {
		t.Fatal(err)
	}
	for _, tr := range mixedRun("whole") {
		if err := whole.Handle(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	wantKeys, want := publishedCheckpoints(t, ms, "whole")
	if n := whole.Stats().Checkpoints; n[schemas.Strategic] < 3 || n[schemas.Tactical] < 4 {
		t.Fatalf("the uninterrupted learner published %v checkpoints: too few to compare", n)
	}
	n := len(mixedRun("whole"))
	for _, tc := range []struct {
		name       string
		cut, after int // save after cut transitions; handle after more before the kill
	}{
		{"before any transition", 0, 100},
		{"mid first hour", 25, 0},
		{"mid run, killed at once", n / 3, 0},
		{"mid run, killed after publishing", n / 2, 300},
		{"near the end", n - 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := "cut-" + strconv.Itoa(tc.cut)
			trs := mixedRun(run)
			first := twoLayerLearner(t)
			if err := first.Begin(ctx, run, 2, ms); err != nil {
				t.Fatal(err)
			}
			for _, tr := range trs[:tc.cut] {
				if err := first.Handle(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			var st bytes.Buffer
			if err := first.SaveState(&st); err != nil {
				t.Fatal(err)
			}
			pos := first.Position()
			if tc.cut > 0 && pos.Pending[schemas.Tactical]+pos.Pending[schemas.Strategic] == 0 {
				t.Fatalf("nothing pending at the save (%+v): the case does not test a mid-interval state", pos)
			}
			for _, tr := range trs[tc.cut:min(n, tc.cut+tc.after)] {
				if err := first.Handle(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			first.Close()

			second := twoLayerLearner(t)
			if err := second.Restore(bytes.NewReader(st.Bytes())); err != nil {
				t.Fatal(err)
			}
			if err := second.Handle(ctx, trs[min(n-1, tc.cut)]); !errors.Is(err, learner.ErrState) {
				t.Fatalf("Handle before Resume: %v, want ErrState", err)
			}
			if err := second.Resume("another", ms); !errors.Is(err, learner.ErrState) {
				t.Fatalf("Resume of another run: %v, want ErrState", err)
			}
			if err := second.Resume(run, ms); err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			if err := second.SaveState(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(st.Bytes(), again.Bytes()) {
				t.Fatal("the restored learner saves another state")
			}
			if got := second.Position(); !equalPositions(got, pos) {
				t.Fatalf("restored position %+v, saved %+v", got, pos)
			}
			for _, tr := range trs[tc.cut:] {
				if err := second.Handle(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			keys, got := publishedCheckpoints(t, ms, run)
			if len(keys) != len(wantKeys) {
				t.Fatalf("index %v, want %v", keys, wantKeys)
			}
			for i, k := range keys {
				if k != wantKeys[i] {
					t.Fatalf("index entry %d is %s, want %s", i, k, wantKeys[i])
				}
				if !bytes.Equal(got[k], want[k]) {
					t.Fatalf("checkpoint %s differs from the uninterrupted learner's", k)
				}
			}
			if a, b := second.Stats(), whole.Stats(); a.DQN.Steps != b.DQN.Steps || a.PPO.Accepted != b.PPO.Accepted ||
				a.Transitions[schemas.Tactical] != b.Transitions[schemas.Tactical] {
				t.Fatalf("counters %+v, uninterrupted %+v", a, b)
			}
		})
	}
}

// equalPositions compares two positions' counts and versions.
func equalPositions(a, b learner.RunPosition) bool {
	eq := func(x, y map[schemas.Layer]int64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	if a.Run != b.Run || !eq(a.Done, b.Done) || !eq(a.Next, b.Next) || len(a.Pending) != len(b.Pending) || len(a.Versions) != len(b.Versions) {
		return false
	}
	for k, v := range a.Pending {
		if b.Pending[k] != v {
			return false
		}
	}
	for k, v := range a.Versions {
		if b.Versions[k] != v {
			return false
		}
	}
	return true
}

package ppo

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// addN offers n transitions of the learner's current version (random
// states, actions and rewards from seed), updating whenever the rollout is
// full.
func addN(t *testing.T, l *Learner, seed uint64, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 13))
	rows := tacticalRows(seed, 32)
	for k := range n {
		r := &rows[k%len(rows)]
		err := l.Add(Transition{RunID: "resume", App: r.App, Func: r.Func, Tick: int64(seed)*1_000_000 + int64(k),
			State: r.Vector(), Action: rng.IntN(Actions), Reward: float32(rng.NormFloat64()), NextState: r.Vector(),
			Done: rng.IntN(8) == 0, LogProb: -3.178, PolicyVersion: l.Version()})
		if err != nil {
			t.Fatal(err)
		}
		if l.Ready() {
			if _, err := l.Update(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestStateResumes stops a learner mid-rollout, after updates, saves its
// training state, restores it and feeds both the same transitions: they
// write byte-identical checkpoints and states. One loaded from the
// checkpoint alone (no rollout, no moments) diverges.
func TestStateResumes(t *testing.T) {
	cfg := smallConfig(64)
	cfg.Net.Dropout = 0.1 // the dropout stream must carry over too
	tests := []struct {
		name   string
		before int
	}{
		{"mid first rollout", 40},
		{"after two updates, mid rollout", 150},
	}
	save := func(t *testing.T, l *Learner) (ckpt, state []byte) {
		var c, s bytes.Buffer
		if err := l.Save(&c); err != nil {
			t.Fatal(err)
		}
		if err := l.SaveState(&s); err != nil {
			t.Fatal(err)
		}
		return c.Bytes(), s.Bytes()
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := mustLearner(t, cfg, 9)
			addN(t, orig, 1, tc.before)
			ck, st := save(t, orig)
			resumed, err := LoadState(bytes.NewReader(st))
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			if _, st2 := save(t, resumed); !bytes.Equal(st, st2) {
				t.Fatal("a restored state saves differently from the one it was read from")
			}
			fresh, err := LoadLearner(bytes.NewReader(ck))
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			for _, l := range []*Learner{orig, resumed, fresh} {
				addN(t, l, 2, 100)
			}
			c1, s1 := save(t, orig)
			c2, s2 := save(t, resumed)
			if !bytes.Equal(c1, c2) || !bytes.Equal(s1, s2) {
				t.Fatalf("resumed learner differs: checkpoints equal %v, states equal %v", bytes.Equal(c1, c2), bytes.Equal(s1, s2))
			}
			if c3, _ := save(t, fresh); bytes.Equal(c1, c3) {
				t.Fatal("a learner loaded from the checkpoint alone matches: the state adds nothing the test sees")
			}
		})
	}
}

// TestLoadStateRefuses checks that what is not a PPO training state is
// refused with ErrCheckpoint.
func TestLoadStateRefuses(t *testing.T) {
	l := mustLearner(t, smallConfig(64), 1)
	addN(t, l, 1, 10)
	var s, c bytes.Buffer
	if err := l.SaveState(&s); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(&c); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a checkpoint": c.Bytes(), "truncated": s.Bytes()[:len(s.Bytes())/2], "empty": nil} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadState(bytes.NewReader(data)); !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("LoadState: %v, want ErrCheckpoint", err)
			}
		})
	}
}

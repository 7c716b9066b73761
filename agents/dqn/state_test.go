package dqn

import (
	"bytes"
	"errors"
	"testing"
)

// TestStateResumes stops a learner at several points — before its scaler
// is fitted, after warm-up, after the replay buffer wrapped — saves its
// training state, restores it, and feeds both the same transitions: they
// write byte-identical checkpoints and states. A learner loaded from the
// checkpoint alone (no buffer, moments or generators) diverges.
func TestStateResumes(t *testing.T) {
	cfg := smallConfig()
	cfg.BufferSize = 100
	cfg.UpdatesPerTransition = 1.5
	tests := []struct {
		name   string
		before int // transitions before the stop
	}{
		{"before the scaler is fitted", 20},
		{"after warm-up", 60},
		{"after the buffer wrapped", 170},
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
			orig := mustLearner(t, cfg)
			orig.SetEpisode(2)
			fill(t, orig, 1, tc.before)
			ck, st := save(t, orig)
			fresh, err := LoadLearner(bytes.NewReader(ck))
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			resumed, err := LoadState(bytes.NewReader(st))
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			if _, st2 := save(t, resumed); !bytes.Equal(st, st2) {
				t.Fatal("a restored state saves differently from the one it was read from")
			}
			for _, l := range []*Learner{orig, resumed, fresh} {
				fill(t, l, 2, 80)
			}
			c1, s1 := save(t, orig)
			c2, s2 := save(t, resumed)
			if !bytes.Equal(c1, c2) || !bytes.Equal(s1, s2) {
				t.Fatalf("resumed learner differs: checkpoints equal %v, states equal %v (steps %d vs %d)",
					bytes.Equal(c1, c2), bytes.Equal(s1, s2), orig.Stats().Steps, resumed.Stats().Steps)
			}
			if c3, _ := save(t, fresh); bytes.Equal(c1, c3) {
				t.Fatal("a learner loaded from the checkpoint alone matches: the state adds nothing the test sees")
			}
			if orig.Stats().Steps == 0 {
				t.Fatal("no gradient step after the stop: the test exercises nothing")
			}
		})
	}
}

// TestLoadStateRefuses checks that a state missing an entry, of another
// format or with a buffer of the wrong size is refused with ErrCheckpoint.
func TestLoadStateRefuses(t *testing.T) {
	l := mustLearner(t, smallConfig())
	fill(t, l, 1, 40)
	var s bytes.Buffer
	if err := l.SaveState(&s); err != nil {
		t.Fatal(err)
	}
	var ckpt bytes.Buffer
	if err := l.Save(&ckpt); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"a checkpoint, not a state", ckpt.Bytes()},
		{"truncated", s.Bytes()[:len(s.Bytes())/2]},
		{"empty", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadState(bytes.NewReader(tc.data)); !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("LoadState: %v, want ErrCheckpoint", err)
			}
		})
	}
}
